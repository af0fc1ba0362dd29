"""Typed events that stages emit while they run.

The wizard and the headless runner are both consumers of the same stream: the pipeline calls
``emit(event)`` from its worker thread, the consumer decides how to show it. Every event serialises to
one JSON object (``to_dict``) with ``"v"`` (format version) and ``"type"`` (class name), so the stream
can be written append-only to ``events.jsonl`` in the run directory and read back (``from_dict``).

Units: times in seconds, throughput in images/s, accuracies in percent (0-100), sizes in bytes.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .i18n import _

EVENT_VERSION = 1


@dataclass
class Event:
    """Base class; ``t`` is the wall-clock time (``time.time()``) the event was made."""

    t: float = field(default_factory=time.time)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["v"] = EVENT_VERSION
        d["type"] = type(self).__name__
        return d


@dataclass
class RunStarted(Event):
    """The pipeline starts: which stages will run, where, with which settings file."""

    run_dir: str = ""
    stages: List[str] = field(default_factory=list)
    settings_path: str = ""
    backend: str = ""
    device: str = ""


@dataclass
class StageStarted(Event):
    """A stage starts. ``inputs`` names the checkpoint(s) it loads, ``summary`` says what it does."""

    stage: str = ""
    inputs: List[str] = field(default_factory=list)
    summary: str = ""


@dataclass
class StageSkipped(Event):
    """A stage is not run: already finished with the same settings (results shown), disabled, or not
    requested this time. ``status`` is what the run's state says of it (``finished``, ``stale``: its
    result no longer fits its inputs or settings, ``failed``, ``cancelled``, or ``""`` when it never
    ran), ``finished_at`` when its last result was made (``YYYY-mm-ddTHH:MM:SS``); ``metrics`` and
    ``artifacts`` are that result's (artifact paths are relative to the run folder)."""

    stage: str = ""
    reason: str = ""
    metrics: Dict[str, Any] = field(default_factory=dict)
    artifacts: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    status: str = ""
    finished_at: str = ""


@dataclass
class StageFinished(Event):
    """A stage ended well. ``metrics`` holds top1/top5 (percent) and stage-specific figures."""

    stage: str = ""
    metrics: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    artifacts: Dict[str, Dict[str, Any]] = field(default_factory=dict)


@dataclass
class StageFailed(Event):
    """A stage failed: ``message`` says what went wrong, ``hint`` what to do."""

    stage: str = ""
    title: str = "Error"
    message: str = ""
    hint: Optional[str] = None
    cancelled: bool = False
    settings_error: bool = False  # the fix is in the settings, model or data (errors.is_input_error): exit code 2


@dataclass
class BatchProgress(Event):
    """Progress inside an epoch. ``phase`` is train, eval or calib; epochs count from 1."""

    stage: str = ""
    phase: str = "train"
    epoch: int = 1
    epochs: int = 1
    batch: int = 0
    batches: int = 0
    images_per_s: float = 0.0
    loss: Optional[float] = None


@dataclass
class EpochEnd(Event):
    """One epoch (or one evaluation) is done: train loss, test top-1/top-5 (percent), learning rate."""

    stage: str = ""
    epoch: int = 1
    epochs: int = 1
    train_loss: Optional[float] = None
    top1: float = 0.0
    top5: float = 0.0
    lr: Optional[float] = None
    best: bool = False
    seconds: float = 0.0


@dataclass
class LogLine(Event):
    """A line of text for the log panel; ``level`` is info, warning or error."""

    stage: Optional[str] = None
    level: str = "info"
    text: str = ""


@dataclass
class ArtifactWritten(Event):
    """A file was written: its name, path (relative to the run folder; logs of qat-tui before 0.2 hold
    absolute paths), size in bytes, and what it is for."""

    stage: str = ""
    name: str = ""
    path: str = ""
    size: int = 0
    description: str = ""


@dataclass
class CheckAdvice(Event):
    """The model check's verdict and per-op advice, shown the way Horizon's ``check_model`` is.

    ``items`` are dicts with keys ``op``, ``node``, ``module``, ``status`` (int8, float, or
    int8-in/float-out), ``reason`` and ``suggestion``.
    """

    stage: str = ""
    passed: bool = True
    summary: str = ""
    items: List[Dict[str, Any]] = field(default_factory=list)


@dataclass
class PhaseStarted(Event):
    """A long step inside a stage starts - torch.export + prepare, convert, the AOTInductor build,
    Horizon's compile - during which no batch progress comes; ``name`` says what runs."""

    stage: str = ""
    name: str = ""


@dataclass
class PhaseFinished(Event):
    """The long step ``name`` ended after ``seconds``."""

    stage: str = ""
    name: str = ""
    seconds: float = 0.0


@dataclass
class Heartbeat(Event):
    """The run is alive: sent when nothing else was sent for ``HEARTBEAT_S`` seconds (a long phase, a
    very slow batch). ``phase`` is the long step running (empty between phases); ``elapsed`` the
    seconds since it (or else the stage) started."""

    stage: str = ""
    phase: str = ""
    elapsed: float = 0.0


HEARTBEAT_S = 5.0
"""Seconds without any event after which the pipeline sends a :class:`Heartbeat`."""


@dataclass
class RunFinished(Event):
    """The pipeline ended: ``ok`` when every stage finished or was skipped as already done."""

    ok: bool = True
    cancelled: bool = False
    seconds: float = 0.0
    failed_stage: Optional[str] = None


EVENT_TYPES: Dict[str, type] = {
    cls.__name__: cls
    for cls in (
        RunStarted,
        StageStarted,
        StageSkipped,
        StageFinished,
        StageFailed,
        BatchProgress,
        EpochEnd,
        LogLine,
        ArtifactWritten,
        CheckAdvice,
        PhaseStarted,
        PhaseFinished,
        Heartbeat,
        RunFinished,
    )
}

Emit = Callable[[Event], None]
"""The consumer callback: called from the pipeline's thread for each event, must not block long."""


def from_dict(d: Dict[str, Any]) -> Event:
    """Rebuild an event from :meth:`Event.to_dict` output.

    Raises:
        ValueError: unknown type, or a format version newer than this code understands.
    """
    if int(d.get("v", 0)) > EVENT_VERSION:
        raise ValueError(_("event format v{found} is newer than this qat-tui (v{known})").format(found=d.get("v"), known=EVENT_VERSION))
    cls = EVENT_TYPES.get(d.get("type", ""))
    if cls is None:
        raise ValueError(_("unknown event type {type}").format(type=repr(d.get("type"))))
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})
