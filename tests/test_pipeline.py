"""The pipeline on small learnable data: all five stages, state and skipping, and every bad input
the first-slice issue lists (no data, wrong layout, missing device, missing input checkpoint,
truncated checkpoint, bad settings) - each a clear message, nothing lost."""
import json
import os
import shutil
import threading

import pytest

from core import events as E
from core.pipeline import EVENTS_FILENAME, Pipeline
from core.settings import validate
from core.state import RunState

from .conftest import tiny_settings_dict, requires_torch_backend

ALL_ARTIFACTS = {
    "float-checkpoint.ckpt",
    "calib-checkpoint.ckpt",
    "qat-checkpoint.ckpt",
    "int_model.pt2",
    "check_report.txt",
    "check_report.json",
    "perf.html",
    "perf.json",
    "model_graph.txt",
}

pytestmark = requires_torch_backend


class Recorder:
    """Collects events as the wizard/headless consumers receive them."""

    def __init__(self):
        self.events = []

    def __call__(self, ev):
        self.events.append(ev)

    def of(self, cls, stage=None):
        return [e for e in self.events if isinstance(e, cls) and (stage is None or getattr(e, "stage", None) == stage)]


def _run(settings, **kw):
    rec = Recorder()
    ok = Pipeline(settings, emit=rec).run(**kw)
    return ok, rec


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, cifar_python_root):
    """One complete run (all five stages, no AOTInductor package) shared by the tests below."""
    run_dir = str(tmp_path_factory.mktemp("pipeline") / "run")
    settings = validate(tiny_settings_dict(cifar_python_root, run_dir))
    ok, rec = _run(settings)
    return settings, ok, rec


def _copy_run(finished_run, tmp_path, **overrides):
    settings, _ok, _rec = finished_run
    run_dir = str(tmp_path / "run")
    shutil.copytree(settings.run_path(), run_dir)
    data = settings.model_dump()
    data["run"]["run_dir"] = run_dir
    for section, values in overrides.items():
        data[section].update(values)
    return validate(data)  # state.json keeps paths relative to its folder: a plain copy is a working run


def test_all_five_stages_run_and_learn(finished_run):
    settings, ok, rec = finished_run
    assert ok, [(e.title, e.message) for e in rec.of(E.StageFailed)]
    assert [e.stage for e in rec.of(E.StageFinished)] == ["float", "calib", "qat", "int_infer", "compile"]
    written = {e.name for e in rec.of(E.ArtifactWritten)}
    assert written == ALL_ARTIFACTS
    for name in written:
        assert os.path.getsize(os.path.join(settings.run_path(), name)) > 0
    metrics = {e.stage: e.metrics for e in rec.of(E.StageFinished)}
    # the synthetic classes are learnable: far above the 10% of chance after one short epoch
    assert metrics["float"]["top1"] > 30
    # quantization keeps the accuracy: integer model within a few points of the fake-quant model
    assert abs(metrics["int_infer"]["top1"] - metrics["qat"]["top1"]) < 5
    assert metrics["compile"]["check_passed"] is True
    # each stage says which checkpoint it loads
    started = {e.stage: e.inputs for e in rec.of(E.StageStarted)}
    assert started == {
        "float": [],
        "calib": ["float-checkpoint.ckpt"],
        "qat": ["calib-checkpoint.ckpt"],
        "int_infer": ["qat-checkpoint.ckpt"],
        "compile": ["int_model.pt2"],
    }
    assert rec.of(E.CheckAdvice) and rec.of(E.EpochEnd, "float") and rec.of(E.BatchProgress, "qat")
    assert isinstance(rec.events[-1], E.RunFinished) and rec.events[-1].ok


