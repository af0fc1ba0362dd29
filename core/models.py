"""The QAT-ready float model: torchvision's MobileNetV2 with a QuantStub before the first layer and a
DeQuantStub after the classifier, as in Horizon's sample (``FxQATReadyMobileNetV2``).

The model subclasses :class:`torchvision.models.MobileNetV2`, so its ``state_dict`` keys are the same
as torchvision's (``features.*``, ``classifier.1.*``) plus whatever the stubs hold: weights from
torchvision or from Horizon's sample load directly, and the classifier is addressed by the module name
``classifier`` (Horizon's qconfig ``module_name`` override for the high-precision output).

Input: float32 ``(N, 3, H, W)`` (CIFAR-10: 32x32). Output: float32 logits ``(N, num_classes)``.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import torch
from torchvision.models.mobilenetv2 import MobileNetV2

from .errors import CheckpointError


class QATReadyMobileNetV2(MobileNetV2):
    """MobileNetV2 with ``quant`` (QuantStub) before ``features`` and ``dequant`` after ``classifier``."""

    def __init__(self, num_classes: int, width_mult: float, quant: Any, dequant: Any) -> None:
        super().__init__(num_classes=num_classes, width_mult=width_mult)
        self.quant = quant
        self.dequant = dequant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        x = super().forward(x)
        return self.dequant(x)


def build_float_model(
    num_classes: int = 10,
    width_mult: float = 1.0,
    stubs: Optional[Tuple[Any, Any]] = None,
) -> Any:
    """Build the QAT-ready MobileNetV2.

    Args:
        num_classes: classifier outputs.
        width_mult: channel multiplier (torchvision's ``width_mult``; the sample uses 1.0).
        stubs: ``(quant_stub, dequant_stub)`` modules from the backend (Horizon needs its own
            ``QuantStub``); ``torch.ao.quantization`` stubs when None.

    Returns:
        A ``QATReadyMobileNetV2`` in training mode with freshly initialised weights.
    """
    if stubs is None:
        from torch.ao.quantization import DeQuantStub, QuantStub

        stubs = (QuantStub(), DeQuantStub())
    return QATReadyMobileNetV2(num_classes, width_mult, stubs[0], stubs[1])


def load_pretrained(model: Any, path: str) -> List[str]:
    """Load a float ``state_dict`` (torchvision's, Horizon's sample's, or ours) into ``model``.

    Keys may carry a ``module.`` (DataParallel) prefix. A classifier whose shape differs (e.g.
    ImageNet's 1000 classes) is skipped and stays freshly initialised.

    Returns:
        Messages describing what was loaded and what was skipped.

    Raises:
        CheckpointError: the file is missing/damaged, or none of its tensors fit the model.
    """
    from .io import load_checkpoint

    ckpt = load_checkpoint(path, made_by=None, setting="[model] pretrained")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in ckpt["state_dict"].items()}
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    wrong_shape = sorted(k for k in state if k in own and k not in fit)
    if not fit:
        raise CheckpointError(
            "%s has no tensor that fits this MobileNetV2 (width_mult/num_classes differ?)" % path,
            hint="use a state_dict of torchvision's mobilenet_v2 with the same width_mult",
        )
    model.load_state_dict(fit, strict=False)
    msgs = ["loaded %d of %d tensors from %s" % (len(fit), len(own), path)]
    if wrong_shape:
        msgs.append("kept fresh (shape differs): %s" % ", ".join(wrong_shape))
    missing = sorted(k for k in own if k not in fit and k not in wrong_shape)
    if missing:
        msgs.append("not in the file, kept fresh: %s" % ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else ""))
    return msgs


def count_parameters(model: Any) -> int:
    """Number of parameter elements."""
    return int(sum(p.numel() for p in model.parameters()))
