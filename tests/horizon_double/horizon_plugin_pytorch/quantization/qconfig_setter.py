"""TEST DOUBLE of ``horizon_plugin_pytorch.quantization.qconfig_setter`` (Horizon Robotics' QAT plugin,
hbdk4 generation - J6 / RDK S100).

Follows the usage in HorizonRobotics/OE-Skills@0c35b73 (``horizon/skills/plugin/j6-plugin-adaptation/
j6-plugin-prepare/SKILL.md`` and ``j6-plugin-hbdk-generating/references/full-pipeline-template.md``)::

    QconfigSetter(reference_qconfig=get_qconfig(), templates=[
        ModuleNameTemplate({"": qint8}),
        ConvDtypeTemplate(input_dtype=qint8, weight_dtype=qint8),
        MatmulDtypeTemplate(input_dtypes=qint8)])

The plugin's templates decide each op's dtypes from the traced graph; the double only turns them into
a ``prepare_qat_fx`` qconfig dict: the reference qconfig (its output dtype replaced by
``ModuleNameTemplate``'s) for everything, per-name entries for the other ``ModuleNameTemplate`` keys.
A per-name ``qint16`` (the precision-tuning skill's ``ModuleNameTemplate({"": qint8, "conv": qint16})``)
gives that module a 16-bit output fake quant with the reference's observer; as in the plugin, the
module's consumers read that output as it is (no 8-bit re-quantization at their input). Otherwise only
``qint8`` is emulated; ``torch.float16`` (FakeCast), a global ``qint16`` and 16-bit conv/matmul input
templates raise NotImplementedError when the setter is used. The class signatures beyond the arguments above are
**unconfirmed** (extra keyword arguments are accepted and ignored). Available from emulated plugin
version 2.0.0 (the double's invented threshold).
"""
from typing import Any, Dict, List, Optional

from .. import _double

__all__ = ["QconfigSetter", "ModuleNameTemplate", "ConvDtypeTemplate", "MatmulDtypeTemplate"]

if not _double.version_at_least("2.0.0"):
    raise ImportError(
        "horizon_plugin_pytorch.quantization.qconfig_setter is emulated from plugin 2.0.0 "
        "(QAT_TUI_DOUBLE_PLUGIN_VERSION=%s)" % _double.plugin_version()
    )


def _dtype_name(d: Any) -> str:
    return str(d).replace("torch.", "")


def _require_qint8(where: str, dtypes: Any) -> None:
    for d in dtypes if isinstance(dtypes, (list, tuple)) else [dtypes]:
        if d is not None and _dtype_name(d) != "qint8":
            raise NotImplementedError("test double: %s dtype %s is not emulated (only qint8)" % (where, _dtype_name(d)))


class ModuleNameTemplate(object):
    """Output dtype by module name ("" = every module)."""

    def __init__(self, module_name_to_dtype: Dict[str, Any], **kwargs: Any) -> None:
        self.module_name_to_dtype = dict(module_name_to_dtype)
        self.kwargs = kwargs


class ConvDtypeTemplate(object):
    """Input and weight dtype of convolutions."""

    def __init__(self, input_dtype: Any = None, weight_dtype: Any = None, **kwargs: Any) -> None:
        self.input_dtype = input_dtype
        self.weight_dtype = weight_dtype
        self.kwargs = kwargs


class MatmulDtypeTemplate(object):
    """Input dtypes of matmuls (one dtype or a list of two)."""

    def __init__(self, input_dtypes: Any = None, **kwargs: Any) -> None:
        self.input_dtypes = input_dtypes
        self.kwargs = kwargs


def _with_output_dtype(ref: Any, dtype: Any) -> Any:
    """``ref`` with its output fake quant made for ``dtype`` (same observer and arguments)."""
    from .qconfig import QConfig

    return QConfig(output=ref.activation.with_args(dtype=dtype), weight=ref.weight)


class QconfigSetter(object):
    """A reference qconfig refined by templates."""

    def __init__(self, reference_qconfig: Any = None, templates: Optional[List[Any]] = None, **kwargs: Any) -> None:
        self.reference_qconfig = reference_qconfig
        self.templates = list(templates or [])
        self.kwargs = kwargs

    def to_qconfig_dict(self) -> Dict[str, Any]:
        """The double's translation to a ``prepare_qat_fx`` qconfig dict."""
        from .qconfig import get_qconfig

        ref = self.reference_qconfig if self.reference_qconfig is not None else get_qconfig()
        names = {}  # type: Dict[str, Any]
        for t in self.templates:
            if isinstance(t, ModuleNameTemplate):
                for name, dt in t.module_name_to_dtype.items():
                    if name and _dtype_name(dt) == "qint16":
                        names[name] = _with_output_dtype(ref, dt)
                        continue
                    _require_qint8("ModuleNameTemplate[%r]" % name, dt)
                    names[name] = ref
            elif isinstance(t, ConvDtypeTemplate):
                _require_qint8("ConvDtypeTemplate", [t.input_dtype, t.weight_dtype])
            elif isinstance(t, MatmulDtypeTemplate):
                _require_qint8("MatmulDtypeTemplate", t.input_dtypes)
            else:
                raise NotImplementedError("test double: template %s is not emulated" % type(t).__name__)
        glob = names.pop("", ref)
        out = {"": glob}  # type: Dict[str, Any]
        if names:
            out["module_name"] = list(names.items())
        return out
