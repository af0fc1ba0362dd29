"""Messages the screens send up to the app ("attributes down, messages up", Textual's guide
``docs/guide/widgets.md``): a screen never calls into the app; it posts one of these and the app acts.
A leaf module: it imports Textual's ``Message`` and nothing of qat-tui's."""
from __future__ import annotations

from typing import Any, Optional

from textual.message import Message


class ShowError(Message):
    """Show the one error modal: what area failed, what went wrong, what to do."""

    def __init__(self, title: str, message: str, hint: Optional[str] = None) -> None:
        super().__init__()
        self.title, self.message, self.hint = title, message, hint

    @classmethod
    def of(cls, err: Any) -> "ShowError":
        """From a :class:`core.errors.QatError`."""
        return cls(err.title, err.msg, err.hint)


class GoNext(Message):
    """The step ``step`` (0-based) stored its values: show the next one."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step


class GoBack(Message):
    """Leave step ``step`` backwards."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step


class StartRun(Message):
    """Start a run of these validated settings in its own process and show its run screen."""

    def __init__(self, settings: Any) -> None:
        super().__init__()
        self.settings = settings


class AttachRun(Message):
    """Follow the run in ``run_dir`` (running or finished) on a run screen."""

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir


class RunScreenShown(Message):
    """A run screen is showing: the app asks it about a running run before quitting."""

    def __init__(self, screen: Any) -> None:
        super().__init__()
        self.screen = screen


__all__ = ["ShowError", "GoNext", "GoBack", "StartRun", "AttachRun", "RunScreenShown"]
