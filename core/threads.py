"""CPU threads for a run that shares the machine with other runs or processes.

Why (measured on 2 cores, issue 7): two torch processes training at once, each with torch's default of
one OpenMP thread per core, ran at 16.5 images/s each against 378 alone - their threads spin while
waiting for each other on cores the other process holds (libgomp spins before it sleeps). With
``OMP_WAIT_POLICY=PASSIVE`` they ran at 275 and 283 (more in total than one alone); alone, PASSIVE
cost about 15%. A team of one thread never waits for another, so splitting the cores between the runs
removes the spinning for qat-tui's own runs, and PASSIVE keeps a run from spinning against a process it
cannot see into.

Policy (:func:`plan`): ``threads = max(1, cores // runs)`` where ``runs`` counts this run, the other
qat-tui runs in progress (their run-folder locks, :mod:`core.runs`) and the cores other processes keep
busy (from ``/proc/stat`` minus this process's own time, rounded to whole cores); ``OMP_WAIT_POLICY``
is ``PASSIVE`` when anything else is there when the worker starts (it must be set before torch starts
OpenMP, so it is chosen once). :class:`ThreadGovernor` re-plans every ``RECHECK_S`` seconds between
batches and calls ``torch.set_num_threads`` when the answer changes (a run that started alone gives
up cores when a second one starts, and takes them back when it ends). ``[run] threads`` fixes the
count instead.

Priority (:func:`lower_priority`): the worker the wizard starts (and ``qat-tui run --detach``) runs at
niceness ``[run] nice`` (default 10), so that the wizard, at the user's own priority, gets a core as
soon as it has a key to answer while a stage saturates every core (issue 11: a step change took
115-440 ms against a trainer at the same priority; ``benchmarks/responsiveness.py``). It changes no
count here: ``/proc/stat``'s busy time includes the ``nice`` column, and a niced worker's own time is
subtracted as its own, so a niced run and the runs around it plan their threads as before.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from .i18n import _

RECHECK_S = 2.0
"""Seconds between two re-plans of the thread count during training."""

BUSY_CORE = 0.6
"""A core counts as taken by other processes when they used this fraction of it or more."""


@dataclass
class ThreadPlan:
    """What :func:`plan` chose: torch's thread count, the OpenMP wait policy, and why."""

    threads: int
    wait_policy: Optional[str]  # "PASSIVE", or None to leave OpenMP's default
    reason: str
    nice: Optional[int] = None  # the niceness the process lowered itself to (lower_priority); None: left as it was


def cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> Optional[Tuple[float, float]]:
    """``(busy seconds of all cores, busy seconds of this process)`` from /proc, or None off Linux."""
    try:
        with open("/proc/stat", "r") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat", "r") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    tick = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    own_busy = float(own[11]) + float(own[12]) + float(own[13]) + float(own[14])  # utime stime cutime cstime
    own_busy += _children_busy(os.getpid())  # data-loader workers are this run's own work
    return busy / tick, own_busy / tick


def _children_busy(pid: int) -> float:
    """utime + stime (ticks) of the live child processes of ``pid`` (e.g. DataLoader workers)."""
    total = 0.0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0.0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "r") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest[1] == str(pid):  # field 4: ppid
            total += float(rest[11]) + float(rest[12])
    return total


class BusyCores:
    """Cores that other processes keep busy, measured between two calls of :meth:`sample`."""

    def __init__(self) -> None:
        self._last = _cpu_times()
        self._t = time.monotonic()

    def sample(self) -> float:
        """Cores used by processes other than this one since the last sample (0 when unknown)."""
        now, t = _cpu_times(), time.monotonic()
        last, self._last, dt = self._last, now, t - self._t
        self._t = t
        if now is None or last is None or dt <= 0:
            return 0.0
        return max(0.0, ((now[0] - last[0]) - (now[1] - last[1])) / dt)


def other_qat_tui_runs(run_dir: str) -> int:
    """qat-tui runs in progress in other run folders (their locks are held by live processes)."""
    from .runs import running_run_dirs

    here = os.path.abspath(run_dir)
    try:
        return sum(1 for d in running_run_dirs() if os.path.abspath(d) != here)
    except Exception:  # the registry is a convenience; never fail a run over it
        return 0


