"""Benchmark: the wizard's key-to-paint latency while a stage trains in the background (issue 11).

    python benchmarks/responsiveness.py [--samples 30] [--rounds 3] [--nice 10] [--data DIR] [--threads N] [--skip-nice0]

Scenarios, all measured in this one process:

* no training (baseline);
* training at nice 0: a worker at the wizard's own priority (what every run did before ``[run] nice``);
* training at nice N (``--nice``, default: ``[run] nice``'s default).

Two training runs are started through the launcher the wizard uses (:func:`core.worker.start_detached`,
``[run] nice`` in their ``settings.toml``): the float stage of the quick preset on the real CIFAR-10 in
``data/`` (synthetic CIFAR-shaped images in a temporary folder when ``data/`` has none), 20 epochs of
10,000 images so that it trains throughout, ``[run] threads`` = every core (the worst case: a stage
that saturates all of them). Each is measured once it trains; the one not being measured is stopped
(SIGSTOP, SIGCONT 1 s before its turn), and the scenarios are measured in turn ``--rounds`` times, so
that a change in the machine's other load falls on all of them alike. Both are cancelled at the end.

In each scenario the wizard (:class:`qat_tui.app.QatApp`, headless, ``App.run_test`` at 80x24, in this
process and at its priority) is driven by key events, as Pilot sends them (the driver posts a
``Key`` event to the app's queue):

* step forward: ``ctrl+n`` from Data to Review, each showing the next step's screen, which the wizard
  built while the previous one was shown (:mod:`qat_tui.screen_cache`);
* step back: ``escape`` from Review to Data, each showing the previous screen again;
* the same two in a wizard that builds the next step's screen at the key press (compose and CSS
  matching counted in the key's time: the wizard before the screens were built ahead), printed as
  "built at the key";
* run screen, attached to the training run (following its ``events.jsonl`` as the wizard does; in the
  baseline, to the nice-0 run while it is stopped): ``1``/``2``/``3``, its three tabs, in turn.

Key-to-paint: from just before the key event is posted until the compositor has rendered an update
in which the change is visible: ``App._display`` is wrapped, and each update it receives is turned
into the bytes a terminal would be sent (``render_segments``, which the headless driver skips, so
that this cost is counted as in a real terminal); the clock stops at the first update after the key
in which the new screen is the one displayed (step changes) or the chosen tab's pane has a region on
screen and the previous one has none (run screen). Key presses are spaced by a random 50-350 ms
pause after the previous paint (like typing, and out of step with the run screen's 0.3 s event poll);
one warm-up round in each app is not counted. Printed: median and p90 in ms per scenario and kind,
the median's ratio to the baseline measured in this same process, the median CPU time the wizard's
thread used per key (its own work: what no priority can shorten), and the trainer's throughput
(images/s from its progress events) while it was measured.

Not a test: timings depend on the machine and what else runs on it (``/proc/loadavg`` is printed at
start, after each round and at the end). The issue's target: median at or under 100 ms on the
settings and run screens while a stage trains.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import random
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

SIZE = (80, 24)


# ---------------------------------------------------------------------------------------- data
def _synthetic_cifar(root: str, n_train: int = 10000, n_test: int = 1000) -> str:
    """CIFAR-10-shaped random images in torchvision's ``cifar-10-batches-py`` format."""
    import numpy as np

    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(0)
    per = n_train // 5
    for b in range(5):
        with open(os.path.join(folder, "data_batch_%d" % (b + 1)), "wb") as f:
            pickle.dump({"labels": rng.randint(0, 10, per).tolist(),
                         "data": rng.randint(0, 256, (per, 3072)).astype("uint8")}, f)
    with open(os.path.join(folder, "test_batch"), "wb") as f:
        pickle.dump({"labels": rng.randint(0, 10, n_test).tolist(),
                     "data": rng.randint(0, 256, (n_test, 3072)).astype("uint8")}, f)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": ["c%d" % i for i in range(10)]}, f)
    return root


def _settings(data_root: str, run_dir: str, nice: int, threads: int) -> Any:
    from core.settings import preset

    return preset(
        "quick",
        run={"run_dir": run_dir, "nice": nice, "threads": threads, "device": "cpu"},
        data={"root": data_root, "eval_images": 1000},
        float={"epochs": 20},
        calib={"enabled": False},
        qat={"enabled": False},
        int_infer={"enabled": False},
        compile={"enabled": False},
    )