def test_state_settings_and_event_log_are_written(finished_run):
    settings, _ok, rec = finished_run
    state = RunState.load(settings.run_path())
    assert {s: state.status(s) for s in ("float", "calib", "qat", "int_infer", "compile")} == dict.fromkeys(
        ("float", "calib", "qat", "int_infer", "compile"), "finished"
    )
    assert state.stage("float")["settings"]["float.epochs"] == 3
    assert os.path.exists(os.path.join(settings.run_path(), "settings.toml"))
    with open(os.path.join(settings.run_path(), EVENTS_FILENAME)) as f:
        logged = [E.from_dict(json.loads(line)) for line in f]
    assert [type(e).__name__ for e in logged] == [type(e).__name__ for e in rec.events]
    assert all(json.loads(line)["v"] == E.EVENT_VERSION for line in open(os.path.join(settings.run_path(), EVENTS_FILENAME)))
    leftovers = [n for n in os.listdir(settings.run_path()) if n.endswith(".tmp")]
    assert not leftovers


def test_second_start_skips_finished_stages_and_shows_results(finished_run, tmp_path):
    settings = _copy_run(finished_run, tmp_path)
    ok, rec = _run(settings)
    assert ok and not rec.of(E.StageStarted)
    skipped = {e.stage: e for e in rec.of(E.StageSkipped)}
    assert set(skipped) == {"float", "calib", "qat", "int_infer", "compile"}
    assert skipped["int_infer"].metrics["top1"] == finished_run[2].of(E.StageFinished, "int_infer")[0].metrics["top1"]
    assert "int_model.pt2" in skipped["int_infer"].artifacts
    plan = Pipeline(settings).plan()
    assert [p.action for p in plan] == ["skip"] * 5


def test_changed_settings_rerun_only_the_stages_they_affect(finished_run, tmp_path):
    settings = _copy_run(finished_run, tmp_path, qat={"lr": 5e-5})
    plan = {p.stage: p for p in Pipeline(settings).plan()}
    assert plan["float"].action == "skip" and plan["calib"].action == "skip"
    assert plan["qat"].action == "run" and "qat.lr 0.0001 -> 5e-05" in plan["qat"].reason
    assert plan["int_infer"].action == "run" and "qat runs again" in plan["int_infer"].reason
    ok, rec = _run(settings, stages=["float", "calib", "qat", "int_infer"])
    assert ok
    assert [e.stage for e in rec.of(E.StageStarted)] == ["qat", "int_infer"]
    log = " ".join(e.text for e in rec.of(E.LogLine))
    assert "settings changed: qat.lr" in log and "its input changed: qat ran again" in log


def test_horizon_only_settings_do_not_rerun_torch_stages(finished_run, tmp_path):
    settings = _copy_run(finished_run, tmp_path, horizon={"march": "bernoulli2", "opt": "O3", "jobs": 4})
    assert [p.action for p in Pipeline(settings).plan()] == ["skip"] * 5


def test_missing_input_names_the_stage_to_run_first(tiny_settings):
    settings = tiny_settings()
    ok, rec = _run(settings, stages=["qat"])
    assert not ok
    (fail,) = rec.of(E.StageFailed)
    assert fail.stage == "qat" and "calib-checkpoint.ckpt" in fail.message
    assert fail.hint.startswith("run the calib stage first")
    ok, rec = _run(settings, stages=["compile"])
    assert "int_model" in rec.of(E.StageFailed)[0].message and "int_infer stage first" in rec.of(E.StageFailed)[0].hint


