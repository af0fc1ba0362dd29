"""TEST DOUBLE of ``horizon_plugin_pytorch.quantization.qconfig`` (Horizon Robotics' QAT plugin).

Follows the plugin source in the code index (read_file id 31499793000) and the deprecation helper
``deprecated_module_attr_warning`` (id 31293815795):

* ``QConfig(activation=None, weight=None, input=None, output=None)`` - a namedtuple that is also a torch
  QConfig; passing observer/fake-quant *instances* raises ValueError("QConfig received observer
  instance, please pass observer class instead."); ``output`` is stored as ``activation``.
* ``get_default_qconfig(activation_fake_quant="fake_quant", weight_fake_quant="fake_quant",
  activation_observer="min_max", weight_observer="min_max", activation_qkwargs=None,
  weight_qkwargs=None)`` - ``@typechecked``; weights default to ``per_channel_symmetric``, ``ch_axis=0``
  (written into the caller's ``weight_qkwargs`` dict, as the source does); an unknown fake-quant or
  observer name fails the source's assertion (``"unsupport observer_name" + name``, no space);
  ``activation_fake_quant=None`` gives no activation fake quant (the 32-bit-output qconfig).
  Fake quants: fake_quant | lsq | pact (lsq and pact are plain fake quantizers in the double: the
  learnable scale / clipping is **not emulated**). Observers: min_max, fixed_scale, clip, percentile,
  clip_std, mse, kl, mix (mapped onto torch observers, see observer_v2.py).
* the named qconfigs of the source, e.g. ``default_qat_8bit_fake_quant_qconfig``,
  ``default_calib_8bit_fake_quant_qconfig`` (activation observer "mse"),
  ``default_qat_8bit_weight_32bit_out_fake_quant_qconfig`` (8-bit weights, no output fake quant: the
  op's output stays float - Horizon's int32 high-precision output), and
  ``default_calib_8bit_weight_32bit_out_fake_quant_qconfig`` (the same object).

Which names exist depends on the emulated plugin version (``QAT_TUI_DOUBLE_PLUGIN_VERSION``):

* ``get_default_qconfig`` and the ``*_8bit_weight_16bit_act_*`` names: from 1.7.0 (brief/reference);
  ``*_8bit_weight_32bit_out_*``: from 1.6.2 (the deprecation version of the old names);
  ``get_qconfig``: from 2.0.0 (the double's **invented** threshold).
* ``default_qat_out_8bit_fake_quant_qconfig`` / ``default_calib_out_8bit_fake_quant_qconfig``
  (deprecated 1.6.2, removed 1.9.0) and ``default_qat_16bit_fake_quant_qconfig`` /
  ``default_calib_16bit_fake_quant_qconfig`` (deprecated 1.7.0, removed 1.9.0) are handled like the
  source's ``deprecated_module_attr_warning``: this module object is replaced by a wrapper whose
  attribute access of a deprecated name logs ``[Deprecated] TODO(horizon): `<old>` was deprecated
  since <v> and will be removed in 1.9.0. Please use `<new>` instead.`` (logger.warning) and, from the
  removal version on, **raises RuntimeError with that message** - so even ``hasattr(qconfig, old)``
  raises from 1.9.0 (hasattr only swallows AttributeError). Before the removal version the old name
  returns the new object; the double also issues a ``DeprecationWarning`` then (its addition: the
  plugin only logs). Before the deprecation version the old names exist without any warning.
"""
import functools
import logging
import sys
import warnings
from collections import namedtuple
from typing import Dict, Optional

import torch
from torch import nn

from .. import _double
from ..dtype import qinfo, qint8, qint16
from ..utils.typeguard import typechecked
from . import _torch_compat as tc
from .fake_quantize import (
    CalibFakeQuantize,
    FakeQuantize,
    default_4bit_fake_quant,
    default_8bit_fake_quant,
    default_16bit_fake_quant,
    default_calib_fake_quant,
    default_uint4_fake_quant,
    default_weight_4bit_fake_quant,
    default_weight_8bit_fake_quant,
    default_weight_16bit_fake_quant,
    default_weight_calib_fake_quant,
    per_channel_8bit_fake_quant,
)
from .observer_v2 import (
    ClipObserver,
    HistogramObserver,
    ClipStdObserver,
    FixedScaleObserver,
    KLObserver,
    MinMaxObserver,
    MixObserver,
    MSEObserver,
    PercentileObserver,
)

