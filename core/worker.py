"""The pipeline in its own process, detached from the terminal.

``start_detached(run_dir)`` starts ``python -m core.worker RUN_DIR`` in a new session (``setsid``): a
hang-up of the terminal or of SSH does not reach it, and closing the wizard does not end it. The worker

* refuses a run directory another process holds (exit code 3; the pipeline itself takes the lock,
  :class:`core.runs.RunLock`);
* reads ``<run_dir>/settings.toml`` and runs the pipeline, which appends every event to
  ``<run_dir>/events.jsonl``; its own stdout/stderr (toolchain prints, tracebacks) go to
  ``<run_dir>/worker.log``;
* stops cleanly at the next batch on SIGTERM or SIGINT (recorded as cancelled) and ignores SIGHUP;
* lowers its own CPU priority to ``[run] nice`` (default 10; :func:`core.threads.lower_priority`)
  before torch starts its threads, so the wizard that follows it stays responsive while it trains.

Consumers (the wizard's run screen, ``qat-tui attach``) follow ``events.jsonl`` with
:class:`EventFollower`. Exit codes: 0 done, 1 a stage failed or was cancelled, 2 bad settings,
3 the run directory is locked.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any, List, Optional, Tuple

from .i18n import ENV_VAR, _, get_language, resolve_lang, set_language
from .events import Event, RunFinished, RunStarted, StageFailed, from_dict
from .pipeline import EVENTS_FILENAME
from .settings import SETTINGS_FILENAME

WORKER_LOG = "worker.log"


def start_detached(run_dir: str, stages: Optional[List[str]] = None, force: bool = False) -> Tuple[int, int]:
    """Start the worker for ``run_dir`` (its ``settings.toml`` must exist) in a new session.

    Returns:
        ``(pid, offset)``: the worker's pid and the size of ``events.jsonl`` before it started, the
        offset from which to follow this run's events.
    """
    run_dir = os.path.abspath(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    events = os.path.join(run_dir, EVENTS_FILENAME)
    offset = os.path.getsize(events) if os.path.exists(events) else 0
    cmd = [sys.executable, "-m", "core.worker", run_dir]
    for s in stages or []:
        cmd += ["--stage", s]
    if force:
        cmd.append("--force")
    log = open(os.path.join(run_dir, WORKER_LOG), "ab")
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env[ENV_VAR] = get_language()  # the worker's messages in the wizard's language
    # make `core` importable in the child however this process found it
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
    finally:
        log.close()
    return proc.pid, offset


class EventFollower:
    """Reads ``events.jsonl`` incrementally: complete lines only, from a byte offset.

    Args:
        run_dir: the run directory.
        offset: byte offset to start at (0: the whole history; see :meth:`last_run_offset`).
    """

    def __init__(self, run_dir: str, offset: int = 0) -> None:
        self.path = os.path.join(run_dir, EVENTS_FILENAME)
        self.offset = offset
        self._partial = b""

    @staticmethod
    def last_run_offset(run_dir: str) -> int:
        """Byte offset of the last run's first event (its RunStarted, or a setup failure)."""
        path = os.path.join(run_dir, EVENTS_FILENAME)
        if not os.path.exists(path):
            return 0
        offset = pos = 0
        with open(path, "rb") as f:
            for line in f:
                try:
                    t = json.loads(line).get("type")
                except ValueError:
                    t = None
                if t == "RunStarted" or (t == "StageFailed" and b'"stage": "setup"' in line):
                    offset = pos
                pos += len(line)
        return offset

    def poll(self) -> List[Event]:
        """Events appended since the last call (never a half-written line)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when data ended with a newline
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                out.append(from_dict(json.loads(line)))
            except ValueError:
                continue  # an event type from a newer version: skipped, never fatal
        return out


def pid_alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def request_cancel(run_dir: str) -> bool:
    """Ask the run's worker to stop at its next batch (SIGTERM). False when no worker holds the run."""
    from .runs import lock_holder

    holder = lock_holder(run_dir) or {}
    pid = holder.get("pid")
    if not pid_alive(pid):
        return False
    os.kill(int(pid), signal.SIGTERM)
    return True


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.worker", description="Run a qat-tui pipeline in this process.")
    p.add_argument("run_dir")
    p.add_argument("--stage", action="append")
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    run_dir = os.path.abspath(a.run_dir)
    set_language(resolve_lang())  # QAT_TUI_LANG from the process that started it, else the locale

    from . import settings as S
    from .errors import QatError
    from .pipeline import Pipeline

    cancel = threading.Event()

    def on_signal(_sig: int, _frm: Any) -> None:
        cancel.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    from .runs import is_running

    if is_running(run_dir):
        from .runs import lock_holder

        _say(_("{path} is being written by another run (pid {pid})").format(
            path=run_dir, pid=(lock_holder(run_dir) or {}).get("pid")))
        return 3
    try:
        settings = S.load(os.path.join(run_dir, SETTINGS_FILENAME))  # run_dir is the folder given, always
    except QatError as e:
        _append_event(run_dir, StageFailed(stage="setup", title=e.title, message=e.msg, hint=e.hint))
        _append_event(run_dir, RunFinished(ok=False, failed_stage="setup"))
        _say(str(e))
        return 2
    if os.path.abspath(settings.run_path()) != run_dir:
        data = settings.model_dump()
        data["run"]["run_dir"] = run_dir
        settings = S.validate(data)
    # Below the wizard's priority ([run] nice), then threads and OpenMP's wait policy from the runs and
    # load on this machine: both before torch is imported, so its threads inherit the niceness.
    from .threads import apply_wait_policy, autogroup_nice, choose_at_start, lower_priority

    nice = lower_priority(settings.run.nice)
    plan = choose_at_start(run_dir, settings.run.threads)
    plan.nice = nice
    apply_wait_policy(plan)
    group = autogroup_nice()
    _say(_("worker pid {pid} at nice {nice}{group} running {path} ({why})").format(
        pid=os.getpid(), nice="?" if nice is None else nice,
        group="" if group is None else _(" (autogroup nice {nice})").format(nice=group), path=run_dir, why=plan.reason))
    # Pipeline.run takes the run directory's lock and registers the run.
    ok = Pipeline(settings, cancel=cancel, thread_plan=plan).run(stages=a.stage, force=a.force)
    return 0 if ok else 1


def _append_event(run_dir: str, ev: Event) -> None:
    """Append one event to the run's log; a log that cannot be written (a full disk) is not fatal."""
    try:
        with open(os.path.join(run_dir, EVENTS_FILENAME), "a", encoding="utf-8") as f:
            f.write(json.dumps(ev.to_dict(), ensure_ascii=False) + "\n")
    except OSError:
        pass


def _say(text: str) -> None:
    """A line for worker.log; never fails the worker (the log may sit on a full disk)."""
    try:
        print(text, flush=True)
    except OSError:
        pass


__all__ = ["start_detached", "EventFollower", "request_cancel", "pid_alive", "RunStarted"]

if __name__ == "__main__":
    sys.exit(main())
