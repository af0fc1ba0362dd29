"""A user's own model file, as ``[model] builder = "tests/assets/user_net.py:build"`` loads it: a small
CNN with a residual add, a channel concat and adaptive pooling (the constructs the own-model tests
need), written as a user would write it, with no quantization code."""
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + x)  # residual add


class SmallNet(nn.Module):
    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.block = Block(width)
        self.branch_a = nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.branch_b = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(2 * width), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.stem(x))
        x = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)  # channel concat
        x = self.pool(self.down(x))
        return self.head(torch.flatten(x, 1))


def build(num_classes: int, width: int = 16) -> nn.Module:
    return SmallNet(num_classes, width)


def not_a_model(num_classes: int) -> object:
    return {"num_classes": num_classes}


def raises(num_classes: int) -> nn.Module:
    raise ValueError("this builder needs a config file")


def wrong_shape(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1))


def two_outputs(num_classes: int) -> nn.Module:
    class Aux(SmallNet):
        def forward(self, x: torch.Tensor) -> tuple:
            y = super().forward(x)
            return y, y

    return Aux(num_classes)


class Branchy(SmallNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:  # a decision on a tensor's value: not traceable
            x = x * 2
        return super().forward(x)


def branchy(num_classes: int) -> nn.Module:
    return Branchy(num_classes)