logger = logging.getLogger("horizon_plugin_pytorch")


class QConfig(namedtuple("QConfig", ["activation", "weight", "input", "output"]), tc.TorchQConfig):
    def __new__(cls, activation=None, weight=None, input=None, output=None):
        # catch common mistakes
        if (
            isinstance(activation, nn.Module)
            or isinstance(weight, nn.Module)
            or isinstance(input, nn.Module)
            or isinstance(output, nn.Module)
        ):
            raise ValueError("QConfig received observer instance, please pass observer class instead.")
        assert output is None or activation is None, "Only one can be set for `activation` and `output` of QConfig"
        return super(QConfig, cls).__new__(cls, activation if output is None else output, weight, input, None)


# fake_quantize based qconfigs of the plugin's first generation
default_qat_8bit_qconfig = QConfig(activation=default_8bit_fake_quant, weight=default_weight_8bit_fake_quant)
per_channel_qat_8bit_qconfig = QConfig(activation=per_channel_8bit_fake_quant, weight=default_weight_8bit_fake_quant)
default_qat_4bit_qconfig = QConfig(activation=default_4bit_fake_quant, weight=default_weight_4bit_fake_quant)
default_qat_out_8bit_qconfig = QConfig(activation=None, weight=default_weight_8bit_fake_quant)
default_qat_out_4bit_qconfig = QConfig(activation=None, weight=default_weight_4bit_fake_quant)
default_calib_qconfig = QConfig(activation=default_calib_fake_quant, weight=default_weight_calib_fake_quant)

_ACT_FQ = {
    "fake_quant": {"qint16": default_16bit_fake_quant, "qint8": default_8bit_fake_quant,
                   "qint4": default_4bit_fake_quant, "quint4": default_uint4_fake_quant},
}
_ACT_FQ["lsq"] = dict(_ACT_FQ["fake_quant"])
_ACT_FQ["pact"] = dict(_ACT_FQ["fake_quant"])
_WEIGHT_FQ = {
    "fake_quant": {"qint8": default_weight_8bit_fake_quant, "qint4": default_weight_4bit_fake_quant,
                   "qint16": default_weight_16bit_fake_quant},
}
_WEIGHT_FQ["lsq"] = dict(_WEIGHT_FQ["fake_quant"])
_WEIGHT_FQ["pact"] = dict(_WEIGHT_FQ["fake_quant"])


def _with_args(fq, **kwargs):
    return fq.with_args(**kwargs) if hasattr(fq, "with_args") else functools.partial(fq, **kwargs)


def _get_fake_quant(dtype, fake_quant_name, fake_quant_mapping, qkwargs):
    if fake_quant_name is None:
        return None
    assert fake_quant_name in fake_quant_mapping.keys(), "unsupport fake_quant_name" + fake_quant_name
    if qkwargs is not None:
        if "dtype" in qkwargs:
            dtype = qkwargs["dtype"]
        if "quant_min" in qkwargs:
            assert qinfo(dtype).min == qkwargs["quant_min"], "expect quant_min = {} but get {}".format(qinfo(dtype).min, qkwargs["quant_min"])
        if "quant_max" in qkwargs:
            assert qinfo(dtype).max == qkwargs["quant_max"], "expect quant_max = {} but get {}".format(qinfo(dtype).max, qkwargs["quant_max"])
    assert dtype in fake_quant_mapping[fake_quant_name].keys(), "unsupport dtype " + dtype + " for " + fake_quant_name
    fake_quant = fake_quant_mapping[fake_quant_name][dtype]
    if qkwargs is not None:
        fake_quant = _with_args(fake_quant, **qkwargs)
    return fake_quant


