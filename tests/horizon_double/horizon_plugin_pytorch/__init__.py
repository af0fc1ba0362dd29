"""TEST DOUBLE of Horizon Robotics' ``horizon_plugin_pytorch`` (the QAT plugin of the OpenExplorer
toolchain; the real package ships only inside Horizon's docker images and is not on PyPI).

This package stands in for the real one in qat-tui's tests. It follows the documented API (signatures,
argument checks, printed messages, files written, state rules) and delegates the numerics to
PyTorch's own FX quantization. Sources it follows (see ``tests/horizon_double/README.md`` and
``/work/shared/reference/horizon-api.md``):

* HorizonRDK/rdk_x3_doc ``docs/toolchain_development/expert/{quick_start,api_reference}.md``
  (the MobileNetV2 sample flow and its printed output),
* the plugin source text stored in the code index: ``march.py`` (read_file ids 6887783963,
  31212512250), ``quantization/__init__.py`` (31848900222), ``quantization/stubs.py`` (32069869060),
  ``quantization/qconfig.py`` (31499793000), ``quantization/fake_quantize.py`` (31843094239),
  ``quantization/hbdk3.py`` (32054484001), ``utils/deprecation`` helpers (31293815795),
  ``functional.py`` colour conversions (31815854818).

The emulated plugin version is ``__version__``: ``"1.9.0"`` unless the environment variable
``QAT_TUI_DOUBLE_PLUGIN_VERSION`` is set when the package is first imported (the qconfig names and the
``March`` constants that exist depend on it). ``_double`` holds the call log (``_double.CALLS``).
"""
import os as _os

__version__ = _os.environ.get("QAT_TUI_DOUBLE_PLUGIN_VERSION", "1.9.0")
TEST_DOUBLE = True

from . import _double  # noqa: E402
from . import march  # noqa: E402
from .march import March, get_march, set_march  # noqa: E402
from . import dtype  # noqa: E402
from . import functional  # noqa: E402
from . import quantization  # noqa: E402

__all__ = ["March", "set_march", "get_march", "functional", "quantization", "march", "dtype"]
