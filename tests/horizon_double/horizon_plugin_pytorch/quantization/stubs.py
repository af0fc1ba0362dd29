"""TEST DOUBLE of ``horizon_plugin_pytorch.quantization.stubs`` (Horizon Robotics' QAT plugin).

Follows the plugin source (read_file id 32069869060) and the X3 quick_start: ``QuantStub(scale=None,
zero_point=None, qconfig=None)`` is an identity ``nn.Module`` that marks where the float input is
quantized; ``scale`` given -> ``zero_point`` defaults to 0 and the input fake quantizer uses that fixed
scale with its observer off (``scale=1/128`` is required for ``input_source="pyramid"``); ``qconfig``
is stored as ``self.qconfig`` only when given. Stubs must be submodules of the model.

In the double, ``prepare_qat_fx`` keeps the stub as a leaf of the FX graph and replaces the fake
quantizer torch inserts after it with the fixed-scale one (or one built from the stub's qconfig).
``DeQuantStub`` is torch's own (the sample imports it from ``torch.quantization``).
"""
from torch import nn

from ._torch_compat import TorchDeQuantStub as DeQuantStub

__all__ = ["QuantStub", "DeQuantStub"]


class QuantStub(nn.Module):
    r"""Same as torch's QuantStub, with an additional param to specify a fixed scale.

    Args:
        scale (float, optional): fixed scale; None = computed by the observer. Defaults to None.
        zero_point (int, optional): fixed zero point (0 when scale is given). Defaults to None.
        qconfig (optional): qconfig of this stub; else the one from the parent modules.
    """

    def __init__(self, scale: float = None, zero_point: int = None, qconfig=None):
        super(QuantStub, self).__init__()
        if scale is not None and zero_point is None:
            zero_point = 0
        self.scale = scale
        self.zero_point = zero_point
        if qconfig:
            self.qconfig = qconfig

    def forward(self, x):
        return x
