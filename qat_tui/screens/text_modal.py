"""A scrollable read-only text (e.g. check_model's output as printed); Escape closes it."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

from core.i18n import N_, _

from .base import TranslatedBindings


class TextModal(TranslatedBindings, ModalScreen):
    BINDINGS = [Binding("escape", "close", N_("Close"), id="text.close"),
                Binding("q", "close", N_("Close"), show=False, id="text.close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.body = text

    def compose(self) -> ComposeResult:
        with Vertical(id="text-box"):
            yield Static(Text(" %s  %s " % (self.title_text, _("(esc closes)")), style="bold reverse"))
            yield TextArea(self.body, read_only=True, show_line_numbers=False, id="text-body")

    def on_mount(self) -> None:
        self.query_one("#text-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
