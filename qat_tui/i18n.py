"""The wizard's language (``en`` or ``zh``) and its help pages.

The language is chosen once, at start: ``qat-tui --lang en|zh``, else the locale, read the way gettext
reads it:

1. ``--lang`` (``cli_lang``) when given;
2. else the first of ``LANGUAGE``, ``LC_ALL``, ``LANG`` that is set and not empty (``LANGUAGE`` is a
   colon-separated list of preferences: its first entry counts);
3. that value starting with ``zh`` (``zh_CN.UTF-8``, ``zh_TW``, ``zh``) gives ``zh``; anything else
   (``C``, ``POSIX``, ``en_US.UTF-8``, ``de_DE``) or nothing gives ``en``.

Help pages are Markdown files, one per wizard step and per run/results screen, in
``qat_tui/help/<lang>/<page>.md``; a step's page is named by its id (:attr:`qat_tui.state.Step.id`).

Nothing here imports torch or Textual.
"""
from __future__ import annotations

import os
from typing import List, Mapping, Optional

LANGS = ("en", "zh")
"""The languages qat-tui has; ``en`` is the fallback."""

DEFAULT_LANG = "en"

HELP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "help")
"""Where the help pages are: ``HELP_DIR/<lang>/<page>.md`` (installed as package data)."""


def _lang_of(value: str) -> str:
    return "zh" if value.strip().lower().startswith("zh") else "en"


def resolve_lang(cli_lang: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> str:
    """The language to show: ``"en"`` or ``"zh"``.

    Args:
        cli_lang: ``--lang`` when given (``en``, ``zh``; a locale name such as ``zh_CN`` is read like
            one); None or empty: use the locale.
        environ: the environment to read the locale from (default ``os.environ``).

    ``LANGUAGE`` comes first (its first colon-separated entry), then ``LC_ALL``, then ``LANG``; the
    first that is set and not empty decides: a value starting with ``zh`` gives ``zh``, any other
    value ``en``. Nothing set gives ``en``.
    """
    if cli_lang:
        return _lang_of(cli_lang)
    env = os.environ if environ is None else environ
    for var in ("LANGUAGE", "LC_ALL", "LANG"):
        value = env.get(var) or ""
        if var == "LANGUAGE":
            value = value.split(":")[0]
        if value.strip():
            return _lang_of(value)
    return DEFAULT_LANG


def help_path(page: str, lang: str) -> str:
    """The file of help page ``page`` in ``lang`` (it may not exist)."""
    return os.path.join(HELP_DIR, lang, page + ".md")


def help_pages(lang: str) -> List[str]:
    """The pages that exist in ``lang`` (file names without ``.md``), sorted."""
    folder = os.path.join(HELP_DIR, lang)
    if not os.path.isdir(folder):
        return []
    return sorted(name[:-3] for name in os.listdir(folder) if name.endswith(".md"))


def read_help(page: str, lang: str) -> str:
    """The Markdown of help page ``page`` in ``lang``; the English page when that language has none,
    and a short Markdown note naming the missing file when neither exists."""
    for candidate in (lang, DEFAULT_LANG):
        path = help_path(page, candidate)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return f.read()
    return "# %s\n\nNo help page for this screen yet (%s).\n" % (page, help_path(page, lang))


def first_heading(markdown: str) -> str:
    """The text of the first ``#`` heading of a Markdown page ("" when it has none)."""
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced and line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


__all__ = ["LANGS", "DEFAULT_LANG", "HELP_DIR", "resolve_lang", "help_path", "help_pages", "read_help", "first_heading"]
