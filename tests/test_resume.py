"""Runs that survive: a detached worker killed with SIGKILL anywhere resumes and finishes; a float stage
killed after epoch k continues at epoch k+1 and ends exactly where an uninterrupted run ends; two runs
never share a run directory; cancel is recorded."""
import os
import random
import signal
import time

import pytest
import torch

from core import events as E
from core import settings as S
from core.io import TEMP_FILE, torch_load
from core.pipeline import Pipeline
from core.runs import RunLock, is_running, list_runs, lock_holder
from core.state import RunState
from core.worker import EventFollower, pid_alive, request_cancel, start_detached

from .conftest import tiny_settings_dict, requires_torch_backend

pytestmark = [pytest.mark.slow, requires_torch_backend]
STAGES = ["float", "calib", "qat", "int_infer", "compile"]


def _write(settings_dict):
    settings = S.validate(settings_dict)
    os.makedirs(settings.run_path(), exist_ok=True)
    S.save(settings, os.path.join(settings.run_path(), S.SETTINGS_FILENAME))
    return settings


def _wait(pid, run_dir, offset, until, timeout=600):
    """Follow the worker's events until ``until(event)`` is true or the worker exits; returns events."""
    follower = EventFollower(run_dir, offset)
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        for ev in follower.poll():
            seen.append(ev)
            if until(ev):
                return seen
        if not pid_alive(pid):
            seen += follower.poll()
            return seen
        time.sleep(0.05)
    raise AssertionError("timed out; last events: %s" % [type(e).__name__ for e in seen[-5:]])


def _reap(pid):
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _no_half_files(run_dir, killed=False):
    """Every checkpoint on disk loads; no temp file of an atomic write is left, except right after a
    SIGKILL (``killed``): one that was being written then stays until the next run sweeps it."""
    names = os.listdir(run_dir)
    temps = [n for n in names if n.endswith(".tmp")]
    if killed:
        assert all(TEMP_FILE.match(n) for n in temps), names
        names = [n for n in names if n not in temps]
    else:
        assert not temps, names
    for name in names:
        if name.endswith(".ckpt"):
            torch_load(os.path.join(run_dir, name))  # every checkpoint on disk loads


def test_sigkill_in_every_stage_then_resume_finishes(cifar_python_root, tmp_path):
    rng = random.Random(1234)
    settings = _write(tiny_settings_dict(cifar_python_root, str(tmp_path / "run"), float={"epochs": 2}, qat={"epochs": 2}))
    run_dir = settings.run_path()
    for stage in STAGES:
        pid, offset = start_detached(run_dir)
        batches_to_wait = rng.randint(1, 4)
        counter = {"n": 0}

        def inside(ev, stage=stage):
            if isinstance(ev, E.StageStarted) and ev.stage == stage:
                counter["started"] = True
            later = isinstance(ev, E.BatchProgress) or (isinstance(ev, E.LogLine) and not ev.text.startswith("running "))
            if counter.get("started") and getattr(ev, "stage", None) == stage and later:
                counter["n"] += 1
            return counter["n"] >= batches_to_wait

        seen = _wait(pid, run_dir, offset, inside)
        assert counter.get("started"), "stage %s never started: %s" % (stage, [type(e).__name__ for e in seen])
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
        assert not is_running(run_dir)  # the lock went with the process
        _no_half_files(run_dir, killed=True)
        state = RunState.load(run_dir)
        assert state.status(stage) == "running"  # interrupted mid-stage, as recorded
        for done in STAGES[: STAGES.index(stage)]:
            assert state.status(done) == "finished"
    pid, offset = start_detached(run_dir)
    seen = _wait(pid, run_dir, offset, lambda ev: isinstance(ev, E.RunFinished))
    _reap(pid)
    assert isinstance(seen[-1], E.RunFinished) and seen[-1].ok, [(e.title, e.message) for e in seen if isinstance(e, E.StageFailed)]
    assert RunState.load(run_dir).finished_stages() == STAGES
    _no_half_files(run_dir)
    assert not os.path.exists(os.path.join(run_dir, "float-last.ckpt"))


def test_float_resumes_at_next_epoch_and_matches_uninterrupted_run(cifar_python_root, tmp_path):
    base = dict(float={"epochs": 3}, calib={"enabled": False}, qat={"enabled": False},
                int_infer={"enabled": False}, compile={"enabled": False})
    # uninterrupted, in this process
    ref = S.validate(tiny_settings_dict(cifar_python_root, str(tmp_path / "ref"), **base))
    assert Pipeline(ref).run()
    # interrupted after epoch 1 (the resume point is written before EpochEnd is emitted)
    settings = _write(tiny_settings_dict(cifar_python_root, str(tmp_path / "run"), **base))
    run_dir = settings.run_path()
    pid, offset = start_detached(run_dir)
    _wait(pid, run_dir, offset, lambda ev: isinstance(ev, E.EpochEnd) and ev.epoch == 1)
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    assert os.path.exists(os.path.join(run_dir, "float-last.ckpt"))
    pid, offset = start_detached(run_dir)
    seen = _wait(pid, run_dir, offset, lambda ev: isinstance(ev, E.RunFinished))
    _reap(pid)
    logs = [e.text for e in seen if isinstance(e, E.LogLine)]
    assert any("resuming float at epoch 2 of 3" in t for t in logs), logs
    trained = [e.epoch for e in seen if isinstance(e, E.BatchProgress) and e.phase == "train"]
    assert min(trained) == 2  # epoch 1 was not trained again
    a = torch_load(os.path.join(ref.run_path(), "float-checkpoint.ckpt"))
    b = torch_load(os.path.join(run_dir, "float-checkpoint.ckpt"))
    assert a["meta"]["epoch"] == b["meta"]["epoch"]
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k


