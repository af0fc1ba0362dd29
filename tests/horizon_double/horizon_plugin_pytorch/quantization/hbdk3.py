"""TEST DOUBLE of ``horizon_plugin_pytorch.quantization.hbdk3`` (Horizon Robotics' QAT plugin).

Follows the plugin source (read_file id 32054484001): the five deployment tools are imported from
``hbdk.torch_script.tools`` (here: the hbdk test double under ``tests/horizon_double/hbdk``); when hbdk
cannot be imported, calling any of them raises RuntimeError("<name> requires hbdk, which is uable to
find and import. Please make sure hbdk is installed in the environment.") after ``check_hbdk()``
raised EnvironmentError - the source's wording, typo included.
"""
import logging
import sys

logger = logging.getLogger(__name__)


def _raise_hbdk_import_error(func_name):
    def wrapper(*args, **kwargs):
        check_hbdk()
        msg = ("{} requires hbdk, which is uable to find and import. "
               "Please make sure hbdk is installed in the environment.".format(func_name))
        logger.error(msg)
        raise RuntimeError(msg)

    return wrapper


if sys.version_info >= (3, 10):
    import collections
    import collections.abc

    for _n in ("Iterator", "Iterable", "Mapping", "MutableSet", "MutableMapping"):
        if not hasattr(collections, _n):
            setattr(collections, _n, getattr(collections.abc, _n))

try:
    from hbdk.torch_script.tools import check_model, compile_model, export_hbir, perf_model, visualize_model

    def check_hbdk():
        pass

except ImportError as e:
    _import_exception = e

    def check_hbdk():
        raise EnvironmentError("hbdk is not properly installed, origin exception is", "\n", *_import_exception.args)

    check_model = _raise_hbdk_import_error("check_model")
    compile_model = _raise_hbdk_import_error("compile_model")
    export_hbir = _raise_hbdk_import_error("export_hbir")
    perf_model = _raise_hbdk_import_error("perf_model")
    visualize_model = _raise_hbdk_import_error("visualize_model")

__all__ = ["check_model", "compile_model", "export_hbir", "perf_model", "visualize_model"]
