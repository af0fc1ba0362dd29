"""Quantization backends, found through the entry point group ``qat_tui.backends``.

Each entry point names a :class:`~core.backends.spec.BackendSpec` (qat-tui's own two are registered in
its ``pyproject.toml``; a package of yours registers more in its own). Listing backends imports only
their spec modules, never a toolchain; :func:`get_backend` imports the implementation when a run
starts. Nothing here names a particular backend.

Python 3.8's ``importlib.metadata.entry_points()`` returns a dict of groups; 3.10+ an object with
``select`` (both handled in :func:`_entry_points`).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..i18n import _
from ..errors import BackendError
from .base import BackendInfo, FakeQuantState, QuantBackend
from .spec import ENTRY_POINT_GROUP, BackendSpec

_SPECS: Optional[Dict[str, BackendSpec]] = None
_LOAD_ERRORS: List[str] = []


def _entry_points(group: str) -> List[Any]:
    from importlib import metadata

    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=group))
    return list(eps.get(group, []))  # Python 3.8/3.9


def specs() -> Dict[str, BackendSpec]:
    """Registered backends, name -> spec, the preferred first (the wizard defaults to the first one
    that can run here). A spec that fails to load is left out and its error kept for :func:`detect_backends`."""
    global _SPECS
    if _SPECS is None:
        found: Dict[str, BackendSpec] = {}
        _LOAD_ERRORS.clear()
        for ep in _entry_points(ENTRY_POINT_GROUP):
            if ep.name in found:
                continue
            try:
                spec = ep.load()
            except Exception as e:  # a broken plugin must not break qat-tui
                _LOAD_ERRORS.append("backend %r (%s) does not load: %s: %s" % (ep.name, ep.value, type(e).__name__, e))
                continue
            if isinstance(spec, BackendSpec) and spec.name == ep.name:
                found[ep.name] = spec
            else:
                _LOAD_ERRORS.append("entry point %r (%s) is not a BackendSpec named %r" % (ep.name, ep.value, ep.name))
        _SPECS = dict(sorted(found.items(), key=lambda kv: (-kv[1].preferred, kv[0])))
    return _SPECS


def refresh() -> None:
    """Forget the registry (a package that registers a backend was installed or removed)."""
    global _SPECS
    _SPECS = None
    from ..settings import forget_backend_sections

    forget_backend_sections()


def names() -> List[str]:
    """Registered backend names, the preferred first."""
    return list(specs())


def get_spec(name: str) -> BackendSpec:
    """The spec registered under ``name``.

    Raises:
        BackendError: unknown name (the message lists the registered ones).
    """
    found = specs().get(name)
    if found is None:
        raise BackendError(
            _("unknown backend %r") % name,
            hint=_("registered backends: %s (entry point group %s)") % (", ".join(specs()) or "none", ENTRY_POINT_GROUP),
        )
    return found


def detect_backends() -> List[BackendInfo]:
    """Detection result of every registered backend (imports their toolchains: call off the UI thread)."""
    out = []
    for spec in specs().values():
        try:
            out.append(spec.detect())
        except Exception as e:  # a backend whose detection fails is reported, not fatal
            out.append(BackendInfo(spec.name, False, "%s: %s" % (type(e).__name__, e)))
    return out


def get_backend(name: str, settings: Any = None) -> QuantBackend:
    """An instance of an available backend, configured from ``settings``.

    Raises:
        BackendError: unknown, or its packages are missing here (the reason says which).
    """
    spec = get_spec(name)
    info = spec.detect()
    if not info.available:
        others = [n for n in specs() if n != name]
        raise BackendError(
            _("backend %r cannot run here: %s") % (name, info.reason),
            hint=(_("set [run] backend = %r, or install what is missing") % others[0]) if others else None,
        )
    return spec.create(settings)


def load_errors() -> List[str]:
    """Why registered entry points did not load (shown by the wizard's backend step)."""
    specs()
    return list(_LOAD_ERRORS)


__all__ = ["BackendInfo", "BackendSpec", "FakeQuantState", "QuantBackend", "specs", "refresh", "names", "get_spec",
           "detect_backends", "get_backend", "load_errors"]
