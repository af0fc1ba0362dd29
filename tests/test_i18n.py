"""The translations (core/i18n.py): every string marked for translation in core/ and qat_tui/ has a zh
translation with the same placeholders, and the compiled .mo that qat-tui reads says what the .po says.

These fail when someone adds a ``_("...")`` and forgets ``make po`` + translating + ``make mo``; the
snapshot tests (test_snapshots.py) catch a shown string that was never marked.
"""
from __future__ import annotations

import gettext
import os
import re
from typing import Any, Dict, List, Tuple

import pytest

from core import i18n

babel_extract = pytest.importorskip("babel.messages.extract", reason="Babel (the test extra) extracts the strings")
from babel.messages.pofile import read_po  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PO = os.path.join(i18n.LOCALE_DIR, "zh", "LC_MESSAGES", i18n.DOMAIN + ".po")
MO = os.path.join(i18n.LOCALE_DIR, "zh", "LC_MESSAGES", i18n.DOMAIN + ".mo")
HOW = "run `make po`, translate it in core/locale/zh/LC_MESSAGES/qat_tui.po, then `make mo`"


def _source_messages() -> Dict[Any, Tuple[str, int]]:
    """msgid (a str, or a (singular, plural) tuple) -> (file, line) of its first use in core/ and qat_tui/."""
    found: Dict[Any, Tuple[str, int]] = {}
    for package in ("core", "qat_tui"):
        method_map = [("**.py", "python")]
        for filename, lineno, message, _comments, _context in babel_extract.extract_from_dir(
                os.path.join(REPO, package), method_map, keywords=babel_extract.DEFAULT_KEYWORDS):
            key = message if isinstance(message, str) else tuple(m for m in message if m)
            if isinstance(key, tuple) and len(key) == 1:
                key = key[0]
            if key and key not in found:
                found[key] = (os.path.join(package, filename), lineno)
    return found


def _catalog():
    with open(PO, "rb") as f:
        return read_po(f, locale="zh_CN")


def test_every_marked_string_has_a_zh_translation() -> None:
    source = _source_messages()
    assert len(source) > 50, "the extraction found almost nothing: is Babel's python extractor working?"
    cat = _catalog()
    missing: List[str] = []
    for msgid, (path, line) in sorted(source.items(), key=lambda kv: kv[1]):
        msg = cat.get(msgid[0] if isinstance(msgid, tuple) else msgid)
        strings = [] if msg is None else (list(msg.string) if isinstance(msg.string, (tuple, list)) else [msg.string])
        if msg is None or msg.fuzzy or not strings or not all(s.strip() for s in strings):
            missing.append("%s:%d: %r" % (path, line, msgid))
    assert not missing, "%d strings have no zh translation (%s):\n%s" % (len(missing), HOW, "\n".join(missing[:40]))


PLACEHOLDER = re.compile(r"\{[a-zA-Z_][a-zA-Z0-9_]*(?:![rsa])?(?::[^{}]*)?\}|%(?:\([a-z_]+\))?[-+ #0]*\d*(?:\.\d+)?[sdrfgx%]")


def _placeholders(text: str) -> List[str]:
    return sorted(m for m in PLACEHOLDER.findall(text) if m != "%%")


def test_translations_keep_the_placeholders() -> None:
    wrong = []
    for msg in _catalog():
        if not msg.id or not msg.string:
            continue
        ids = [msg.id] if isinstance(msg.id, str) else [msg.id[0]]
        strings = [msg.string] if isinstance(msg.string, str) else list(msg.string)
        for s in strings:
            if s and _placeholders(s) != _placeholders(ids[0]):
                wrong.append("%r -> %r: %s vs %s" % (ids[0], s, _placeholders(ids[0]), _placeholders(s)))
    assert not wrong, "translations whose placeholders differ from the English:\n" + "\n".join(wrong[:30])


def test_compiled_catalog_matches_the_po() -> None:
    assert os.path.exists(MO), "no compiled catalog %s: run `make mo`" % MO
    with open(MO, "rb") as f:
        compiled = gettext.GNUTranslations(f)
    stale = []
    for msg in _catalog():
        if not msg.id or msg.fuzzy or not msg.string:
            continue
        if isinstance(msg.id, str):
            if compiled.gettext(msg.id) != msg.string:
                stale.append(msg.id)
        elif compiled.ngettext(msg.id[0], msg.id[1], 1) != msg.string[0]:
            stale.append(msg.id[0])
    assert not stale, "the .mo is older than the .po (run `make mo`): %r" % stale[:10]


def test_language_switch_and_fallback() -> None:
    before = i18n.get_language()
    try:
        msgid = next(m.id for m in _catalog() if isinstance(m.id, str) and m.id and m.string)
        assert i18n.set_language("zh") == "zh"
        assert i18n._(msgid) != msgid
        assert i18n.set_language("zh_CN.UTF-8") == "zh"
        assert i18n.set_language("en") == "en"
        assert i18n._(msgid) == msgid
        assert i18n.in_lang("zh", msgid) == i18n.catalog("zh").gettext(msgid) != msgid
        assert i18n._("a string no catalog has") == "a string no catalog has"
        assert i18n.N_("marked") == "marked"
        assert i18n.ngettext("{n} image", "{n} images", 2) == "{n} images"
    finally:
        i18n.set_language(before)


@pytest.mark.parametrize("cli,setting,env,want", [
    (None, None, {"LANG": "zh_CN.UTF-8"}, "zh"),
    (None, "en", {"LANG": "zh_CN.UTF-8"}, "en"),  # [ui] lang beats the locale
    (None, "auto", {"LANG": "zh_CN.UTF-8"}, "zh"),  # auto: the locale
    ("en", "zh", {}, "en"),  # --lang beats [ui] lang
    (None, "en", {"QAT_TUI_LANG": "zh", "LANG": "C"}, "zh"),  # the wizard's worker follows the wizard
    ("en", None, {"QAT_TUI_LANG": "zh"}, "en"),
])
def test_resolve_lang_order(cli: Any, setting: Any, env: Any, want: str) -> None:
    assert i18n.resolve_lang(cli, setting, env) == want
