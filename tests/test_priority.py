"""The training process the wizard starts runs below the wizard's CPU priority (``[run] nice``), so
the wizard keeps answering keys while a stage trains on every core; a foreground ``qat-tui run`` keeps
its priority unless given ``--nice``. Nothing here is timed: ``benchmarks/responsiveness.py`` measures
the key-to-paint latency this buys."""
from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any, Dict, List, Optional

import pytest

from core import settings as S
from core import threads

from .conftest import TORCH_BACKEND, tiny_settings_dict

SIZE = (80, 24)
linux_only = pytest.mark.skipif(
    not (hasattr(os, "nice") and os.path.exists("/proc/self/task")),
    reason="reads thread niceness from /proc (Linux only); elsewhere the worker's priority is left as it is",
)


def _nice_of(pid: int, tid: Optional[int] = None) -> Optional[int]:
    """Field 19 (nice) of /proc/PID/stat, or of one thread's /proc/PID/task/TID/stat; None when gone."""
    path = "/proc/%d/stat" % pid if tid is None else "/proc/%d/task/%d/stat" % (pid, tid)
    try:
        with open(path) as f:
            return int(f.read().rsplit(")", 1)[1].split()[16])
    except (OSError, IndexError, ValueError):
        return None


def _threads_nice(pid: int) -> Dict[int, int]:
    """{thread id: niceness} of every thread of ``pid`` now."""
    out = {}
    try:
        tids = [int(t) for t in os.listdir("/proc/%d/task" % pid)]
    except OSError:
        return out
    for tid in tids:
        n = _nice_of(pid, tid)
        if n is not None:
            out[tid] = n
    return out


