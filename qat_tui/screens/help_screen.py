"""The help page of a screen: its Markdown (``qat_tui/help/<lang>/<page>.md``) in Textual's
MarkdownViewer, over the screen it explains. ``?`` or F1 opens it from every wizard step and from the
run and results screens (bound once, in :class:`~qat_tui.screens.base.HelpfulScreen`); Escape or ``q``
closes it. Up/down, page up/down, home/end scroll it.
"""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import MarkdownViewer, Static

from ..i18n import first_heading, read_help

CLOSE_HINT = {
    "en": "esc/q close  up/down/pgup/pgdn scroll",
    "zh": "esc/q 关闭  上下/翻页键 滚动",
}
"""The title bar's key hint, per language."""


class HelpViewer(MarkdownViewer, can_focus=True):
    """The MarkdownViewer, focusable: its scroll keys (up/down, page up/down, home/end) then work."""


class HelpScreen(ModalScreen):
    """The help page ``page`` (a step id, ``run``, ``results``) in ``lang`` (``en``, ``zh``; English
    when that language has no such page).

    Args:
        page: the page's name, its file without ``.md``.
        lang: the language of the page.
    """

    BINDINGS = [
        Binding("escape", "close", "Close", id="help.close"),
        Binding("q", "close", "Close", show=False, id="help.close"),
    ]

    def __init__(self, page: str, lang: str = "en") -> None:
        super().__init__()
        self.page = page
        self._load(lang)

    def _load(self, lang: str) -> None:
        self.lang = lang
        self.markdown = read_help(self.page, lang)
        self.heading = first_heading(self.markdown)

    def title_text(self) -> Text:
        title = Text(" ? %s " % self.heading, style="bold reverse")
        title.append("  %s" % CLOSE_HINT.get(self.lang, CLOSE_HINT["en"]), style="dim")
        return title

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static(self.title_text(), id="help-title")
            yield HelpViewer(self.markdown, show_table_of_contents=False, open_links=False, id="help-viewer")

    def on_mount(self) -> None:
        self.query_one("#help-viewer").focus()

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


__all__ = ["HelpScreen", "HelpViewer", "CLOSE_HINT"]
