"""TEST DOUBLE of ``horizon_plugin_pytorch.quantization.observer_v2`` (Horizon Robotics' QAT plugin).

The real observers (MinMaxObserver, FixedScaleObserver, ClipObserver, PercentileObserver,
ClipStdObserver, MSEObserver, KLObserver, MixObserver; imported by qconfig.py, read_file id
31499793000, and selectable by name in ``get_default_qconfig``) are Horizon's own code. The double maps
each onto a PyTorch observer - **the double's approximation, not Horizon's algorithms**:

* ``min_max`` (MinMaxObserver, averaging_constant 0.01 - Horizon's default constant is
  **unconfirmed**): torch ``MovingAverageMinMaxObserver`` / ``MovingAveragePerChannelMinMaxObserver``.
  ``averaging_constant=0`` keeps the first (calibrated) range, like Horizon's "fixed act" qconfigs.
* ``percentile``, ``mse``, ``kl``, ``mix``, ``clip``, ``clip_std``: one cheap stand-in for all of
  Horizon's histogram-based observers - the running min/max of each batch's 0.01%/99.99% quantiles
  (per tensor; torch's HistogramObserver was too slow for tests). Its buffers are the min/max
  observers' (min_val, max_val, eps), so a calibration state_dict loads into a QAT model built with
  ``min_max`` - the sample flow does exactly that. Per channel (weights): the moving-average
  per-channel min/max observer.
* ``fixed_scale`` (FixedScaleObserver(scale=..., zero_point=0)): a constant scale; default scale 1.0
  (**unconfirmed**).

Each class is a factory: calling it (or ``FakeQuantize(observer=Cls, **kwargs)``) builds the torch
observer. Horizon's int8 activations are symmetric per-tensor ``qint8``; the double emulates them with
torch ``quint8``, ``per_tensor_symmetric`` (zero point 128), which represents exactly the same values
and lets torch's fbgemm/x86 kernels run the converted model. Weights stay ``qint8`` per-channel
symmetric.
"""
import math
from typing import Any, Dict, Tuple

import torch

from . import _torch_compat as tc

__all__ = [
    "ObserverBase", "MinMaxObserver", "FixedScaleObserver", "ClipObserver", "PercentileObserver",
    "ClipStdObserver", "MSEObserver", "KLObserver", "MixObserver", "HistogramObserver", "load_observer_params",
]

ObserverBase = tc.ObserverBase

_PER_CHANNEL = (torch.per_channel_symmetric, torch.per_channel_affine)


def _dtype_name(dtype: Any) -> str:
    name = str(dtype).replace("torch.", "")
    return {"quint8": "qint8", "int8": "qint8", "int16": "qint16"}.get(name, name)


class _PercentileObserver(tc.TorchMovingAverageMinMaxObserver):
    """Running min/max of each batch's 0.01% / 99.99% quantiles (kthvalue): a cheap stand-in for
    Horizon's histogram-based calibration observers; its buffers (min_val, max_val, eps) are the
    min/max observers', so calibration and QAT state_dicts are interchangeable."""

    def __init__(self, percentile: float = 99.99, **kwargs: Any) -> None:
        super().__init__(**tc.accepted_kwargs(tc.TorchMovingAverageMinMaxObserver, kwargs))
        self.percentile = float(percentile)

    def forward(self, x_orig):
        if x_orig.numel() == 0:
            return x_orig
        x = x_orig.detach().to(self.min_val.dtype).reshape(-1)
        n = x.numel()
        k = max(1, min(n, int(math.ceil(n * self.percentile / 100.0))))
        hi = x.kthvalue(k).values
        lo = x.kthvalue(max(1, n - k + 1)).values
        if self.min_val.numel() == 0 or bool(torch.isinf(self.min_val).any()):
            min_val, max_val = lo, hi
        else:
            min_val, max_val = torch.min(self.min_val, lo), torch.max(self.max_val, hi)
        self.min_val.resize_(min_val.shape)
        self.max_val.resize_(max_val.shape)
        self.min_val.copy_(min_val)
        self.max_val.copy_(max_val)
        return x_orig


class _FixedQParamsObserver(tc.TorchMovingAverageMinMaxObserver):
    """A constant (scale, zero_point); same buffers as the moving-average observer so state_dicts of
    fixed and min/max fake quants are interchangeable."""

    def __init__(self, scale: float = 1.0, zero_point: int = 0, **kwargs: Any) -> None:
        super().__init__(**tc.accepted_kwargs(tc.TorchMovingAverageMinMaxObserver, kwargs))
        self.fixed_scale = float(scale)
        self.fixed_zero_point = int(zero_point)

    def forward(self, x_orig):
        return x_orig

    @torch.jit.export
    def calculate_qparams(self):
        return (
            torch.tensor([self.fixed_scale], dtype=torch.float, device=self.eps.device),
            torch.tensor([self.fixed_zero_point], dtype=torch.int, device=self.eps.device),
        )


