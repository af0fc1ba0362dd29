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


class ConfirmModal(ModalScreen):
    """Dismisses with True (yes) or False (no).

    Args:
        title: the question, in the title bar ("Cancel the run?").
        message: what answering yes does.
        yes: the yes button's label (its key ``y`` is added).
        no: the no button's label (its keys ``n``/esc are added).
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n", "answer(False)", "No", id="confirm.no"),
        Binding("escape", "answer(False)", "No", show=False, id="confirm.no"),
    ]

    def __init__(self, title: str, message: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.message, self.yes_label, self.no_label = title, message, yes, no

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
