"""TEST DOUBLE of ``horizon_plugin_pytorch.quantization.fake_quantize`` (Horizon Robotics' QAT plugin).

Follows the plugin source in the code index (read_file id 31843094239):

* ``FakeQuantState`` - the enum QAT="qat", CALIBRATION="calibration", VALIDATION="validation",
  _FLOAT="float" (developer only).
* ``set_fake_quantize(model, mode)`` - ``@typechecked`` (a ``str`` mode raises ``TypeError``), then
  exactly the source's rules: the global fake-quant switch is enabled for QAT/VALIDATION and disabled
  for CALIBRATION/_FLOAT (it is process-wide: it affects every model, as in the plugin); for every
  module except the observers inside fake quantizers -
  QAT: ``assert mod.training, "Call model.train() before set fake quant to QAT mode."`` and enable
  fake quant; CALIBRATION: ``assert not mod.training, "Call model.eval() before set fake quant to
  CALIBRATION mode."``, disable fake quant and put only the fake quantizers in ``train()`` (BN stays in
  eval); VALIDATION: ``assert not mod.training, "Call model.eval() before set fake quant to VALIDATION
  mode."`` and enable fake quant; _FLOAT: disable fake quant and observers.
* ``FakeQuantize`` - Horizon's constructor ``(observer=MovingAverageMinMaxObserver, saturate=None,
  in_place=False, compat_mask=True, channel_len=1, fast_training=True, **observer_kwargs)`` and
  Horizon's update rule: **the observer (and the scale) is updated only when the fake quantizer is in
  training mode and its observer is enabled** ("only update scale when training" in the source) -
  torch's own FakeQuantize observes whenever its observer is enabled, train or eval. Fake quantization
  is applied when enabled and the global switch is on.

What differs from the plugin (the double's choices): the module is a subclass of torch's FakeQuantize
so torch's FX prepare/convert handle it; it returns a plain Tensor, not a QTensor; ``.dtype`` is the
torch dtype the double uses (``torch.quint8`` for Horizon's symmetric qint8 activations, zero point
128; ``torch.qint8`` for per-channel weights) while ``get_dtype()`` gives Horizon's dtype (``qint8``);
``extra_repr`` shows Horizon's view (qint8 range, zero point 0). qint16/qint4/quint4 are fake-quantized
with the right integer range (the torch observer only tracks min/max) but cannot be converted to
torch's int8 kernels (``convert_fx`` refuses them). The "fast training" path is not emulated.
``CalibFakeQuantize`` (the legacy calibration quantizer) only observes (whenever its observer is
enabled, as in the source) and never fake-quantizes.
"""
from enum import Enum
from typing import Any

import torch

from .. import _double
from ..dtype import QuantDType
from ..march import get_march
from ..utils.typeguard import typechecked
from . import _torch_compat as tc
from .observer import CalibObserver, MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver
from .observer_v2 import build_torch_observer

FakeQuantizeBase = tc.FakeQuantizeBase

__all__ = [
    "FakeQuantize", "CalibFakeQuantize", "FakeQuantState", "set_fake_quantize", "GlobalFakeQuantSwitch",
    "enable_fake_quant", "disable_fake_quant", "enable_observer", "disable_observer", "update_scale_by_qtype",
    "default_8bit_fake_quant", "per_channel_8bit_fake_quant", "default_weight_8bit_fake_quant",
    "default_4bit_fake_quant", "default_uint4_fake_quant", "default_weight_4bit_fake_quant",
    "default_16bit_fake_quant", "default_weight_16bit_fake_quant", "default_calib_fake_quant",
    "default_weight_calib_fake_quant",
]


class GlobalFakeQuantSwitch(object):
    """Process-wide switch (``horizon_plugin_pytorch.utils.quant_switch`` in the plugin)."""

    _state = True

    @classmethod
    def enable(cls) -> None:
        cls._state = True

    @classmethod
    def disable(cls) -> None:
        cls._state = False

    @classmethod
    def state(cls) -> bool:
        return cls._state


