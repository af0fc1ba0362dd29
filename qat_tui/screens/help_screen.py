"""The help page of a screen: its Markdown (``qat_tui/help/<lang>/<page>.md``) in Textual's
MarkdownViewer, over the screen it explains. ``?`` or F1 opens it from every wizard step and from the
run and results screens (bound once, in :class:`~qat_tui.screens.base.HelpfulScreen`); Escape or ``q``
closes it. Up/down, page up/down, home/end scroll it.
"""
from __future__ import annotations

import re
from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import MarkdownViewer, Static

from core.i18n import N_, _, in_lang

from ..i18n import first_heading, read_help

from .base import TranslatedBindings

CLOSE_HINT = N_("esc/q close  up/down/pgup/pgdn scroll")
"""The title bar's key hint (English; shown in the page's language: :func:`close_hint`)."""


def close_hint(lang: str) -> str:
    """The title bar's key hint in ``lang``."""
    return in_lang(lang, CLOSE_HINT)


def topic_heading(markdown: str, topic: str) -> Optional[str]:
    """The heading (its text) of the section of ``markdown`` that explains ``topic`` (a setting's key,
    or a stage's name): the first ``##`` heading that names it, else the heading above its first
    mention as ``**topic**`` or `` `topic` ``, else above its first mention as a word; None when the
    page does not mention it. A heading names it when it starts with it (``calib_observer: ...``,
    ``Presets``) or has it in brackets (``预设（preset）``)."""
    if not topic:
        return None
    word = re.compile(r"(?<![\w.])%ss?(?![\w])" % re.escape(topic), re.IGNORECASE)
    plain = re.compile(r"(?<![\w/.-])%s(?![\w/-])" % re.escape(topic))
    mention = re.compile(r"\*\*%s\*\*|`%s`" % (re.escape(topic), re.escape(topic)))
    heading: Optional[str] = None
    marked: Optional[str] = None
    named: Optional[str] = None
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            if heading and line.startswith("##") and (word.match(heading) or re.search(r"[（(]%s[)）]" % re.escape(topic), heading)):
                return heading
        elif heading is not None:
            if marked is None and mention.search(line):
                marked = heading
            if named is None and plain.search(line):
                named = heading
    return marked or named


class HelpViewer(MarkdownViewer, can_focus=True):
    """The MarkdownViewer, focusable: its scroll keys (up/down, page up/down, home/end) then work."""


class HelpScreen(TranslatedBindings, ModalScreen):
    """The help page ``page`` (a step id, ``run``, ``results``) in ``lang`` (``en``, ``zh``; English
    when that language has no such page).

    Args:
        page: the page's name, its file without ``.md``.
        lang: the language of the page.
        topic: a setting's key (a field's "more" link): the page opens at the section about it
            (:func:`topic_heading`; at the top when the page does not mention it).
    """

    BINDINGS = [
        Binding("escape", "close", N_("Close"), id="help.close"),
        Binding("q", "close", N_("Close"), show=False, id="help.close"),
    ]

    def __init__(self, page: str, lang: str = "en", topic: str = "") -> None:
        super().__init__()
        self.page = page
        self.topic = topic
        self._load(lang)

    def _load(self, lang: str) -> None:
        self.lang = lang
        self.markdown = read_help(self.page, lang)
        self.heading = first_heading(self.markdown)

    def title_text(self) -> Text:
        title = Text(" ? %s " % self.heading, style="bold reverse")
        title.append("  %s" % close_hint(self.lang), style="dim")
        return title

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static(self.title_text(), id="help-title")
            yield HelpViewer(self.markdown, show_table_of_contents=False, open_links=False, id="help-viewer")

    def on_mount(self) -> None:
        self.query_one("#help-viewer").focus()
        if self.topic:
            self.call_after_refresh(self.go_to_topic)

    @property
    def topic_section(self) -> Optional[str]:
        """The heading of the section about :attr:`topic` in the page shown, or None."""
        return topic_heading(self.markdown, self.topic)

    def go_to_topic(self, tries: int = 50) -> bool:
        """Scroll to the section about :attr:`topic` (the MarkdownViewer's table of contents gives its
        heading's widget), without animation; while the document is still being built, tries again
        a moment later. False when the page has no such section."""
        heading = self.topic_section
        if heading is None or not self.is_attached:
            return False
        viewer = self.query_one("#help-viewer", HelpViewer)
        for _level, label, block_id in viewer.document.table_of_contents or []:
            if label.strip() == heading:
                found = viewer.document.query("#" + block_id)
                if found:
                    viewer.scroll_to_widget(found.first(), top=True, animate=False)
                    return True
        if tries > 0:
            self.set_timer(0.05, lambda: self.go_to_topic(tries - 1))
        return False

    def lang_changed(self, lang: str) -> None:
        """The app switched the language (palette's Language, F2): the page in that language."""
        if lang == self.lang:
            return
        self._load(lang)
        self.query_one("#help-title", Static).update(self.title_text())
        viewer = self.query_one("#help-viewer", HelpViewer)
        viewer.document.update(self.markdown)
        viewer.scroll_home(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)


__all__ = ["HelpScreen", "HelpViewer", "CLOSE_HINT", "close_hint", "topic_heading"]
