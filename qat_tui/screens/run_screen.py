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
"""
from __future__ import annotations

import os
import time
import traceback
from typing import Any, List, Optional, Tuple

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
from core.record import RunRecord
from core.settings import STAGES, Settings

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


class RunScreen(HelpfulScreen):
    """Runs the pipeline for ``settings`` and shows its progress."""

    HELP_PAGE = "run"

    BINDINGS = [
        Binding("c", "cancel", "Cancel", id="run.cancel"),
        Binding("1", "tab('epochs')", "Epochs", id="run.tab_epochs"),
        Binding("2", "tab('chart')", "Chart", id="run.tab_chart"),
        Binding("3", "tab('log')", "Log", id="run.tab_log"),
        Binding("r", "results", "Results", id="run.results"),
        Binding("ctrl+n", "results", "Results", show=False, id="run.results"),
        Binding("escape", "back", "Back", id="run.back"),
    ]

    ATTACH_GRACE_S = 15.0
    """Seconds an attached run may show neither a lock holder nor events (a worker starting up)."""

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

    # ------------------------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        crumb = breadcrumb(-1, ["Settings"])
        crumb.append(" > ", style="dim")
        crumb.append(" Run ", style="bold reverse")
        crumb.append(" > Results", style="dim")
        crumb.append("   %s%s" % (self.record.run_dir, "" if self.started_here else " (attached)"), style="dim")
        yield Static(crumb, id="breadcrumb")
        yield Static("", id="stages-line")
        yield Static("starting: loading torch and the backend...", id="current")
        yield ProgressBar(total=None, show_eta=False, id="progress")
        panel = Static("", id="error-panel")
        panel.display = False
        yield panel
        with TabbedContent(initial="epochs", id="run-tabs"):
            with TabPane("1 Epochs", id="epochs"):
                yield DataTable(id="epoch-table", zebra_stripes=True, cursor_type="row")
            with TabPane("2 Chart", id="chart"):
                yield self._make_chart()
            with TabPane("3 Log", id="log"):
                yield RichLog(id="log-view", wrap=True, markup=False, highlight=False, max_lines=5000)
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
        table = self.query_one("#epoch-table", DataTable)
        for label, key in (("stage", "stage"), ("epoch", "epoch"), ("loss", "loss"), ("top-1 %", "top1"),
                           ("top-5 %", "top5"), ("lr", "lr"), ("best", "best"), ("time s", "time")):
            table.add_column(label, key=key)
        self.refresh_stages_line()
        self._setup_chart()
        self.start()

    def start(self) -> None:
        from core.worker import EventFollower

        self.running = True
        self._started_at = time.time()
        offset = self._follow_offset
        if offset is None:
            offset = EventFollower.last_run_offset(self.attach_dir)
        self._follower = EventFollower(self.attach_dir, offset)
        if self.started_here:
            self.log_line("the run goes on in its own process; q asks whether to leave it running "
                          "(qat-tui attach %s comes back to it)" % self.attach_dir)
        else:
            self.log_line("following %s (the run goes on when you quit; qat-tui attach %s comes back to it)"
                          % (os.path.join(self.attach_dir, "events.jsonl"), self.attach_dir))
        self.set_current(Text("waiting for the run's first events (the worker is loading torch)..."))
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
        msg = Text(
            "no process is running %s and its log stops here (stopped or killed) - qat-tui resume %s continues it"
            % (self.attach_dir, self.attach_dir),
            style="bold yellow",
        )
        self.set_current(msg)
        self.log_line(msg.plain, "warning")

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
            self.log_line("display error: " + tb, "error")

    def _on_RunStarted(self, e: RunStarted) -> None:
        self.log_line("run started: stages %s on %s (backend %s)" % (", ".join(e.stages), e.device, e.backend))
        self.set_current(Text("running on %s with the %s backend" % (e.device, e.backend)))

    def _on_StageStarted(self, e: StageStarted) -> None:
        self._current_stage = e.stage
        loads = ("loads " + ", ".join(e.inputs)) if e.inputs else "loads no checkpoint"
        self.set_current(Text.assemble((e.stage, "bold yellow"), " started: %s" % loads))
        self.query_one("#progress", ProgressBar).update(total=None, progress=0)
        self.log_line("== %s: %s (%s)" % (e.stage, e.summary, loads))
        self.refresh_stages_line()

    def _on_StageSkipped(self, e: StageSkipped) -> None:
        self.log_line("%s skipped: %s" % (e.stage, e.reason))
        history = e.metrics.get("history") if e.metrics else None
        if history:
            best_epoch = e.metrics.get("best_epoch")
            for h in history:
                self._add_epoch_row(e.stage + " (done)", h.get("epoch", 1), len(history), h.get("train_loss"),
                                    h.get("top1"), h.get("top5"), h.get("lr"), h.get("epoch") == best_epoch, None)
        elif e.metrics and e.metrics.get("top1") is not None:
            self._add_epoch_row(e.stage + " (done)", 1, 1, None, e.metrics.get("top1"), e.metrics.get("top5"), None, True, None)
        self.refresh_stages_line()

    def _on_StageFinished(self, e: StageFinished) -> None:
        top1 = e.metrics.get("top1")
        self.log_line("%s finished in %.1f s%s" % (e.stage, e.seconds, (", top-1 %.2f%%" % top1) if top1 is not None else ""))
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=1, progress=1)
        self.refresh_stages_line()

    def _on_StageFailed(self, e: StageFailed) -> None:
        self.refresh_stages_line()
        if e.cancelled:
            self.set_current(Text("%s cancelled: %s. %s" % (e.stage, e.message, e.hint or ""), style="bold magenta"))
            self.log_line("%s cancelled (%s)" % (e.stage, e.hint or ""), "warning")
            return
        panel = self.query_one("#error-panel", Static)
        t = Text(" %s error " % e.title, style="bold white on red")
        t.append(" in %s: " % e.stage, style="bold red")
        t.append(e.message, style="red")
        if e.hint:
            t.append("\n-> " + e.hint, style="yellow")
        panel.update(t)
        panel.display = True
        self.log_line("%s failed: %s: %s" % (e.stage, e.title, e.message), "error")
        self.post_message(M.ShowError(e.title, "%s failed: %s" % (e.stage, e.message), e.hint))

    def _on_BatchProgress(self, e: BatchProgress) -> None:
        self.last_progress = e
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=max(e.batches, 1), progress=e.batch)
        t = Text(e.stage, style="bold yellow")
        if e.phase != e.stage:
            t.append(" | ")
            t.append(e.phase, style="bold")
        if e.phase == "train" or e.epochs > 1:
            t.append(" | epoch %d/%d" % (e.epoch, e.epochs))
        t.append(" | batch %d/%d | %.0f images/s" % (e.batch, e.batches, e.images_per_s))
        if e.loss is not None:
            t.append(" | loss %.3f" % e.loss)
        self.set_current(t)

    def _on_PhaseStarted(self, e: PhaseStarted) -> None:
        self.query_one("#progress", ProgressBar).update(total=None)  # no batches: an indeterminate bar
        self.set_current(Text.assemble((e.stage, "bold yellow"), " | ", (e.name, "bold"), " | started"))
        self.log_line("[%s] %s ..." % (e.stage, e.name))

    def _on_PhaseFinished(self, e: PhaseFinished) -> None:
        self.log_line("[%s] %s: done in %.1f s" % (e.stage, e.name, e.seconds))

    def _on_Heartbeat(self, e: Heartbeat) -> None:
        what = e.phase or ("evaluating" if self.last_progress is None else "%s, a slow batch" % self.last_progress.phase)
        self.set_current(Text.assemble((e.stage, "bold yellow"), " | ", (what, "bold"),
                                       " | %.0f s, still running" % e.elapsed))

    def _on_EpochEnd(self, e: EpochEnd) -> None:
        self._add_epoch_row(e.stage, e.epoch, e.epochs, e.train_loss, e.top1, e.top5, e.lr, e.best, e.seconds)
        self._chart_points.append((e.stage, float(e.top1)))
        self._draw_chart()

    def _on_LogLine(self, e: LogLine) -> None:
        prefix = ("[%s] " % e.stage) if e.stage else ""
        self.log_line(prefix + e.text, e.level)

    def _on_ArtifactWritten(self, e: ArtifactWritten) -> None:
        from core.io import human_size

        self.log_line("wrote %s (%s)" % (e.name, human_size(e.size)))

    def _on_CheckAdvice(self, e: CheckAdvice) -> None:
        self.log_line("model check: %s" % e.summary, "info" if e.passed else "warning")

    def _on_RunFinished(self, e: RunFinished) -> None:
        self.running = False
        self.refresh_bindings()
        self.query_one("#progress", ProgressBar).update(total=1, progress=1 if e.ok else 0)
        if e.ok:
            msg = Text("run finished in %.0f s - r: results, esc: review" % e.seconds, style="bold green")
        elif e.cancelled:
            msg = Text("run cancelled at %s; run again to resume - r: results, esc: review" % (e.failed_stage or "?"),
                       style="bold magenta")
        else:
            msg = Text("run failed at %s (error above) - r: results, esc: review" % (e.failed_stage or "?"),
                       style="bold red")
        self.set_current(msg)
        self.log_line(msg.plain)
        if e.ok and self.auto_results and self.is_current:
            self.action_results()

    # ------------------------------------------------------------------------------- display
    def set_current(self, text: Text) -> None:
        self.query_one("#current", Static).update(text)

    def log_line(self, text: str, level: str = "info") -> None:
        style = {"warning": "yellow", "error": "red"}.get(level, "")
        self.query_one("#log-view", RichLog).write(Text(text, style=style))

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
                t.append(" " + status, style=style)
        self.query_one("#stages-line", Static).update(t)

    def _add_epoch_row(self, stage: str, epoch: int, epochs: int, loss: Optional[float], top1: Optional[float],
                       top5: Optional[float], lr: Optional[float], best: bool, seconds: Optional[float]) -> None:
        table = self.query_one("#epoch-table", DataTable)
        table.add_row(
            stage,
            "%d/%d" % (epoch, epochs),
            _fmt(loss, "%.3f"),
            _fmt(top1),
            _fmt(top5),
            _fmt(lr, "%.2g"),
            "*" if best else "",
            _fmt(seconds, "%.1f"),
        )
        table.move_cursor(row=table.row_count - 1)

    def _setup_chart(self) -> None:
        chart = self.query_one("#chart-plot")
        plt = getattr(chart, "plt", None)
        if plt is not None:
            plt.title("test top-1 (%) after each epoch / evaluation")
            plt.xlabel("evaluation #")

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
            self.notify("No process holds %s: nothing to cancel." % self.attach_dir, severity="warning")
            return
        self.cancel_requested = True
        self.set_current(Text("cancelling: the running stage stops at its next batch...", style="bold magenta"))
        self.log_line("cancel requested", "warning")

    def action_cancel(self) -> None:
        """``c`` (and the palette's Cancel run): asks first; yes stops the running stage at its next batch."""
        if not self.running or self.cancel_requested:
            return
        from .confirm_modal import ConfirmModal

        def answered(yes: Optional[bool]) -> None:
            if yes and self.running:
                self.request_cancel()
                if self.cancel_requested:
                    self.notify("Cancelling: the running stage stops at its next batch.", timeout=4)

        self.app.push_screen(ConfirmModal(
            "Cancel the run?",
            "The stage in progress stops at the next batch and is recorded as cancelled "
            "(qat-tui resume %s continues it later)." % self.attach_dir,
            yes="Yes, cancel it", no="No, keep it running",
        ), answered)

    def action_tab(self, tab: str) -> None:
        self.query_one("#run-tabs", TabbedContent).active = tab

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "log":
            # A log written while its tab was hidden did not follow its end.
            self.call_after_refresh(self.query_one("#log-view", RichLog).scroll_end, animate=False)

    def action_results(self) -> None:
        if self.running:
            self.notify("The run is still going (c cancels it).", timeout=3)
            return
        from .results_screen import ResultsScreen

        self.app.push_screen(ResultsScreen(self.record, self.settings))

    def action_back(self) -> None:
        if self.running:
            self.notify("The run goes on in its own process: c cancels it, q asks whether to leave it running.", timeout=4)
            return
        self._stop_polling()
        self.app.pop_screen()
