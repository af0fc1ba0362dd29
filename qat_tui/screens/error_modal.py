"""The one error modal: every :class:`core.errors.QatError` (and every failed stage) is shown here the
same way - a title naming the area, the message saying what went wrong, and the hint saying what to do."""
from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from core.i18n import N_, _

from .base import TranslatedBindings


class ErrorModal(TranslatedBindings, ModalScreen):
    """Title, message, hint; Enter/Escape closes it."""

    BINDINGS = [
        Binding("escape", "close", N_("Close"), id="error.close"),
        Binding("enter", "close", N_("Close"), show=False, id="error.close"),
        Binding("q", "close", N_("Close"), show=False, id="error.close"),
    ]

    def __init__(self, title: str, message: str, hint: Optional[str] = None) -> None:
        super().__init__()
        self.error_title = title or ""
        self.message = message
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box"):
            title = _("{area} error").format(area=_(self.error_title)) if self.error_title else _("Error")
            yield Static(Text(" %s " % title, style="bold white on red"), id="error-title")
            with VerticalScroll(id="error-body"):
                yield Static(Text(self.message), id="error-message")
                if self.hint:
                    yield Static(Text("-> " + self.hint, style="bold yellow"), id="error-hint")
            yield Button(_("Close (Enter)"), id="error-close", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#error-close").focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)