class FakeQuantize(tc.TorchFakeQuantize):
    """Horizon-style fake quantizer on top of torch's (see the module docstring)."""

    def __init__(
        self,
        observer: Any = MovingAverageMinMaxObserver,
        saturate: bool = None,
        in_place: bool = False,
        compat_mask: bool = True,
        channel_len: int = 1,
        fast_training=True,
        **observer_kwargs: Any
    ):
        assert channel_len >= 1, "channel_len should greater than or equal to 1"
        kind = getattr(observer, "_double_kind", None)
        if kind is None:  # a torch observer class (or factory) passed directly: use it as it is
            obs = observer(**observer_kwargs)
            info = {
                "hz_dtype": "qint8", "per_channel": obs.qscheme in (torch.per_channel_symmetric, torch.per_channel_affine),
                "ch_axis": getattr(obs, "ch_axis", -1), "hz_range": (obs.quant_min, obs.quant_max),
                "torch_range": (obs.quant_min, obs.quant_max), "emulated": False, "fixed": False, "ignored_kwargs": [],
            }
        else:
            obs, info = build_torch_observer(kind, observer_kwargs, getattr(observer, "_default_qscheme", torch.per_tensor_symmetric))

        def factory(**_ignored: Any) -> Any:
            return obs

        if tc.FAKE_QUANT_ACCEPTS_NONE_RANGE:
            super().__init__(observer=factory, quant_min=None, quant_max=None)
        else:
            super().__init__(observer=factory, quant_min=obs.quant_min, quant_max=obs.quant_max)
        self._hz_info = info
        if info["emulated"]:
            lo, hi = info["hz_range"]
            if info["hz_dtype"] == "quint4":
                self.quant_min, self.quant_max = 0, 15
            else:
                self.quant_min, self.quant_max = lo, hi
        self.saturate = True if saturate is None else saturate
        self.in_place = in_place
        self.compat_mask = compat_mask
        self.channel_len = channel_len
        self.fast_training = fast_training
        self.march = get_march()
        if info["fixed"]:
            s, z = self.calculate_qparams()
            self.scale.copy_(s)
            self.zero_point.copy_(z)

    # Horizon's API -----------------------------------------------------------------------------
    def get_dtype(self) -> QuantDType:
        return QuantDType(self._hz_info["hz_dtype"])

    @property
    def hz_zero_point_offset(self) -> int:
        """What the double adds to Horizon's zero point (128 for per-tensor qint8 held as quint8)."""
        if not self._hz_info["emulated"] and self.dtype == torch.quint8 and self._hz_info["hz_dtype"] == "qint8":
            return 128
        return 0

    def set_qparams(self, scale: Any, zero_point: Any = None) -> None:
        """Set Horizon qparams (symmetric by default: zero point 0)."""
        scale = torch.as_tensor(scale, dtype=torch.float32, device=self.scale.device).reshape(-1)
        if self.scale.shape != scale.shape:
            self.scale.resize_(scale.shape)
            self.zero_point.resize_(scale.shape)
        self.scale.copy_(scale)
        zp = torch.zeros_like(self.zero_point) if zero_point is None else torch.as_tensor(zero_point).reshape(-1)
        self.zero_point.copy_(zp + self.hz_zero_point_offset)

    def calculate_qparams(self):
        if not self._hz_info["emulated"] or self._hz_info["fixed"]:
            return self.activation_post_process.calculate_qparams()
        obs = self.activation_post_process
        min_val, max_val = obs.min_val, obs.max_val
        eps = torch.finfo(torch.float32).eps
        if min_val.numel() == 0 or not torch.isfinite(min_val).all():
            shape = (1,)
            return torch.ones(shape, device=min_val.device), torch.zeros(shape, dtype=torch.int, device=min_val.device)
        min_val = torch.clamp(min_val, max=0.0).reshape(-1)
        max_val = torch.clamp(max_val, min=0.0).reshape(-1)
        if self._hz_info["hz_dtype"] == "quint4":
            scale = torch.clamp((max_val - min_val) / 15.0, min=eps)
            zp = torch.clamp(torch.round(-min_val / scale), 0, 15).to(torch.int)
            return scale, zp
        amax = torch.max(-min_val, max_val)
        scale = torch.clamp(amax / ((self.quant_max - self.quant_min) / 2.0), min=eps)
        return scale, torch.zeros_like(scale, dtype=torch.int)

    def forward(self, X):
        # Horizon: only update the scale in training mode (torch: whenever the observer is enabled)
        if self.training and self.observer_enabled[0] == 1:
            self.activation_post_process(X.detach())
            _scale, _zero_point = self.calculate_qparams()
            _scale = _scale.to(self.scale.device)
            _zero_point = _zero_point.to(self.zero_point.device)
            if self.scale.shape != _scale.shape:
                self.scale.resize_(_scale.shape)
                self.zero_point.resize_(_zero_point.shape)
            self.scale.copy_(_scale)
            self.zero_point.copy_(_zero_point)
        if self.fake_quant_enabled[0] == 1 and GlobalFakeQuantSwitch.state():
            if self.is_per_channel:
                X = torch.fake_quantize_per_channel_affine(
                    X, self.scale, self.zero_point, self.ch_axis, self.quant_min, self.quant_max
                )
            else:
                X = torch.fake_quantize_per_tensor_affine(
                    X, self.scale, self.zero_point, self.quant_min, self.quant_max
                )
        return X

    def extra_repr(self):
        off = self.hz_zero_point_offset
        lo, hi = self._hz_info["hz_range"]
        return (
            "fake_quant_enabled={}, observer_enabled={}, quant_min={}, quant_max={}, dtype={}, qscheme={}, "
            "ch_axis={}, scale={}, zero_point={}, saturate={} [test double: torch dtype {}]".format(
                self.fake_quant_enabled, self.observer_enabled, lo, hi, self._hz_info["hz_dtype"],
                torch.per_channel_symmetric if self.is_per_channel else torch.per_tensor_symmetric,
                self.ch_axis, self.scale, self.zero_point - off, self.saturate, self.dtype,
            )
        )


