"""Quantization backends, found by name.

Each entry maps a ``[run] backend`` value to ``module:class`` of a :class:`~core.backends.base.QuantBackend`;
modules are imported only when asked for, so listing backends costs nothing until detection runs.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, List

from ..errors import BackendError
from .base import BackendInfo, FakeQuantState, QuantBackend

BACKENDS: Dict[str, str] = {
    "horizon": "core.backends.horizon:HorizonBackend",
    "torch": "core.backends.torch_pt2e:TorchPt2eBackend",
}
"""Registered backends, the preferred first: the wizard defaults to the first one that can run here."""


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


def get_backend(name: str, settings: Any = None) -> QuantBackend:
    """An instance of an available backend, configured from ``settings`` where it needs them (the
    ``[horizon]`` section for the horizon backend).

    Raises:
        BackendError: unknown, or its packages are missing here (the reason says which).
    """
    cls = backend_class(name)
    info = cls.detect()
    if not info.available:
        other = [n for n in BACKENDS if n != name]
        raise BackendError(
            "backend %r cannot run here: %s" % (name, info.reason),
            hint="set [run] backend = %r, or install what is missing" % other[0] if other else None,
        )
    if name == "horizon":
        return cls(settings.horizon if settings is not None else None)
    return cls()


__all__ = ["BACKENDS", "BackendInfo", "FakeQuantState", "QuantBackend", "backend_class", "detect_backends", "get_backend"]
