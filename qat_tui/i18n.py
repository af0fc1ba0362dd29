"""The wizard's language (``en`` or ``zh``) and its help pages.

The language is chosen by :func:`core.i18n.resolve_lang` (``--lang``, ``[ui] lang``, the locale) and
switched at runtime (F2, the palette); the strings of screens are translated by :mod:`core.i18n`.

Help pages are Markdown files, one per wizard step and per run/results screen, in
``qat_tui/help/<lang>/<page>.md``; a step's page is named by its id (:attr:`qat_tui.state.Step.id`).

Nothing here imports torch or Textual.
"""
from __future__ import annotations

import os
from typing import List

from core.i18n import DEFAULT_LANG, LANGS, resolve_lang  # noqa: F401  (re-exported: one place for the language)

HELP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "help")
"""Where the help pages are: ``HELP_DIR/<lang>/<page>.md`` (installed as package data)."""


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
