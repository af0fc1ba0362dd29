"""TEST DOUBLE of ``horizon_plugin_pytorch.quantization.observer`` (the plugin's v1 observers: MinMaxObserver,
MovingAverageMinMaxObserver, PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver,
ClipObserver, FixedScaleObserver, CalibObserver - names from quantization/__init__.py, read_file id
31848900222, and fake_quantize.py, id 31843094239).

As in ``observer_v2`` each name is a factory for the torch observer the double uses (the double's
approximation of Horizon's algorithms): the ``MovingAverage*`` ones -> torch moving-average min/max
(per tensor or per channel, chosen by ``qscheme``); ``MinMaxObserver``/``PerChannelMinMaxObserver`` ->
torch's running min/max; ``ClipObserver``/``CalibObserver`` -> the percentile stand-in of observer_v2;
``FixedScaleObserver`` -> a constant scale.
"""
import torch

from .observer_v2 import FixedScaleObserver, _HorizonObserver  # noqa: F401

__all__ = [
    "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver", "ClipObserver", "FixedScaleObserver", "CalibObserver",
]


class MinMaxObserver(_HorizonObserver):
    _double_kind = "minmax_abs"


class PerChannelMinMaxObserver(_HorizonObserver):
    _double_kind = "minmax_abs"
    _default_qscheme = torch.per_channel_symmetric


class MovingAverageMinMaxObserver(_HorizonObserver):
    _double_kind = "minmax"


class MovingAveragePerChannelMinMaxObserver(_HorizonObserver):
    _double_kind = "minmax"
    _default_qscheme = torch.per_channel_symmetric


class ClipObserver(_HorizonObserver):
    _double_kind = "hist"


class CalibObserver(_HorizonObserver):
    _double_kind = "hist"