def test_truncated_checkpoint_is_refused_and_kept(finished_run, tmp_path):
    settings = _copy_run(finished_run, tmp_path)
    path = os.path.join(settings.run_path(), "float-checkpoint.ckpt")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:1000])
    ok, rec = _run(settings, stages=["calib"], force=True)
    assert not ok
    fail = rec.of(E.StageFailed)[0]
    assert fail.title == "Checkpoint" and "float-checkpoint.ckpt changed since it was written (now 1.0 kB" in fail.message
    assert fail.hint.startswith("run the float stage again")
    # nothing else was touched: the calib checkpoint from before is still there and loadable
    assert os.path.getsize(path) == 1000
    assert RunState.load(settings.run_path()).status("calib") == "finished"
    assert os.path.getsize(os.path.join(settings.run_path(), "calib-checkpoint.ckpt")) > 1000
    # a truncated file that no stage of this folder recorded (the user's own) is loaded, and refused as damaged
    state = RunState.load(settings.run_path())
    state.data["stages"].pop("float")
    state.save()
    ok, rec = _run(settings, stages=["calib"], force=True)
    fail = rec.of(E.StageFailed)[0]
    assert fail.title == "Checkpoint" and "damaged" in fail.message and "float stage again" in fail.hint
    calib = RunState.load(settings.run_path()).stage("calib")  # this try wrote nothing: its last result stays
    assert calib["status"] == "finished" and calib["last_try"]["status"] == "failed"


def test_checkpoint_of_another_model_is_refused(finished_run, tmp_path):
    settings = _copy_run(finished_run, tmp_path, model={"width_mult": 0.5})
    ok, rec = _run(settings, stages=["calib"], force=True)
    fail = rec.of(E.StageFailed)[0]
    assert "width_mult" in fail.message and fail.title == "Checkpoint"


def test_device_that_does_not_exist(tiny_settings):
    ok, rec = _run(tiny_settings(run={"device": "cuda:7"}))
    assert not ok
    fail = rec.of(E.StageFailed)[0]
    assert fail.title == "Device" and "cuda:7" in fail.message and "cpu" in fail.hint


def test_no_data_and_wrong_layout(tiny_settings, tmp_path):
    ok, rec = _run(tiny_settings(data={"root": str(tmp_path / "missing")}))
    fail = rec.of(E.StageFailed)[0]
    assert fail.title == "Data" and "cifar-10-batches-py" in fail.message and "--download" in fail.hint
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("not images")
    ok, rec = _run(tiny_settings(data={"root": str(tmp_path / "junk")}))
    assert "it holds: readme.txt" in rec.of(E.StageFailed)[0].message


def test_int_infer_without_calib_or_qat_is_explained(tiny_settings):
    settings = tiny_settings(calib={"enabled": False}, qat={"enabled": False})
    ok, rec = _run(settings, stages=["int_infer"])
    fail = rec.of(E.StageFailed)[0]
    assert "both calib and qat are disabled" in fail.message and "enable calib" in fail.hint


def test_cancel_stops_at_the_next_batch_and_is_recorded(tiny_settings):
    settings = tiny_settings()
    cancel = threading.Event()
    rec = Recorder()

    def emit(ev):
        rec(ev)
        if isinstance(ev, E.BatchProgress) and ev.stage == "float":
            cancel.set()

    ok = Pipeline(settings, emit=emit, cancel=cancel).run()
    assert not ok
    fail = rec.of(E.StageFailed)[0]
    assert fail.cancelled and fail.stage == "float"
    assert rec.events[-1].cancelled
    assert RunState.load(settings.run_path()).status("float") == "cancelled"


def test_qat_without_calib_and_imagefolder_layout(imagefolder_root, tmp_path):
    settings = validate(
        tiny_settings_dict(imagefolder_root, str(tmp_path / "run"), calib={"enabled": False},
                           data={"train_images": 600, "eval_images": 200}, compile={"enabled": False})
    )
    ok, rec = _run(settings)
    assert ok, [(e.title, e.message) for e in rec.of(E.StageFailed)]
    assert rec.of(E.StageStarted, "qat")[0].inputs == ["float-checkpoint.ckpt"]
    assert any("calib is off" in e.text for e in rec.of(E.LogLine))
    assert [e.stage for e in rec.of(E.StageFinished)] == ["float", "qat", "int_infer"]


# ------------------------------------------------------------------ run folders that move, outputs checked

def _settings_in(settings, run_dir):
    data = settings.model_dump()
    data["run"]["run_dir"] = run_dir
    return validate(data)


