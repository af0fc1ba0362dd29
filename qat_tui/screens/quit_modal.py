"""Asked when the wizard is closed while a run goes on: leave it running, stop it, or stay.

The run lives in its own process (``core.worker``), so leaving it running is safe over SSH: follow it
again later with ``qat-tui attach RUN_DIR``.
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


class QuitModal(TranslatedBindings, ModalScreen):
    """Dismisses with ``"leave"``, ``"stop"`` or ``None`` (stay)."""

    BINDINGS = [
        Binding("l", "choose('leave')", N_("Leave it running"), id="quit.leave"),
        Binding("s", "choose('stop')", N_("Stop it"), id="quit.stop"),
        Binding("escape", "choose('stay')", N_("Stay"), id="quit.stay"),
    ]

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            yield Static(Text(" %s " % _("A run is in progress"), style="bold black on yellow"), id="quit-title")
            yield Static(
                Text(_("It runs in its own process and survives closing the wizard or the SSH session.\n"
                       "Leave it running and come back with:  qat-tui attach {run_dir}\n"
                       "Or stop it: the running stage stops at its next batch and is recorded as cancelled; "
                       "qat-tui resume continues it later.").format(run_dir=self.run_dir)),
                id="quit-message",
            )
            with Horizontal(id="quit-buttons"):
                yield Button(_("Leave it running") + " (l)", id="quit-leave", variant="primary", compact=True)
                yield Button(_("Stop it") + " (s)", id="quit-stop", variant="error", compact=True)
                yield Button(_("Stay") + " (esc)", id="quit-stay", compact=True)

    def on_mount(self) -> None:
        self.query_one("#quit-leave").focus()

    def action_choose(self, choice: str) -> None:
        self.dismiss(None if choice == "stay" else choice)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_choose(event.button.id.split("-", 1)[1] if event.button.id else "stay")
