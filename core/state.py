"""The run's state file, ``<run_dir>/state.json``: per stage, its status, metrics, artifacts and the
settings it ran with. Starting again on the same run directory reads it to skip finished stages.

Every save writes a temp file and renames it (see :mod:`core.io`): a crash never leaves half a file.

Format (``version`` 1)::

    {"version": 1, "stages": {"float": {
        "status": "finished",            # pending | running | finished | failed | cancelled
        "fingerprint": "3f2a...",        # hash of the settings the stage depends on + its input's result id
        "result_id": "9c1e...",          # changes each time the stage produces new outputs
        "settings": {...},               # the settings subset it ran with (for "what changed" messages)
        "metrics": {"top1": 27.1, ...},
        "artifacts": {"float-checkpoint.ckpt": {"path": "...", "size": 9200000, "description": "..."}},
        "seconds": 61.2, "started_at": "...", "finished_at": "...", "error": null}}}
"""
from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any, Dict, List, Optional

from .errors import QatError
from .io import atomic_write_json

STATE_FILENAME = "state.json"
STATE_VERSION = 1


class RunState:
    """Read/modify/write access to ``state.json`` of one run directory."""

    def __init__(self, run_dir: str, data: Optional[Dict[str, Any]] = None) -> None:
        self.run_dir = run_dir
        self.data: Dict[str, Any] = data or {"version": STATE_VERSION, "stages": {}}

    @property
    def path(self) -> str:
        return os.path.join(self.run_dir, STATE_FILENAME)

    @classmethod
    def load(cls, run_dir: str) -> "RunState":
        """The state of ``run_dir``; an empty state when there is none yet.

        Raises:
            QatError: the file exists but is not valid JSON or has a newer version.
        """
        path = os.path.join(run_dir, STATE_FILENAME)
        if not os.path.exists(path):
            return cls(run_dir)
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise QatError(
                "the state file %s is unreadable (%s)" % (path, e),
                hint="move it away to start the pipeline over; checkpoints in the folder are kept",
                title="Run state",
            ) from None
        if not isinstance(data, dict) or int(data.get("version", 0)) > STATE_VERSION:
            raise QatError(
                "the state file %s is from a newer qat-tui (version %s)" % (path, data.get("version")),
                hint="use the newer qat-tui for this run directory, or start a new one",
                title="Run state",
            )
        data.setdefault("stages", {})
        return cls(run_dir, data)

    def save(self) -> None:
        os.makedirs(self.run_dir, exist_ok=True)
        atomic_write_json(self.path, self.data)

    # ---------------------------------------------------------------------------------- accessors
    def stage(self, name: str) -> Dict[str, Any]:
        """The record of ``name`` (an empty dict when it never ran)."""
        return self.data["stages"].get(name, {})

    def status(self, name: str) -> str:
        return self.stage(name).get("status", "pending")

    def finished_stages(self) -> List[str]:
        return [s for s, rec in self.data["stages"].items() if rec.get("status") == "finished"]

    # ---------------------------------------------------------------------------------- transitions
    def start(self, name: str, fingerprint: str, settings: Dict[str, Any]) -> None:
        self.data["stages"][name] = {
            "status": "running",
            "fingerprint": fingerprint,
            "settings": settings,
            "metrics": {},
            "artifacts": {},
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "pid": os.getpid(),
        }
        self.save()

    def finish(self, name: str, metrics: Dict[str, Any], artifacts: Dict[str, Dict[str, Any]], seconds: float) -> None:
        rec = self.data["stages"].setdefault(name, {})
        rec.update(
            status="finished",
            metrics=metrics,
            artifacts=artifacts,
            seconds=round(seconds, 3),
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
            result_id=uuid.uuid4().hex,
            error=None,
        )
        rec.pop("pid", None)
        self.save()

    def fail(self, name: str, error: Dict[str, Any], cancelled: bool = False) -> None:
        rec = self.data["stages"].setdefault(name, {})
        rec.update(status="cancelled" if cancelled else "failed", error=error, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        rec.pop("pid", None)
        self.save()

    def invalidate(self, name: str, reason: str) -> None:
        """Mark a finished stage stale (its inputs changed); it reruns next time."""
        rec = self.data["stages"].get(name)
        if rec:
            rec["status"] = "stale"
            rec["stale_reason"] = reason
            self.save()