def _get_custom_qconfig(dtype="qint8", weight_dtype="qint8", activation_fake_quant="fake_quant",
                        weight_fake_quant="fake_quant", activation_qkwargs=None, weight_qkwargs=None, backend=""):
    activation = _get_fake_quant(dtype, activation_fake_quant, _ACT_FQ, activation_qkwargs)
    weight = _get_fake_quant(weight_dtype, weight_fake_quant, _WEIGHT_FQ, weight_qkwargs)
    return QConfig(activation=activation, weight=weight)


def get_default_qat_qconfig(dtype="qint8", weight_dtype="qint8", activation_fake_quant="fake_quant",
                            weight_fake_quant="fake_quant", activation_qkwargs=None, weight_qkwargs=None, backend=""):
    """Get default qat qconfig (legacy API of the plugin)."""
    assert dtype in ("qint4", "qint8", "qint16", "quint4"), "unsupported activation dtype: {}".format(dtype)
    assert weight_dtype in ("qint4", "qint8", "qint16"), "unsupported weight dtype: {}".format(dtype)
    if activation_qkwargs is not None:
        assert isinstance(activation_qkwargs, dict), "activation qkwargs must be a dict, but get a " + type(activation_qkwargs).__name__
    if weight_qkwargs is not None:
        assert isinstance(weight_qkwargs, dict), "activation qkwargs must be a dict, but get a " + type(weight_qkwargs).__name__
    return _get_custom_qconfig(dtype=dtype, weight_dtype=weight_dtype, activation_fake_quant=activation_fake_quant,
                               weight_fake_quant=weight_fake_quant, activation_qkwargs=activation_qkwargs,
                               weight_qkwargs=weight_qkwargs, backend=backend)


def get_default_qat_out_qconfig(dtype="qint8", weight_fake_quant="fake_quant", weight_qkwargs=None, backend=""):
    """Get default qat out qconfig (legacy API): weights only, no output fake quant."""
    assert dtype in ("qint4", "qint8", "qint16", "quint4"), "unsupported dtype: {}".format(dtype)
    if weight_qkwargs is not None:
        assert isinstance(weight_qkwargs, dict), "weight qkwargs must be a dict, but get a " + type(weight_qkwargs).__name__
    return _get_custom_qconfig(dtype=dtype, activation_fake_quant=None, weight_fake_quant=weight_fake_quant,
                               weight_qkwargs=weight_qkwargs, backend="")


def get_default_calib_qconfig(dtype="qint8", calib_qkwargs=None, backend=""):
    """Get default calibration qconfig (legacy API; CalibFakeQuantize, percentile-like histogram)."""
    assert dtype in ("qint8", "qint16"), "unsupported dtype: {}".format(dtype)
    if calib_qkwargs is not None:
        assert isinstance(calib_qkwargs, dict)
        return QConfig(activation=CalibFakeQuantize.with_args(dtype=dtype, **calib_qkwargs), weight=default_weight_calib_fake_quant)
    return QConfig(activation=_with_args(default_calib_fake_quant, dtype=dtype), weight=default_weight_calib_fake_quant)


_FAKE_QUANT_DICT = {"fake_quant": FakeQuantize, "lsq": FakeQuantize, "pact": FakeQuantize}
_OBSERVER_DICT = {
    "min_max": MinMaxObserver,
    "fixed_scale": FixedScaleObserver,
    "clip": ClipObserver,
    "percentile": PercentileObserver,
    "clip_std": ClipStdObserver,
    "mse": MSEObserver,
    "kl": KLObserver,
    "mix": MixObserver,
}


