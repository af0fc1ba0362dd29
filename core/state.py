"""The run's state file, ``<run_dir>/state.json``: per stage, its status, metrics, artifacts and the
settings it ran with. Starting again on the same run directory reads it to skip finished stages.

Every save writes a temp file and renames it (see :mod:`core.io`): a crash never leaves half a file.

Paths are relative to the run directory, so a run folder that is moved or copied keeps its work and
never reads a file of another run folder. Each artifact records its size and SHA-256 when written: an
output that changed since (emptied, overwritten by another program) makes its stage stale, and a
stage loads an input only when it is still the file its producer wrote.

Format (``version`` 2; version 1 kept absolute paths and no checksums: its paths are read relative to
the folder and its stages count as stale until they run again)::

    {"version": 2, "stages": {"float": {
        "status": "finished",            # pending | running | finished | failed | cancelled | stale
        "fingerprint": "3f2a...",        # hash of the settings the stage depends on + its input's result id
        "result_id": "9c1e...",          # changes each time the stage produces new outputs
        "settings": {...},               # the settings subset it ran with (for "what changed" messages)
        "metrics": {"top1": 27.1, ...},
        "artifacts": {"float-checkpoint.ckpt": {"path": "float-checkpoint.ckpt", "size": 9200000,
                      "sha256": "...", "description": "..."}},
        "seconds": 61.2, "started_at": "...", "finished_at": "...", "error": null}}}
"""
from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

from .errors import QatError
from .i18n import _
from .io import atomic_write_json

STATE_FILENAME = "state.json"
STATE_VERSION = 2


def _migrate_v1(data: Dict[str, Any]) -> None:
    """Version 1 recorded absolute artifact paths: keep the artifact's name, which is its path relative
    to the run folder (never a file of another folder)."""
    for rec in data.get("stages", {}).values():
        for name, art in (rec.get("artifacts") or {}).items():
            if os.path.isabs(str(art.get("path", ""))):
                art["path"] = name
    data["version"] = STATE_VERSION


def artifact_record(run_dir: str, name: str, path: str, description: str) -> Dict[str, Any]:
    """What the state keeps of a file a stage wrote: its path relative to ``run_dir``, size in bytes,
    SHA-256 (files only; a folder gets none) and description.

    Raises:
        ValueError: ``path`` is outside ``run_dir`` (every output lives in the run folder).
    """
    from .io import file_size, sha256_file

    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(run_dir))
    if rel == ".." or rel.startswith(".." + os.sep):
        raise ValueError("artifact %s is outside the run folder %s" % (path, run_dir))
    rec: Dict[str, Any] = {"path": rel, "size": file_size(path), "description": description}
    if os.path.isfile(path):
        rec["sha256"] = sha256_file(path)
    return rec


def artifact_check(run_dir: str, name: str, art: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """``(kind, why)`` when the recorded artifact ``name`` is no longer the file its stage wrote, None
    when it is. ``kind`` (for code): ``missing``, ``unchecked`` (no checksum recorded) or ``changed``
    (other size or content); ``why``: the sentence shown, in the current language."""
    from .io import human_size, sha256_file

    path = os.path.join(run_dir, str(art.get("path") or name))
    if not os.path.exists(path):
        return "missing", _("{name} is missing").format(name=name)
    if os.path.isdir(path):
        return None
    want = art.get("sha256")
    if not want:
        return "unchecked", _("{name} has no recorded checksum (written by an older qat-tui)").format(name=name)
    size = os.path.getsize(path)
    if art.get("size") is not None and size != art["size"]:
        return "changed", _("{name} changed since it was written (now {now}, was {was})").format(
            name=name, now=human_size(size), was=human_size(int(art["size"])))
    if sha256_file(path) != want:
        return "changed", _("{name} changed since it was written (same size, other content)").format(name=name)
    return None


def artifact_problem(run_dir: str, name: str, art: Dict[str, Any]) -> Optional[str]:
    """Why the recorded artifact ``name`` is no longer the file its stage wrote (missing, other size,
    other content, no checksum recorded), or None when it is (:func:`artifact_check`'s sentence)."""
    found = artifact_check(run_dir, name, art)
    return found[1] if found else None


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
                _("the state file {path} is unreadable ({reason})").format(path=path, reason=e),
                hint=_("move it away to start the pipeline over; checkpoints in the folder are kept"),
                title=_("Run state"),
            ) from None
        if not isinstance(data, dict) or int(data.get("version", 1)) > STATE_VERSION:
            raise QatError(
                _("the state file {path} is from a newer qat-tui (version {version})").format(
                    path=path, version=data.get("version") if isinstance(data, dict) else "?"),
                hint=_("use the newer qat-tui for this run directory, or start a new one"),
                title=_("Run state"),
            )
        data.setdefault("stages", {})
        if int(data.get("version", 1)) < STATE_VERSION:
            _migrate_v1(data)
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

    def artifact_path(self, stage: str, name: str) -> Optional[str]:
        """Absolute path of artifact ``name`` of ``stage`` in this run folder (None if not recorded)."""
        art = self.stage(stage).get("artifacts", {}).get(name)
        return os.path.join(self.run_dir, str(art.get("path") or name)) if art else None

    def finished_stages(self) -> List[str]:
        return [s for s, rec in self.data["stages"].items() if rec.get("status") == "finished"]

    # ---------------------------------------------------------------------------------- transitions
    def start(self, name: str, fingerprint: str, settings: Dict[str, Any]) -> None:
        prev = self.data["stages"].get(name) or {}
        last_good = prev if prev.get("status") == "finished" else prev.get("last_good")
        self.data["stages"][name] = {
            "status": "running",
            "fingerprint": fingerprint,
            "settings": settings,
            "metrics": {},
            "artifacts": {},
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "pid": os.getpid(),
        }
        if last_good:  # kept until this try finishes: a try that fails having written nothing restores it
            self.data["stages"][name]["last_good"] = {k: v for k, v in last_good.items() if k != "last_good"}
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
        for key in ("pid", "last_good", "last_try"):
            rec.pop(key, None)
        self.save()

    def fail(self, name: str, error: Dict[str, Any], cancelled: bool = False) -> Optional[str]:
        """Record that the try of ``name`` failed (or was cancelled).

        When the stage had finished before and this try left every output of that result as it was
        (a bad builder, an untraceable model, a cancel before the first checkpoint), that earlier
        result is restored, with this try under ``last_try``: a failed try that wrote nothing does
        not make the next run redo the stage and all that follows.

        Returns:
            The ``finished_at`` of the restored result, or None when the stage is now failed/cancelled.
        """
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        rec = self.data["stages"].setdefault(name, {})
        status = "cancelled" if cancelled else "failed"
        good = rec.get("last_good")
        if good and not any(artifact_problem(self.run_dir, n, a) for n, a in (good.get("artifacts") or {}).items()):
            restored = dict(good, last_try={"status": status, "error": error, "finished_at": now})
            self.data["stages"][name] = restored
            self.save()
            return str(good.get("finished_at", ""))
        rec.update(status=status, error=error, finished_at=now)
        rec.pop("pid", None)
        self.save()
        return None

    def invalidate(self, name: str, reason: str) -> None:
        """Mark a finished stage stale (its inputs changed); it reruns next time."""
        rec = self.data["stages"].get(name)
        if rec:
            rec["status"] = "stale"
            rec["stale_reason"] = reason
            self.save()
