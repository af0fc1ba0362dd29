"""The run: the pipeline runs in its own process (``core.worker``, a new session that survives the
terminal and the wizard); this screen follows the run's ``events.jsonl`` and shows each event as it
arrives, so the UI keeps answering keys while an epoch runs and can be closed and re-attached
(``qat-tui attach``) at any time. ``c`` asks first, then asks the worker to stop (SIGTERM): the running
stage stops at its next batch and is recorded as cancelled in ``state.json``.

Attached (``attach=RUN_DIR``): the pipeline runs in another process (``qat-tui run --detach``, the
review screen's ``d``); the screen follows ``<run_dir>/events.jsonl`` with
:class:`core.worker.EventFollower` on a timer, ``c`` asks that process to stop (SIGTERM), and quitting
the wizard leaves the run going.

Layout (80x24): stage line, current progress line and bar, an error panel (only after a failure), and
three tabs: the per-epoch table, the top-1 chart, the log.

The log shows the lines that matter, each with a short note in the wizard's language (the notes are one
table, :mod:`qat_tui.log_notes`); ``l`` opens the raw log (``events.jsonl``, the worker's and the
toolchain's logs, as written). Everything shown is drawn again in the new language on F2.
"""
from __future__ import annotations

import os
import time
import traceback
from typing import Any, Callable, List, Optional, Tuple, Union

from rich.padding import Padding
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, ProgressBar, RichLog, Static, TabbedContent, TabPane

