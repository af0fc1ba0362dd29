"""The wizard's key bindings by id, and the ``[ui] keymap`` that rebinds them.

Every ``Binding`` of the app and of the screens in :mod:`qat_tui.screens` has a stable ``id``
(``"wizard.next"``, ``"run.cancel"``, ``"app.quit"``...); the bindings of one action share it (``ctrl+n``
and ``n`` are both ``wizard.next``). ``[ui] keymap = {"wizard.next" = "f5"}`` in the settings the wizard
starts with replaces the keys of that id (Textual's ``App.set_keymap``); :func:`split_keymap` keeps the
ids that exist and names the others with the valid ones. The ids are read from the classes themselves
(every module of :mod:`qat_tui.screens`), so a new screen's bindings are known without a list to keep.

Nothing here imports torch.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Tuple

from core.i18n import _, ngettext


@dataclass
class BindingInfo:
    """One binding id: its default keys (Textual's names), the action and what the key is called."""

    id: str
    keys: List[str] = field(default_factory=list)
    action: str = ""
    description: str = ""
    where: str = ""


def _bindings_of(cls: type) -> Iterable[object]:
    return cls.__dict__.get("BINDINGS", ()) or ()


def wizard_classes() -> List[type]:
    """The screen classes defined in :mod:`qat_tui.screens` (each module imported; none imports torch)."""
    from . import screens

    out: List[type] = []
    for mod in sorted(pkgutil.iter_modules(screens.__path__), key=lambda m: m.name):
        module = importlib.import_module("%s.%s" % (screens.__name__, mod.name))
        for _name, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__ and "BINDINGS" in obj.__dict__:
                out.append(obj)
    return out


def binding_ids(extra: Iterable[type] = ()) -> Dict[str, BindingInfo]:
    """``{id: BindingInfo}`` of every binding of ``extra`` (the app class) and of the wizard's screens,
    sorted by id."""
    from textual.binding import Binding

    found: Dict[str, BindingInfo] = {}
    for cls in list(extra) + wizard_classes():
        for b in _bindings_of(cls):
            if not isinstance(b, Binding) or not b.id:
                continue
            info = found.setdefault(b.id, BindingInfo(b.id, action=b.action, description=b.description, where=cls.__name__))
            for key in b.key.split(","):
                if key.strip() and key.strip() not in info.keys:
                    info.keys.append(key.strip())
    return dict(sorted(found.items()))


def split_keymap(keymap: Mapping[str, str], known: Iterable[str]) -> Tuple[Dict[str, str], List[str]]:
    """``(the entries whose id is known, the unknown ids)``."""
    known = set(known)
    good = {k: v for k, v in keymap.items() if k in known}
    return good, [k for k in keymap if k not in known]


def unknown_ids_message(unknown: List[str], known: Iterable[str]) -> str:
    """``[ui] keymap: unknown binding id 'wizard.nxt' (did you mean wizard.next?); valid ids: ...``."""
    known = sorted(known)
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        parts.append("%r%s" % (name, _(" (did you mean {id}?)").format(id=close[0]) if close else ""))
    return ngettext("[ui] keymap: unknown binding id {ids}; the valid ids: {known}",
                    "[ui] keymap: unknown binding ids {ids}; the valid ids: {known}", len(unknown)).format(
        ids=", ".join(parts), known=", ".join(known))


__all__ = ["BindingInfo", "binding_ids", "wizard_classes", "split_keymap", "unknown_ids_message"]
