"""Step 6: the plan (which stages run, which are skipped as done and why) and the settings TOML."""
from __future__ import annotations

import os
from typing import Any, Iterable, List, Optional

from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Static, TextArea

from core.errors import QatError
from core.settings import SETTINGS_FILENAME, Settings, dumps, save

from .base import WizardStep

ACTION_STYLE = {"run": "bold green", "skip": "cyan", "off": "dim"}


class ReviewScreen(WizardStep):
    """Shows what will run and the settings file; ``ctrl+r`` (or Next) starts the run."""

    STEP = 5
    HEADING = "Step 6 of 6 - Review"
    NEXT_LABEL = "Run >"

    BINDINGS = [
        Binding("ctrl+r", "run", "Run"),
        Binding("r", "run", "Run", show=False),
        Binding("d", "run_detached", "Run detached"),
        Binding("s", "save", "Save"),
    ]

    settings: Optional[Settings] = None
    plan_items: List[Any] = []
    toml_text: str = ""

    def compose_form(self) -> Iterable[Widget]:
        yield Static("", id="plan")
        yield Static("", id="toml-caption", classes="step-note")
        yield TextArea("", id="toml", read_only=True, show_line_numbers=False)

    def on_mount(self) -> None:
        self.refresh_review()
        self.query_one("#nav-next").focus()

    def refresh_review(self) -> None:
        from core.pipeline import Pipeline

        app: Any = self.app
        plan = self.query_one("#plan", Static)
        try:
            self.settings = app.current_settings()
        except QatError as e:
            self.settings = None
            plan.update(Text("%s\n-> %s" % (e.msg, e.hint or ""), style="red"))
            return
        s = self.settings
        self.toml_text = dumps(s)
        self.query_one("#toml", TextArea).load_text(self.toml_text)
        path = os.path.join(s.run_path(), SETTINGS_FILENAME)
        self.query_one("#toml-caption", Static).update(
            "Settings the run writes to %s (headless rerun: qat-tui run --config %s):" % (path, path)
        )
        t = Text()
        t.append("Plan for %s (device %s):\n" % (s.run_path(), s.run.device), style="bold")
        try:
            self.plan_items = Pipeline(s).plan()
        except QatError as e:
            self.plan_items = []
            t.append("%s\n-> %s" % (e.msg, e.hint or ""), style="red")
            plan.update(t)
            return
        for item in self.plan_items:
            t.append("  %-4s " % item.action, style=ACTION_STYLE.get(item.action, ""))
            t.append("%-10s" % item.stage, style="bold" if item.action == "run" else "")
            t.append(" %s\n" % item.reason, style="" if item.action == "run" else "dim")
        if not any(i.action == "run" for i in self.plan_items):
            t.append("Nothing to run: every enabled stage is done with these settings (Run shows the results).\n", style="yellow")
        t.rstrip()
        plan.update(t)

    def preflight(self) -> Optional[QatError]:
        """What the pipeline would refuse before training anything (inputs that cannot exist)."""
        from .stages_screen import stage_flow

        if self.settings is None:
            return None
        if not self.settings.enabled_stages():
            return QatError("no stage is enabled", hint="turn on at least one stage (Stages step)", title="Stages")
        for _stage, _line, err in stage_flow(self.settings):
            if err is not None:
                return err
        return None

    def action_next(self) -> None:
        self.action_run()

    def _ready(self) -> bool:
        """Refresh, then refuse (error modal) what cannot run: bad settings, impossible inputs, a run
        directory another process is writing."""
        from core.errors import RunLockedError
        from core.runs import is_running, lock_holder

        app: Any = self.app
        self.refresh_review()
        if self.settings is None:
            try:
                app.current_settings()
            except QatError as e:
                app.show_qat_error(e)
            return False
        err = self.preflight()
        if err is None and is_running(self.settings.run_path()):
            d = self.settings.run_path()
            err = RunLockedError(
                "%s is being written by another run (pid %s)" % (d, (lock_holder(d) or {}).get("pid", "?")),
                hint="follow it with qat-tui attach %s, or choose another run folder (Data step)" % d,
            )
        if err is not None:
            app.show_qat_error(err)
            return False
        return True

    def action_run(self) -> None:
        from .run_screen import RunScreen

        if self._ready():
            self.app.push_screen(RunScreen(self.settings))  # type: ignore[arg-type]

    def action_run_detached(self) -> None:
        """Run in a background process (survives closing the wizard or the SSH session) and follow it."""
        from core.worker import start_detached

        from .run_screen import RunScreen

        if not self._ready() or self.settings is None:
            return
        app: Any = self.app
        run_dir = self.settings.run_path()
        try:
            save(self.settings, os.path.join(run_dir, SETTINGS_FILENAME))
            pid, offset = start_detached(run_dir)
        except OSError as e:
            app.show_error("Run directory", "cannot start the run in %s: %s" % (run_dir, e), "choose another run folder (Data step)")
            return
        self.notify("Started worker pid %d; quitting leaves it running (qat-tui attach %s)." % (pid, run_dir), timeout=6)
        app.push_screen(RunScreen(self.settings, attach=run_dir, offset=offset))

    def action_save(self) -> None:
        app: Any = self.app
        if self.settings is None:
            return
        path = os.path.join(self.settings.run_path(), SETTINGS_FILENAME)
        try:
            save(self.settings, path)
        except OSError as e:
            app.show_error("Settings", "cannot write %s: %s" % (path, e), "choose another run folder (Data step)")
            return
        self.notify("Wrote %s. Run it headless: qat-tui run --config %s" % (path, path), timeout=8)

    def on_screen_resume(self) -> None:
        # Back from a run: the plan has changed (finished stages are now skipped).
        self.refresh_review()