from core.events import (
    ArtifactWritten,
    BatchProgress,
    CheckAdvice,
    EpochEnd,
    Event,
    Heartbeat,
    LogLine,
    PhaseFinished,
    PhaseStarted,
    RunFinished,
    RunStarted,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from core.i18n import N_, _
from core.record import RunRecord
from core.settings import STAGES, Settings

from .. import log_notes
from .. import messages as M
from .base import HelpfulScreen, breadcrumb

STATUS_MARK = {
    "pending": (".", "dim"),
    "running": (">", "bold yellow"),
    "finished": ("\u2713", "bold green"),  # check mark (narrow in CJK terminals too)
    "skipped": ("=", "cyan"),
    "stale": ("~", "yellow"),
    "off": ("-", "dim"),
    "failed": ("x", "bold red"),
    "cancelled": ("x", "bold magenta"),
    "interrupted": ("!", "bold magenta"),
}
"""Mark and style of each stage status on the stage line (= : done earlier and still valid, ~ : done
earlier, but its inputs or settings changed since)."""


def _fmt(v: Optional[float], spec: str = "%.2f") -> str:
    return "-" if v is None else spec % v


EPOCH_COLUMNS: Tuple[Tuple[str, str], ...] = (
    (N_("stage"), "stage"), (N_("epoch"), "epoch"), (N_("loss"), "loss"), ("top-1 %", "top1"), ("top-5 %", "top5"),
    ("lr", "lr"), (N_("best"), "best"), (N_("time s"), "time"),
)
"""The per-epoch table's columns: (label, marked for translation where it is a word; key)."""

TABS: Tuple[Tuple[str, str], ...] = (("epochs", N_("Epochs")), ("chart", N_("Chart")), ("log", N_("Log")))
"""The tabs: (pane id, label); shown as ``1 Epochs`` etc., the key that opens each."""

NOTE_STYLE = "italic cyan"
NOTE_INDENT = "    "

Shown = Union[str, Callable[[], str]]
"""What a log line or the current line shows: a text, or a function that gives it in the current language."""


class RunScreen(HelpfulScreen):
    """Runs the pipeline for ``settings`` and shows its progress."""

    HELP_PAGE = "run"

    BINDINGS = [
        Binding("c", "cancel", N_("Cancel"), id="run.cancel"),
        Binding("1", "tab('epochs')", N_("Epochs"), show=False, id="run.tab_epochs"),
        Binding("2", "tab('chart')", N_("Chart"), show=False, id="run.tab_chart"),
        Binding("3", "tab('log')", N_("Log"), show=False, id="run.tab_log"),
        Binding("l", "raw_log", N_("Raw log"), id="run.raw_log"),
        Binding("r", "results", N_("Results"), id="run.results"),
        Binding("ctrl+n", "results", N_("Results"), show=False, id="run.results"),
        Binding("escape", "back", N_("Back"), id="run.back"),
    ]

    ATTACH_GRACE_S = 15.0
    """Seconds an attached run may show neither a lock holder nor events (a worker starting up)."""

    MAX_LOG_LINES = 5000
    """Log lines (with their notes) kept on screen; the raw log (``l``) has them all."""

    def __init__(
        self,
        settings: Settings,
        *,
        auto_results: bool = True,
        attach: Optional[str] = None,
        offset: Optional[int] = None,
        started_here: bool = False,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.attach_dir = os.path.abspath(attach or settings.run_path())
        self.started_here = started_here  # this wizard started the worker (quitting asks what to do)
        self._follow_offset = offset
        self._follower: Any = None
        self._poll_timer: Any = None
        self._last_event_at = 0.0
        # every stage's latest result from the run's state, then this run's events on top
        self.record = RunRecord.from_state(self.attach_dir)
        self.cancel_requested = False
        self.running = False
        self.auto_results = auto_results
        self.ui_errors: List[str] = []
        self._chart_points: List[Tuple[str, float]] = []
        self._started_at = 0.0
        self._current_stage = ""
        self.last_progress: Optional[BatchProgress] = None
        # what the log shows, drawn again in the new language on F2: (text or function, level)
        self._log: List[Tuple[Shown, str]] = []
        self._current: Union[Text, Callable[[], Text]] = Text("")
        self._epoch_rows: List[Tuple[Any, ...]] = []
        self._skip_noted = False
        self._failed: Optional[StageFailed] = None  # the error panel's, drawn again on F2

    # ------------------------------------------------------------------------------- layout
    def _breadcrumb(self) -> Text:
        crumb = breadcrumb(-1, [_("Settings")])
        crumb.append(" > ", style="dim")
        crumb.append(" %s " % _("Run"), style="bold reverse")
        crumb.append(" > %s" % _("Results"), style="dim")
        crumb.append("   %s%s" % (self.record.run_dir, "" if self.started_here else " " + _("(attached)")), style="dim")
        return crumb

    def compose(self) -> ComposeResult:
        yield Static(self._breadcrumb(), id="breadcrumb")
        yield Static("", id="stages-line")
        yield Static(_("starting: loading torch and the backend..."), id="current")
        yield ProgressBar(total=None, show_eta=False, id="progress")
        panel = Static("", id="error-panel")
        panel.display = False
        yield panel
        with TabbedContent(initial="epochs", id="run-tabs"):
            for i, (pane, label) in enumerate(TABS):
                with TabPane("%d %s" % (i + 1, _(label)), id=pane):
                    if pane == "epochs":
                        yield DataTable(id="epoch-table", zebra_stripes=True, cursor_type="row")
                    elif pane == "chart":
                        yield self._make_chart()
                    else:
                        yield RichLog(id="log-view", wrap=True, markup=False, highlight=False, max_lines=self.MAX_LOG_LINES)
        yield Footer()

    def _make_chart(self) -> Any:
        try:
            from textual_plotext import PlotextPlot

            return PlotextPlot(id="chart-plot")
        except Exception:  # plotext missing or broken: a sparkline still shows the trend
            from textual.widgets import Sparkline

            return Sparkline([], id="chart-plot")

    def on_mount(self) -> None:
        self.post_message(M.RunScreenShown(self))
        self._fill_epoch_table()
        self.refresh_stages_line()
        self._setup_chart()
        self.start()

    def lang_changed(self, lang: str) -> None:
        """The app switched the language (F2, the palette): draw everything shown again in it."""
        self.query_one("#breadcrumb", Static).update(self._breadcrumb())
        tabs = self.query_one("#run-tabs", TabbedContent)
        for i, (pane, label) in enumerate(TABS):
            tabs.get_tab(pane).label = "%d %s" % (i + 1, _(label))
        self._fill_epoch_table()
        self._setup_chart()
        self._draw_chart()
        self._redraw_log()
        self._show_current()
        if self._failed is not None:
            self._show_error_panel(self._failed)
        self.refresh_stages_line()
        self.refresh_bindings()

    def start(self) -> None:
        from core.worker import EventFollower

        self.running = True
        self._started_at = time.time()
        offset = self._follow_offset
        if offset is None:
            offset = EventFollower.last_run_offset(self.attach_dir)
        self._follower = EventFollower(self.attach_dir, offset)
        run_dir = self.attach_dir
        if self.started_here:
            self.log_line(lambda: _("the run goes on in its own process; q asks whether to leave it running "
                                    "(qat-tui attach {run_dir} comes back to it)").format(run_dir=run_dir))
        else:
            events = os.path.join(run_dir, "events.jsonl")
            self.log_line(lambda: _("following {events} (the run goes on when you quit; qat-tui attach {run_dir} "
                                    "comes back to it)").format(events=events, run_dir=run_dir))
        self.log_note(lambda: _("l: the raw log (events.jsonl and the worker's and toolchain's output, complete)"))
        self.set_current(lambda: Text(_("waiting for the run's first events (the worker is loading torch)...")))
        self._poll_timer = self.set_interval(0.3, self._poll_events)
        self._poll_events()
        self.refresh_bindings()

    # ------------------------------------------------------------------------ attached runs
    def _poll_events(self) -> None:
        if self._follower is None or not self.running:
            return
        events = self._follower.poll()
        for e in events:
            self.handle_event(e)
            if not self.running:  # RunFinished
                break
        now = time.time()
        if events:
            self._last_event_at = now
        if not self.running:
            self._stop_polling()
            return
        if events or now - self._started_at < self.ATTACH_GRACE_S:
            return
        from core.runs import is_running

        if not is_running(self.attach_dir or ""):
            rest = self._follower.poll()  # the last lines it wrote before exiting
            for e in rest:
                self.handle_event(e)
            if self.running:
                self._lost_worker()

    def _stop_polling(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None

    def _lost_worker(self) -> None:
        """The followed run's process is gone and its log ends without RunFinished."""
        self.running = False
        self._stop_polling()
        self.refresh_bindings()
        self.refresh_stages_line()
        run_dir = self.attach_dir

        def lost() -> str:
            return _("no process is running {run_dir} and its log stops here (stopped or killed) - qat-tui resume "
                     "{run_dir} continues it").format(run_dir=run_dir)

        self.set_current(lambda: Text(lost(), style="bold yellow"))
        self.log_line(lost, "warning")

    # ------------------------------------------------------------------------------- events
    def handle_event(self, e: Event) -> None:
        try:
            self.record.apply(e)
            handler = getattr(self, "_on_" + type(e).__name__, None)
            if handler is not None:
                handler(e)
        except Exception:  # never let a display problem break the run
            tb = traceback.format_exc()
            self.ui_errors.append(tb)
            self.log_line(_("display error: ") + tb, "error")

    def _note(self, e: Event) -> None:
        """The note of ``e``'s line (:mod:`qat_tui.log_notes`), when it has one."""
        settings = self.settings
        if log_notes.note_for(e, settings) is not None:
            self.log_note(lambda: log_notes.note_for(e, settings) or "")

    def _on_RunStarted(self, e: RunStarted) -> None:
        self.log_line(lambda: _("run started: stages {stages} on {device} (backend {backend})").format(
            stages=", ".join(e.stages), device=e.device, backend=e.backend))
        self.set_current(lambda: Text(_("running on {device} with the {backend} backend").format(
            device=e.device, backend=e.backend)))

    @staticmethod
    def _loads(e: StageStarted) -> str:
        return _("loads {inputs}").format(inputs=", ".join(e.inputs)) if e.inputs else _("loads no checkpoint")

    def _on_StageStarted(self, e: StageStarted) -> None:
        self._current_stage = e.stage
        self.set_current(lambda: Text.assemble((e.stage, "bold yellow"), " ",
                                               _("started: {loads}").format(loads=self._loads(e))))
        self.query_one("#progress", ProgressBar).update(total=None, progress=0)
        self.log_line(lambda: "== %s: %s (%s)" % (e.stage, _(e.summary), self._loads(e)))
        self._note(e)
        self.refresh_stages_line()

    def _on_StageSkipped(self, e: StageSkipped) -> None:
        self.log_line(lambda: _("{stage} skipped: {reason}").format(stage=e.stage, reason=_(e.reason)))
        if not self._skip_noted:  # one note says it for every skipped stage
            self._skip_noted = True
            self._note(e)
        history = e.metrics.get("history") if e.metrics else None
        if history:
            best_epoch = e.metrics.get("best_epoch")
            for h in history:
                self._add_epoch_row((e.stage, True), h.get("epoch", 1), len(history), h.get("train_loss"),
                                    h.get("top1"), h.get("top5"), h.get("lr"), h.get("epoch") == best_epoch, None)
        elif e.metrics and e.metrics.get("top1") is not None:
            self._add_epoch_row((e.stage, True), 1, 1, None, e.metrics.get("top1"), e.metrics.get("top5"), None, True, None)
        self.refresh_stages_line()

    def _on_StageFinished(self, e: StageFinished) -> None:
        top1 = e.metrics.get("top1")

        def line() -> str:
            if top1 is None:
                return _("{stage} finished in {seconds:.1f} s").format(stage=e.stage, seconds=e.seconds)
            return _("{stage} finished in {seconds:.1f} s, top-1 {top1:.2f}%").format(
                stage=e.stage, seconds=e.seconds, top1=top1)

        self.log_line(line)
        self._note(e)
        if e.stage in STAGES:
            earlier = [(s, self.record.top1(s)) for s in STAGES[:STAGES.index(e.stage)]]
            if log_notes.drop_note(e.stage, top1, earlier) is not None:
                self.log_note(lambda: log_notes.drop_note(e.stage, top1, earlier) or "", "warning")
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=1, progress=1)
        self.refresh_stages_line()

    def _on_StageFailed(self, e: StageFailed) -> None:
        self.refresh_stages_line()
        if e.cancelled:
            self.set_current(lambda: Text(_("{stage} cancelled: {message}. {hint}").format(
                stage=e.stage, message=e.message, hint=e.hint or ""), style="bold magenta"))
            self.log_line(lambda: _("{stage} cancelled ({hint})").format(stage=e.stage, hint=e.hint or ""), "warning")
            self._note(e)
            return
        self._show_error_panel(e)
        self.log_line(lambda: _("{stage} failed: {title}: {message}").format(
            stage=e.stage, title=_(e.title), message=e.message), "error")
        if e.hint:
            self.log_line(lambda: "-> " + (e.hint or ""), "warning")
        self._note(e)
        self.post_message(M.ShowError(_(e.title), _("{stage} failed: {message}").format(stage=e.stage, message=e.message),
                                      e.hint))

    def _show_error_panel(self, e: StageFailed) -> None:
        panel = self.query_one("#error-panel", Static)
        t = Text(" %s " % _("{title} error").format(title=_(e.title)), style="bold white on red")
        t.append(" %s " % _("in {stage}:").format(stage=e.stage), style="bold red")
        t.append(e.message, style="red")
        if e.hint:
            t.append("\n-> " + e.hint, style="yellow")
        panel.update(t)
        panel.display = True
        self._failed = e

    def _on_BatchProgress(self, e: BatchProgress) -> None:
        self.last_progress = e
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=max(e.batches, 1), progress=e.batch)

        def current() -> Text:
            t = Text(e.stage, style="bold yellow")
            if e.phase != e.stage:
                t.append(" | ")
                t.append(e.phase, style="bold")
            if e.phase == "train" or e.epochs > 1:
                t.append(" | " + _("epoch {epoch}/{epochs}").format(epoch=e.epoch, epochs=e.epochs))
            t.append(" | " + _("batch {batch}/{batches} | {rate:.0f} images/s").format(
                batch=e.batch, batches=e.batches, rate=e.images_per_s))
            if e.loss is not None:
                t.append(" | " + _("loss {loss:.3f}").format(loss=e.loss))
            return t

        self.set_current(current)

    def _on_PhaseStarted(self, e: PhaseStarted) -> None:
        self.query_one("#progress", ProgressBar).update(total=None)  # no batches: an indeterminate bar
        self.set_current(lambda: Text.assemble((e.stage, "bold yellow"), " | ", (e.name, "bold"), " | ", _("started")))
        self.log_line("[%s] %s ..." % (e.stage, e.name))

    def _on_PhaseFinished(self, e: PhaseFinished) -> None:
        self.log_line(lambda: "[%s] %s" % (e.stage, _("{name}: done in {seconds:.1f} s").format(name=e.name, seconds=e.seconds)))

    def _on_Heartbeat(self, e: Heartbeat) -> None:
        progress = self.last_progress

        def current() -> Text:
            what = e.phase or (_("evaluating") if progress is None
                               else _("{phase}, a slow batch").format(phase=progress.phase))
            return Text.assemble((e.stage, "bold yellow"), " | ", (what, "bold"), " | ",
                                 _("{seconds:.0f} s, still running").format(seconds=e.elapsed))

        self.set_current(current)

    def _on_EpochEnd(self, e: EpochEnd) -> None:
        self._add_epoch_row((e.stage, False), e.epoch, e.epochs, e.train_loss, e.top1, e.top5, e.lr, e.best, e.seconds)
        self._chart_points.append((e.stage, float(e.top1)))
        self._draw_chart()

    def _on_LogLine(self, e: LogLine) -> None:
        prefix = ("[%s] " % e.stage) if e.stage else ""
        self.log_line(prefix + e.text, e.level)

    def _on_ArtifactWritten(self, e: ArtifactWritten) -> None:
        from core.io import human_size

        self.log_line(lambda: _("wrote {name} ({size})").format(name=e.name, size=human_size(e.size)))
        self._note(e)

    def _on_CheckAdvice(self, e: CheckAdvice) -> None:
        self.log_line(lambda: _("model check: {summary}").format(summary=_(e.summary)), "info" if e.passed else "warning")
        for item in e.items:  # the ops to act on, as the headless runner prints them
            if item.get("status") in ("int8",) or item.get("suggestion") in ("none", "nothing to do"):
                continue
            self.log_line("  %s %s %s: %s -> %s" % (item.get("status"), item.get("op"), item.get("module") or "-",
                                                    item.get("reason"), item.get("suggestion")))
        self._note(e)

    def _on_RunFinished(self, e: RunFinished) -> None:
        self.running = False
        self.refresh_bindings()
        self.query_one("#progress", ProgressBar).update(total=1, progress=1 if e.ok else 0)
        if e.ok:
            def msg() -> Text:
                return Text(_("run finished in {seconds:.0f} s - r: results, esc: review").format(seconds=e.seconds),
                            style="bold green")
        elif e.cancelled:
            def msg() -> Text:
                return Text(_("run cancelled at {stage}; run again to resume - r: results, esc: review").format(
                    stage=e.failed_stage or "?"), style="bold magenta")
        else:
            def msg() -> Text:
                return Text(_("run failed at {stage} (error above) - r: results, esc: review").format(
                    stage=e.failed_stage or "?"), style="bold red")
        self.set_current(msg)
        self.log_line(lambda: msg().plain)
        if e.ok and self.auto_results and self.is_current:
            self.action_results()

    # ------------------------------------------------------------------------------- display
    def set_current(self, text: Union[Text, Callable[[], Text]]) -> None:
        """The line under the stages: a Text, or a function that gives it in the current language."""
        self._current = text
        self._show_current()

    def _show_current(self) -> None:
        shown = self._current() if callable(self._current) else self._current
        self.query_one("#current", Static).update(shown)

    def log_line(self, text: Shown, level: str = "info") -> None:
        """Add a line to the log: a text, or a function that gives it in the current language (drawn
        again on F2). ``level``: info, warning, error, or note (a note under the line before it)."""
        self._log.append((text, level))
        if len(self._log) > self.MAX_LOG_LINES:
            del self._log[: len(self._log) - self.MAX_LOG_LINES]
        self._write_log(text, level)

    def log_note(self, text: Shown, level: str = "note") -> None:
        """A short note under the last line (:mod:`qat_tui.log_notes`); ``warning`` for one to act on."""
        self.log_line(text, "note-warning" if level == "warning" else "note")

    def _write_log(self, text: Shown, level: str) -> None:
        shown = text() if callable(text) else text
        if level.startswith("note"):
            style = "italic yellow" if level == "note-warning" else NOTE_STYLE
            # a hanging indent: a wrapped note stays under its line
            self.query_one("#log-view", RichLog).write(Padding(Text(shown, style=style), (0, 0, 0, len(NOTE_INDENT))))
            return
        style = {"warning": "yellow", "error": "red"}.get(level, "")
        self.query_one("#log-view", RichLog).write(Text(shown, style=style))

    def _redraw_log(self) -> None:
        view = self.query_one("#log-view", RichLog)
        view.clear()
        for text, level in self._log:
            self._write_log(text, level)

    def log_lines(self) -> List[str]:
        """The log as shown, one string per line written (tests, and what a note follows)."""
        out = []
        for text, level in self._log:
            shown = text() if callable(text) else text
            out.append(NOTE_INDENT + shown if level.startswith("note") else shown)
        return out

    def refresh_stages_line(self) -> None:
        t = Text()
        for i, stage in enumerate(STAGES):
            if i:
                t.append("  ")
            status = self.record.status.get(stage, "pending")
            mark, style = STATUS_MARK.get(status, ("?", ""))
            t.append("%s %s" % (mark, stage), style=style)
            top1 = self.record.top1(stage)
            if top1 is not None:
                t.append(" %.1f%%" % top1, style=style)
            elif status in ("cancelled", "failed"):
                t.append(" " + (_("cancelled") if status == "cancelled" else _("failed")), style=style)
        self.query_one("#stages-line", Static).update(t)

    def _add_epoch_row(self, stage: Tuple[str, bool], epoch: int, epochs: int, loss: Optional[float],
                       top1: Optional[float], top5: Optional[float], lr: Optional[float], best: bool,
                       seconds: Optional[float]) -> None:
        """A row of the epoch table; ``stage``: (name, done earlier)."""
        row = (stage, epoch, epochs, loss, top1, top5, lr, best, seconds)
        self._epoch_rows.append(row)
        table = self.query_one("#epoch-table", DataTable)
        table.add_row(*self._epoch_cells(row))
        table.move_cursor(row=table.row_count - 1)

    @staticmethod
    def _epoch_cells(row: Tuple[Any, ...]) -> List[str]:
        (stage, done), epoch, epochs, loss, top1, top5, lr, best, seconds = row
        return [
            stage + (" " + _("(done)") if done else ""),
            "%d/%d" % (epoch, epochs),
            _fmt(loss, "%.3f"),
            _fmt(top1),
            _fmt(top5),
            _fmt(lr, "%.2g"),
            "*" if best else "",
            _fmt(seconds, "%.1f"),
        ]

    def _fill_epoch_table(self) -> None:
        """The epoch table's columns and rows, in the current language (built again on F2)."""
        table = self.query_one("#epoch-table", DataTable)
        table.clear(columns=True)
        for label, key in EPOCH_COLUMNS:
            table.add_column(_(label), key=key)
        for row in self._epoch_rows:
            table.add_row(*self._epoch_cells(row))
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)

    def _setup_chart(self) -> None:
        chart = self.query_one("#chart-plot")
        plt = getattr(chart, "plt", None)
        if plt is not None:
            plt.title(_("test top-1 (%) after each epoch / evaluation"))
            plt.xlabel(_("evaluation #"))

    def _draw_chart(self) -> None:
        chart = self.query_one("#chart-plot")
        plt = getattr(chart, "plt", None)
        if plt is None:  # Sparkline
            chart.data = [p for _s, p in self._chart_points]
            return
        plt.clear_data()
        for stage in STAGES:
            xs = [i + 1 for i, (s, _v) in enumerate(self._chart_points) if s == stage]
            ys = [v for s, v in self._chart_points if s == stage]
            if not xs:
                continue
            if len(xs) > 1:
                plt.plot(xs, ys, label=stage, marker="dot")
            else:
                plt.scatter(xs, ys, label=stage, marker="o")
        n = len(self._chart_points)
        plt.ylim(0, 100)
        plt.xlim(0.5, n + 0.5)
        plt.xticks(list(range(1, n + 1)), ["%d" % (i + 1) for i in range(n)])
        chart.refresh()

    # ------------------------------------------------------------------------------- actions
    def check_action(self, action: str, parameters: Tuple[object, ...]) -> Optional[bool]:
        # False hides the key in the footer while it does nothing.
        if action == "cancel":
            return self.running
        if action == "back":
            return True
        if action == "results":
            return not self.running
        return True

    def request_cancel(self) -> None:
        """Ask the run's worker to stop at its next batch (SIGTERM); it records the stage as cancelled."""
        from core.worker import request_cancel

        if not self.running or self.cancel_requested:
            return
        if not request_cancel(self.attach_dir):
            self.notify(_("No process holds {run_dir}: nothing to cancel.").format(run_dir=self.attach_dir),
                        severity="warning")
            return
        self.cancel_requested = True
        self.set_current(lambda: Text(_("cancelling: the running stage stops at its next batch..."), style="bold magenta"))
        self.log_line(lambda: _("cancel requested"), "warning")

    def action_cancel(self) -> None:
        """``c`` (and the palette's Cancel run): asks first; yes stops the running stage at its next batch."""
        if not self.running or self.cancel_requested:
            return
        from .confirm_modal import ConfirmModal

        def answered(yes: Optional[bool]) -> None:
            if yes and self.running:
                self.request_cancel()
                if self.cancel_requested:
                    self.notify(_("Cancelling: the running stage stops at its next batch."), timeout=4)

        self.app.push_screen(ConfirmModal(
            _("Cancel the run?"),
            _("The stage in progress stops at the next batch and is recorded as cancelled "
              "(qat-tui resume {run_dir} continues it later).").format(run_dir=self.attach_dir),
            yes=_("Yes, cancel it"), no=_("No, keep it running"),
        ), answered)

    def action_raw_log(self) -> None:
        """``l``: the run's raw log (events.jsonl, the worker's and the toolchain's logs) as written."""
        from .text_modal import TextModal

        self.app.push_screen(TextModal(_("Raw log of {run_dir}").format(run_dir=os.path.basename(self.attach_dir)),
                                       log_notes.raw_log(self.attach_dir)))

    def action_tab(self, tab: str) -> None:
        self.query_one("#run-tabs", TabbedContent).active = tab

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "log":
            # A log written while its tab was hidden did not follow its end.
            self.call_after_refresh(self.query_one("#log-view", RichLog).scroll_end, animate=False)

    def action_results(self) -> None:
        if self.running:
            self.notify(_("The run is still going (c cancels it)."), timeout=3)
            return
        from .results_screen import ResultsScreen

        self.app.push_screen(ResultsScreen(self.record, self.settings))

    def action_back(self) -> None:
        if self.running:
            self.notify(_("The run goes on in its own process: c cancels it, q asks whether to leave it running."),
                        timeout=4)
            return
        self._stop_polling()
        self.app.pop_screen()