def build_torch_observer(
    kind: str, hz_kwargs: Dict[str, Any], default_qscheme: Any = torch.per_tensor_symmetric
) -> Tuple[Any, Dict[str, Any]]:
    """Build the torch observer for a Horizon observer ``kind`` and Horizon keyword arguments.

    Returns ``(observer, info)`` where ``info`` has ``hz_dtype`` (Horizon dtype name), ``per_channel``,
    ``hz_range`` (Horizon integer range), ``torch_range`` (range of the torch observer) and ``emulated``
    (True when the torch observer only tracks min/max and the fake quantizer computes the qparams for
    a range torch has no dtype for: qint16, qint4, quint4)."""
    kw = dict(hz_kwargs)
    hz_dtype = _dtype_name(kw.pop("dtype", "qint8"))
    qscheme = kw.pop("qscheme", default_qscheme)
    per_channel = qscheme in _PER_CHANNEL
    ch_axis = kw.pop("ch_axis", 0 if per_channel else -1)
    averaging_constant = kw.pop("averaging_constant", 0.01)
    kw.pop("quant_min", None)
    kw.pop("quant_max", None)
    from ..dtype import qinfo

    if hz_dtype not in ("qint4", "quint4", "qint8", "qint16"):
        raise AssertionError("unsupported dtype: %s" % hz_dtype)
    info = qinfo(hz_dtype)
    if per_channel:
        torch_dtype, torch_qscheme, torch_range = torch.qint8, torch.per_channel_symmetric, (-128, 127)
    elif hz_dtype == "quint4":
        torch_dtype, torch_qscheme, torch_range = torch.quint8, torch.per_tensor_affine, (0, 255)
    else:
        torch_dtype, torch_qscheme, torch_range = torch.quint8, torch.per_tensor_symmetric, (0, 255)
    emulated = hz_dtype != "qint8"
    common = {"dtype": torch_dtype, "qscheme": torch_qscheme}
    if kind == "fixed":
        scale = kw.pop("scale", 1.0)
        zero_point = kw.pop("zero_point", 0)
        if isinstance(scale, torch.Tensor):
            scale = float(scale.reshape(-1)[0])
        if isinstance(zero_point, torch.Tensor):
            zero_point = int(zero_point.reshape(-1)[0])
        offset = 128 if (torch_dtype == torch.quint8 and hz_dtype == "qint8") else 0
        obs = _FixedQParamsObserver(scale=scale, zero_point=int(zero_point) + offset, averaging_constant=0.0, **common)
    elif per_channel:
        cls = tc.TorchPerChannelMinMaxObserver if kind == "minmax_abs" else tc.TorchMovingAveragePerChannelMinMaxObserver
        args = dict(common, ch_axis=ch_axis)
        if cls is tc.TorchMovingAveragePerChannelMinMaxObserver:
            args["averaging_constant"] = averaging_constant
        obs = cls(**args)
    elif kind == "hist":
        obs = _PercentileObserver(percentile=kw.pop("percentile", 99.99), **common)
    elif kind == "minmax_abs":
        obs = tc.TorchMinMaxObserver(**common)
    else:
        obs = tc.TorchMovingAverageMinMaxObserver(averaging_constant=averaging_constant, **common)
    return obs, {
        "hz_dtype": hz_dtype,
        "per_channel": per_channel,
        "ch_axis": ch_axis if per_channel else -1,
        "hz_range": (info.min, info.max),
        "torch_range": torch_range,
        "emulated": emulated,
        "fixed": kind == "fixed",
        "ignored_kwargs": sorted(kw),
    }


class _HorizonObserver(object):
    """Factory base: ``Cls(**horizon_kwargs)`` returns the torch observer the double uses."""

    _double_kind = "minmax"
    _default_qscheme = torch.per_tensor_symmetric

    def __new__(cls, **kwargs: Any):
        return build_torch_observer(cls._double_kind, kwargs, cls._default_qscheme)[0]

    @classmethod
    def with_args(cls, **kwargs: Any):
        import functools

        return functools.partial(cls, **kwargs)


class MinMaxObserver(_HorizonObserver):
    """Horizon observer_v2.MinMaxObserver -> torch moving-average min/max (per tensor or channel)."""

    _double_kind = "minmax"


class FixedScaleObserver(_HorizonObserver):
    """Horizon FixedScaleObserver(scale, zero_point=0) -> a constant scale."""

    _double_kind = "fixed"


class ClipObserver(_HorizonObserver):
    _double_kind = "hist"


class PercentileObserver(_HorizonObserver):
    _double_kind = "hist"


class ClipStdObserver(_HorizonObserver):
    _double_kind = "hist"


class MSEObserver(_HorizonObserver):
    _double_kind = "hist"


class KLObserver(_HorizonObserver):
    _double_kind = "hist"


class MixObserver(_HorizonObserver):
    _double_kind = "hist"


class HistogramObserver(_HorizonObserver):
    """Used by the hbdk4-generation calibration template (OE-Skills full-pipeline-template.md)."""

    _double_kind = "hist"


def load_observer_params(from_model, to_model, verbose=False):
    """Copy observer statistics between models with the same structure (Horizon exports this helper;
    the double implements it as a non-strict load of the observer/fake-quant entries)."""
    state = {k: v for k, v in from_model.state_dict().items() if "activation_post_process" in k or k.endswith(("scale", "zero_point"))}
    return to_model.load_state_dict(state, strict=False)