@typechecked
def _get_default_qconfig(
    activation_fake_quant: Optional[str] = "fake_quant",
    weight_fake_quant: Optional[str] = "fake_quant",
    activation_observer: Optional[str] = "min_max",
    weight_observer: Optional[str] = "min_max",
    activation_qkwargs: Optional[Dict] = None,
    weight_qkwargs: Optional[Dict] = None,
):
    """Get default qconfig (see the module docstring)."""
    if weight_qkwargs is None:
        weight_qkwargs = {}
    if "qscheme" not in weight_qkwargs:
        weight_qkwargs["qscheme"] = torch.per_channel_symmetric
    if ("ch_axis" not in weight_qkwargs) and (weight_qkwargs["qscheme"] == torch.per_channel_symmetric):
        weight_qkwargs["ch_axis"] = 0

    def _fq(fake_quant_name, observer_name, qkwargs):
        if fake_quant_name is None:
            return None
        assert fake_quant_name in _FAKE_QUANT_DICT.keys(), "unsupport fake_quant_name" + fake_quant_name
        fake_quant = _FAKE_QUANT_DICT[fake_quant_name]
        assert observer_name in _OBSERVER_DICT.keys(), "unsupport observer_name" + observer_name
        fake_quant = fake_quant.with_args(observer=_OBSERVER_DICT[observer_name])
        if qkwargs is not None:
            fake_quant = fake_quant.with_args(**qkwargs)
        return fake_quant

    activation = _fq(activation_fake_quant, activation_observer, activation_qkwargs)
    weight = _fq(weight_fake_quant, weight_observer, weight_qkwargs)
    return QConfig(activation=activation, weight=weight)


_get_default_qconfig.__name__ = "get_default_qconfig"
_get_default_qconfig.__qualname__ = "get_default_qconfig"

default_calib_8bit_fake_quant_qconfig = _get_default_qconfig(activation_observer="mse")
default_qat_8bit_fake_quant_qconfig = _get_default_qconfig()
default_qat_8bit_fixed_act_fake_quant_qconfig = _get_default_qconfig(activation_qkwargs={"averaging_constant": 0})
_calib_8bit_weight_16bit_act = _get_default_qconfig(activation_observer="mse", activation_qkwargs={"dtype": qint16})
_qat_8bit_weight_16bit_act = _get_default_qconfig(activation_qkwargs={"dtype": qint16})
_qat_8bit_weight_16bit_fixed_act = _get_default_qconfig(activation_qkwargs={"dtype": qint16, "averaging_constant": 0})
_qat_8bit_weight_32bit_out = _get_default_qconfig(activation_fake_quant=None, activation_observer=None)
default_qat_8bit_pact_quant_qconfig = _get_default_qconfig(activation_fake_quant="pact", weight_fake_quant="pact")
default_qat_16bit_pact_quant_qconfig = _get_default_qconfig(
    activation_fake_quant="pact", weight_fake_quant="pact", activation_qkwargs={"dtype": qint16})
default_qat_8bit_lsq_quant_qconfig = _get_default_qconfig(activation_fake_quant="lsq", weight_fake_quant="lsq")
default_qat_16bit_lsq_quant_qconfig = _get_default_qconfig(
    activation_fake_quant="lsq", weight_fake_quant="lsq", activation_qkwargs={"dtype": qint16})

if _double.version_at_least("1.7.0"):
    get_default_qconfig = _get_default_qconfig
    default_calib_8bit_weight_16bit_act_fake_quant_qconfig = _calib_8bit_weight_16bit_act
    default_qat_8bit_weight_16bit_act_fake_quant_qconfig = _qat_8bit_weight_16bit_act
    default_qat_8bit_weight_16bit_fixed_act_fake_quant_qconfig = _qat_8bit_weight_16bit_fixed_act
if _double.version_at_least("1.6.2"):
    default_qat_8bit_weight_32bit_out_fake_quant_qconfig = _qat_8bit_weight_32bit_out
    default_calib_8bit_weight_32bit_out_fake_quant_qconfig = default_qat_8bit_weight_32bit_out_fake_quant_qconfig

# (old name, deprecation version, removal version, new name, object)
_DEPRECATED = [
    ("default_qat_out_8bit_fake_quant_qconfig", "1.6.2", "1.9.0",
     "default_qat_8bit_weight_32bit_out_fake_quant_qconfig", _qat_8bit_weight_32bit_out),
    ("default_calib_out_8bit_fake_quant_qconfig", "1.6.2", "1.9.0",
     "default_calib_8bit_weight_32bit_out_fake_quant_qconfig", _qat_8bit_weight_32bit_out),
    ("default_qat_16bit_fake_quant_qconfig", "1.7.0", "1.9.0",
     "default_qat_8bit_weight_16bit_act_fake_quant_qconfig", _qat_8bit_weight_16bit_act),
    ("default_calib_16bit_fake_quant_qconfig", "1.7.0", "1.9.0",
     "default_calib_8bit_weight_16bit_act_fake_quant_qconfig", _calib_8bit_weight_16bit_act),
]
for _old, _dep, _rem, _new, _obj in _DEPRECATED:
    if not _double.version_at_least(_rem):
        globals()[_old] = _obj


