"""TEST DOUBLE internals: the PyTorch quantization modules the horizon_plugin_pytorch double delegates
to, found the same way on torch 1.10 (``torch.quantization``, Horizon's XJ3/J5 dockers) and torch 2.x
(``torch.ao.quantization``). No real Horizon counterpart; the real plugin builds on ``torch.quantization``
too (see fake_quantize.py, read_file id 31843094239, which imports ``FakeQuantizeBase`` from it).
"""
import inspect
import warnings

import torch

try:  # torch >= 1.13
    from torch.ao.quantization import quantize_fx as quantize_fx  # noqa: F401
    from torch.ao.quantization import fake_quantize as _fq_mod
    from torch.ao.quantization import observer as _obs_mod
    from torch.ao.quantization import QConfig as TorchQConfig  # noqa: F401
    from torch.ao.quantization import DeQuantStub as TorchDeQuantStub  # noqa: F401
except ImportError:  # torch 1.10
    from torch.quantization import quantize_fx as quantize_fx  # noqa: F401
    from torch.quantization import fake_quantize as _fq_mod
    from torch.quantization import observer as _obs_mod
    from torch.quantization import QConfig as TorchQConfig  # noqa: F401
    from torch.quantization import DeQuantStub as TorchDeQuantStub  # noqa: F401

TorchFakeQuantize = _fq_mod.FakeQuantize
FakeQuantizeBase = _fq_mod.FakeQuantizeBase
ObserverBase = _obs_mod.ObserverBase
TorchMinMaxObserver = _obs_mod.MinMaxObserver
TorchPerChannelMinMaxObserver = _obs_mod.PerChannelMinMaxObserver
TorchMovingAverageMinMaxObserver = _obs_mod.MovingAverageMinMaxObserver
TorchMovingAveragePerChannelMinMaxObserver = _obs_mod.MovingAveragePerChannelMinMaxObserver
TorchHistogramObserver = _obs_mod.HistogramObserver

PREPARE_TAKES_EXAMPLE_INPUTS = "example_inputs" in inspect.signature(quantize_fx.prepare_qat_fx).parameters
# torch 2.x's FakeQuantize validates quant_min/quant_max against observer_kwargs["dtype"]; 1.10 needs
# them explicitly (its defaults are 0..255)
FAKE_QUANT_ACCEPTS_NONE_RANGE = inspect.signature(TorchFakeQuantize.__init__).parameters["quant_min"].default is None


def accepted_kwargs(cls, kwargs):
    """The subset of ``kwargs`` that ``cls.__init__`` accepts by name."""
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in kwargs.items() if k in params}


class quiet_torch_quantization(warnings.catch_warnings):
    """Silence torch's deprecation chatter about FX quantization while the double delegates to it."""

    def __enter__(self):
        r = super().__enter__()
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*_aminmax.*", category=UserWarning)
        return r
