"""TEST DOUBLE of ``horizon_plugin_pytorch.quantization`` (Horizon Robotics' QAT plugin).

Exports follow the plugin's ``quantization/__init__.py`` (read_file id 31848900222) and the X3
quick_start imports: ``QuantStub``, ``prepare_qat_fx``, ``convert_fx``, ``set_fake_quantize``,
``FakeQuantState``, ``FakeQuantize``, ``check_model``, ``compile_model``, ``perf_model``,
``visualize_model``, ``export_hbir``, ``QConfig``, ``get_default_qconfig`` (plugin >= 1.7.0 in the
double), the legacy ``get_default_{qat,qat_out,calib}_qconfig``, ``March``. ``DeQuantStub`` (torch's) is
exported too for convenience (the sample imports it from ``torch.quantization``). hbdk4 generation
(emulated plugin version >= 2.0.0, see ``prepare.py``, ``qconfig_setter.py``, ``hbdk4.py``):
``prepare``, ``PrepareMethod``, ``QconfigSetter`` and the templates, ``get_qconfig``, ``qint8``/``qint16``
(the OE-Skills full-pipeline template imports them from here).
"""
from .. import _double
from ..dtype import qinfo, qint8, qint16, qint32  # noqa: F401
from ..march import March  # noqa: F401
from .fake_quantize import (  # noqa: F401
    CalibFakeQuantize,
    FakeQuantize,
    FakeQuantState,
    default_4bit_fake_quant,
    default_8bit_fake_quant,
    default_16bit_fake_quant,
    default_calib_fake_quant,
    default_uint4_fake_quant,
    default_weight_4bit_fake_quant,
    default_weight_8bit_fake_quant,
    per_channel_8bit_fake_quant,
    set_fake_quantize,
    update_scale_by_qtype,
)
from .hbdk3 import check_model, compile_model, export_hbir, perf_model, visualize_model  # noqa: F401
from .observer import (  # noqa: F401
    ClipObserver,
    FixedScaleObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from .observer_v2 import load_observer_params  # noqa: F401
from . import qconfig  # noqa: F401
from .qconfig import (  # noqa: F401
    QConfig,
    get_default_calib_qconfig,
    get_default_qat_out_qconfig,
    get_default_qat_qconfig,
    per_channel_qat_8bit_qconfig,
)
from .quantize_fx import convert_fx, fuse_fx, prepare_qat_fx  # noqa: F401
from .stubs import DeQuantStub, QuantStub  # noqa: F401
from .prepare import PrepareMethod, prepare  # noqa: F401

if _double.version_at_least("1.7.0"):
    from .qconfig import get_default_qconfig  # noqa: F401
if _double.version_at_least("2.0.0"):
    from .qconfig import get_qconfig  # noqa: F401
    from .qconfig_setter import ConvDtypeTemplate, MatmulDtypeTemplate, ModuleNameTemplate, QconfigSetter  # noqa: F401
    from . import hbdk4  # noqa: F401

march = None  # hbdk's tools assign ``horizon_plugin_pytorch.quantization.march`` (legacy attribute)

__all__ = [
    "QConfig", "FakeQuantize", "fuse_fx", "PrepareMethod", "prepare", "prepare_qat_fx", "convert_fx",
    "export_hbir", "check_model", "compile_model", "perf_model", "visualize_model", "QuantStub", "DeQuantStub",
    "set_fake_quantize", "FakeQuantState", "update_scale_by_qtype", "load_observer_params",
    "get_default_qat_qconfig", "get_default_qat_out_qconfig", "get_default_calib_qconfig",
    "default_uint4_fake_quant", "default_8bit_fake_quant", "per_channel_8bit_fake_quant",
    "default_weight_8bit_fake_quant", "default_4bit_fake_quant", "default_weight_4bit_fake_quant",
    "default_16bit_fake_quant", "default_calib_fake_quant", "per_channel_qat_8bit_qconfig",
    "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver", "ClipObserver", "FixedScaleObserver",
]
if _double.version_at_least("1.7.0"):
    __all__.append("get_default_qconfig")