def test_moved_run_folder_keeps_its_work(finished_run, tmp_path):
    """mv run run-moved: every stage is still done there, and compile reads the moved int_model.pt2."""
    original = _copy_run(finished_run, tmp_path)  # a folder of our own to move
    moved = str(tmp_path / "run-moved")
    shutil.move(original.run_path(), moved)
    settings = _settings_in(original, moved)
    assert [p.action for p in Pipeline(settings).plan()] == ["skip"] * 5
    ok, rec = _run(settings, stages=["compile"], force=True)
    assert ok, [(e.title, e.message) for e in rec.of(E.StageFailed)]
    assert RunState.load(moved).stage("compile")["artifacts"]["check_report.txt"]["path"] == "check_report.txt"
    assert not os.path.exists(original.run_path())  # nothing was written to the old place


def test_copied_run_folder_never_reads_the_original(finished_run, tmp_path):
    settings, _ok, _rec = finished_run
    copy = _copy_run(finished_run, tmp_path)
    original_int = os.path.join(settings.run_path(), "int_model.pt2")
    saved = open(original_int, "rb").read()
    try:
        with open(original_int, "wb") as f:  # the original's integer model is broken meanwhile
            f.write(b"broken")
        ok, rec = _run(copy, stages=["compile"], force=True)
    finally:
        with open(original_int, "wb") as f:
            f.write(saved)
    assert ok, [(e.title, e.message) for e in rec.of(E.StageFailed)]


def test_settings_file_of_a_moved_folder_runs_that_folder(finished_run, tmp_path, capsys):
    """qat-tui run --config run-moved/settings.toml, whose run_dir still names the old folder."""
    from qat_tui.cli import main

    source = finished_run[0].run_path()  # the folder the copy's settings.toml still names
    source_log = os.path.getsize(os.path.join(source, EVENTS_FILENAME))
    original = _copy_run(finished_run, tmp_path)
    moved = str(tmp_path / "run-moved")
    shutil.move(original.run_path(), moved)
    assert main(["run", "--config", os.path.join(moved, "settings.toml")]) == 0
    captured = capsys.readouterr()
    assert "is in the run folder %s (moved or copied from %s): running there" % (moved, source) in captured.err
    assert captured.out.count("skipped: already done with these settings") == 5
    assert os.path.getsize(os.path.join(source, EVENTS_FILENAME)) == source_log  # the other folder is untouched


def test_emptied_output_makes_its_stage_stale_and_is_kept(finished_run, tmp_path):
    settings = _copy_run(finished_run, tmp_path)
    calib = os.path.join(settings.run_path(), "calib-checkpoint.ckpt")
    open(calib, "wb").close()
    plan = {p.stage: p for p in Pipeline(settings).plan()}
    assert plan["float"].action == "skip"
    assert plan["calib"].action == "run"
    assert "its output changed: calib-checkpoint.ckpt changed since it was written (now 0 B, was" in plan["calib"].reason
    assert plan["qat"].action == "run" and "calib runs again" in plan["qat"].reason
    ok, rec = _run(settings, stages=["calib"])
    assert ok
    kept = [n for n in os.listdir(settings.run_path()) if n.startswith("calib-checkpoint.ckpt.changed-")]
    assert len(kept) == 1 and os.path.getsize(os.path.join(settings.run_path(), kept[0])) == 0
    assert any("kept it as " + kept[0] in e.text for e in rec.of(E.LogLine))
    assert os.path.getsize(calib) > 1000