class CalibFakeQuantize(FakeQuantize):
    """Legacy calibration quantizer: observes whenever its observer is enabled, never fake-quantizes."""

    def __init__(self, channel_len: int = 1, dtype: str = "qint8", ch_axis: int = -1, observer: Any = CalibObserver, **observer_kwargs: Any):
        assert dtype in ("qint8", "qint16"), "unsupported dtype: {}".format(dtype)
        for k in ("num_bits", "axis", "unsigned", "num_bins", "skip_zeros", "method", "percentile"):
            observer_kwargs.pop(k, None)
        if ch_axis >= 0:
            observer_kwargs.setdefault("qscheme", torch.per_channel_symmetric)
            observer_kwargs["ch_axis"] = ch_axis
        super().__init__(observer=observer, channel_len=channel_len, dtype=dtype, **observer_kwargs)
        self.disable_fake_quant()

    def forward(self, X):
        if self.observer_enabled[0] == 1:
            self.activation_post_process(X.detach())
            s, z = self.calculate_qparams()
            if self.scale.shape != s.shape:
                self.scale.resize_(s.shape)
                self.zero_point.resize_(z.shape)
            self.scale.copy_(s.to(self.scale.device))
            self.zero_point.copy_(z.to(self.zero_point.device))
        return X

    def enable_fake_quant(self, enabled: bool = True) -> None:
        super().enable_fake_quant(False)


default_8bit_fake_quant = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, dtype="qint8")
per_channel_8bit_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, dtype="qint8", ch_axis=1
)
default_weight_8bit_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, dtype="qint8", ch_axis=0
)
default_4bit_fake_quant = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, dtype="qint4")
default_uint4_fake_quant = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, dtype="quint4")
default_weight_4bit_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, dtype="qint4", ch_axis=0
)
default_16bit_fake_quant = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, dtype="qint16")
default_weight_16bit_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, dtype="qint16", ch_axis=0
)
default_calib_fake_quant = CalibFakeQuantize.with_args(observer=CalibObserver)
default_weight_calib_fake_quant = CalibFakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver, ch_axis=0)


