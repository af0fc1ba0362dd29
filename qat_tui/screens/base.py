"""The frame shared by the wizard steps: breadcrumb, a scrolling form, Back/Next, footer; and the help
key every screen with a help page shares (:class:`HelpfulScreen`).

A step lists its :class:`~qat_tui.widgets.SettingField` widgets in :meth:`WizardStep.compose_form`;
leaving forward validates every field (inline errors, focus on the first bad one) and stores the values
in the shared :class:`~qat_tui.state.WizardState`; leaving backward stores the valid ones only. A step's
number, heading and breadcrumb come from :data:`qat_tui.state.STEPS`; it asks the app for the next step
(or an error modal) with a message, never by calling it.
"""
from __future__ import annotations

from typing import Any, Iterable, List, Optional

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Static

from .. import messages as M
from ..state import STEP_NAMES, STEPS, WizardState, step_heading, step_index
from ..widgets.fields import SettingField

HELP_HINT = {"en": "? or F1: help", "zh": "? 或 F1：帮助"}
"""After each step's heading: the key of its help page, in the wizard's language."""


def breadcrumb(current: int, names: Optional[List[str]] = None) -> Text:
    """``qat-tui | 1 Data > 2 Backend > ...`` with the current step highlighted (-1: none, e.g. Run)."""
    names = names or STEP_NAMES
    t = Text(" qat-tui ", style="bold")
    t.append("| ", style="dim")
    if 11 + sum(len(n) + 5 for n in names) > 78:  # seven steps do not fit 80 columns after the name
        t = Text(" ")
    for i, name in enumerate(names):
        if i:
            t.append(" > ", style="dim")
        label = "%d %s" % (i + 1, name) if len(names) > 1 else name
        if i == current:
            t.append(" %s " % label, style="bold reverse")
        elif i < current:
            t.append(label)
        else:
            t.append(label, style="dim")
    return t


class HelpfulScreen(Screen):
    """A screen with a help page: ``?`` and F1 open it (:class:`~.help_screen.HelpScreen`) in the
    wizard's language (``app.wizard.lang``). The keys are bound here once, as priority bindings, so
    they work while a text box has the focus (no setting takes a ``?``).

    A subclass names its page in ``HELP_PAGE`` (``qat_tui/help/<lang>/<HELP_PAGE>.md``) or overrides
    :meth:`help_page`; wizard steps use their step id.
    """

    HELP_PAGE = ""

    BINDINGS = [  # not in the footer: at 80 columns it has no room left (the step heading says it)
        Binding("f1", "help", "Help", show=False, priority=True, id="help.open"),
        Binding("question_mark", "help", "Help", key_display="?", show=False, priority=True, id="help.open"),
    ]

    def help_page(self) -> str:
        """The name of this screen's help page."""
        return self.HELP_PAGE

    def action_help(self) -> None:
        from .help_screen import HelpScreen

        wizard = getattr(self.app, "wizard", None)
        self.app.push_screen(HelpScreen(self.help_page(), getattr(wizard, "lang", "en")))


