"""Runs the stages in order on one run directory, as a stream of events.

* The settings are written to ``<run_dir>/settings.toml``; every event is appended to
  ``<run_dir>/events.jsonl`` (one JSON object a line, see :mod:`core.events`) and passed to ``emit``.
* ``<run_dir>/state.json`` (see :mod:`core.state`) records each stage. A stage that finished with the
  same *fingerprint* - a hash of the settings it depends on and of its input's result - and whose
  artifacts still exist is skipped and its results are re-emitted; otherwise it runs, and the reason is
  shown ("settings changed: float.epochs 20 -> 1", "its input changed: float ran again").
* Each stage checks its input checkpoint first and says which stage to run when it is missing.

:meth:`Pipeline.run` blocks; the wizard calls it in a worker thread and sets ``cancel`` to stop at the
next batch. It returns True when every requested stage finished or was already done.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from .errors import Cancelled, QatError
from .events import (
    Emit,
    Event,
    LogLine,
    RunFinished,
    RunStarted,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from .settings import SETTINGS_FILENAME, STAGES, Settings, save
from .state import RunState

EVENTS_FILENAME = "events.jsonl"

_ALL = "*"
STAGE_SETTINGS: Dict[str, Dict[str, Any]] = {
    "float": {
        "run": ["backend", "seed"],
        "data": ["root", "layout", "train_images", "eval_images", "batch_size", "max_batches", "augment"],
        "model": _ALL,
        "float": ["epochs", "optimizer", "lr", "weight_decay", "momentum", "lr_schedule"],
    },
    "calib": {
        "run": ["backend", "seed"],
        "data": ["root", "layout", "train_images", "eval_images", "eval_batch_size"],
        "calib": ["num_images"],
        "qconfig": _ALL,
        "horizon": ["march"],
    },
    "qat": {
        "run": ["backend", "seed"],
        "data": ["root", "layout", "train_images", "eval_images", "batch_size", "max_batches", "augment"],
        "calib": ["enabled"],
        "qat": ["epochs", "optimizer", "lr", "weight_decay", "momentum", "lr_schedule"],
        "qconfig": _ALL,
        "horizon": ["march"],
    },
    "int_infer": {
        "data": ["root", "layout", "eval_images"],
        "calib": ["enabled"],
        "qat": ["enabled"],
        "horizon": ["march"],
    },
    "compile": {
        "data": ["root", "layout", "eval_images"],
        "compile": ["package", "perf_batch_sizes", "perf_iterations", "graph_format"],
        "horizon": _ALL,
    },
}
"""For each stage, the settings its result depends on (section -> keys, or all keys)."""


def stage_settings(settings: Settings, stage: str) -> Dict[str, Any]:
    """The subset of ``settings`` that ``stage``'s result depends on, as ``{"section.key": value}``."""
    out: Dict[str, Any] = {}
    for section, keys in STAGE_SETTINGS[stage].items():
        if section == "horizon" and settings.run.backend != "horizon":
            continue  # [horizon] only matters to the horizon backend
        values = getattr(settings, section).model_dump()
        for k in sorted(values) if keys == _ALL else keys:
            out["%s.%s" % (section, k)] = values[k]
    return out


def upstream_stage(settings: Settings, stage: str) -> Optional[str]:
    """The stage whose output ``stage`` loads (None for float)."""
    if stage == "float":
        return None
    if stage == "calib":
        return "float"
    if stage == "qat":
        return "calib" if settings.calib.enabled else "float"
    if stage == "compile":
        return "int_infer"
    return "qat" if settings.qat.enabled else ("calib" if settings.calib.enabled else None)


