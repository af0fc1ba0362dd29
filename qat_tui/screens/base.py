"""The frame shared by the wizard steps: breadcrumb, a scrolling form, Back/Next, footer; and the help
key every screen with a help page shares (:class:`HelpfulScreen`).

A step lists its :class:`~qat_tui.widgets.SettingField` widgets in :meth:`WizardStep.compose_form`;
leaving forward validates every field (inline errors, focus on the first bad one) and stores the values
in the shared :class:`~qat_tui.state.WizardState`; leaving backward stores the valid ones only. A step's
number, heading and breadcrumb come from :data:`qat_tui.state.STEPS`; it asks the app for the next step
(or an error modal) with a message, never by calling it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterable, List, Optional

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Static

from core.i18n import N_, _

from .. import messages as M
from ..state import STEP_NAMES, STEPS, WizardState, step_heading, step_index
from ..widgets.fields import SettingField


def help_hint() -> str:
    """After each step's heading: the key of its help page, in the wizard's language."""
    return _("? or F1: help")


class TranslatedBindings:
    """A screen mixin: the descriptions of its bindings (and of the app's), marked with ``N_`` where
    they are declared (class attributes), are shown translated: the Footer, the palette's Keys panel
    and :meth:`~qat_tui.app.QatApp.keys_of` read :attr:`active_bindings`, which gives copies of the
    bindings with ``description`` and ``tooltip`` in the current language. After a language switch
    ``app.refresh_bindings()`` redraws the footer."""

    @property
    def active_bindings(self) -> Dict[str, Any]:
        found = super().active_bindings  # type: ignore[misc]
        out = {}
        for key, active in found.items():
            b = active.binding
            if b.description or b.tooltip:
                b = dataclasses.replace(b, description=_(b.description), tooltip=_(b.tooltip) if b.tooltip else b.tooltip)
            out[key] = active._replace(binding=b, tooltip=_(active.tooltip) if active.tooltip else active.tooltip)
        return out


def breadcrumb(current: int, names: Optional[List[str]] = None) -> Text:
    """``qat-tui | 1 Data > 2 Backend > ...`` with the current step highlighted (-1: none, e.g. Run)."""
    names = [_(n) for n in (names or STEP_NAMES)]
    t = Text(" qat-tui ", style="bold")
    t.append("| ", style="dim")
    if 11 + sum(cell_len(n) + 5 for n in names) > 78:  # seven steps do not fit 80 columns after the name
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


class HelpfulScreen(TranslatedBindings, Screen):
    """A screen with a help page: ``?`` and F1 open it (:class:`~.help_screen.HelpScreen`) in the
    wizard's language (``app.wizard.lang``). The keys are bound here once, as priority bindings, so
    they work while a text box has the focus (no setting takes a ``?``).

    A subclass names its page in ``HELP_PAGE`` (``qat_tui/help/<lang>/<HELP_PAGE>.md``) or overrides
    :meth:`help_page`; wizard steps use their step id.
    """

    HELP_PAGE = ""

    BINDINGS = [  # not in the footer: at 80 columns it has no room left (the step heading says it)
        Binding("f1", "help", N_("Help"), show=False, priority=True, id="help.open"),
        Binding("question_mark", "help", N_("Help"), key_display="?", show=False, priority=True, id="help.open"),
    ]

    def help_page(self) -> str:
        """The name of this screen's help page."""
        return self.HELP_PAGE

    def action_help(self, topic: str = "") -> None:
        """Open this screen's help page; with ``topic`` (a setting's key, from a field's "more" link)
        scrolled to the section that explains it."""
        from .help_screen import HelpScreen

        wizard = getattr(self.app, "wizard", None)
        self.app.push_screen(HelpScreen(self.help_page(), getattr(wizard, "lang", "en"), topic=topic))


class WizardStep(HelpfulScreen):
    """Base class of a wizard step; its place in :data:`qat_tui.state.STEPS` gives ``STEP`` (0-based)
    and ``HEADING``; its help page is named by its step id."""

    INTRO = ""
    """The step's introduction (English, marked with ``N_``; shown translated)."""
    NEXT_LABEL = N_("Next >")

    BINDINGS = [
        Binding("ctrl+n", "next", N_("Next"), id="wizard.next"),
        Binding("escape", "back", N_("Back"), id="wizard.back"),
        Binding("n", "next", N_("Next"), show=False, id="wizard.next"),
        Binding("ctrl+b", "back", N_("Back"), show=False, id="wizard.back"),
        Binding("b", "back", N_("Back"), show=False, id="wizard.back"),
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
                yield Static(_(self.INTRO), classes="step-intro")
            yield from self.compose_form()
        with Horizontal(id="nav"):
            yield Button(_("< Back"), id="nav-back", compact=True)
            yield Static("", id="nav-status")
            yield Button(_(self.NEXT_LABEL), id="nav-next", compact=True, variant="primary")
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
        return Text.assemble((self.HEADING, "bold"), ("   " + help_hint(), "dim"))

    async def lang_changed(self, lang: str) -> None:
        """The app switched the language (palette's Language, F2): the whole step is composed again in
        the new language. The values live in the shared :class:`WizardState` (the valid ones are stored
        first) and what is typed in each box, valid or not, is put back, with the focus and the scroll."""
        typed = {f.control_id: f.control.value for f in self.fields() if f.is_mounted}
        focused = self.focused.id if self.focused is not None else None
        form = self.query("#form")
        scroll_y = form.first().scroll_y if form else 0
        self.commit(strict=False)
        await self.recompose()
        for f in self.fields():
            if f.control_id in typed:
                try:
                    f.restore(typed[f.control_id])
                except Exception:  # a select whose options changed: it keeps the stored value
                    pass
        self.after_recompose()
        if focused:
            found = self.query("#" + focused)
            if found:
                found.first().focus()
        self.query_one("#form").scroll_to(y=scroll_y, animate=False, immediate=True)

    def after_recompose(self) -> None:
        """Refill what the step computes after mounting (status lines, reports) once it was composed
        again (a language switch); the steps that have such lines override it."""

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
            self.set_status(_("Fix {n} value(s) marked in red ({keys}).").format(
                n=len(bad), keys=", ".join("%s.%s" % (f.section, f.key) for f in bad)), fix_values=True)
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
            if getattr(status, "fix_values", False):
                self.set_status("")

    def extra_check(self) -> Optional[str]:
        """Step-specific check before going on: a message to show (and stay), or None."""
        return None

    def set_status(self, text: str, fix_values: bool = False) -> None:
        """The line between Back and Next (red); ``fix_values``: it asks to fix fields marked in red
        (cleared once none is left)."""
        status = self.query_one("#nav-status", Static)
        status.update(Text(text, style="bold red") if text else "")
        status.fix_values = fix_values  # type: ignore[attr-defined]

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