def replace_qconfig_dtype(qconfig, activation_dtype, weight_dtype=None):
    """Return ``qconfig`` with another activation (and optionally weight) dtype."""
    act = qconfig.activation
    new_act = act if act is None else _with_args(act, dtype=activation_dtype)
    new_weight = qconfig.weight if (weight_dtype is None or qconfig.weight is None) else _with_args(qconfig.weight, dtype=weight_dtype)
    return QConfig(activation=new_act, weight=new_weight, input=qconfig.input)


def promote_int8_activation_to_int16(qconfig):
    if qconfig is None:
        return None
    if qconfig.activation is not None and qconfig.activation().get_dtype() == qint8:
        return replace_qconfig_dtype(qconfig, qint16)
    return qconfig


if _double.version_at_least("2.0.0"):

    def get_qconfig(observer=MinMaxObserver, in_dtype=None, weight_dtype=qint8, out_dtype=qint8, fix_scale=False):
        """Get qconfig (newer plugins): observer MinMaxObserver or MSEObserver for input/output."""
        # the source accepts MinMaxObserver and MSEObserver; OE-Skills' newer template also passes
        # HistogramObserver, so the double accepts it too
        assert observer in (MinMaxObserver, MSEObserver, HistogramObserver), (
            "{} is not supported by `get_qconfig`, define qconfig with"
            " horizon_plugin_pytorch.quantization.QConfig".format(observer))

        def fq(is_weight, dtype):
            if dtype in (torch.float16, torch.float32):
                raise NotImplementedError("test double: FakeCast (float16/float32 dtypes) is not emulated")
            if dtype in (qint8, qint16):
                if is_weight:
                    return FakeQuantize.with_args(observer=MinMaxObserver, dtype=dtype,
                                                  qscheme=torch.per_channel_symmetric, ch_axis=0)
                if fix_scale:
                    return FakeQuantize.with_args(observer=observer, dtype=dtype, averaging_constant=0)
                return FakeQuantize.with_args(observer=observer, dtype=dtype)
            if dtype is None:
                return None
            raise ValueError("unsupported qconfig dtype {}".format(dtype))

        return QConfig(input=fq(False, in_dtype), weight=fq(True, weight_dtype), output=fq(False, out_dtype))


def _display_msg_and_check_version(msg, removal_version):
    logger.warning(msg)
    if removal_version and _double.version_at_least(removal_version):
        raise RuntimeError(msg)
    warnings.warn(msg, DeprecationWarning, stacklevel=3)


def _deprecated_module_attr_warning(mod, deprecated_attr, deprecation_version, removal_version, new_attr):
    msg = "`{}` was deprecated since {} and will be removed in {}.".format(deprecated_attr, deprecation_version, removal_version)
    if new_attr:
        msg = "{} Please use `{}` instead.".format(msg, new_attr)
    msg = "[Deprecated] TODO(horizon): {}".format(msg)

    class Wrapper(object):
        def __getattr__(self, attr):
            if attr == deprecated_attr:
                _display_msg_and_check_version(msg, removal_version)
            return getattr(mod, attr)

        def __setattr__(self, attr, value):
            if attr == deprecated_attr:
                _display_msg_and_check_version(msg, removal_version)
            return setattr(mod, attr, value)

    return Wrapper()


_MODULE = sys.modules[__name__]  # the module itself (sys.modules may hold the deprecation wrapper)
for _old, _dep, _rem, _new, _obj in _DEPRECATED:
    if _double.version_at_least(_dep):
        sys.modules[__name__] = _deprecated_module_attr_warning(sys.modules[__name__], _old, _dep, _rem, _new)
