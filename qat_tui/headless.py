"""Headless runner: the same pipeline and events as the wizard, shown with rich progress output.

Prints a line per stage start/finish/skip, a progress bar per loop (train/eval/calib), one line per
epoch (loss, top-1, top-5, lr), artifacts as they are written, the model-check advice, and at the end
a table of every stage's top-1 with its drop from float. Returns the process exit code: 0 when every
requested stage finished or was already done, 1 when a stage failed or was cancelled.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Any, List, Optional

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from core import events as E
from core import stage_table as T
from core.i18n import _
from core.io import human_size
from core.record import RunRecord



def _terminal_console() -> Console:
    """A console on a duplicate of the terminal's file descriptor 1: while a toolchain's output is
    captured (core.capture redirects fds 1 and 2 into a file, e.g. around hbdk's compile), progress and
    heartbeats still reach the user instead of ending up in compile.log. Where stdout has no file
    descriptor (a test's capture), the plain console."""
    import io
    import os

    try:
        fd = sys.stdout.fileno()
        tty = sys.stdout.isatty()
        stream = io.TextIOWrapper(io.FileIO(os.dup(fd), "w"), encoding=getattr(sys.stdout, "encoding", None) or "utf-8",
                                  errors="replace", line_buffering=True)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return Console()
    return Console(file=stream, force_terminal=tty or None)


class HeadlessConsumer:
    """Turns pipeline events into rich console output. Call it as the pipeline's ``emit``."""

    def __init__(self, console: Optional[Console] = None) -> None:
        self.console = console or _terminal_console()
        self.progress = Progress(
            TextColumn("[bold]{task.fields[stage]:<9}[/] {task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task: Optional[int] = None
        self.settings_error = False  # a stage failed on bad settings, model or data: exit code 2
        self.task_key: Any = None
        self.record = RunRecord()

    def __enter__(self) -> "HeadlessConsumer":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def _end_task(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
            self.task_key = None

    def __call__(self, ev: E.Event) -> None:
        c = self.console
        self.record.apply(ev)
        if isinstance(ev, E.BatchProgress):
            key = (ev.stage, ev.phase, ev.epoch)
            desc = "%s %d/%d" % (ev.phase, ev.epoch, ev.epochs) if ev.phase == "train" else ev.phase
            rate = _("{rate:.0f} img/s").format(rate=ev.images_per_s) + (
                "  " + _("loss {loss:.3f}").format(loss=ev.loss) if ev.loss is not None else "")
            if key != self.task_key:
                self._end_task()
                self.task = self.progress.add_task(desc, total=ev.batches, stage=ev.stage, rate=rate)
                self.task_key = key
            self.progress.update(self.task, completed=ev.batch, total=ev.batches, rate=rate)
        elif isinstance(ev, E.RunStarted):
            c.print("[bold]qat-tui[/] " + escape(_("run in {run_dir} - backend {backend}, device {device}, stages: "
                                                  "{stages}").format(run_dir=ev.run_dir, backend=ev.backend,
                                                                     device=ev.device, stages=", ".join(ev.stages))),
                    highlight=False)
        elif isinstance(ev, E.StageStarted):
            self._end_task()
            inputs = " " + _("(loads {inputs})").format(inputs=", ".join(ev.inputs)) if ev.inputs else ""
            c.rule("[bold]%s[/]%s" % (ev.stage, escape(inputs)))
        elif isinstance(ev, E.PhaseStarted):
            self._end_task()
            self.task = self.progress.add_task(ev.name[:40], total=None, stage=ev.stage, rate="")
            self.task_key = ("phase", ev.stage, ev.name)
            c.print("  [dim]%s ...[/]" % escape(ev.name), highlight=False)
        elif isinstance(ev, E.PhaseFinished):
            self._end_task()
            c.print("  [dim]%s[/]" % escape(_("{name}: done in {seconds:.1f} s").format(name=ev.name, seconds=ev.seconds)),
                    highlight=False)
        elif isinstance(ev, E.Heartbeat):
            if self.task is not None:  # the spinner of the phase (or of a slow batch) shows the time
                self.progress.update(self.task, rate=_("{seconds:.0f} s, still running").format(seconds=ev.elapsed))
            else:
                c.print("  [dim]%s[/]" % escape(_("{what}: still running after {seconds:.0f} s").format(
                    what=ev.phase or ev.stage, seconds=ev.elapsed)), highlight=False)
        elif isinstance(ev, E.StageSkipped):
            top1 = ev.metrics.get("top1") if (ev.metrics or ev.artifacts) else None
            line = _("skipped: {reason}").format(reason=_(ev.reason))
            if top1 is not None:
                line += " " + _("(top-1 {top1:.2f}%)").format(top1=top1)
            c.print("[dim]%-9s %s[/]" % (ev.stage, escape(line)), highlight=False)
        elif isinstance(ev, E.EpochEnd):
            self._end_task()
            parts = ["%s" % ev.stage]
            if ev.epochs > 1 or ev.train_loss is not None:
                parts.append(_("epoch {epoch}/{epochs}").format(epoch=ev.epoch, epochs=ev.epochs))
            if ev.train_loss is not None:
                parts.append(_("loss {loss:.3f}").format(loss=ev.train_loss))
            parts.append("top-1 [bold]%.2f%%[/]" % ev.top1)
            parts.append("top-5 %.2f%%" % ev.top5)
            if ev.lr is not None:
                parts.append("lr %.2g" % ev.lr)
            best = "  [green]%s[/]" % escape(_("best")) if ev.best and ev.epochs > 1 else ""
            c.print("  " + "  ".join(parts) + best, highlight=False)
        elif isinstance(ev, E.LogLine):
            style = {"warning": "yellow", "error": "red"}.get(ev.level, "dim")
            text = ev.text if ev.level != "error" else ev.text.rstrip().splitlines()[-1]
            c.print("  [%s]%s[/]" % (style, escape(text)), highlight=False, markup=True)
        elif isinstance(ev, E.ArtifactWritten):
            c.print("  " + escape(_("wrote {name} ({size})").format(name=ev.name, size=human_size(ev.size))),
                    highlight=False)
        elif isinstance(ev, E.CheckAdvice):
            summary = escape(_(ev.summary))
            c.print("  %s %s" % (escape(_("model check:")), "[green]%s[/]" % summary if ev.passed else "[red]%s[/]" % summary),
                    highlight=False)
            for item in ev.items:
                if item.get("status") in ("int8",) or item.get("suggestion") in ("none", "nothing to do"):
                    continue
                c.print(escape("    %-18s %-10s %-22s %s" % (item.get("status"), item.get("op"), item.get("module") or "-", item.get("reason"))), highlight=False)
                c.print(escape("    %-18s -> %s" % ("", item.get("suggestion"))), highlight=False)
        elif isinstance(ev, E.StageFinished):
            self._end_task()
            c.print("[green]%s[/]" % escape(_("{stage} finished in {seconds:.0f} s").format(stage=ev.stage, seconds=ev.seconds)),
                    highlight=False)
        elif isinstance(ev, E.StageFailed):
            self._end_task()
            self.settings_error = self.settings_error or bool(getattr(ev, "settings_error", False))
            color = "yellow" if ev.cancelled else "red"
            c.print("[bold %s]%s: %s[/]" % (color, escape(_(ev.title)), escape(ev.message)), highlight=False)
            if ev.hint:
                c.print("[%s]->[/] %s" % (color, escape(ev.hint)), highlight=False)
        elif isinstance(ev, E.RunFinished):
            self._end_task()

    def summary(self) -> None:
        c = self.console
        rows = self.record.accuracy_rows()
        if rows:
            t = Table(title=_("Accuracy on the test set"), title_justify="left")
            t.add_column(_("stage"))
            t.add_column("top-1 %", justify="right")
            t.add_column("top-5 %", justify="right")
            t.add_column(_("vs float (points)"), justify="right")
            for r in rows:
                t.add_row(_(T.stage(r["stage"]).label), "%.2f" % r["top1"], "%.2f" % r["top5"] if r["top5"] is not None else "-",
                          "-" if r["drop"] is None else "%+.2f" % -r["drop"])
            c.print(t)
        if self.record.artifacts:
            t = Table(title=_("Artifacts"), title_justify="left")
            t.add_column(_("file"))
            t.add_column(_("size"), justify="right")
            t.add_column(_("what it is for"))
            for name, a in self.record.artifacts.items():
                t.add_row(name, human_size(a.get("size", 0)), _(a.get("description", "")))
            c.print(t)
        fin = self.record.finished
        if fin is not None:
            if fin.ok:
                c.print("[bold green]%s[/]" % escape(_("done in {seconds:.0f} s").format(seconds=fin.seconds)), highlight=False)
            elif fin.cancelled:
                c.print("[bold yellow]%s[/]" % escape(_("cancelled in {stage}; run the same command again to resume").format(
                    stage=fin.failed_stage)), highlight=False)
            else:
                c.print("[bold red]%s[/]" % escape(_("failed in {stage}").format(stage=fin.failed_stage)), highlight=False)


def run_headless(settings: Any, stages: Optional[List[str]] = None, force: bool = False, console: Optional[Console] = None,
                 nice: Optional[int] = None) -> int:
    """Run the pipeline with rich output in this process; Ctrl+C cancels at the next batch.

    ``nice``: lower this process's CPU priority to it first (``qat-tui run --nice N``); None keeps it,
    whatever ``[run] nice`` says: there is no wizard here to keep responsive.

    Returns 0 on success, 2 when a stage failed on a settings error (a [model] builder that does not
    import, an unknown arch: the fix is in the settings), 1 when a stage failed otherwise or was cancelled.
    """
    from core.pipeline import Pipeline
    from core.threads import apply_wait_policy, choose_at_start, lower_priority

    lowered = lower_priority(nice) if nice is not None else None
    # before torch is imported here: OpenMP reads its wait policy when it loads
    plan = None if "torch" in sys.modules else choose_at_start(settings.run_path(), settings.run.threads)
    if plan is not None:
        plan.nice = lowered
        apply_wait_policy(plan)
    cancel = threading.Event()
    consumer = HeadlessConsumer(console)
    previous = None

    def on_sigint(_sig: int, _frm: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        consumer.console.print("[yellow]%s[/]" % escape(_("cancelling at the next batch (Ctrl+C again to abort now)")))
        cancel.set()

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with consumer:
            ok = Pipeline(settings, emit=consumer, cancel=cancel, thread_plan=plan).run(stages=stages, force=force)
        consumer.summary()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return 0 if ok else (2 if consumer.settings_error else 1)