def _autogroup_nice(pid: int) -> Optional[int]:
    """The niceness of the process's autogroup (/proc/PID/autogroup), None without one."""
    try:
        with open("/proc/%d/autogroup" % pid) as f:
            return int(f.read().split("nice")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the worker leads its own session (and its loader processes)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _spy_on_launcher(monkeypatch: Any) -> List[Any]:
    """Record the (pid, offset) of every worker the wizard starts (the app imports the launcher when
    it starts a run, so patching the module's attribute catches it)."""
    import core.worker

    real = core.worker.start_detached
    started: List[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(core.worker, "start_detached", spy)
    return started


def _worker_log(run_dir: str) -> str:
    try:
        with open(os.path.join(run_dir, "worker.log"), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


@linux_only
@pytest.mark.timeout(300)
async def test_the_worker_the_wizard_starts_runs_at_the_configured_niceness(cifar_python_root: str, tmp_path: Any,
                                                                           monkeypatch: Any) -> None:
    """Every thread of the worker (torch's OpenMP threads included, once it trains) runs at
    ``[run] nice``; the wizard's own process keeps its priority; the niceness is in worker.log and, where
    the torch backend trains, in the run's event log."""
    from qat_tui.app import QatApp

    mine = os.nice(0)
    want = max(7, mine)  # a test run already niced further keeps its niceness (it can only go down)
    settings = S.validate(tiny_settings_dict(cifar_python_root, str(tmp_path / "run"), run={"nice": 7},
                                             float={"epochs": 20}))
    run_dir = settings.run_path()
    started = _spy_on_launcher(monkeypatch)
    app = QatApp(settings=settings, detect=False)
    pid = None
    seen: Dict[int, int] = {}
    try:
        async with app.run_test(size=SIZE) as pilot:
            assert app.start_run(settings)
            pid = started[0][0]
            # the worker lowers itself right after reading its settings
            deadline = time.time() + 120
            while _nice_of(pid) != want:
                assert time.time() < deadline, "worker still at nice %s" % _nice_of(pid)
                assert _nice_of(pid) is not None, "the worker exited: %s" % _worker_log(run_dir)
                await pilot.pause(0.05)
            # from then on, every thread it has - until it trains (or, without the torch backend, ends)
            run = app.run_screen
            deadline = time.time() + 180
            while run.running and run.last_progress is None and time.time() < deadline:
                seen.update(_threads_nice(pid))
                await pilot.pause(0.1)
            seen.update(_threads_nice(pid))
            group = _autogroup_nice(pid)
            if TORCH_BACKEND:
                assert run.last_progress is not None, "no training progress: %s" % _worker_log(run_dir)
            assert os.nice(0) == mine  # the wizard's process kept its priority
    finally:
        if pid is not None:
            _kill(pid)
    assert seen and set(seen.values()) == {want}, seen
    # it leads a session of its own: where Linux groups the CPU by session (autogroup), that group too
    assert group in (None, want), group
    assert re.search(r"worker pid %d at nice %d( \(autogroup nice %d\))? running %s"
                     % (pid, want, want, re.escape(run_dir)), _worker_log(run_dir)), _worker_log(run_dir)
    if TORCH_BACKEND:
        assert len(seen) > 1, seen  # torch's threads were there, and inherited it
        with open(os.path.join(run_dir, "events.jsonl"), encoding="utf-8") as f:
            lines = [json.loads(line).get("text", "") for line in f]
        assert [t for t in lines if t.startswith("CPU: ") and "at nice %d ([run] nice)" % want in t], lines


@linux_only
@pytest.mark.timeout(120)
def test_nice_0_keeps_the_worker_at_the_launchers_priority(tmp_path: Any) -> None:
    from core.worker import start_detached

    settings = S.preset("quick", data={"root": str(tmp_path / "no-data")}, run={"run_dir": str(tmp_path / "run"), "nice": 0})
    run_dir = settings.run_path()
    os.makedirs(run_dir)
    S.save(settings, os.path.join(run_dir, S.SETTINGS_FILENAME))
    pid, _offset = start_detached(run_dir)
    try:
        deadline = time.time() + 90
        while " at nice " not in _worker_log(run_dir):
            assert time.time() < deadline, _worker_log(run_dir)
            time.sleep(0.05)
        assert _nice_of(pid) in (os.nice(0), None)  # None: already finished (no data)
    finally:
        _kill(pid)
    mine = os.nice(0)
    assert re.search(r"worker pid %d at nice %d( \(autogroup nice 0\))? running" % (pid, mine),
                     _worker_log(run_dir)), _worker_log(run_dir)


def test_a_foreground_run_keeps_its_priority_unless_given_nice(tmp_path: Any, monkeypatch: Any) -> None:
    """``qat-tui run`` in the terminal has no wizard to keep responsive: [run] nice (default 10) does
    not lower it; ``--nice N`` does (and --detach writes N into the run's settings)."""
    import core.worker
    import qat_tui.headless
    from qat_tui.cli import main

    calls: List[Any] = []
    monkeypatch.setattr(qat_tui.headless, "run_headless", lambda settings, **kw: calls.append((settings, kw)) or 0)
    config = str(tmp_path / "q.toml")
    S.save(S.preset("quick", run={"run_dir": str(tmp_path / "run")}), config)
    assert main(["run", "--config", config]) == 0
    assert calls[-1][1]["nice"] is None and calls[-1][0].run.nice == 10
    assert main(["run", "--config", config, "--nice", "5"]) == 0
    assert calls[-1][1]["nice"] == 5 and calls[-1][0].run.nice == 5
    assert main(["run", "--config", config, "--nice", "20"]) == 2  # 0..19, refused naming the key

    detached: List[Any] = []
    monkeypatch.setattr(core.worker, "start_detached", lambda run_dir, **kw: detached.append(run_dir) or (4242, 0))
    assert main(["run", "--config", config, "--detach", "--nice", "3"]) == 0
    assert S.load(os.path.join(detached[-1], S.SETTINGS_FILENAME)).run.nice == 3


def test_run_headless_lowers_only_when_asked(tmp_path: Any, monkeypatch: Any) -> None:
    """run_headless calls core.threads.lower_priority only for an explicit ``nice`` (patched here: a
    test process must not lower its own priority for good)."""
    from qat_tui.headless import run_headless

    lowered: List[int] = []
    monkeypatch.setattr(threads, "lower_priority", lambda n: lowered.append(n) or n)
    settings = S.preset("quick", data={"root": str(tmp_path / "no-data")}, run={"run_dir": str(tmp_path / "run")})
    assert run_headless(settings, stages=["float"]) != 0  # no data: fails, quickly
    assert lowered == []
    assert run_headless(settings, stages=["float"], nice=4) != 0
    assert lowered == [4]


def test_lower_priority_never_raises_it(monkeypatch: Any) -> None:
    calls: List[int] = []
    state = {"nice": 5}

    def fake_nice(inc: int) -> int:
        calls.append(inc)
        state["nice"] += inc
        return state["nice"]

    groups: List[int] = []
    monkeypatch.setattr(os, "nice", fake_nice, raising=False)
    monkeypatch.setattr(threads, "_lower_autogroup", groups.append)
    monkeypatch.setattr(os, "getsid", lambda pid: os.getpid() + 1, raising=False)
    assert threads.lower_priority(3) == 5 and calls == [0]  # already lower: kept
    assert threads.lower_priority(10) == 10 and calls[-1] == 5
    assert groups == []  # inside another session (a shell's): its autogroup is left alone
    monkeypatch.setattr(os, "getsid", lambda pid: os.getpid(), raising=False)
    assert threads.lower_priority(12) == 12 and groups == [12]  # leading its own session, as the worker does
    monkeypatch.delattr(os, "nice")
    assert threads.lower_priority(10) is None  # no nice() here (Windows): nothing done


def test_busy_cores_counts_niced_processes(monkeypatch: Any) -> None:
    """The governor's load includes /proc/stat's nice column: a niced qat-tui worker (or any niced
    job) still counts as busy for the runs around it, and a niced run's own time as its own."""
    import io

    ticks = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    clock = {"t": 100.0}
    cpu = {"nice": 0, "own": 0}

    def fake_open(path: str, *args: Any, **kwargs: Any) -> Any:
        if path == "/proc/stat":  # cpu  user nice system idle iowait irq softirq steal
            return io.StringIO("cpu  1000 %d 100 5000 0 0 0 0 0 0\n" % cpu["nice"])
        if path == "/proc/self/stat":  # pid (comm) state ... utime(14) stime cutime cstime
            return io.StringIO("1 (python x) R " + " ".join(["0"] * 10) + " %d 0 0 0 20 10" % cpu["own"])
        raise AssertionError(path)

    monkeypatch.setattr(threads, "open", fake_open, raising=False)
    monkeypatch.setattr(threads, "_children_busy", lambda pid: 0.0)
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["t"])
    busy = threads.BusyCores()
    clock["t"] += 2.0
    cpu["nice"] += int(2 * 2 * ticks)  # two cores busy at nice > 0 for 2 s: another process's
    assert abs(busy.sample() - 2.0) < 0.01
    assert threads.plan(2, 0, 2.0).threads == 1
    clock["t"] += 2.0
    cpu["nice"] += int(2 * 2 * ticks)  # the same, now this (niced) process's own time
    cpu["own"] += int(2 * 2 * ticks)
    assert abs(busy.sample()) < 0.01
