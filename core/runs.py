"""Run directories seen from outside the pipeline: who is writing one, which runs exist, what they did.

* A lock file ``<run_dir>/run.lock`` held with ``fcntl.flock`` by the process that runs the pipeline:
  two runs never write the same run directory, and the lock disappears with its process (also after
  ``kill -9`` or a power loss), so a stale lock never blocks a resume. The file also holds the owner's
  pid, host and start time as JSON, for ``qat-tui status``.
* A registry of run directories (``runs.json`` under platformdirs' user state folder, or
  ``$QAT_TUI_STATE_DIR``) so that ``qat-tui status`` / ``attach`` and the wizard's first screen find runs
  started from any folder.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .errors import DiskFullError, RunLockedError
from .i18n import _
from .io import atomic_write_json

LOCK_FILENAME = "run.lock"
REGISTRY_FILENAME = "runs.json"

try:  # POSIX; Horizon's dockers and this project's machines are Linux
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class RunLock:
    """Exclusive lock on a run directory, held for the life of the process (or until :meth:`release`).

    Raises:
        RunLockedError: another live process holds it (its pid is in the message).
        DiskFullError: the lock file cannot be written (no space left).
    """

    def __init__(self, run_dir: str) -> None:
        self.run_dir = os.path.abspath(run_dir)
        self.path = os.path.join(self.run_dir, LOCK_FILENAME)
        self._fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        from .io import disk_full_error

        try:
            os.makedirs(self.run_dir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            full = disk_full_error(self.path, e)
            if full is not None:
                raise full from None
            raise
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                holder = lock_holder(self.run_dir) or {}
                raise RunLockedError(
                    _("{path} is being written by another run (pid {pid} on {host}, started {started})").format(
                        path=self.run_dir, pid=holder.get("pid", "?"), host=holder.get("host", "?"),
                        started=holder.get("started", "?")),
                    hint=_("attach to it (qat-tui attach {path}) or stop it first; two runs never share a run directory").format(
                        path=self.run_dir),
                ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(info).encode())
            os.fsync(fd)
        except OSError as e:
            os.close(fd)  # releases the lock
            full = disk_full_error(self.path, e)
            if full is not None:
                raise full from None
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def lock_holder(run_dir: str) -> Optional[Dict[str, Any]]:
    """``{"pid", "host", "started"}`` of the live process holding the run's lock, else None."""
    path = os.path.join(run_dir, LOCK_FILENAME)
    if not os.path.exists(path):
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                pass  # held exclusively by a live process: read who
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None  # nobody holds it
        data = os.read(fd, 4096).decode("utf-8", "replace")
    finally:
        os.close(fd)
    try:
        return json.loads(data) if data.strip() else {"pid": None}
    except ValueError:
        return {"pid": None}


def is_running(run_dir: str) -> bool:
    return lock_holder(run_dir) is not None


# ------------------------------------------------------------------------------------ run settings

def is_run_folder(folder: str) -> bool:
    """Whether ``folder`` holds a qat-tui run (its state or event log)."""
    return any(os.path.exists(os.path.join(folder, n)) for n in ("state.json", "events.jsonl"))


def load_run_settings(path: str) -> Tuple[Any, Optional[str]]:
    """The settings of a run folder, or of a settings TOML file.

    A ``settings.toml`` inside a run folder runs *that* folder, whatever its ``[run] run_dir`` says:
    after ``mv run run-moved`` (or a copy), ``run_dir`` still names the old place, and following it
    would retrain in - or read the files of - another folder.

    Returns:
        ``(settings, note)``; ``note`` says which folder is used when ``run_dir`` named another, else
        None.

    Raises:
        SettingsError: the path does not exist, or its settings are missing or invalid.
    """
    from . import settings as S
    from .errors import SettingsError

    if not os.path.exists(path):
        raise SettingsError(
            _("{path} does not exist").format(path=path),
            hint=_("give a run directory (it holds settings.toml) or a settings TOML file "
                   "(qat-tui preset quick -o FILE writes one)"),
        )
    file = os.path.join(path, S.SETTINGS_FILENAME) if os.path.isdir(path) else path
    settings = S.load(file)
    folder = os.path.dirname(os.path.abspath(file))
    if os.path.basename(file) == S.SETTINGS_FILENAME and is_run_folder(folder) and settings.run_path() != folder:
        note = _("{file} is in the run folder {folder} (moved or copied from {old}): running there").format(
            file=os.path.basename(file), folder=folder, old=settings.run_path())
        data = settings.model_dump()
        data["run"]["run_dir"] = folder
        return S.validate(data, source=file), note
    return settings, None


