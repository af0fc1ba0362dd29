"""TEST DOUBLE of the colour-space helpers of ``horizon_plugin_pytorch.functional`` (Horizon
Robotics' QAT plugin).

Follows the plugin source in the code index (functional.py, read_file id 31815854818) and the X3
user guide section "RGB888 数据部署" (HorizonRDK/rdk_x3_doc): ``rgb2centered_yuv(input, swing="studio")``
converts an RGB image (N, 3, H, W) with values 0..255 (uint8 or float) to YUV444 BT.601 minus 128,
as an **int32** tensor. The integer coefficients (per 256) and offsets are the source's:

* studio swing (default): Y = (66R + 129G + 25B + 128)/256 + 16, U = (-38R - 74G + 112B + 128)/256 +
  128, V = (112R - 94G - 18B + 128)/256 + 128 (ranges after centering: Y -112..107, U/V -112..112);
* full swing: weights [[77, 150, 29], [-43, -84, 127], [127, -106, -21]], offsets [0, 128, 128]
  (Y, U, V -128..127). The BPU pyramid delivers full swing; the docs tell users to pass
  ``swing="full"`` - but the default (and the quick_start sample, which passes nothing) is "studio".

Values are truncated toward zero (``.to(torch.int32)``) as in the source. An unknown ``swing`` fails
the source's assertion ('`swing` is not valid! must be "full" or "studio"!').
"""
import torch
from torch import Tensor

from .utils.typeguard import typechecked

__all__ = [
    "rgb2yuv", "bgr2yuv", "rgb2centered_yuv", "bgr2centered_yuv",
    "rgb2gray", "bgr2gray", "rgb2centered_gray", "bgr2centered_gray", "rgb2bgr", "bgr2rgb",
]

_RGB_WEIGHTS = {
    "studio": [[66, 129, 25], [-38, -74, 112], [112, -94, -18]],
    "full": [[77, 150, 29], [-43, -84, 127], [127, -106, -21]],
}
_OFFSETS = {"studio": [16, 128, 128], "full": [0, 128, 128]}


def _yuv(input: Tensor, swing: str, bgr: bool) -> Tensor:
    assert swing in _RGB_WEIGHTS, '`swing` is not valid! must be "full" or "studio"!'
    x = input.to(torch.float32)
    w = torch.tensor(_RGB_WEIGHTS[swing], dtype=torch.float32, device=x.device)
    if bgr:
        w = w.flip(1)
    # one 1x1 convolution: out[c] = sum_k w[c, k] * in[k]
    y = torch.nn.functional.conv2d(x, w[:, :, None, None], torch.full((3,), 128.0, device=x.device)) / 256
    y = y + torch.tensor(_OFFSETS[swing], dtype=torch.float32, device=x.device).reshape(1, 3, 1, 1)
    return y.to(torch.int32)


@typechecked
def rgb2yuv(input: Tensor, swing: str = "studio") -> Tensor:
    """RGB (N, 3, H, W), 0..255 -> YUV444 BT.601 (int32)."""
    return _yuv(input, swing, bgr=False)


@typechecked
def bgr2yuv(input: Tensor, swing: str = "studio") -> Tensor:
    """BGR (N, 3, H, W), 0..255 -> YUV444 BT.601 (int32)."""
    return _yuv(input, swing, bgr=True)


@typechecked
def rgb2centered_yuv(input: Tensor, swing: str = "studio") -> Tensor:
    """RGB (N, 3, H, W), 0..255 -> centered YUV444 BT.601 (YUV - 128, int32)."""
    return rgb2yuv(input, swing) - 128


@typechecked
def bgr2centered_yuv(input: Tensor, swing: str = "studio") -> Tensor:
    """BGR (N, 3, H, W), 0..255 -> centered YUV444 BT.601 (YUV - 128, int32)."""
    return bgr2yuv(input, swing) - 128


@typechecked
def rgb2gray(input: Tensor) -> Tensor:
    """RGB -> gray (the Y channel of full-swing YUV), shape (N, 1, H, W)."""
    return rgb2yuv(input, "full")[:, :1]


@typechecked
def bgr2gray(input: Tensor) -> Tensor:
    return bgr2yuv(input, "full")[:, :1]


@typechecked
def rgb2centered_gray(input: Tensor) -> Tensor:
    return rgb2gray(input) - 128


@typechecked
def bgr2centered_gray(input: Tensor) -> Tensor:
    return bgr2gray(input) - 128


@typechecked
def rgb2bgr(input: Tensor) -> Tensor:
    return input.flip(1)


@typechecked
def bgr2rgb(input: Tensor) -> Tensor:
    return input.flip(1)
