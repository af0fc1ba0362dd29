"""Quantization backends, found by name.

Each entry maps a ``[run] backend`` value to ``module:class`` of a :class:`~core.backends.base.QuantBackend`;
modules are imported only when asked for, so listing backends costs nothing until detection runs.
"""
from __future__ import annotations

import importlib
from typing import Dict, List

from ..errors import BackendError
from .base import BackendInfo, FakeQuantState, QuantBackend

BACKENDS: Dict[str, str] = {
    "torch": "core.backends.torch_pt2e:TorchPt2eBackend",
}


def backend_class(name: str) -> type:
    """The backend class registered under ``name``.

    Raises:
        BackendError: unknown name.
    """
    if name not in BACKENDS:
        raise BackendError("unknown backend %r" % name, hint="choose one of: %s" % ", ".join(BACKENDS))
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def detect_backends() -> List[BackendInfo]:
    """Detection result of every registered backend (imports their packages: call off the UI thread)."""
    out = []
    for name in BACKENDS:
        try:
            out.append(backend_class(name).detect())
        except Exception as e:  # a backend whose module fails to import is reported, not fatal
            out.append(BackendInfo(name, False, "%s: %s" % (type(e).__name__, e)))
    return out


def get_backend(name: str) -> QuantBackend:
    """An instance of an available backend.

    Raises:
        BackendError: unknown, or its packages are missing here (the reason says which).
    """
    cls = backend_class(name)
    info = cls.detect()
    if not info.available:
        raise BackendError("backend %r cannot run here: %s" % (name, info.reason))
    return cls()


__all__ = ["BACKENDS", "BackendInfo", "FakeQuantState", "QuantBackend", "backend_class", "detect_backends", "get_backend"]