def _is_fake_quant(mod: Any) -> bool:
    return isinstance(mod, FakeQuantizeBase)


def disable_fake_quant(mod: Any) -> None:
    if _is_fake_quant(mod):
        mod.disable_fake_quant()


def enable_fake_quant(mod: Any) -> None:
    if _is_fake_quant(mod):
        mod.enable_fake_quant()


def disable_observer(mod: Any) -> None:
    if _is_fake_quant(mod):
        mod.disable_observer()


def enable_observer(mod: Any) -> None:
    if _is_fake_quant(mod):
        mod.enable_observer()


class FakeQuantState(Enum):
    """Defines the working mode of FakeQuantize."""

    # qat mode: fake quantization is enabled. scales will be updated. must work with model.train()
    QAT = "qat"
    # calibration mode: fake quantization is disabled. only updates scales. must work with model.eval()
    CALIBRATION = "calibration"
    # validation mode: fake quantization is enabled. scales will be fixed. must work with model.eval()
    VALIDATION = "validation"
    # float mode: developer ONLY. fake quantization is disabled. scales will be fixed.
    _FLOAT = "float"


@typechecked
def set_fake_quantize(model: torch.nn.Module, mode: FakeQuantState):
    r"""Set the state of fake quantize (rules in the module docstring; logged as
    ``{"api": "set_fake_quantize", "mode": <value>, "model_id", "model_role", "training"}``)."""
    entry = _double.record(
        "set_fake_quantize", mode=mode.value, model_id=id(model),
        model_role=getattr(model, "_horizon_double_role", None), training=bool(model.training),
    )
    from .quantize_fx import note_mode

    note_mode(model, mode.value)
    try:
        _set_fake_quantize(model, mode)
    except BaseException as e:
        entry["error"] = repr(e)
        raise


def _set_fake_quantize(model: torch.nn.Module, mode: FakeQuantState) -> None:
    if mode in (FakeQuantState.QAT, FakeQuantState.VALIDATION):
        GlobalFakeQuantSwitch.enable()
    else:
        GlobalFakeQuantSwitch.disable()

    observers = set()
    for _, mod in model.named_modules():
        # torch 1.10's FixedQParamsFakeQuantize (sigmoid/hardsigmoid, fixed scale) has no observer
        if isinstance(mod, FakeQuantizeBase) and getattr(mod, "activation_post_process", None) is not None:
            observers.add(mod.activation_post_process)

    for _, mod in model.named_modules():
        if mod in observers:
            continue
        if mode == FakeQuantState.QAT:
            assert mod.training, "Call model.train() before set fake quant to QAT mode."
            enable_fake_quant(mod)
        elif mode == FakeQuantState.CALIBRATION:
            assert not mod.training, "Call model.eval() before set fake quant to CALIBRATION mode."
            disable_fake_quant(mod)
            if isinstance(mod, FakeQuantizeBase):
                mod.train()
        elif mode == FakeQuantState.VALIDATION:
            assert not mod.training, "Call model.eval() before set fake quant to VALIDATION mode."
            # observer won't work in eval mode
            enable_fake_quant(mod)
        elif mode == FakeQuantState._FLOAT:
            disable_fake_quant(mod)
            disable_observer(mod)


def update_scale_by_qtype(model: torch.nn.Module) -> None:
    """Recompute the scale of every fake quantizer whose observer is enabled (not fixed ones)."""
    for _, m in model.named_modules():
        if isinstance(m, FakeQuantize) and m.observer_enabled[0] == 1 and not m._hz_info["fixed"]:
            s, z = m.calculate_qparams()
            if m.scale.shape != s.shape:
                m.scale.resize_(s.shape)
                m.zero_point.resize_(z.shape)
            m.scale.copy_(s)
            m.zero_point.copy_(z)
