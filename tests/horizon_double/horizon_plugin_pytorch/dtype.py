"""TEST DOUBLE of ``horizon_plugin_pytorch.dtype`` (Horizon Robotics' QAT plugin).

The real module defines quantized dtypes ``qint4, quint4, qint8, qint16, qint32`` (``QuantDType``;
older plugins used the plain strings ``"qint8"``...) and ``qinfo(dtype)`` with ``.min``/``.max``
(imported by quantization/qconfig.py, read_file id 31499793000). In the double ``QuantDType`` is a
``str`` subclass, so ``qint8 == "qint8"`` holds as in both old and new plugins.
"""
from collections import namedtuple

__all__ = ["QuantDType", "qint4", "quint4", "qint8", "qint16", "qint32", "qinfo"]


class QuantDType(str):
    """A quantized dtype name that compares equal to its string."""

    def __repr__(self) -> str:
        return "horizon." + str(self)


qint4 = QuantDType("qint4")
quint4 = QuantDType("quint4")
qint8 = QuantDType("qint8")
qint16 = QuantDType("qint16")
qint32 = QuantDType("qint32")

_QInfo = namedtuple("_QInfo", ["bits", "min", "max"])
_INFO = {
    "qint4": _QInfo(4, -8, 7),
    "quint4": _QInfo(4, 0, 15),
    "qint8": _QInfo(8, -128, 127),
    "qint16": _QInfo(16, -32768, 32767),
    "qint32": _QInfo(32, -(2 ** 31), 2 ** 31 - 1),
}


def qinfo(dtype) -> "_QInfo":
    """Bits and integer range of a quantized dtype name (also accepts torch.qint8/quint8/qint32)."""
    name = str(dtype).replace("torch.", "")
    if name == "quint8":
        return _QInfo(8, 0, 255)
    if name not in _INFO:
        raise ValueError("unsupported dtype: %s" % (dtype,))
    return _INFO[name]
