"""CPU threads when runs share the machine (core.threads): the plan from cores, other runs and load,
and the governor that re-plans while a run trains. The throughput itself is measured by
benchmarks/contention.py, never here."""
import pytest

from core import threads
from core.runs import RunLock, register_run


@pytest.mark.parametrize("cores,others,busy,want,policy", [
    (2, 0, 0.0, 2, None),         # alone: every core, OpenMP's default
    (2, 0, 0.3, 2, None),         # an editor or a shell: still alone
    (2, 1, 1.0, 1, "PASSIVE"),    # another qat-tui run: the cores are shared
    (2, 0, 2.0, 1, "PASSIVE"),    # another process keeps both cores busy
    (8, 1, 4.0, 4, "PASSIVE"),    # the other run's share is its own, not extra load
    (16, 3, 12.0, 4, "PASSIVE"),
    (8, 0, 0.7, 7, "PASSIVE"),
])
def test_plan_shares_the_cores(cores, others, busy, want, policy):
    choice = threads.plan(cores, others, busy)
    assert (choice.threads, choice.wait_policy) == (want, policy), choice


def test_fixed_threads_are_kept():
    assert threads.plan(2, 3, 2.0, fixed=2).threads == 2


def test_governor_gives_up_cores_when_another_run_starts(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(threads, "cores", lambda: 4)
    monkeypatch.setattr(threads.ThreadGovernor, "_others_busy", lambda self: 0.0)
    before = torch.get_num_threads()
    lines = []
    gov = threads.ThreadGovernor(str(tmp_path / "mine"), log=lines.append)
    try:
        assert gov.maybe_adjust(force=True).threads == 4
        other = str(tmp_path / "other")
        lock = RunLock(other).acquire()  # another run holds its folder, as a worker does
        register_run(other)
        assert gov.maybe_adjust() is None  # not due yet: re-plans only every RECHECK_S seconds
        assert gov.maybe_adjust(force=True).threads == 2 and torch.get_num_threads() == 2
        assert "CPU threads 4 -> 2" in lines[-1] and "1 other qat-tui run" in lines[-1]
        lock.release()
        assert gov.maybe_adjust(force=True).threads == 4
    finally:
        torch.set_num_threads(before)


def test_busy_cores_counts_other_programs():
    """A process that is not ours (started through a shell, so its parent is not this process) keeps
    a core busy: the sample sees it. This process's own children (data-loader workers) are its own."""
    import os
    import signal
    import subprocess
    import sys
    import time

    b = threads.BusyCores()
    spin = "import time\nt = time.time()\nwhile time.time() - t < 120: pass"
    shell = subprocess.Popen(["sh", "-c", "%s -c '%s' & wait" % (sys.executable, spin)], start_new_session=True)
    try:
        # sample windows of 0.5 s until one sees the spinner (a busy machine may give it a core only now
        # and then): a generous deadline instead of one fixed wait
        deadline, seen = time.time() + 90, 0.0
        while time.time() < deadline and seen <= 0.2:
            time.sleep(0.5)
            seen = max(seen, b.sample())
        assert seen > 0.2, seen  # a busy machine still gives the spinner a good part of a core
    finally:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
