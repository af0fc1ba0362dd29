"""A model with a planted bad layer, for the per-layer debug tests (``[model] builder =
"tests/assets/planted_net.py:build"``).

Its conv ``mid`` has one extra output channel that is a constant ``outlier`` (zero weights, bias
``outlier``) and that the next conv ignores (its weights on that channel are zero and a gradient hook keeps them
zero, so no gradient reaches ``mid``'s channel either): the float model computes exactly what it would without the channel.
Calibrated with the min_max observer, the 8-bit per-tensor scale of ``mid``'s output must cover 0..outlier, so the real channels
(a few units at most) round to one or two levels: the int8 model loses most of its accuracy, and
keeping ``mid`` in float (``[qconfig] float_layers = ["mid"]``) gives it back.
"""
import torch
from torch import nn


class PlantedNet(nn.Module):
    def __init__(self, num_classes: int, width: int = 16, outlier: float = 4000.0) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.mid = nn.Conv2d(width, width + 1, 3, padding=1)  # no BatchNorm after it: it would hide the outlier
        self.relu = nn.ReLU()
        self.post = nn.Conv2d(width + 1, 2 * width, 3, stride=2, padding=1, bias=False)
        self.post_bn = nn.BatchNorm2d(2 * width)
        self.post_relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2 * width, num_classes)
        with torch.no_grad():
            self.mid.weight[-1].zero_()
            self.mid.bias[-1] = outlier
            self.post.weight[:, -1].zero_()
        mask = torch.ones_like(self.post.weight)
        mask[:, -1] = 0.0
        self.post.weight.register_hook(lambda grad: grad * mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.mid(self.stem(x)))
        z = self.post_relu(self.post_bn(self.post(y)))
        return self.head(torch.flatten(self.pool(z), 1))


def build(num_classes: int, width: int = 16, outlier: float = 4000.0) -> nn.Module:
    return PlantedNet(num_classes, width, outlier)