def _diff(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    keys = sorted(set(old) | set(new))
    return ["%s %r -> %r" % (k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


@dataclass
class PlanItem:
    """What :meth:`Pipeline.plan` expects to do with a stage: ``run``, ``skip`` (done) or ``off``."""

    stage: str
    action: str
    reason: str


class Pipeline:
    """One run of (some of) the five stages.

    Args:
        settings: validated settings.
        emit: event consumer (called from the thread that runs :meth:`run`); None to only log to file.
        cancel: set it to stop at the next batch.
        backend: a backend instance to use instead of the one named in the settings (tests pass the
            horizon test double this way).
    """

    def __init__(
        self,
        settings: Settings,
        emit: Optional[Emit] = None,
        cancel: Optional[threading.Event] = None,
        backend: Any = None,
    ) -> None:
        self.settings = settings
        self.run_dir = settings.run_path()
        self.cancel = cancel or threading.Event()
        self._consumer = emit
        self._backend = backend
        self._log_file: Any = None

    # ------------------------------------------------------------------------------------- events
    def emit(self, event: Event) -> None:
        if self._log_file is not None:
            self._log_file.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
            self._log_file.flush()
        if self._consumer is not None:
            self._consumer(event)

    # ---------------------------------------------------------------------------------- decisions
    def _input_result_id(self, state: RunState, stage: str) -> str:
        up = upstream_stage(self.settings, stage)
        if up is None:
            return ""
        rec = state.stage(up)
        if rec.get("status") == "finished" and rec.get("result_id"):
            return str(rec["result_id"])
        # The input file was provided from outside the pipeline (e.g. float disabled, own checkpoint).
        from .stages import CHECKPOINTS

        path = os.path.join(self.run_dir, CHECKPOINTS.get(up, ""))
        if os.path.isfile(path):
            st = os.stat(path)
            return "external:%d:%d" % (st.st_size, int(st.st_mtime))
        return "missing"

    def fingerprint(self, state: RunState, stage: str) -> str:
        """Hash of the stage's settings subset and its input's result id."""
        blob = json.dumps(
            {"settings": stage_settings(self.settings, stage), "input": self._input_result_id(state, stage)},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def is_done(self, state: RunState, stage: str) -> Optional[str]:
        """Why ``stage`` must run again, or None when its finished result is still valid."""
        rec = state.stage(stage)
        status = rec.get("status", "pending")
        if status != "finished":
            return {"pending": "not run yet", "running": "was interrupted", "stale": rec.get("stale_reason", "stale")}.get(
                status, "last try %s" % status
            )
        missing = [n for n, a in rec.get("artifacts", {}).items() if not os.path.exists(a.get("path", ""))]
        if missing:
            return "its output is missing: %s" % ", ".join(missing)
        if rec.get("fingerprint") != self.fingerprint(state, stage):
            changes = _diff(rec.get("settings", {}), stage_settings(self.settings, stage))
            if changes:
                return "settings changed: %s" % "; ".join(changes)
            return "its input changed: %s ran again" % upstream_stage(self.settings, stage)
        return None

    def plan(self, stages: Optional[List[str]] = None) -> List[PlanItem]:
        """What :meth:`run` would do, without running anything (the review screen shows it)."""
        state = RunState.load(self.run_dir)
        wanted = self._wanted(stages)
        out = []
        rerun: set = set()
        for stage in STAGES:
            if stage not in wanted:
                out.append(PlanItem(stage, "off", "disabled" if stages is None else "not requested"))
                continue
            up = upstream_stage(self.settings, stage)
            reason = self.is_done(state, stage)
            if reason is None and up in rerun:
                reason = "its input will change: %s runs again" % up
            if reason is None:
                top1 = state.stage(stage).get("metrics", {}).get("top1")
                out.append(PlanItem(stage, "skip", "done" + (" (top-1 %.2f%%)" % top1 if top1 is not None else "")))
            else:
                rerun.add(stage)
                out.append(PlanItem(stage, "run", reason))
        return out

    def _wanted(self, stages: Optional[List[str]]) -> List[str]:
        if stages is None:
            return self.settings.enabled_stages()
        bad = [s for s in stages if s not in STAGES]
        if bad:
            raise QatError("unknown stage(s): %s" % ", ".join(bad), hint="stages are: %s" % ", ".join(STAGES))
        return [s for s in STAGES if s in stages]

    # ------------------------------------------------------------------------------------------ run
    def run(self, stages: Optional[List[str]] = None, force: bool = False) -> bool:
        """Run the enabled stages (or ``stages``) in order; skip those already done unless ``force``.

        Never raises for stage failures: they become :class:`StageFailed` events and a False result.
        """
        from .runs import RunLock, register_run

        t_start = time.time()
        os.makedirs(self.run_dir, exist_ok=True)
        try:
            lock = RunLock(self.run_dir).acquire()
        except QatError as e:
            # Another process owns this run directory: tell our consumer only, never its event log.
            self.emit(StageFailed(stage="setup", title=e.title, message=e.msg, hint=e.hint))
            self.emit(RunFinished(ok=False, failed_stage="setup", seconds=time.time() - t_start))
            return False
        register_run(self.run_dir)
        self._log_file = open(os.path.join(self.run_dir, EVENTS_FILENAME), "a", encoding="utf-8")
        ok, failed_stage, cancelled = True, None, False
        try:
            try:
                wanted = self._wanted(stages)
                state = RunState.load(self.run_dir)
                save(self.settings, os.path.join(self.run_dir, SETTINGS_FILENAME))
                ctx = self._context()
            except QatError as e:
                self.emit(StageFailed(stage="setup", title=e.title, message=e.msg, hint=e.hint))
                return self._finish(False, "setup", False, t_start)
            self.emit(
                RunStarted(
                    run_dir=self.run_dir,
                    stages=wanted,
                    settings_path=os.path.join(self.run_dir, SETTINGS_FILENAME),
                    backend=ctx.backend.name,
                    device=ctx.device,
                )
            )
            for stage in STAGES:
                if stage not in wanted:
                    self.emit(StageSkipped(stage=stage, reason="disabled in the settings" if stages is None else "not requested"))
                    continue
                reason = None if force else self.is_done(state, stage)
                if not force and reason is None:
                    rec = state.stage(stage)
                    self.emit(StageSkipped(stage=stage, reason="already done with these settings", metrics=rec.get("metrics", {}), artifacts=rec.get("artifacts", {})))
                    continue
                result = self._run_stage(ctx, state, stage, reason or "forced")
                if result != "finished":
                    ok, failed_stage, cancelled = False, stage, result == "cancelled"
                    break
            return self._finish(ok, failed_stage, cancelled, t_start)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            lock.release()

    def _finish(self, ok: bool, failed_stage: Optional[str], cancelled: bool, t_start: float) -> bool:
        self.emit(RunFinished(ok=ok, cancelled=cancelled, seconds=time.time() - t_start, failed_stage=failed_stage))
        return ok

    def _context(self) -> Any:
        from .backends import get_backend
        from .data import DataBundle
        from .devices import resolve_device
        from .stages import StageContext

        import torch

        s = self.settings
        backend = self._backend if self._backend is not None else get_backend(s.run.backend, s)
        device = resolve_device(s.run.device)
        if s.run.threads:
            torch.set_num_threads(s.run.threads)
        backend.validate_settings(s)

        def data_factory() -> Any:
            return DataBundle(
                s.data,
                s.run.seed,
                backend.normalize_transform(),
                s.model.num_classes,
                lambda m: self.emit(LogLine(level="warning", text=m)),
            )

        return StageContext(s, backend, device, self.emit, self.cancel, data_factory)

    def _run_stage(self, ctx: Any, state: RunState, stage: str, reason: str) -> str:
        from .stages import STAGE_FUNCTIONS, STAGE_SUMMARY, check_inputs, input_path, stage_inputs

        ctx.begin(stage)
        t0 = time.time()
        started = False
        try:
            inputs = [os.path.basename(input_path(self.settings, name)) for name, _p in stage_inputs(self.settings, stage)]
            self.emit(StageStarted(stage=stage, inputs=inputs, summary=STAGE_SUMMARY[stage]))
            self.emit(LogLine(stage=stage, text="running %s (why: %s)" % (stage, reason)))
            check_inputs(self.settings, stage)
            fingerprint = self.fingerprint(state, stage)
            ctx.begin(stage, fingerprint)
            state.start(stage, fingerprint, stage_settings(self.settings, stage))
            started = True
            metrics = STAGE_FUNCTIONS[stage](ctx)
        except Cancelled:
            if started:
                state.fail(stage, {"message": "cancelled by the user"}, cancelled=True)
            self.emit(StageFailed(stage=stage, title="Cancelled", message="%s was cancelled" % stage, hint="resume by running again: finished stages are kept", cancelled=True))
            return "cancelled"
        except QatError as e:
            if started:
                state.fail(stage, e.to_dict())
            self.emit(StageFailed(stage=stage, title=e.title, message=e.msg, hint=e.hint))
            return "failed"
        except Exception as e:  # a bug or an environment problem: keep the traceback for the user
            tb = traceback.format_exc()
            self.emit(LogLine(stage=stage, level="error", text=tb))
            if started:
                state.fail(stage, {"message": "%s: %s" % (type(e).__name__, e), "traceback": tb})
            self.emit(
                StageFailed(
                    stage=stage,
                    title="%s failed" % stage,
                    message="%s: %s" % (type(e).__name__, e),
                    hint="the traceback is in %s" % os.path.join(self.run_dir, EVENTS_FILENAME),
                )
            )
            return "failed"
        seconds = time.time() - t0
        metrics["seconds"] = round(seconds, 2)
        state.finish(stage, metrics, dict(ctx.artifacts), seconds)
        self.emit(StageFinished(stage=stage, metrics=metrics, seconds=seconds, artifacts=dict(ctx.artifacts)))
        return "finished"
