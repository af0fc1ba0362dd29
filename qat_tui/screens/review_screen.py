"""Step 6: the plan (which stages run, which are skipped as done and why) and the settings TOML."""
from __future__ import annotations

import os
from typing import Any, Iterable, List, Optional

from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Static, TextArea

from core.errors import QatError
from core.i18n import N_, _
from core.settings import SETTINGS_FILENAME, Settings, dumps, save

from .. import messages as M
from .base import WizardStep

ACTION_STYLE = {"run": "bold green", "skip": "cyan", "off": "dim"}



def wrap_comments(toml: str, width: int) -> str:
    """``toml`` with every ``# comment`` line longer than ``width`` wrapped onto more ``#`` lines."""
    import textwrap

    lines = []
    for line in toml.splitlines():
        body = line.lstrip()
        if body.startswith("#") and len(line) > width:
            prefix = line[: len(line) - len(body)] + "# "
            lines += textwrap.wrap(body[1:].strip(), width=width, initial_indent=prefix, subsequent_indent=prefix)
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


class TomlView(TextArea):
    """The settings file, read-only, its comments wrapped at the view's width (the file keeps its lines;
    a long value wraps softly)."""

    settings: Optional[Settings] = None

    def show(self, settings: Settings) -> None:
        self.settings = settings
        self._wrap()

    def on_resize(self) -> None:
        self._wrap()

    def _wrap(self) -> None:
        if self.settings is None:
            return
        width = self.wrap_width  # 0 until laid out
        # the fields' help flows at the width; the few other comments (a backend's summary) are cut into lines
        text = wrap_comments(dumps(self.settings, width - 2), width) if width > 2 else dumps(self.settings)
        if text != self.text:
            self.load_text(text)


class ReviewScreen(WizardStep):
    """Shows what will run and the settings file; ``ctrl+r`` (or Next) starts the run, ``x`` exports the
    settings as a standalone script."""

    NEXT_LABEL = N_("Run >")

    BINDINGS = [
        Binding("ctrl+r", "run", N_("Run"), id="review.run"),
        Binding("r", "run", N_("Run"), show=False, id="review.run"),
        Binding("s", "save", N_("Save"), id="review.save"),
        Binding("x", "export", N_("Export script"), id="review.export"),
    ]

    settings: Optional[Settings] = None
    plan_items: List[Any] = []
    toml_text: str = ""

    def compose_form(self) -> Iterable[Widget]:
        yield Static("", id="plan")
        yield Static("", id="toml-caption", classes="step-note")
        yield TomlView("", id="toml", read_only=True, show_line_numbers=False, soft_wrap=True)

    def on_mount(self) -> None:
        self.refresh_review()
        self.query_one("#nav-next").focus()

    def after_recompose(self) -> None:
        self.refresh_review()

    def refresh_review(self) -> None:
        from core.pipeline import Pipeline

        plan = self.query_one("#plan", Static)
        try:
            self.settings = self.wizard.current_settings()
        except QatError as e:
            self.settings = None
            plan.update(Text("%s\n-> %s" % (e.msg, e.hint or ""), style="red"))
            return
        s = self.settings
        self.toml_text = dumps(s)
        self.query_one("#toml", TomlView).show(s)
        path = os.path.join(s.run_path(), SETTINGS_FILENAME)
        self.query_one("#toml-caption", Static).update(
            Text(_("Settings the run writes to {path} (headless rerun: qat-tui run --config {path}):").format(path=path))
        )
        t = Text()
        t.append(_("Plan for {run_dir} (device {device}):").format(run_dir=s.run_path(), device=s.run.device) + "\n", style="bold")
        try:
            self.plan_items = Pipeline(s).plan()
        except QatError as e:
            self.plan_items = []
            t.append("%s\n-> %s" % (e.msg, e.hint or ""), style="red")
            plan.update(t)
            return
        for item in self.plan_items:
            # run / skip / off stay as they are: the help page (and the headless plan) name them so
            t.append("  %-4s " % item.action, style=ACTION_STYLE.get(item.action, ""))
            t.append("%-10s" % item.stage, style="bold" if item.action == "run" else "")
            t.append(" %s\n" % _(item.reason), style="" if item.action == "run" else "dim")
        if not any(i.action == "run" for i in self.plan_items):
            t.append(_("Nothing to run: every enabled stage is done with these settings (Run shows the results).") + "\n",
                     style="yellow")
        t.rstrip()
        plan.update(t)

    def preflight(self) -> Optional[QatError]:
        """What the pipeline would refuse before training anything (inputs that cannot exist)."""
        from .stages_screen import stage_flow

        if self.settings is None:
            return None
        if not self.settings.enabled_stages():
            return QatError(_("no stage is enabled"), hint=_("turn on at least one stage (Stages step)"), title=_("Stages"))
        for _stage, _line, err in stage_flow(self.settings):
            if err is not None:
                return err
        return None

    def action_next(self) -> None:
        self.action_run()

    def _ready(self) -> bool:
        """Refresh, then refuse (error modal) what cannot run: bad settings or impossible inputs (a run
        directory another process is writing is refused when the app starts the run)."""
        self.refresh_review()
        if self.settings is None:
            try:
                self.wizard.current_settings()
            except QatError as e:
                self.show_error(e)
            return False
        err = self.preflight()
        if err is not None:
            self.show_error(err)
            return False
        return True

    def action_run(self) -> None:
        """Start the run in its own process (survives closing the wizard or the SSH session) and follow it."""
        if self._ready() and self.settings is not None:
            self.post_message(M.StartRun(self.settings))

    def action_export(self) -> None:
        """Write the settings as a standalone script (and its TOML) into the run directory."""
        from core.export import export_script

        self.refresh_review()
        if self.settings is None:
            return
        target = os.path.join(self.settings.run_path(), "qat_%s.py" % self.settings.run.backend)
        try:
            script, toml = export_script(self.settings, target)
        except QatError as e:
            self.show_error(e)
            return
        except OSError as e:
            self.show_error(QatError(_("cannot write {path}: {error}").format(path=target, error=e),
                                     hint=_("choose another run folder (Data step)"), title=_("Export")))
            return
        self.wizard.mark_saved(self.settings)  # the TOML beside the script holds them
        self.notify(_("Wrote {script} (and {toml}). Run it: python {script} --stage float").format(
            script=script, toml=os.path.basename(toml)), timeout=10)

    def action_save(self) -> None:
        if self.settings is None:
            return
        path = os.path.join(self.settings.run_path(), SETTINGS_FILENAME)
        try:
            save(self.settings, path)
        except (OSError, QatError) as e:
            self.show_error(QatError(_("cannot write {path}: {error}").format(path=path, error=getattr(e, "msg", e)),
                                     hint=_("choose another run folder (Data step)"), title=_("Settings")))
            return
        self.wizard.mark_saved(self.settings)
        self.notify(_("Wrote {path}. Run it headless: qat-tui run --config {path}").format(path=path), timeout=8)

    def on_screen_resume(self) -> None:
        # Back from a run: the plan has changed (finished stages are now skipped).
        self.refresh_review()