# ------------------------------------------------------------------------------------------ registry

def state_dir() -> str:
    """Folder for qat-tui's own state (``$QAT_TUI_STATE_DIR``, else platformdirs' user state dir)."""
    env = os.environ.get("QAT_TUI_STATE_DIR")
    if env:
        return env
    from platformdirs import user_state_dir

    return user_state_dir("qat-tui", appauthor=False)


def _registry_path() -> str:
    return os.path.join(state_dir(), REGISTRY_FILENAME)


def _read_registry() -> List[Dict[str, Any]]:
    try:
        with open(_registry_path(), "r", encoding="utf-8") as f:
            data = json.load(f)
        return [r for r in data.get("runs", []) if isinstance(r, dict) and "run_dir" in r]
    except (OSError, ValueError):
        return []


def register_run(run_dir: str) -> None:
    """Remember ``run_dir`` (most recent first) for status/attach; never fails the run if it cannot."""
    run_dir = os.path.abspath(run_dir)
    runs = [r for r in _read_registry() if r["run_dir"] != run_dir]
    runs.insert(0, {"run_dir": run_dir, "last_started": time.strftime("%Y-%m-%d %H:%M:%S")})
    try:
        os.makedirs(state_dir(), exist_ok=True)
        atomic_write_json(_registry_path(), {"version": 1, "runs": runs[:200]})
    except (OSError, DiskFullError):  # the registry is a convenience: a full disk there is not the run's problem
        pass


@dataclass
class RunInfo:
    """One run directory as ``qat-tui status`` shows it."""

    run_dir: str
    running: bool
    pid: Optional[int]
    last_started: str = ""
    stages: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # stage -> status, top1, seconds, finished_at


def describe_run(run_dir: str, last_started: str = "") -> RunInfo:
    """One run folder as ``qat-tui status`` shows it: every stage's latest result from its state
    (the same fold the run and results screens use, :class:`core.record.RunRecord`)."""
    from .record import RunRecord
    from .state import RunState

    holder = lock_holder(run_dir)
    try:
        RunState.load(run_dir)  # an unreadable state file is shown, not fatal for the listing
    except Exception as e:
        return RunInfo(run_dir, holder is not None, (holder or {}).get("pid"), last_started,
                       {"state": {"status": "unreadable: %s" % e}})
    record = RunRecord.from_state(run_dir)
    stages = {
        name: {
            "status": {"skipped": "finished"}.get(status, status) if holder is None or status != "interrupted" else "running",
            "top1": record.top1(name),
            "finished_at": record.finished_at.get(name, ""),
        }
        for name, status in record.status.items()
        if status != "pending"
    }
    return RunInfo(run_dir, holder is not None, (holder or {}).get("pid"), last_started, stages)


def running_run_dirs() -> List[str]:
    """Registered run folders whose lock a live process holds (cheap: no state file is read)."""
    return [r["run_dir"] for r in _read_registry() if lock_holder(r["run_dir"]) is not None]


def list_runs(extra_dirs: Optional[List[str]] = None) -> List[RunInfo]:
    """Registered runs that still exist (plus ``extra_dirs``), running ones first."""
    seen = set()
    out = []
    entries = [{"run_dir": os.path.abspath(d), "last_started": ""} for d in (extra_dirs or [])] + _read_registry()
    for r in entries:
        d = r["run_dir"]
        if d in seen or not os.path.isdir(d):
            continue
        seen.add(d)
        out.append(describe_run(d, r.get("last_started", "")))
    out.sort(key=lambda i: (not i.running,))
    return out
