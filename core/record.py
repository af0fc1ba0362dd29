"""The run record: one fold of the event stream (and of the run's state) into what every view shows -
per stage its status, reason, metrics and when it ran, the artifacts, the epochs, the model check, the
long step running now, the failure and the end of the run.

The wizard's run and results screens, the headless runner and ``qat-tui status`` read the same record,
so they never disagree. A record starts from ``state.json`` (:meth:`RunRecord.from_state`: the latest
result of every stage, also of stages the last invocation did not run) and then applies events as they
come (:meth:`RunRecord.apply`).

Artifact paths in the record are as recorded (relative to the run folder; logs of qat-tui before 0.2
hold absolute ones): :meth:`RunRecord.artifact_path` resolves them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .events import (
    ArtifactWritten,
    CheckAdvice,
    EpochEnd,
    Event,
    Heartbeat,
    PhaseFinished,
    PhaseStarted,
    RunFinished,
    RunStarted,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from .settings import STAGES

STATUSES = ("pending", "running", "finished", "skipped", "stale", "off", "failed", "cancelled", "interrupted")
"""Stage statuses in a record: ``skipped`` = done earlier and still valid, ``stale`` = done earlier but
its inputs or settings changed since, ``interrupted`` = the state says running but no process runs it."""


@dataclass
class RunRecord:
    """Everything the run, results and status views show of one run folder."""

    run_dir: str = ""
    settings_path: str = ""
    device: str = ""
    backend: str = ""
    status: Dict[str, str] = field(default_factory=lambda: {s: "pending" for s in STAGES})
    reasons: Dict[str, str] = field(default_factory=dict)
    metrics: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    finished_at: Dict[str, str] = field(default_factory=dict)  # stage -> "YYYY-mm-ddTHH:MM:SS"
    artifacts: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # name -> path/size/description/stage
    check: Optional[Dict[str, Any]] = None  # passed, summary, items
    epochs: List[EpochEnd] = field(default_factory=list)
    phase: Optional[Tuple[str, str, float]] = None  # (stage, long step, time it started)
    heartbeat: Optional[Heartbeat] = None
    failure: Optional[StageFailed] = None
    finished: Optional[RunFinished] = None

    # ---------------------------------------------------------------------------------- building
    @classmethod
    def from_state(cls, run_dir: str) -> "RunRecord":
        """The latest result of every stage recorded in ``<run_dir>/state.json`` (an empty record when
        there is none or it is unreadable)."""
        from .errors import QatError
        from .state import RunState

        rec = cls(run_dir=os.path.abspath(run_dir))
        try:
            state = RunState.load(run_dir)
        except QatError:
            return rec
        for stage in STAGES:
            s = state.stage(stage)
            status = s.get("status")
            if not status:
                continue
            rec.status[stage] = {"finished": "skipped", "running": "interrupted"}.get(status, status)
            if s.get("finished_at"):
                rec.finished_at[stage] = s["finished_at"]
            if status in ("finished", "stale") and s.get("metrics"):
                rec.metrics[stage] = dict(s["metrics"])
            if status in ("finished", "stale"):
                rec.add_artifacts(stage, s.get("artifacts", {}))
            if s.get("stale_reason"):
                rec.reasons[stage] = s["stale_reason"]
        return rec

    def add_artifacts(self, stage: str, artifacts: Dict[str, Dict[str, Any]]) -> None:
        for name, a in artifacts.items():
            self.artifacts[name] = dict(a, stage=stage)

    def apply(self, e: Event) -> None:
        """Fold one event into the record."""
        if isinstance(e, RunStarted):
            self.run_dir, self.settings_path, self.device, self.backend = e.run_dir, e.settings_path, e.device, e.backend
            self.failure = self.finished = None
        elif isinstance(e, StageStarted):
            self.status[e.stage] = "running"
            self.reasons.pop(e.stage, None)
        elif isinstance(e, StageSkipped):
            self.reasons[e.stage] = e.reason
            if e.status == "stale":
                self.status[e.stage] = "stale"
            elif e.metrics or e.artifacts:
                self.status[e.stage] = "skipped"
            elif e.status in ("failed", "cancelled"):
                self.status[e.stage] = e.status
            else:
                self.status[e.stage] = "off"
            if e.metrics:
                self.metrics[e.stage] = dict(e.metrics)
            if e.finished_at:
                self.finished_at[e.stage] = e.finished_at
            self.add_artifacts(e.stage, e.artifacts)
        elif isinstance(e, StageFinished):
            self.status[e.stage] = "finished"
            self.metrics[e.stage] = dict(e.metrics)
            self.finished_at[e.stage] = _iso(e.t)
            self.add_artifacts(e.stage, e.artifacts)
            self.phase = None
        elif isinstance(e, StageFailed):
            if e.stage in self.status:
                self.status[e.stage] = "cancelled" if e.cancelled else "failed"
            self.failure = e
            self.phase = None
        elif isinstance(e, ArtifactWritten):
            self.artifacts[e.name] = {"path": e.path, "size": e.size, "description": e.description, "stage": e.stage}
        elif isinstance(e, CheckAdvice):
            self.check = {"passed": e.passed, "summary": e.summary, "items": list(e.items)}
        elif isinstance(e, EpochEnd):
            self.epochs.append(e)
        elif isinstance(e, PhaseStarted):
            self.phase = (e.stage, e.name, e.t)
        elif isinstance(e, PhaseFinished):
            self.phase = None
        elif isinstance(e, Heartbeat):
            self.heartbeat = e
        elif isinstance(e, RunFinished):
            self.finished = e
            self.phase = None

    # ----------------------------------------------------------------------------------- reading
    def top1(self, stage: str) -> Optional[float]:
        v = self.metrics.get(stage, {}).get("top1")
        return float(v) if isinstance(v, (int, float)) else None

    def artifact_path(self, name: str) -> Optional[str]:
        """Absolute path of artifact ``name`` in this run folder, or None when not recorded."""
        art = self.artifacts.get(name)
        if not art:
            return None
        return os.path.join(self.run_dir, str(art.get("path") or name))

    def ran_at(self, stage: str) -> str:
        """When the stage's shown result was made, as ``mm-dd HH:MM`` (empty when unknown)."""
        stamp = self.finished_at.get(stage, "")
        return stamp[5:16].replace("T", " ") if len(stamp) >= 16 else stamp

    def accuracy_rows(self) -> List[Dict[str, Any]]:
        """Per stage with a top-1: ``{"stage", "top1", "top5", "drop"}``; drop = float top-1 - stage
        top-1 in points (positive = worse than float; None for float itself or without a float result)."""
        base = self.top1("float")
        rows = []
        for stage in STAGES:
            top1 = self.top1(stage)
            if top1 is None:
                continue
            drop = None if base is None or stage == "float" else base - top1
            rows.append({"stage": stage, "top1": top1, "top5": self.metrics[stage].get("top5"), "drop": drop})
        return rows


def _iso(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


__all__ = ["RunRecord", "STATUSES"]
