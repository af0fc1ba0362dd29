"""TEST DOUBLE of Horizon Robotics' ``hbdk`` (hbdk3, the BPU compiler toolkit of the OpenExplorer docker;
not on PyPI).

Stands in for the Python side of hbdk3 that ``horizon_plugin_pytorch`` wraps: ``hbdk.torch_script.tools``
(export_hbir, check_model, compile_model, perf_hbm, perf_model, visualize_model - read_file id
20265692608), ``hbdk.checker`` (20811565886), ``hbdk.compiler`` (20877996094),
``hbdk.util.norm`` (20472558579) and ``hbdk.util.process`` (20758249515). The real package runs the
command-line tools ``hbdk-model-check``, ``hbdk-cc`` and ``hbdk-perf`` in child processes; the double
runs its own stand-ins (``hbdk/_cli.py``, plain Python, no torch) the same way, so their output comes
from a child process. Files it writes: ``.hbir`` (the double's JSON description of the traced model),
``.pt`` (torch.jit.save of the traced module), ``.hbm`` (see ``hbdk/hbm.py``: a magic header, a JSON
header, then the ``.pt`` bytes), perf ``<name>.html``/``<name>.json``, and ``000_original.dot`` for
visualization. The numbers in perf results are **invented estimates** (marked ``"test double": true``).

``__version__`` is "3.46.4" (the version in the X3 quick_start perf output) unless
``QAT_TUI_DOUBLE_HBDK_VERSION`` is set at import.
"""
import os as _os

__version__ = _os.environ.get("QAT_TUI_DOUBLE_HBDK_VERSION", "3.46.4")
TEST_DOUBLE = True
