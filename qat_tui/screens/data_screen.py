"""Step 1: preset, data folder (checked with ``detect_layout`` as you type), subset sizes, run folder."""
from __future__ import annotations

import os
from typing import Any, Iterable, Optional

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label, Select, Static

from core.errors import QatError
from core.i18n import N_, _
from core.settings import PRESET_HELP, PRESETS

from .. import messages as M
from ..widgets.fields import SettingField, help_content
from .base import WizardStep


def data_status(root: str, layout: str, download: bool) -> "tuple[bool, Text]":
    """``(ok, message)`` for the data folder: what was found, or the DataError message and hint."""
    from core.data import detect_layout

    try:
        found = detect_layout(root, layout)
    except QatError as e:
        t = Text()
        if download:
            t.append(_("download is on: CIFAR-10 will be fetched with torchvision when the run starts.") + "\n", style="bold yellow")
        t.append(e.msg + "\n", style="red")
        if e.hint:
            t.append("-> " + e.hint, style="yellow")
        return False, t
    t = Text(_("found {layout} data in {root}").format(layout=found.layout, root=found.root), style="green")
    if found.test_dir:
        t.append(_(" (test split: {dir}/)").format(dir=found.test_dir), style="green")
    return True, t


def run_dir_status(run_dir: str) -> Text:
    """What is already in the run folder (a previous run's finished stages are skipped when unchanged)."""
    from core.state import RunState

    path = os.path.abspath(os.path.expanduser(run_dir))
    if not os.path.exists(path):
        return Text(_("new run folder {path} (made when the run starts)").format(path=path), style="dim")
    if not os.path.isdir(path):
        return Text(_("{path} exists and is not a folder").format(path=path), style="red")
    try:
        state = RunState.load(path)
    except QatError as e:
        return Text("%s\n-> %s" % (e.msg, e.hint or ""), style="red")
    stages = state.data.get("stages", {})
    if not stages:
        return Text(_("folder {path} exists; no previous run in it").format(path=path), style="dim")
    parts = ["%s %s" % (s, rec.get("status", "?")) for s, rec in stages.items()]
    return Text(
        _("previous run in {path}: {stages}. Stages finished with the same settings are skipped (see Review).").format(
            path=path, stages=", ".join(parts)),
        style="cyan",
    )


def runs_in_progress_text(runs: "list[Any]") -> Text:
    """The first screen's line about runs going on (``core.runs.RunInfo`` with ``running``)."""
    t = Text()
    if not runs:
        return t
    t.append(_("Runs in progress (ctrl+o follows the first):") + "\n", style="bold yellow")
    for r in runs:
        running = [name for name, st in r.stages.items() if st.get("status") == "running"]
        t.append("  %s  pid %s%s\n" % (r.run_dir, r.pid, _(", stage {stage}").format(stage=running[0]) if running else ""))
    return t


class DataScreen(WizardStep):
    """Preset, data set location and loading, run folder; runs in progress, with ctrl+o to follow one."""

    BINDINGS = [Binding("ctrl+o", "attach_running", N_("Attach run"), show=False, id="data.attach")]

    running_runs: "list[Any]" = []

    def compose_form(self) -> Iterable[Widget]:
        app = self.wizard
        yield Static("", id="runs-in-progress")
        options = [(name, name) for name in PRESETS]
        if app.preset_name not in PRESETS:
            options.append((_("custom (your settings)"), "custom"))
        with Vertical(classes="field", id="field-preset"):
            with Horizontal(classes="field-row"):
                yield Label("preset", classes="field-label")
                yield Select(options, value=app.preset_name, allow_blank=False, id="preset", compact=True)
            yield Static(help_content(self.preset_help(app.preset_name), "preset"), classes="field-help", id="preset-help")
        yield self.field("data", "root")
        yield self.field("data", "layout")
        yield self.field("data", "download")
        yield Static("", id="data-status")
        yield self.field("data", "train_images")
        yield self.field("data", "eval_images")
        yield self.field("data", "batch_size")
        yield self.field("run", "run_dir")
        yield Static("", id="run-status")

    def on_mount(self) -> None:
        self.query_one("#runs-in-progress", Static).display = False
        self.run_worker(self._find_running_runs, thread=True, group="runs", exclusive=True)
        self.after_recompose()
        self.get_field("data", "root").control.focus()

    def after_recompose(self) -> None:
        self.refresh_data_status()
        self.refresh_run_status()
        if self.running_runs:
            self._show_running_runs(self.running_runs)

    # ------------------------------------------------------------------------------ runs going on
    def _find_running_runs(self) -> None:
        from core.runs import list_runs

        try:
            runs = [r for r in list_runs() if r.running]
        except Exception:  # a damaged registry must not stop the wizard
            runs = []
        self.app.call_from_thread(self._show_running_runs, runs)

    def _show_running_runs(self, runs: "list[Any]") -> None:
        self.running_runs = runs
        if not self.is_attached:
            return
        box = self.query_one("#runs-in-progress", Static)
        box.update(runs_in_progress_text(runs))
        box.display = bool(runs)

    def action_attach_running(self) -> None:
        if not self.running_runs:
            self.notify(_("no run is in progress (qat-tui status lists the others)"), severity="warning")
            return
        self.post_message(M.AttachRun(self.running_runs[0].run_dir))

    # --------------------------------------------------------------------------------- checks
    def _data_inputs(self) -> "tuple[str, str, bool]":
        return (
            self.get_field("data", "root").raw() or "",
            self.get_field("data", "layout").raw(),
            bool(self.get_field("data", "download").raw()),
        )

    def refresh_data_status(self) -> bool:
        ok, text = data_status(*self._data_inputs())
        self.query_one("#data-status", Static).update(text)
        self.data_ok = ok
        return ok

    def refresh_run_status(self) -> None:
        self.query_one("#run-status", Static).update(run_dir_status(self.get_field("run", "run_dir").raw() or "."))

    def on_setting_field_changed(self, event: SettingField.Changed) -> None:
        f = event.field
        if f.section == "data" and f.key in ("root", "layout", "download"):
            self.refresh_data_status()
        elif f.section == "run" and f.key == "run_dir":
            self.refresh_run_status()

    def extra_check(self) -> Optional[str]:
        root, layout, download = self._data_inputs()
        if not self.refresh_data_status() and not download:
            self.get_field("data", "root").control.focus()
            return _("No data in {root}: fix the folder, or turn on download.").format(root=root or _("(empty)"))
        return None

    # --------------------------------------------------------------------------------- preset
    @staticmethod
    def preset_help(name: str) -> str:
        if name in PRESET_HELP:
            return "%s (%s: %s)" % (
                _(PRESET_HELP[name]),
                ", ".join(n for n in PRESETS if n != name),
                "; ".join(_(PRESET_HELP[n]) for n in PRESETS if n != name),
            )
        return _("Your settings file's values. Choosing a preset resets the other steps' values to it.")

    @on(Select.Changed, "#preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        app = self.wizard
        name = event.value
        if name not in PRESETS or name == app.preset_name:
            return
        keep = {}
        for section, key in (("data", "root"), ("data", "layout"), ("data", "download"), ("run", "run_dir")):
            err, value = self.get_field(section, key).check()
            if not err:
                keep.setdefault(section, {})[key] = value
        app.apply_preset(name, keep)
        self.query_one("#preset-help", Static).update(help_content(self.preset_help(name), "preset"))
        for f in self.fields():
            f.set_value(app.values[f.section][f.key])
        self.notify(_("Preset {name}: {help}").format(name=name, help=_(PRESET_HELP.get(name, ""))), timeout=4)
