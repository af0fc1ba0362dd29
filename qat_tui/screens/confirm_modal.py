"""A yes/no question before something that cannot be taken back: cancelling a run (``c`` on the run
screen) and quitting with unsaved settings edits. ``y`` answers yes, ``n`` or Escape no; the "no"
button has the focus, so Enter alone changes nothing.
"""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from core.i18n import N_, _

from .base import TranslatedBindings


class ConfirmModal(TranslatedBindings, ModalScreen):
    """Dismisses with True (yes) or False (no).

    Args:
        title: the question, in the title bar ("Cancel the run?").
        message: what answering yes does.
        yes: the yes button's label (its key ``y`` is added; default "Yes" translated).
        no: the no button's label (its keys ``n``/esc are added; default "No" translated).
        The caller gives the texts translated (``_()``).
    """

    BINDINGS = [
        Binding("y", "answer(True)", N_("Yes"), id="confirm.yes"),
        Binding("n", "answer(False)", N_("No"), id="confirm.no"),
        Binding("escape", "answer(False)", N_("No"), show=False, id="confirm.no"),
    ]

    def __init__(self, title: str, message: str, yes: str = "", no: str = "") -> None:
        super().__init__()
        self.question, self.message = title, message
        self.yes_label, self.no_label = yes or _("Yes"), no or _("No")

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(Text(" %s " % self.question, style="bold black on yellow"), id="confirm-title")
            yield Static(Text(self.message), id="confirm-message")
            with Horizontal(id="confirm-buttons"):
                yield Button("%s (y)" % self.yes_label, id="confirm-yes", variant="warning", compact=True)
                yield Button("%s (n)" % self.no_label, id="confirm-no", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#confirm-no").focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")


__all__ = ["ConfirmModal"]
