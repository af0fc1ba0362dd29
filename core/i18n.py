"""The language qat-tui speaks (``en`` or ``zh``) and the translation of every string it shows.

Strings are written in English in the source and translated through gettext catalogs (the standard
library's :mod:`gettext`; Babel extracts and compiles them in development, ``make po`` / ``make mo``):

- ``_("text")`` translates now, into the current language; use it where the string is shown, never
  in a module-level constant (the language can change while the wizard runs).
- ``N_("text")`` only marks a constant for extraction (pydantic ``description=``, tables of labels);
  translate it where it is shown: ``_(field.description)``.
- ``ngettext(singular, plural, n)`` for counted phrases.
- Placeholders are named, ``_("{n} images in {path}").format(n=..., path=...)``, so that a
  translation can put them in its own order; ``%s`` strings are translated before ``%`` too.

Catalogs: ``core/locale/<lang>/LC_MESSAGES/qat_tui.po`` (text, edited) and ``.mo`` (compiled by
``make mo``, committed: the dockers have no Babel). English is the source language and has no catalog.

The language is chosen (:func:`resolve_lang`): ``--lang``, else ``[ui] lang`` of the settings, else the
locale as gettext reads it (``LANGUAGE``, ``LC_ALL``, ``LANG``: ``zh*`` gives zh, anything else en).
A worker process started by the wizard gets it through ``QAT_TUI_LANG`` (:data:`ENV_VAR`).

Nothing here imports torch or Textual; Python 3.8 compatible.
"""
from __future__ import annotations

import gettext as _gettext
import os
import threading
from typing import Dict, Mapping, Optional

LANGS = ("en", "zh")
"""The languages qat-tui has; ``en`` (the source language) is the fallback."""

DEFAULT_LANG = "en"

DOMAIN = "qat_tui"
"""The gettext domain: one catalog for the engine and the wizard."""

LOCALE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locale")
"""``LOCALE_DIR/<lang>/LC_MESSAGES/qat_tui.mo`` (installed as package data)."""

ENV_VAR = "QAT_TUI_LANG"
"""Set by the wizard for the worker process it starts, so that the worker's messages follow the
wizard's language (read before ``[ui] lang`` and the locale, after ``--lang``)."""

_lock = threading.Lock()
_catalogs: Dict[str, _gettext.NullTranslations] = {}
_current = DEFAULT_LANG


def _lang_of(value: str) -> str:
    return "zh" if value.strip().lower().startswith("zh") else "en"


def locale_lang(environ: Optional[Mapping[str, str]] = None) -> str:
    """The language of the locale: the first of ``LANGUAGE`` (its first colon-separated entry),
    ``LC_ALL``, ``LANG`` that is set and not empty; ``zh*`` gives ``"zh"``, anything else (``C``,
    ``en_US.UTF-8``) or nothing ``"en"``."""
    env = os.environ if environ is None else environ
    for var in ("LANGUAGE", "LC_ALL", "LANG"):
        value = env.get(var) or ""
        if var == "LANGUAGE":
            value = value.split(":")[0]
        if value.strip():
            return _lang_of(value)
    return DEFAULT_LANG


def resolve_lang(cli_lang: Optional[str] = None, setting: Optional[str] = None,
                 environ: Optional[Mapping[str, str]] = None) -> str:
    """The language to show: ``"en"`` or ``"zh"``.

    Args:
        cli_lang: ``--lang`` when given (``en``, ``zh``; a locale name such as ``zh_CN`` is read like
            one); None or empty: not given.
        setting: ``[ui] lang`` of the settings (``auto``, ``en``, ``zh``); None, empty or ``auto``:
            not set.
        environ: the environment (default ``os.environ``): ``QAT_TUI_LANG`` (set by the wizard for its
            worker) and the locale (:func:`locale_lang`).

    Order: ``cli_lang``, ``QAT_TUI_LANG``, ``setting``, the locale.
    """
    if cli_lang:
        return _lang_of(cli_lang)
    env = os.environ if environ is None else environ
    if (env.get(ENV_VAR) or "").strip():
        return _lang_of(env[ENV_VAR])
    if setting and setting.strip() and setting.strip() != "auto":
        return _lang_of(setting)
    return locale_lang(env)


def catalog(lang: str) -> _gettext.NullTranslations:
    """The translations of ``lang`` (a NullTranslations, which returns the English source, for ``en``
    or a language without a compiled catalog)."""
    with _lock:
        found = _catalogs.get(lang)
        if found is None:
            if lang == DEFAULT_LANG:
                found = _gettext.NullTranslations()
            else:
                found = _gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)
            _catalogs[lang] = found
        return found


def set_language(lang: str) -> str:
    """Make ``lang`` (``en``/``zh``; anything else reads like a locale name) the language of every
    later ``_()`` in this process; returns the language set."""
    global _current
    _current = lang if lang in LANGS else _lang_of(lang)
    return _current


def get_language() -> str:
    """The current language, ``"en"`` or ``"zh"``."""
    return _current


def _(message: str) -> str:
    """``message`` in the current language (itself when the catalog has no translation)."""
    if not message or _current == DEFAULT_LANG:
        return message
    return catalog(_current).gettext(message)


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it (translate where it is shown)."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, in the current language."""
    if _current == DEFAULT_LANG:
        return singular if n == 1 else plural
    return catalog(_current).ngettext(singular, plural, n)


def in_lang(lang: str, message: str) -> str:
    """``message`` translated into ``lang`` whatever the current language (tests, the language switch)."""
    if not message or lang == DEFAULT_LANG:
        return message
    return catalog(lang).gettext(message)


__all__ = ["LANGS", "DEFAULT_LANG", "DOMAIN", "LOCALE_DIR", "ENV_VAR", "locale_lang", "resolve_lang", "catalog",
           "set_language", "get_language", "_", "N_", "ngettext", "in_lang"]
