"""Runs the stages in order on one run directory, as a stream of events.

* The settings are written to ``<run_dir>/settings.toml``; every event is appended to
  ``<run_dir>/events.jsonl`` (one JSON object a line, see :mod:`core.events`) and passed to ``emit``.
* ``<run_dir>/state.json`` (see :mod:`core.state`) records each stage. A stage that finished with the
  same *fingerprint* - a hash of the settings it depends on and of its input's result - and whose
  artifacts are still the files it wrote (size and SHA-256) is skipped and its results are re-emitted;
  otherwise it runs, and the reason is shown ("settings changed: float.epochs 20 -> 1", "its input
  changed: float ran again", "its output changed: calib-checkpoint.ckpt changed since it was written").
  An output that changed is moved aside (``<name>.changed-<time>``) before its stage runs again, so
  nothing a user put there is lost.
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

from .errors import Cancelled, QatError, is_input_error
from .i18n import N_, _
from .events import (
    HEARTBEAT_S,
    Emit,
    Event,
    Heartbeat,
    LogLine,
    RunFinished,
    RunStarted,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from . import stage_table as T
from .settings import SETTINGS_FILENAME, STAGES, Settings, save, with_absolute_paths
from .state import RunState

EVENTS_FILENAME = "events.jsonl"

_STATUS_WORDS = {"failed": N_("failed"), "cancelled": N_("cancelled"), "running": N_("running"), "stale": N_("stale")}
"""A stage's status (state.json's code) as shown in a reason: ``_(_STATUS_WORDS.get(s, s))``."""


def _status_word(status: str) -> str:
    return _(_STATUS_WORDS[status]) if status in _STATUS_WORDS else status


def stage_settings(settings: Settings, stage: str) -> Dict[str, Any]:
    """The subset of ``settings`` that ``stage``'s result depends on, as ``{"section.key": value}``:
    the stage table's core keys plus the selected backend's own (its spec's ``stale_keys``)."""
    from .backends import get_spec

    backend_keys = {}
    spec = get_spec(settings.run.backend)
    if spec.options is not None and stage in spec.stale_keys:
        backend_keys[spec.name] = spec.stale_keys[stage]
    out: Dict[str, Any] = {}
    for section, keys in T.settings_keys(settings, stage, backend_keys).items():
        model = getattr(settings, section)
        values = model.model_dump()
        for k in keys:
            field = type(model).model_fields[k]
            if (field.json_schema_extra or {}).get("added") and values[k] == field.get_default(call_default_factory=True):
                continue  # a key newer than the run's record counts only when set (settings.ADDED)
            out["%s.%s" % (section, k)] = values[k]
    if out.get("model.num_classes", 0) is None:
        out["model.num_classes"] = _data_classes(settings)
    return out


def _data_classes(settings: Settings) -> Optional[int]:
    """The number of classes in the data folder (what an unset ``[model] num_classes`` becomes), or
    None when the folder cannot be read."""
    from .data import class_names

    try:
        return len(class_names(settings.data.root, settings.data.layout))
    except QatError:
        return None


def upstream_stage(settings: Settings, stage: str) -> Optional[str]:
    """The stage whose output ``stage`` loads (None for float)."""
    return T.stage(stage).upstream(settings)


def _diff(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """``section.key old -> new`` per changed key; a key left out at its default (settings.ADDED) shows
    as ``default``."""
    keys = sorted(set(old) | set(new))

    def shown(d: Dict[str, Any], k: str) -> str:
        return repr(d[k]) if k in d else _("default")

    return ["%s %s -> %s" % (k, shown(old, k), shown(new, k)) for k in keys if old.get(k) != new.get(k) or (k in old) != (k in new)]


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
            test double of a toolchain this way).
        thread_plan: the :class:`core.threads.ThreadPlan` chosen before torch was imported (the worker
            and the headless runner make one); None: torch's default until the governor re-plans.
    """

    def __init__(
        self,
        settings: Settings,
        emit: Optional[Emit] = None,
        cancel: Optional[threading.Event] = None,
        backend: Any = None,
        thread_plan: Any = None,
    ) -> None:
        self.settings = with_absolute_paths(settings)
        self._given = settings  # as handed over: runs recorded before paths were made absolute stay done
        self.thread_plan = thread_plan
        self.run_dir = settings.run_path()
        self.cancel = cancel or threading.Event()
        self._consumer = emit
        self._backend = backend
        self._log_file: Any = None
        self._emit_lock = threading.RLock()
        self._last_emit = time.time()
        self._log_failure: Optional[QatError] = None
        self._log_broken = False
        self._run_thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------------------------------- events
    def emit(self, event: Event) -> None:
        """Append ``event`` to ``events.jsonl`` and pass it to the consumer (thread-safe: heartbeats
        come from another thread).

        Raises:
            DiskFullError / QatError: the event log cannot be written; the log is closed, the consumer
                still gets this and later events, and the stage that was running fails with the reason.
        """
        with self._emit_lock:
            self._last_emit = time.time()
            if self._log_file is not None:
                try:
                    self._log_file.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
                    self._log_file.flush()
                except OSError as e:
                    self._log_failure = self._log_failed(e)
            if self._consumer is not None:
                self._consumer(event)
            failure = self._log_failure
            if failure is not None and threading.current_thread() is self._run_thread:
                self._log_failure = None  # raised once, in the thread that runs the stages
                raise failure

    def _log_failed(self, error: OSError) -> QatError:
        from .io import disk_full_error

        path = os.path.join(self.run_dir, EVENTS_FILENAME)
        log, self._log_file = self._log_file, None
        self._log_broken = True
        try:
            log.close()
        except OSError:
            pass
        return disk_full_error(path, error) or QatError(
            _("cannot write the event log {path}: {reason}").format(path=path, reason=error),
            hint=_("check the run folder's permissions and disk"),
            title=_("Run directory"),
        )

    # ---------------------------------------------------------------------------------- decisions
    def _input_result_id(self, state: RunState, stage: str) -> str:
        up = upstream_stage(self.settings, stage)
        if up is None:
            return ""
        rec = state.stage(up)
        if rec.get("status") == "finished" and rec.get("result_id"):
            return str(rec["result_id"])
        # The input file was provided from outside the pipeline (e.g. float disabled, own checkpoint).
        from .io import sha256_file
        from .stages import CHECKPOINTS

        path = os.path.join(self.run_dir, CHECKPOINTS.get(up, ""))
        if os.path.isfile(path):
            return "external:%s" % sha256_file(path)
        return "missing"

    def fingerprint(self, state: RunState, stage: str, settings: Optional[Settings] = None) -> str:
        """Hash of the stage's settings subset (of ``settings``, default the run's) and its input's result id."""
        blob = json.dumps(
            {"settings": stage_settings(settings or self.settings, stage), "input": self._input_result_id(state, stage)},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def is_done(self, state: RunState, stage: str) -> Optional[str]:
        """Why ``stage`` must run again, or None when its finished result is still valid."""
        rec = state.stage(stage)
        status = rec.get("status", "pending")
        if status != "finished":
            if status == "pending":
                return _("not run yet")
            if status == "running":
                return _("was interrupted")
            if status == "stale":
                return rec.get("stale_reason") or _("stale")
            return _("last try {status}").format(status=_status_word(status))
        problems = self.output_problems(state, stage)
        if problems:
            return _("its output changed: {problems}").format(problems="; ".join(problems))
        if rec.get("fingerprint") not in (self.fingerprint(state, stage), self.fingerprint(state, stage, self._given)):
            changes = _diff(rec.get("settings", {}), stage_settings(self.settings, stage))
            if changes:
                return _("settings changed: {changes}").format(changes="; ".join(changes))
            return _("its input changed: {stage} ran again").format(stage=upstream_stage(self.settings, stage))
        return None

    def output_problems(self, state: RunState, stage: str) -> List[str]:
        """For each recorded output of ``stage`` that is no longer the file it wrote, why."""
        from .state import artifact_problem

        out = []
        for name, art in state.stage(stage).get("artifacts", {}).items():
            problem = artifact_problem(self.run_dir, name, art)
            if problem:
                out.append(problem)
        return out

    def _move_aside_changed_outputs(self, state: RunState, stage: str) -> None:
        """Before ``stage`` runs again, rename its outputs that changed since it wrote them to
        ``<name>.changed-<YYYYmmdd-HHMMSS>``: whatever a user or another program put there is kept."""
        from .state import artifact_check

        stamp = time.strftime("%Y%m%d-%H%M%S")
        for name, art in state.stage(stage).get("artifacts", {}).items():
            found = artifact_check(self.run_dir, name, art)
            path = os.path.join(self.run_dir, str(art.get("path") or name))
            if found and found[0] == "changed" and os.path.isfile(path):
                kept = "%s.changed-%s" % (path, stamp)
                os.replace(path, kept)
                self.emit(LogLine(stage=stage, level="warning", text=_("{problem}; kept it as {file}").format(
                    problem=found[1], file=os.path.basename(kept))))

    def plan(self, stages: Optional[List[str]] = None) -> List[PlanItem]:
        """What :meth:`run` would do, without running anything (the review screen shows it)."""
        state = RunState.load(self.run_dir)
        wanted = self._wanted(stages)
        out = []
        rerun: set = set()
        for stage in STAGES:
            if stage not in wanted:
                out.append(PlanItem(stage, "off", _("disabled") if stages is None else _("not requested")))
                continue
            up = upstream_stage(self.settings, stage)
            reason = self.is_done(state, stage)
            if reason is None and up in rerun:
                reason = _("its input will change: {stage} runs again").format(stage=up)
            if reason is None:
                top1 = state.stage(stage).get("metrics", {}).get("top1")
                out.append(PlanItem(stage, "skip", _("done") if top1 is None
                                    else _("done (top-1 {top1:.2f}%)").format(top1=top1)))
            else:
                rerun.add(stage)
                out.append(PlanItem(stage, "run", reason))
        return out

    def _wanted(self, stages: Optional[List[str]]) -> List[str]:
        if stages is None:
            return self.settings.enabled_stages()
        bad = [s for s in stages if s not in STAGES]
        if bad:
            raise QatError(_("unknown stage(s): {stages}").format(stages=", ".join(bad)),
                           hint=_("stages are: {stages}").format(stages=", ".join(STAGES)))
        return [s for s in STAGES if s in stages]

    # ------------------------------------------------------------------------------------------ run
    def run(self, stages: Optional[List[str]] = None, force: bool = False) -> bool:
        """Run the enabled stages (or ``stages``) in order; skip those already done unless ``force``.

        Never raises for stage failures: they become :class:`StageFailed` events and a False result.
        """
        from .io import remove_stale_temp_files
        from .runs import RunLock, register_run

        t_start = time.time()
        self._run_thread = threading.current_thread()
        try:
            os.makedirs(self.run_dir, exist_ok=True)
            lock = RunLock(self.run_dir).acquire()
        except QatError as e:
            # Another process owns this run directory: tell our consumer only, never its event log.
            self.emit(StageFailed(stage="setup", title=e.title, message=e.msg, hint=e.hint))
            self.emit(RunFinished(ok=False, failed_stage="setup", seconds=time.time() - t_start))
            return False
        except OSError as e:
            self.emit(StageFailed(stage="setup", title=_("Run directory"),
                                  message=_("cannot create {path}: {reason}").format(path=self.run_dir, reason=e),
                                  hint=_("choose a run folder you can write")))
            self.emit(RunFinished(ok=False, failed_stage="setup", seconds=time.time() - t_start))
            return False
        register_run(self.run_dir)
        remove_stale_temp_files(self.run_dir)  # left by a killed run; we hold the lock, no writer owns one
        self._log_file = open(os.path.join(self.run_dir, EVENTS_FILENAME), "a", encoding="utf-8")
        ok, failed_stage, cancelled = True, None, False
        try:
            try:
                wanted = self._wanted(stages)
                state = RunState.load(self.run_dir)
                save(self.settings, os.path.join(self.run_dir, SETTINGS_FILENAME))
                ctx = self._context()
            except QatError as e:
                self.emit(StageFailed(stage="setup", title=e.title, message=e.msg, hint=e.hint,
                                      settings_error=is_input_error(e)))
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
            beat = self._start_heartbeat(ctx)
            changed: set = set()  # stages that ran now or whose result is stale: what follows them is stale too
            try:
                for stage in STAGES:
                    if stage not in wanted:
                        skip = self._not_run(state, stage, _("disabled in the settings") if stages is None else _("not requested"),
                                             changed, disabled=stages is None)
                        if skip.status == "stale":
                            changed.add(stage)
                        self.emit(skip)
                        continue
                    reason = None if force else self.is_done(state, stage)
                    if not force and reason is None:
                        rec = state.stage(stage)
                        self.emit(StageSkipped(stage=stage, reason=_("already done with these settings"), metrics=rec.get("metrics", {}),
                                               artifacts=rec.get("artifacts", {}), status="finished",
                                               finished_at=rec.get("finished_at", "")))
                        continue
                    changed.add(stage)
                    result = self._run_stage(ctx, state, stage, reason or _("forced"))
                    if self._log_broken:  # no event log: nothing can follow the run any more
                        result = "failed" if result == "finished" else result
                    if result != "finished":
                        ok, failed_stage, cancelled = False, stage, result == "cancelled"
                        break
                if ok and self.settings.debug.after_run and "int_infer" in changed and "int_infer" in wanted:
                    self._debug_after_run()
            finally:
                beat.set()
            return self._finish(ok, failed_stage, cancelled, t_start)
        finally:
            if self._log_file is not None:
                try:
                    self._log_file.close()
                except OSError:
                    pass
                self._log_file = None
            lock.release()

    def _debug_after_run(self) -> None:
        """``[debug] after_run``: the per-layer debug (:func:`core.debug.run_debug`), its lines in the
        log; a debug that cannot run is a warning, not a failed run."""
        from .debug import REPORT_HTML, run_debug
        from .errors import Cancelled

        def log(text: str) -> None:
            self.emit(LogLine(text=_("debug: {text}").format(text=text)))

        try:
            report = run_debug(self.settings, log=log, backend=self._backend, cancel=self.cancel)
        except Cancelled:
            return
        except QatError as e:
            self.emit(LogLine(level="warning", text=_("debug after the run did not run: {reason} ({hint})").format(
                reason=e.msg, hint=e.hint or "")))
            return
        worst = report.worst()[0] if report.layers else None
        log(_("{file} written; worst layer by its own error: {layer} ({sqnr:.1f} dB)").format(
            file=REPORT_HTML, layer=worst["name"] if worst else "-", sqnr=worst["same_input"]["sqnr_db"] if worst else 0.0))

    def _not_run(self, state: RunState, stage: str, why: str, changed: set, disabled: bool = False) -> StageSkipped:
        """The StageSkipped of a stage this run does not run, carrying its latest result from the state
        (and whether that result still fits: stale when its settings, inputs or outputs changed, or when
        a stage before it in ``changed`` ran now or is stale), so that every view shows every stage."""
        rec = state.stage(stage)
        status = rec.get("status", "")
        if not status or disabled:
            return StageSkipped(stage=stage, reason=why)
        if status == "finished":
            try:
                stale = self.is_done(state, stage)
            except QatError as e:
                stale = e.msg
            up = upstream_stage(self.settings, stage)
            if not stale and up in changed:
                stale = _("its input changed: {stage} ran again or is stale").format(stage=up)
            if stale:
                status = "stale"
                why += _("; its last result ({time}) is stale: {why}").format(time=rec.get("finished_at", "?"), why=stale)
            else:
                why += _("; last run {time}").format(time=rec.get("finished_at", "?"))
        else:
            why += _("; last try {status} {time}").format(status=_status_word(status), time=rec.get("finished_at", ""))
        return StageSkipped(stage=stage, reason=why.strip(), metrics=rec.get("metrics", {}) if status in ("finished", "stale") else {},
                            artifacts=rec.get("artifacts", {}) if status in ("finished", "stale") else {},
                            status=status, finished_at=rec.get("finished_at", ""))

    def _start_heartbeat(self, ctx: Any) -> threading.Event:
        """A daemon thread that emits :class:`Heartbeat` whenever nothing was emitted for
        ``HEARTBEAT_S`` seconds while a stage runs; set the returned event to stop it."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(min(1.0, HEARTBEAT_S / 2)):
                stage = ctx.stage
                if not stage or time.time() - self._last_emit < HEARTBEAT_S:
                    continue
                phase = ctx.current_phase
                since = phase[1] if phase else ctx.stage_started
                try:
                    self.emit(Heartbeat(stage=stage, phase=phase[0] if phase else "", elapsed=round(time.time() - since, 1)))
                except Exception:  # a full disk: the stage thread reports it at its next event
                    pass

        threading.Thread(target=beat, name="qat-tui-heartbeat", daemon=True).start()
        return stop

    def _finish(self, ok: bool, failed_stage: Optional[str], cancelled: bool, t_start: float) -> bool:
        try:
            self.emit(RunFinished(ok=ok, cancelled=cancelled, seconds=time.time() - t_start, failed_stage=failed_stage))
        except QatError:
            return False  # the event log broke on this very event; the consumer has it
        return ok

    def context(self) -> Any:
        """The :class:`core.stages.StageContext` the stages of this run get (backend, device, data), for
        work outside the stages on the same run (the per-layer debug)."""
        return self._context()

    def _context(self) -> Any:
        from .backends import get_backend
        from .data import DataBundle
        from .devices import resolve_device
        from .stages import StageContext

        import torch

        s = self.settings
        backend = self._backend if self._backend is not None else get_backend(s.run.backend, s)
        device = resolve_device(s.run.device)
        from .threads import ThreadGovernor

        threads = s.run.threads or (self.thread_plan.threads if self.thread_plan is not None else None)
        if threads:
            torch.set_num_threads(threads)
        nice = self.thread_plan.nice if self.thread_plan is not None else None
        nice_note = _(", at nice {nice} ([run] nice)").format(nice=nice) if nice else ""
        if self.thread_plan is not None and not s.run.threads:
            policy = os.environ.get("OMP_WAIT_POLICY")
            self.emit(LogLine(text=_("CPU: {n} threads ({why}){policy}{nice}").format(
                n=threads, why=self.thread_plan.reason, policy=", OMP_WAIT_POLICY=%s" % policy if policy else "", nice=nice_note)))
        elif nice_note:
            self.emit(LogLine(text=_("CPU: {n} threads ([run] threads){nice}").format(n=threads, nice=nice_note)))
        governor = ThreadGovernor(self.run_dir, fixed=s.run.threads, log=lambda m: self.emit(LogLine(text=m)))
        backend.validate_settings(s)

        def data_factory() -> Any:
            from .model_build import is_weights_name

            return DataBundle(
                s.data,
                s.run.seed,
                backend.normalize_transform(),
                s.model.num_classes,
                lambda m: self.emit(LogLine(level="warning", text=m)),
                named_weights=is_weights_name(s.model.pretrained),
            )

        ctx = StageContext(s, backend, device, self.emit, self.cancel, data_factory)
        ctx.governor = governor
        return ctx

    def _run_stage(self, ctx: Any, state: RunState, stage: str, reason: str) -> str:
        from .io import disk_full_error
        from .stages import check_inputs, input_path, stage_inputs

        ctx.begin(stage)
        t0 = time.time()
        started = False
        try:
            inputs = [os.path.basename(input_path(self.settings, name, state)) for name, _p in stage_inputs(self.settings, stage)]
            self.emit(StageStarted(stage=stage, inputs=inputs, summary=_(T.stage(stage).summary)))
            self.emit(LogLine(stage=stage, text=_("running {stage} (why: {reason})").format(stage=stage, reason=reason)))
            check_inputs(self.settings, stage, state)
            self._move_aside_changed_outputs(state, stage)
            fingerprint = self.fingerprint(state, stage)
            ctx.begin(stage, fingerprint)
            state.start(stage, fingerprint, stage_settings(self.settings, stage))
            started = True
            metrics = T.stage(stage).function()(ctx)
            seconds = time.time() - t0
            metrics["seconds"] = round(seconds, 2)
            state.finish(stage, metrics, dict(ctx.artifacts), seconds)
        except Cancelled:
            self._record_failure(state, stage, started, {"message": "cancelled by the user"}, cancelled=True)
            return self._emit_last(StageFailed(stage=stage, title=_("Cancelled"), message=_("{stage} was cancelled").format(stage=stage),
                                                  hint=_("resume by running again: finished stages are kept"), cancelled=True),
                                      "cancelled")
        except QatError as e:
            self._record_failure(state, stage, started, e.to_dict())
            return self._emit_last(StageFailed(stage=stage, title=e.title, message=e.msg, hint=e.hint,
                                                  settings_error=is_input_error(e)), "failed")
        except Exception as e:  # a bug or an environment problem: keep the traceback for the user
            full = disk_full_error(os.path.join(self.run_dir, "-"), e)
            if full is not None:  # a write inside a toolchain (torch.export.save, a compiler) hit a full disk
                self._record_failure(state, stage, started, full.to_dict())
                return self._emit_last(StageFailed(stage=stage, title=full.title, message=full.msg, hint=full.hint), "failed")
            tb = traceback.format_exc()
            self._record_failure(state, stage, started, {"message": "%s: %s" % (type(e).__name__, e), "traceback": tb})
            try:
                self.emit(LogLine(stage=stage, level="error", text=tb))
            except QatError:
                pass
            return self._emit_last(
                StageFailed(
                    stage=stage,
                    title=_("{stage} failed").format(stage=stage),
                    message="%s: %s" % (type(e).__name__, e),
                    hint=_("the traceback is in {path}").format(path=os.path.join(self.run_dir, EVENTS_FILENAME)),
                ),
                "failed",
            )
        self._emit_last(StageFinished(stage=stage, metrics=metrics, seconds=seconds, artifacts=dict(ctx.artifacts)), "finished")
        return "finished"

    def _record_failure(self, state: RunState, stage: str, started: bool, error: Dict[str, Any], cancelled: bool = False) -> None:
        """``state.fail`` when the stage had started; a state file that cannot be written (a full disk)
        keeps its last complete content and the failure is still reported."""
        if not started:
            return
        try:
            kept = state.fail(stage, error, cancelled=cancelled)
            if kept is not None:
                self.emit(LogLine(stage=stage, text=_("this try wrote nothing over the last result of {stage} ({time}): it stays "
                                                      "done for runs with its settings").format(stage=stage, time=kept)))
        except (QatError, OSError) as e:
            try:
                self.emit(LogLine(stage=stage, level="warning", text=_("could not record the failure in state.json: {reason}").format(
                    reason=e)))
            except QatError:
                pass

    def _emit_last(self, event: Event, result: str) -> str:
        """Emit the stage's last event; when the event log breaks on it, the consumer has it anyway."""
        try:
            self.emit(event)
        except QatError:
            pass
        return result