def plan(n_cores: int, other_runs: int, busy_cores: float, fixed: Optional[int] = None) -> ThreadPlan:
    """The thread count and wait policy for a run (see the module docstring for the measurements).

    qat-tui runs share the cores fairly (``cores // runs``); what other processes keep busy beyond the
    other runs' fair shares is left to them (whole cores, a core counting from ``BUSY_CORE`` of it).

    Args:
        n_cores: cores this process may use.
        other_runs: other qat-tui runs in progress.
        busy_cores: cores other processes (qat-tui runs included) kept busy lately.
        fixed: ``[run] threads`` when set: used as given.
    """
    fair = max(1, n_cores // (1 + other_runs))
    elsewhere = max(0.0, busy_cores - other_runs * fair)  # load that is not another qat-tui run
    taken = int(elsewhere + (1.0 - BUSY_CORE))
    shared = other_runs > 0 or taken > 0
    policy = "PASSIVE" if shared else None
    if fixed:
        return ThreadPlan(fixed, policy, "[run] threads = %d" % fixed)
    threads = max(1, min(fair, n_cores - taken))
    if not shared:
        return ThreadPlan(threads, None, _("alone on {n} cores").format(n=n_cores))
    return ThreadPlan(threads, policy, _("{threads} of {n} cores: {runs} other qat-tui run(s), {busy:.1f} cores busy with other work").format(
        threads=threads, n=n_cores, runs=other_runs, busy=elsewhere))


def choose_at_start(run_dir: str, fixed: Optional[int] = None, sample_s: float = 0.5) -> ThreadPlan:
    """:func:`plan` for a run about to start: counts the other runs and samples the load for
    ``sample_s`` seconds. Call it before torch is imported, and export the wait policy
    (:func:`apply_wait_policy`), so that OpenMP starts with it."""
    busy = BusyCores()
    time.sleep(sample_s)
    return plan(cores(), other_qat_tui_runs(run_dir), busy.sample(), fixed)


def apply_wait_policy(choice: ThreadPlan) -> None:
    """Export ``OMP_WAIT_POLICY`` for this process (a value the user set is kept)."""
    if choice.wait_policy and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = choice.wait_policy


def lower_priority(nice: int) -> Optional[int]:
    """Lower this process's CPU scheduling priority to niceness ``nice`` (never raises it: an
    unprivileged process cannot take it back). Returns the niceness now in force, or None where the
    OS has no ``nice`` (Windows) or refuses.

    Linux keeps a niceness per thread and a new thread inherits its creator's: call it from the main
    thread before torch starts its OpenMP threads (and before DataLoader workers are forked), so they
    all run at it.

    Linux with ``sched_autogroup`` (the default of many distributions) first shares the CPU between
    *sessions*, and a niceness counts only against processes of the same session: the worker, which
    leads a session of its own (``setsid``), would still get as much CPU as the wizard's whole terminal
    session. So a process that leads its session also lowers its session's autogroup
    (``/proc/self/autogroup``) to ``nice``; one inside another session (a foreground ``qat-tui run``
    in a shell) leaves the session's, which is the shell's and the terminal's too, as it is.
    """
    if not hasattr(os, "nice"):
        return None
    try:
        current = os.nice(0)
        if nice > current:
            current = os.nice(nice - current)
    except OSError:
        return None
    try:
        leader = os.getsid(0) == os.getpid()
    except (AttributeError, OSError):
        leader = False
    if leader:
        _lower_autogroup(nice)
    return current


def autogroup_nice() -> Optional[int]:
    """The niceness of this process's autogroup (``/proc/self/autogroup``), None where there is none."""
    try:
        with open("/proc/self/autogroup", "r") as f:
            return int(f.read().split("nice")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def _lower_autogroup(nice: int) -> None:
    current = autogroup_nice()
    if current is None or current >= nice:
        return
    for _ in range(10):  # the kernel takes one autogroup change per 100 ms from unprivileged processes
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write("%d\n" % nice)
            return
        except BlockingIOError:
            time.sleep(0.11)
        except OSError:
            return


class ThreadGovernor:
    """Keeps ``torch.set_num_threads`` at :func:`plan`'s answer while a run trains: call
    :meth:`maybe_adjust` between batches (cheap; it re-plans every ``RECHECK_S`` seconds).

    Args:
        run_dir: this run's folder (not counted among the others).
        fixed: ``[run] threads`` (the governor then never changes the count).
        log: receives a line each time the count changes.
    """

    def __init__(self, run_dir: str, fixed: Optional[int] = None, log: Optional[Callable[[str], None]] = None) -> None:
        self.run_dir = run_dir
        self.fixed = fixed
        self.log = log
        self.busy = BusyCores()
        self._next = 0.0
        self.current: Optional[int] = None

    def maybe_adjust(self, force: bool = False) -> Optional[ThreadPlan]:
        """Re-plan when due (or ``force``) and apply a changed thread count; returns the plan made."""
        now = time.monotonic()
        if not force and now < self._next:
            return None
        self._next = now + RECHECK_S
        import torch

        if self.current is None:
            self.current = torch.get_num_threads()
        choice = plan(cores(), other_qat_tui_runs(self.run_dir), self._others_busy(), self.fixed)
        if choice.threads != self.current:
            torch.set_num_threads(choice.threads)
            if self.log is not None:
                self.log(_("CPU threads {old} -> {new} ({why})").format(old=self.current, new=choice.threads, why=choice.reason))
            self.current = choice.threads
        return choice

    def _others_busy(self) -> float:
        return self.busy.sample()


__all__ = ["ThreadPlan", "ThreadGovernor", "plan", "choose_at_start", "apply_wait_policy", "cores", "BusyCores",
           "lower_priority", "autogroup_nice"]