# ------------------------------------------------------------------------------ training runs
class Training:
    """A training run started by the wizard's launcher; its throughput from its progress events."""

    def __init__(self, settings: Any) -> None:
        from core.settings import SETTINGS_FILENAME, save
        from core.worker import EventFollower, start_detached

        self.run_dir = settings.run_path()
        os.makedirs(self.run_dir, exist_ok=True)
        save(settings, os.path.join(self.run_dir, SETTINGS_FILENAME))
        self.pid, offset = start_detached(self.run_dir)
        self.follower = EventFollower(self.run_dir, offset)
        self.progress: List[Any] = []  # the training BatchProgress events
        self.batch_size = settings.data.batch_size

    def poll(self) -> None:
        from core.events import BatchProgress, RunFinished, StageFailed

        for e in self.follower.poll():
            if isinstance(e, BatchProgress) and e.phase == "train":
                self.progress.append(e)
            elif isinstance(e, (RunFinished, StageFailed)):
                raise SystemExit("the training run ended early: %s" % getattr(e, "message", e))

    def wait_training(self, timeout: float = 600.0) -> None:
        deadline = time.time() + timeout
        while len(self.progress) < 3:
            if time.time() > deadline:
                raise SystemExit("no training progress after %.0f s (see %s/worker.log)" % (timeout, self.run_dir))
            time.sleep(0.2)
            self.poll()

    def rate(self, t0: float, t1: float) -> Optional[float]:
        """Training images/s between t0 and t1, from consecutive progress events of one epoch."""
        self.poll()
        inside = [e for e in self.progress if t0 <= e.t <= t1]
        images = seconds = 0.0
        for a, b in zip(inside, inside[1:]):
            if a.epoch == b.epoch and b.batch > a.batch:
                images += (b.batch - a.batch) * self.batch_size
                seconds += b.t - a.t
        return images / seconds if seconds else None

    def worker_line(self) -> str:
        """worker.log's line naming its pid, niceness and thread plan."""
        try:
            with open(os.path.join(self.run_dir, "worker.log"), encoding="utf-8", errors="replace") as f:
                return next((line.strip() for line in f if line.startswith("worker pid")), "?")
        except OSError:
            return "?"

    def pause(self) -> None:
        """SIGSTOP the worker (and its loader processes: it leads its own process group)."""
        import signal

        os.killpg(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        os.killpg(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        import signal

        from core.worker import pid_alive

        try:
            os.killpg(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)  # stops at the next batch
        except ProcessLookupError:
            pass
        deadline = time.time() + 60
        while pid_alive(self.pid) and time.time() < deadline:
            try:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.2)
        else:
            if pid_alive(self.pid):
                os.killpg(self.pid, signal.SIGKILL)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


# ----------------------------------------------------------------------------- measurement
class PaintProbe:
    """Wraps ``app._display``: every compositor update is rendered to terminal bytes; an awaited
    condition is checked at each update and resolves with the time of the first that satisfies it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._waiting: Optional[Tuple[Callable[[Any], bool], "asyncio.Future[float]"]] = None
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is None:
                return
            if hasattr(renderable, "render_segments"):
                renderable.render_segments(app.console)  # what a terminal would be sent
            if self._waiting is not None:
                cond, fut = self._waiting
                if not fut.done() and cond(screen):
                    fut.set_result(time.perf_counter())

        app._display = display

    async def key_to_paint(self, key: str, painted: Callable[[Any], bool], timeout: float = 10.0) -> Tuple[float, float]:
        """Seconds from posting ``key`` until an update where ``painted(screen)`` holds, and the CPU
        seconds this thread (the app's event loop) used meanwhile."""
        from textual import events

        fut: "asyncio.Future[float]" = asyncio.get_running_loop().create_future()
        self._waiting = (painted, fut)
        c0, t0 = time.thread_time(), time.perf_counter()
        self.app._driver.send_message(events.Key(key, _char(key)))
        try:
            t1 = await asyncio.wait_for(fut, timeout)
        finally:
            self._waiting = None
        return t1 - t0, time.thread_time() - c0


def _char(key: str) -> Optional[str]:
    """The character Pilot sends with ``key`` (None for ctrl+n)."""
    if len(key) == 1:
        return key
    return {"escape": "\x1b"}.get(key)


async def _gap() -> None:
    await asyncio.sleep(random.uniform(0.05, 0.35))


Sample = Tuple[float, float]  # (key-to-paint seconds, UI CPU seconds)


async def settings_screens(settings: Any, samples: int, ahead: bool = True) -> Tuple[List[Sample], List[Sample]]:
    """Step changes: ctrl+n from Data to Review, escape back to Data, until each has ``samples``.
    ``ahead``: the next step's screen is built while the current one is shown (the wizard's way,
    :mod:`qat_tui.screen_cache`); False: at the key press, as before it."""
    from qat_tui.app import QatApp
    from qat_tui.state import STEPS

    app = QatApp(settings=settings, detect=False)
    app.next_step.enabled = ahead
    forward: List[Sample] = []
    back: List[Sample] = []
    async with app.run_test(size=SIZE) as pilot:
        probe = PaintProbe(app)
        await pilot.pause()
        last = len(STEPS) - 1
        warm = True
        while len(forward) < samples or len(back) < samples:
            for _ in range(last):  # forward: each ctrl+n composes the next step's screen
                before = app.screen
                expected = STEPS[len(app.screen_stack) - 1].screen.rsplit(":", 1)[1]  # stack[0]: the default screen
                dt = await probe.key_to_paint(
                    "ctrl+n", lambda s, b=before, n=expected: s is app.screen and s is not b and type(s).__name__ == n)
                if not warm:
                    forward.append(dt)
                await _gap()
            for _ in range(last):  # back: escape shows the previous screen again
                target = app.screen_stack[-2]
                dt = await probe.key_to_paint("escape", lambda s, t=target: s is t and app.screen is t)
                if not warm:
                    back.append(dt)
                await _gap()
            warm = False
    if ahead:
        USED[0] += app.next_step.used
        USED[1] += app.next_step.built
    return forward[:samples], back[:samples]


USED = [0, 0]  # step screens built ahead and shown, built ahead (all scenarios)


async def run_screen(settings: Any, run_dir: str, samples: int) -> List[Sample]:
    """The run screen attached to ``run_dir``: 1 / 2 / 3 switch its tabs."""
    from qat_tui.app import QatApp

    app = QatApp(settings=settings, detect=False, attach=run_dir)
    out: List[Sample] = []
    async with app.run_test(size=SIZE) as pilot:
        probe = PaintProbe(app)
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "RunScreen", type(screen).__name__
        panes = {"1": "epochs", "2": "chart", "3": "log"}
        current = "epochs"
        n = -3  # the first round is warm-up
        while len(out) < samples:
            for key in ("2", "3", "1"):
                new, old = screen.query_one("#" + panes[key]), screen.query_one("#" + current)
                dt = await probe.key_to_paint(
                    key, lambda s, a=new, b=old: s is screen and bool(a.region) and not bool(b.region))
                if n >= 0:
                    out.append(dt)
                n += 1
                current = panes[key]
                await _gap()
    return out[:samples]


def _stats(xs: List[float]) -> Tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]


KINDS = ("step forward (ctrl+n)", "step back (escape)", "run screen (1/2/3)",
         "fwd, built at the key", "back, built at the key")
"""The last two: the step changes with the next step's screen built at the key press (no screen built
ahead, as before :mod:`qat_tui.screen_cache`), measured in the same scenario for comparison."""


def measure(wizard: Any, run_dir: str, follow_settings: Any, samples: int,
            training: Optional["Training"]) -> Dict[str, Any]:
    """One scenario: the settings screens, then the run screen following ``run_dir``."""
    t0 = time.time()
    forward, back = asyncio.run(settings_screens(wizard, samples))
    forward0, back0 = asyncio.run(settings_screens(wizard, samples, ahead=False))
    t1 = time.time()
    tabs = asyncio.run(run_screen(follow_settings, run_dir, samples))
    t2 = time.time()
    rates = [training.rate(t0, t1), training.rate(t1, t2)] if training else []
    return {KINDS[0]: forward, KINDS[1]: back, KINDS[2]: tabs, KINDS[3]: forward0, KINDS[4]: back0,
            "rates": [r for r in rates if r]}


def main() -> int:
    from core.settings import RunSettings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=30, help="key presses measured per kind and scenario")
    p.add_argument("--rounds", type=int, default=3, help="the scenarios are measured in turn this many times")
    p.add_argument("--nice", type=int, default=RunSettings.model_fields["nice"].default,
                   help="niceness of the last scenario (default: [run] nice's default)")
    p.add_argument("--data", default=os.path.join(REPO, "data"))
    p.add_argument("--threads", type=int, default=0, help="[run] threads of the training run (default: every core)")
    p.add_argument("--skip-nice0", action="store_true", help="leave out the scenario training at nice 0")
    a = p.parse_args()

    from core.settings import SETTINGS_FILENAME, load
    from core.threads import cores

    work = tempfile.mkdtemp(prefix="bench-responsiveness-")
    os.environ["QAT_TUI_STATE_DIR"] = os.path.join(work, "state")  # keep these runs out of qat-tui status
    data = a.data
    if not os.path.exists(os.path.join(data, "cifar-10-batches-py", "batches.meta")):
        data = _synthetic_cifar(os.path.join(work, "data"))
        print("no CIFAR-10 in %s: synthetic CIFAR-shaped images in %s" % (a.data, data))
    threads = a.threads or cores()
    print("%d cores; this process at nice %d; training: the quick preset's float stage, %d threads; loadavg at start: %s"
          % (cores(), os.nice(0) if hasattr(os, "nice") else 0, threads, _loadavg()), flush=True)
    wizard = _settings(data, os.path.join(work, "wizard-run"), a.nice, threads)
    per_round = max(1, -(-a.samples // a.rounds))

    names = ["no training (baseline)", "training at nice 0", "training at nice %d" % a.nice]
    nices = [0, a.nice]
    if a.skip_nice0:
        del names[1], nices[0]
    results: Dict[str, Dict[str, Any]] = {n: {k: [] for k in KINDS + ("rates",)} for n in names}
    runs: List[Training] = []
    try:
        for nice in nices:  # both trainers start, reach their first batches, and wait (SIGSTOP)
            run = Training(_settings(data, os.path.join(work, "train-nice%d" % nice), nice, threads))
            runs.append(run)
            run.wait_training()
            run.pause()
            print("    %s" % run.worker_line(), flush=True)
        follow = [load(os.path.join(r.run_dir, SETTINGS_FILENAME)) for r in runs]
        for rnd in range(a.rounds):
            # baseline: both trainers stopped; its run screen follows the nice-0 run, frozen
            got = measure(wizard, runs[0].run_dir, follow[0], per_round, None)
            _add(results[names[0]], got)
            for name, run, fs in zip(names[1:], runs, follow):
                run.resume()
                time.sleep(1.0)
                try:
                    _add(results[name], measure(wizard, run.run_dir, fs, per_round, run))
                finally:
                    run.pause()
            print("round %d/%d done; loadavg %s" % (rnd + 1, a.rounds, _loadavg()), flush=True)
    finally:
        for run in runs:
            run.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\nkey-to-paint in ms (target: median <= 100 while a stage trains); loadavg at end: %s" % _loadavg())
    _print(names, results)
    print("step screens built ahead: %d, of them shown at a step forward: %d" % (USED[1], USED[0]))
    return 0


def _add(into: Dict[str, Any], got: Dict[str, Any]) -> None:
    for k, v in got.items():
        into[k] += v


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def _print(names: List[str], results: Dict[str, Dict[str, Any]]) -> None:
    base = {k: _stats([w for w, _c in results[names[0]][k]])[0] for k in KINDS}
    print("%-23s %-22s %7s %7s %9s %7s %9s" % ("scenario", "keys", "median", "p90", "vs base", "UI cpu", "images/s"))
    for name in names:
        rates = results[name]["rates"]
        for kind in KINDS:
            xs = results[name][kind]
            med, p90 = _stats([w for w, _c in xs])
            cpu = statistics.median([c for _w, c in xs])
            print("%-23s %-22s %7.1f %7.1f %8.2fx %7.1f %9s" % (
                name, kind, med * 1000, p90 * 1000, med / base[kind], cpu * 1000,
                "%.0f" % statistics.mean(rates) if rates else "-"), flush=True)
    print("(%d samples each; UI cpu: median CPU time of the wizard's thread per key; images/s: the trainer's, "
          "while measured)" % len(results[names[0]][KINDS[0]]))


if __name__ == "__main__":
    sys.exit(main())