def test_two_runs_never_share_a_run_directory(tiny_settings):
    settings = tiny_settings()
    with RunLock(settings.run_path()):
        assert is_running(settings.run_path())
        assert lock_holder(settings.run_path())["pid"] == os.getpid()
        events = []
        assert not Pipeline(settings, emit=events.append).run()
        fail = [e for e in events if isinstance(e, E.StageFailed)][0]
        assert fail.stage == "setup" and "another run" in fail.message and "attach" in fail.hint
        # the owner's event log was not touched
        assert not os.path.exists(os.path.join(settings.run_path(), "events.jsonl"))
    assert not is_running(settings.run_path())


def test_cancel_a_detached_run_and_status_lists_it(cifar_python_root, tmp_path):
    settings = _write(tiny_settings_dict(cifar_python_root, str(tmp_path / "run"), float={"epochs": 3}))
    run_dir = settings.run_path()
    pid, offset = start_detached(run_dir)
    _wait(pid, run_dir, offset, lambda ev: isinstance(ev, E.BatchProgress) and ev.stage == "float")
    runs = {r.run_dir: r for r in list_runs()}
    assert runs[run_dir].running and runs[run_dir].pid == pid
    assert request_cancel(run_dir)
    seen = _wait(pid, run_dir, offset, lambda ev: isinstance(ev, E.RunFinished))
    _reap(pid)
    assert seen[-1].cancelled
    assert RunState.load(run_dir).status("float") == "cancelled"
    assert not request_cancel(run_dir)  # nobody left to cancel


def _drain_until(fd, needle, timeout):
    """Read the terminal until its output holds ``needle`` (a screen's heading), or fail after
    ``timeout`` seconds."""
    import select

    end = time.time() + timeout
    out = b""
    while time.time() < end:
        r, _w, _x = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            out += chunk
            if needle in out:
                return out
    raise AssertionError("the terminal never showed %r; last output: %r" % (needle, out[-300:]))


def _drain(fd, seconds):
    """Read what the terminal shows for ``seconds`` (a pty's output must be read or the app blocks)."""
    import select

    end = time.time() + seconds
    out = b""
    while time.time() < end:
        r, _w, _x = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


@pytest.mark.timeout(600)
async def test_wizard_run_survives_terminal_hangup_and_reattaches(cifar_python_root, tmp_path):
    """The wizard in a pseudo-terminal starts a run; the terminal hangs up (SIGHUP to its session, as
    when SSH drops); the wizard dies, the run goes on, and a re-attached wizard shows live progress."""
    import pty
    import sys as _sys

    from qat_tui.app import QatApp

    settings = _write(tiny_settings_dict(cifar_python_root, str(tmp_path / "run"), float={"epochs": 30}))
    run_dir = settings.run_path()
    config = os.path.join(run_dir, S.SETTINGS_FILENAME)
    pid, master = pty.fork()
    if pid == 0:  # the child: the wizard, as a user would start it over SSH
        env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
        os.execvpe(_sys.executable, [_sys.executable, "-m", "qat_tui", "--config", config], env)
    try:
        from qat_tui.state import STEPS

        n_steps = len(STEPS)
        _drain_until(master, b"Step 1 of %d" % n_steps, 120)
        for n in range(2, n_steps + 1):  # Data -> Model -> Backend -> Stages -> Qconfig -> Compile -> Review
            os.write(master, b"\x0e")  # ctrl+n
            _drain_until(master, b"Step %d of %d" % (n, n_steps), 120)
        os.write(master, b"\x12")  # ctrl+r: run
        deadline = time.time() + 180
        seen_progress = False
        follower = EventFollower(run_dir, 0)
        while time.time() < deadline and not seen_progress:
            _drain(master, 0.5)
            seen_progress = any(isinstance(e, E.BatchProgress) for e in follower.poll())
        assert seen_progress, "the wizard did not start the run"
        worker = lock_holder(run_dir)["pid"]
        assert worker != pid
        # the terminal hangs up: SIGHUP to the wizard's session, and the terminal goes away
        os.killpg(os.getpgid(pid), signal.SIGHUP)
        os.close(master)
        master = None
        deadline = time.time() + 30
        while time.time() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
            time.sleep(0.2)  # the wizard ends with its terminal
        assert pid_alive(worker), "the run died with the terminal"
        follower.poll()
        # the run goes on: its next batch (or epoch) arrives, however busy the machine is
        after = _wait(worker, run_dir, follower.offset, lambda ev: isinstance(ev, (E.BatchProgress, E.EpochEnd)), 300)
        assert any(isinstance(ev, (E.BatchProgress, E.EpochEnd)) for ev in after), "the run stopped after the hang-up"
        assert is_running(run_dir)
        # re-attach: the run screen rebuilds from the event log and follows it live
        app = QatApp(settings=None, detect=False, attach=run_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            deadline = time.time() + 60
            while app.run_screen is None or app.run_screen.last_progress is None:
                assert time.time() < deadline, "no live progress after re-attaching"
                await pilot.pause(0.2)
            run = app.run_screen
            assert run.running and run.record.status["float"] == "running"
            first = run.last_progress.t
            while run.last_progress.t == first:
                assert time.time() < deadline + 60
                await pilot.pause(0.2)
    finally:
        if master is not None:
            os.close(master)
        request_cancel(run_dir)
        deadline = time.time() + 60
        while is_running(run_dir) and time.time() < deadline:
            time.sleep(0.2)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