def test_integer_model_not_written_by_this_run_is_not_loaded(finished_run, tmp_path):
    """compile loads int_model.pt2 (code by design) only when it is the file int_infer recorded."""
    settings = _copy_run(finished_run, tmp_path)
    path = os.path.join(settings.run_path(), "int_model.pt2")
    with open(path, "ab") as f:
        f.write(b"\0")  # any change: another program's file under the same name
    ok, rec = _run(settings, stages=["compile"], force=True)
    fail = rec.of(E.StageFailed)[0]
    assert not ok and fail.stage == "compile" and "int_model.pt2 changed since it was written" in fail.message
    assert "int_infer stage again" in fail.hint
    state = RunState.load(settings.run_path())
    state.data["stages"]["int_infer"]["artifacts"]["int_model.pt2"].pop("sha256")
    state.save()
    ok, rec = _run(settings, stages=["compile"], force=True)
    assert "no recorded checksum" in rec.of(E.StageFailed)[0].message


def test_state_of_an_older_qat_tui_reads_paths_in_this_folder(finished_run, tmp_path):
    """Version 1 kept absolute paths (of wherever the folder was then): read as names in this folder;
    without checksums its stages are stale rather than trusted."""
    settings = _copy_run(finished_run, tmp_path)
    path = os.path.join(settings.run_path(), "state.json")
    data = json.load(open(path))
    data["version"] = 1
    for rec in data["stages"].values():
        for name, art in rec.get("artifacts", {}).items():
            art["path"] = "/somewhere/else/run/" + name
            art.pop("sha256", None)
    json.dump(data, open(path, "w"))
    state = RunState.load(settings.run_path())
    assert state.artifact_path("float", "float-checkpoint.ckpt") == os.path.join(settings.run_path(), "float-checkpoint.ckpt")
    plan = {p.stage: p for p in Pipeline(settings).plan()}
    assert plan["float"].action == "run" and "no recorded checksum" in plan["float"].reason


def test_rerunning_one_stage_keeps_every_stage_in_the_record(finished_run, tmp_path):
    """After run --stage calib --force on a finished run, what attach shows: float done (with when),
    calib just ran, qat/int_infer/compile stale (their input changed), not "off"."""
    from core.record import RunRecord
    from core.worker import EventFollower

    settings = _copy_run(finished_run, tmp_path)
    ok, rec = _run(settings, stages=["calib"], force=True)
    assert ok
    skipped = {e.stage: e for e in rec.of(E.StageSkipped)}
    assert skipped["float"].status == "finished" and skipped["float"].metrics["top1"] > 30
    assert skipped["qat"].status == "stale" and "its input changed" in skipped["qat"].reason
    run_dir = settings.run_path()
    record = RunRecord.from_state(run_dir)  # as the run screen builds it when attaching
    for ev in EventFollower(run_dir, EventFollower.last_run_offset(run_dir)).poll():
        record.apply(ev)
    assert record.status == {"float": "skipped", "calib": "finished", "qat": "stale", "int_infer": "stale",
                             "compile": "stale"}
    assert all(record.ran_at(s) for s in record.status)
    assert record.top1("qat") is not None and record.artifact_path("int_model.pt2") == os.path.join(run_dir, "int_model.pt2")


def test_a_failed_try_that_wrote_nothing_keeps_the_finished_stages(finished_run, tmp_path):
    """A run with a model setting that fails in float (before anything is written) keeps float's last
    result: the next run with the good settings skips every stage instead of retraining all of them."""
    good = _copy_run(finished_run, tmp_path)
    bad = validate(dict(good.model_dump(), model=dict(good.model_dump()["model"], arch="resnet19")))
    ok, rec = _run(bad)
    assert not ok and rec.of(E.StageFailed)[0].stage == "float" and rec.of(E.StageFailed)[0].settings_error
    assert any("wrote nothing over the last result of float" in e.text for e in rec.of(E.LogLine, "float"))
    rec_float = RunState.load(good.run_path()).stage("float")
    assert rec_float["status"] == "finished" and rec_float["last_try"]["status"] == "failed"
    ok, rec = _run(good)
    assert ok and not rec.of(E.StageStarted), [(e.stage, e.reason) for e in rec.of(E.StageSkipped)]
    assert RunState.load(good.run_path()).stage("float").get("last_try")  # kept until float runs again