class WizardStep(HelpfulScreen):
    """Base class of a wizard step; its place in :data:`qat_tui.state.STEPS` gives ``STEP`` (0-based)
    and ``HEADING``; its help page is named by its step id."""

    INTRO = ""
    NEXT_LABEL = "Next >"

    BINDINGS = [
        Binding("ctrl+n", "next", "Next", id="wizard.next"),
        Binding("escape", "back", "Back", id="wizard.back"),
        Binding("n", "next", "Next", show=False, id="wizard.next"),
        Binding("ctrl+b", "back", "Back", show=False, id="wizard.back"),
        Binding("b", "back", "Back", show=False, id="wizard.back"),
    ]

    @property
    def STEP(self) -> int:  # noqa: N802  (read like the class constant it used to be)
        return step_index("%s:%s" % (type(self).__module__, type(self).__name__))

    @property
    def HEADING(self) -> str:  # noqa: N802
        return step_heading(self.STEP)

    def help_page(self) -> str:
        return STEPS[self.STEP].id

    @property
    def wizard(self) -> WizardState:
        """The settings being edited and what detection found (owned by the app, handed down)."""
        return self.app.wizard  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        yield Static(breadcrumb(self.STEP), id="breadcrumb")
        with VerticalScroll(id="form"):
            yield Static(self.heading_text(), classes="step-heading")
            if self.INTRO:
                yield Static(self.INTRO, classes="step-intro")
            yield from self.compose_form()
        with Horizontal(id="nav"):
            yield Button("< Back", id="nav-back", compact=True)
            yield Static("", id="nav-status")
            yield Button(self.NEXT_LABEL, id="nav-next", compact=True, variant="primary")
        yield Footer()

    def compose_form(self) -> Iterable[Widget]:
        return []

    styled_ahead = False
    """Built ahead, hidden, and styled then (:mod:`qat_tui.screen_cache`): its first showing skips
    Textual's restyling of every widget (a third of a step forward's time)."""

    def _on_screen_resume(self, event: events.ScreenResume) -> None:  # before Textual's own handler
        if self.styled_ahead:
            self.styled_ahead = False
            event.refresh_styles = False

    def heading_text(self) -> Text:
        """``Step n of N - heading`` and the help key, in the wizard's language."""
        return Text.assemble((self.HEADING, "bold"), ("   " + HELP_HINT.get(self.wizard.lang, HELP_HINT["en"]), "dim"))

    def lang_changed(self, lang: str) -> None:
        """The app switched the language (palette's Language, F2): redraw what shows it."""
        for heading in self.query(".step-heading"):
            if isinstance(heading, Static):
                heading.update(self.heading_text())

    # ------------------------------------------------------------------------------- fields
    @property
    def values(self) -> Any:
        return self.wizard.values

    def field(self, section: str, key: str, **kw: Any) -> SettingField:
        """A :class:`SettingField` pre-filled from the app's values."""
        return SettingField(section, key, self.values[section][key], **kw)

    def fields(self) -> List[SettingField]:
        return list(self.query(SettingField))

    def get_field(self, section: str, key: str) -> SettingField:
        return self.query_one("#field-%s-%s" % (section, key), SettingField)

    def commit(self, strict: bool = True) -> bool:
        """Validate every field and store the valid values; False (and focus the first bad field)
        when ``strict`` and something is invalid or :meth:`extra_check` refuses."""
        bad: List[SettingField] = []
        for f in self.fields():
            err, value = f.check()
            if err:
                bad.append(f)
            else:
                self.values[f.section][f.key] = value
        if not strict:
            return True
        if bad:
            bad[0].control.focus()
            self.set_status("Fix %d value(s) marked in red (%s)." % (len(bad), ", ".join("%s.%s" % (f.section, f.key) for f in bad)))
            return False
        problem = self.extra_check()
        if problem:
            self.set_status(problem)
            return False
        self.set_status("")
        return True

    def on_setting_field_changed(self, event: SettingField.Changed) -> None:
        # Clear "fix the values marked in red" once none is left.
        if not any(f.field_error_text for f in self.fields()):
            status = self.query_one("#nav-status", Static)
            if "marked in red" in str(getattr(status.content, "plain", status.content)):
                self.set_status("")

    def extra_check(self) -> Optional[str]:
        """Step-specific check before going on: a message to show (and stay), or None."""
        return None

    def set_status(self, text: str) -> None:
        self.query_one("#nav-status", Static).update(Text(text, style="bold red") if text else "")

    # ------------------------------------------------------------------------------ actions
    def action_next(self) -> None:
        if self.commit():
            self.post_message(M.GoNext(self.STEP))

    def action_back(self) -> None:
        self.commit(strict=False)
        self.post_message(M.GoBack(self.STEP))

    def show_error(self, err: Any) -> None:
        """Ask the app for the error modal (``err``: a :class:`core.errors.QatError`)."""
        self.post_message(M.ShowError.of(err))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "nav-next":
            event.stop()
            self.action_next()
        elif event.button.id == "nav-back":
            event.stop()
            self.action_back()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter in a text box moves on to the next input, like Tab.
        event.stop()
        self.focus_next()
