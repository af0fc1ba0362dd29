"""The Textual wizard, driven by real key presses at 80x24 (``App.run_test`` + Pilot).

Fast tests walk the settings screens and check inline validation and the error modal; the ``slow`` ones
run the real pipeline on the synthetic data of ``conftest.py`` (a whole run with the AOTInductor
package, a cancelled run, and a run that fails at setup).
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, List

import pytest

from core.settings import preset
from qat_tui.app import QatApp

from .conftest import requires_torch_backend

SIZE = (80, 24)


def text_of(widget: Any) -> str:
    """The plain text a Static shows (works on Textual 6.2 and 8.x)."""
    content = widget.content
    return content.plain if hasattr(content, "plain") else str(content)


async def wait_for(pilot: Any, cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        await pilot.pause(0.2)


def screen_name(app: Any) -> str:
    return type(app.screen).__name__


def footer_keys(app: Any) -> List[str]:
    """The descriptions of the footer's keys shown whole: the footer cuts off what does not fit, and the
    command palette's key sits on the right."""
    keys = list(app.screen.query("FooterKey"))
    palette = [k.region.x for k in keys if k.has_class("-command-palette")]
    right = palette[0] if palette else app.size.width
    return [k.description for k in keys
            if not k.has_class("-command-palette") and k.region.width and k.region.right <= right]


async def wait_for_footer(pilot: Any, app: Any, *descriptions: str) -> None:
    try:
        await wait_for(pilot, lambda: set(descriptions) <= set(footer_keys(app)), 10, "the footer's keys")
    except AssertionError as e:
        raise AssertionError("%s: %s on %s, shown whole: %s" % (e, descriptions, screen_name(app), footer_keys(app))) from None


async def type_into(pilot: Any, app: Any, section: str, key: str, text: str) -> None:
    """Focus the field's input by clicking nothing: focus it, clear it with ctrl+u, type ``text``."""
    app.screen.get_field(section, key).control.focus()
    await pilot.pause()
    await pilot.press("end", "ctrl+u", *list(text))


def quick_settings(data_root: str, run_dir: str, **over: Any) -> Any:
    over.setdefault("data", {})
    over["data"] = dict({"root": data_root}, **over["data"])
    over.setdefault("run", {})
    over["run"] = dict({"run_dir": run_dir}, **over["run"])
    return preset("quick", **over)


# ------------------------------------------------------------------------------------- fast tests

async def test_walk_to_review_by_keyboard(cifar_python_root: str, tmp_path: Any) -> None:
    run_dir = str(tmp_path / "walk")
    app = QatApp(settings=quick_settings(cifar_python_root, run_dir), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        assert screen_name(app) == "DataScreen"
        assert "found cifar-python" in text_of(app.screen.query_one("#data-status"))
        await type_into(pilot, app, "data", "train_images", "500")
        await pilot.press("ctrl+n", "ctrl+n")  # Data -> Model ->
        assert screen_name(app) == "BackendScreen"
        await pilot.press("ctrl+n")
        assert screen_name(app) == "StagesScreen"
        # the float switch has the focus: Tab to its epochs, Enter moves on like Tab
        await pilot.press("tab", "ctrl+u", "3", "enter", "ctrl+u", *list("0.002"))
        assert app.screen.get_field("float", "lr").raw() == "0.002"
        await pilot.press("ctrl+n")
        assert screen_name(app) == "QconfigScreen"
        await pilot.press("n")  # plain n works while a select (not a text box) has the focus
        assert screen_name(app) == "CompileScreen"
        await pilot.press("escape")
        assert screen_name(app) == "QconfigScreen"
        await pilot.press("ctrl+n")
        assert screen_name(app) == "CompileScreen"
        await pilot.press("tab", "ctrl+u", *list("1, 4"))
        await pilot.press("ctrl+n")
        assert screen_name(app) == "ReviewScreen"
        await pilot.pause()
        toml = app.screen.query_one("#toml").text
        assert "train_images = 500" in toml
        assert "[float]" in toml and "epochs = 3" in toml and "lr = 0.002" in toml
        assert "perf_batch_sizes = [1, 4]" in toml
        assert 'root = "%s"' % cifar_python_root in toml
        plan = text_of(app.screen.query_one("#plan"))
        for stage in ("float", "calib", "qat", "int_infer", "compile"):
            assert stage in plan
        assert "not run yet" in plan
        # the settings the run would use
        s = app.current_settings()
        assert (s.data.train_images, s.float.epochs, s.compile.perf_batch_sizes) == (500, 3, [1, 4])
        # s writes the settings file without running
        await pilot.press("s")
        await pilot.pause()
        assert os.path.exists(os.path.join(run_dir, "settings.toml"))


async def test_model_step_reports_the_model_and_refuses_one_that_fails(cifar_python_root: str, tmp_path: Any) -> None:
    user_net = os.path.join(os.path.dirname(__file__), "assets", "user_net.py")
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "m")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        assert screen_name(app) == "ModelScreen"
        report = lambda: text_of(app.screen.query_one("#model-report"))  # noqa: E731
        await wait_for(pilot, lambda: "classifier.1" in report(), 120, "the mobilenet_v2 report")
        assert "parameters" in report() and "MACs per 32x32 image" in report() and "-> (2, 10)" in report()
        assert "10 classes (airplane" in report()
        arch = app.screen.get_field("model", "arch")
        await wait_for(pilot, lambda: len(arch._field_options) > 10, 120, "torchvision's model list")
        arch.set_value("resnet18")
        await wait_for(pilot, lambda: "after the output layer fc" in report(), 120, "the resnet18 report")
        await type_into(pilot, app, "model", "builder", user_net + ":raises")
        await wait_for(pilot, lambda: "raised ValueError" in report(), 120, "the builder's error")
        await pilot.press("ctrl+n")
        assert screen_name(app) == "ModelScreen" and "cannot be built" in text_of(app.screen.query_one("#nav-status"))
        await type_into(pilot, app, "model", "builder", user_net + ":build")
        await type_into(pilot, app, "model", "kwargs", "width = 8")
        await type_into(pilot, app, "data", "image_size", "64")
        await wait_for(pilot, lambda: "after the output layer head" in report() and "64x64" in report(), 120, "the user model")
        await pilot.press("ctrl+n")
        assert screen_name(app) == "BackendScreen"
        s = app.current_settings()
        assert s.model.builder == user_net + ":build" and s.model.kwargs == {"width": 8} and s.data.image_size == 64


async def test_letters_in_epochs_give_inline_message(cifar_python_root: str, tmp_path: Any) -> None:
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        assert screen_name(app) == "StagesScreen"
        await type_into(pilot, app, "qat", "epochs", "two")
        field = app.screen.get_field("qat", "epochs")
        err = text_of(field.query_one(".field-error"))
        assert "qat.epochs = 'two'" in err and "valid integer" in err
        assert field.query_one(".field-error").display
        await pilot.press("ctrl+n")
        assert screen_name(app) == "StagesScreen"  # refused, no crash
        assert "qat.epochs" in text_of(app.screen.query_one("#nav-status"))
        assert app.focused is field.control
        await pilot.press("ctrl+u", "2")
        assert not field.query_one(".field-error").display
        await pilot.press("ctrl+n")
        assert screen_name(app) == "QconfigScreen"


async def test_bad_data_folder_names_both_layouts(tmp_path: Any) -> None:
    missing = str(tmp_path / "no-such-data")
    app = QatApp(settings=quick_settings(missing, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        status = text_of(app.screen.query_one("#data-status"))
        assert "does not exist" in status
        assert "cifar-python" in status and "imagefolder" in status
        assert "download" in status  # the hint
        await pilot.press("ctrl+n")
        assert screen_name(app) == "DataScreen"
        assert "turn on download" in text_of(app.screen.query_one("#nav-status"))
        # an existing folder without data: the message names both layouts too
        await type_into(pilot, app, "data", "root", str(tmp_path))
        status = text_of(app.screen.query_one("#data-status"))
        assert "no data in" in status and "cifar-python" in status and "imagefolder" in status
        # with download on the user may go on
        app.screen.get_field("data", "download").control.focus()
        await pilot.press("space")
        assert "download is on" in text_of(app.screen.query_one("#data-status"))
        await pilot.press("ctrl+n", "ctrl+n")  # Data -> Model ->
        assert screen_name(app) == "BackendScreen"


async def test_preset_switch_resets_values_but_keeps_locations(cifar_python_root: str, tmp_path: Any) -> None:
    run_dir = str(tmp_path / "p")
    app = QatApp(settings=quick_settings(cifar_python_root, run_dir), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        app.screen.query_one("#preset").focus()
        await pilot.press("enter")  # open the select
        await pilot.press("up", "enter")  # sample is listed before quick
        await pilot.pause()
        assert app.preset_name == "sample"
        assert app.screen.get_field("data", "train_images").raw() is None
        assert app.screen.get_field("data", "batch_size").raw() == "256"
        assert app.screen.get_field("data", "root").raw() == cifar_python_root
        await pilot.press("ctrl+n")
        s = app.current_settings()
        assert s.float.epochs == 20 and s.run.run_dir == run_dir


async def test_missing_device_is_refused(cifar_python_root: str, tmp_path: Any) -> None:
    settings = quick_settings(cifar_python_root, str(tmp_path / "r"), run={"device": "cuda:7"})
    app = QatApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n", "ctrl+n")  # Data -> Model ->
        assert screen_name(app) == "BackendScreen"
        # "detecting..." shows until the worker is done (instant when torch is already imported)
        await wait_for(pilot, lambda: app.detection is not None, 120, "device detection")
        await pilot.pause(0.3)
        if "cuda:7" in app.detection.device_names():
            pytest.skip("this machine has a GPU 7")
        assert "Devices found" in text_of(app.screen.query_one("#detect-status"))
        field = app.screen.get_field("run", "device")
        err = text_of(field.query_one(".field-error"))
        assert "'cuda:7' does not exist" in err and "cpu" in err
        await pilot.press("ctrl+n")
        assert screen_name(app) == "BackendScreen"
        # choose auto (the first option) with the keyboard; then it goes on
        field.control.focus()
        await pilot.press("enter", "home", "enter")
        await pilot.pause()
        assert field.raw() == "auto"
        await pilot.press("ctrl+n")
        assert screen_name(app) == "StagesScreen"


async def test_int_infer_without_calib_and_qat_shows_error_modal(cifar_python_root: str, tmp_path: Any) -> None:
    settings = quick_settings(
        cifar_python_root, str(tmp_path / "r"), calib={"enabled": False}, qat={"enabled": False}
    )
    app = QatApp(settings=settings, detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        assert screen_name(app) == "StagesScreen"
        loads = text_of(app.screen.query_one("#loads-int_infer"))
        assert "both calib and qat are disabled" in loads
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen_name(app) == "ErrorModal"
        assert "Stage error" in text_of(app.screen.query_one("#error-title"))
        assert "both calib and qat are disabled" in text_of(app.screen.query_one("#error-message"))
        assert "enable calib" in text_of(app.screen.query_one("#error-hint"))
        await pilot.press("enter")
        assert screen_name(app) == "StagesScreen"
        # turning calib on fixes it: int_infer now loads the calibrated checkpoint
        app.screen.get_field("calib", "enabled").control.focus()
        await pilot.press("space")
        assert "calib-checkpoint.ckpt (from calib)" in text_of(app.screen.query_one("#loads-int_infer"))
        await pilot.press("ctrl+n")
        assert screen_name(app) == "QconfigScreen"


def _write_synthetic_run(run_dir: str) -> None:
    """An events.jsonl as a finished detached run leaves it (no torch needed)."""
    from core.events import (ArtifactWritten, CheckAdvice, EpochEnd, RunFinished, RunStarted, StageFinished,
                             StageStarted)

    os.makedirs(run_dir)
    arts = {}
    events: list = [RunStarted(run_dir=run_dir, stages=["float", "calib", "qat", "int_infer", "compile"],
                               settings_path=os.path.join(run_dir, "settings.toml"), backend="torch", device="cpu")]
    top1 = {"float": 80.0, "calib": 78.5, "qat": 79.25, "int_infer": 79.0, "compile": 79.0}
    files = {"float": ["float-checkpoint.ckpt"], "calib": ["calib-checkpoint.ckpt"], "qat": ["qat-checkpoint.ckpt"],
             "int_infer": ["int_model.pt2"], "compile": ["model.pt2", "check_report.txt", "perf.html", "model_graph.txt"]}
    for stage, acc in top1.items():
        events.append(StageStarted(stage=stage, inputs=[], summary=""))
        events.append(EpochEnd(stage=stage, epoch=1, epochs=1, train_loss=0.5, top1=acc, top5=99.0, lr=0.001, best=True))
        arts = {}
        for name in files[stage]:
            path = os.path.join(run_dir, name)
            with open(path, "w") as f:
                f.write("x" * 2048)
            events.append(ArtifactWritten(stage=stage, name=name, path=path, size=2048, description="about " + name))
            arts[name] = {"path": path, "size": 2048, "description": "about " + name}
        if stage == "compile":
            events.append(CheckAdvice(stage="compile", passed=True, summary="PASS: 53 of 53 conv/linear ops take int8 inputs",
                                      items=[{"op": "flatten", "node": "flatten", "module": "", "status": "no-op",
                                              "reason": "reshape only, no arithmetic", "suggestion": "nothing to do"},
                                             {"op": "linear", "node": "linear", "module": "classifier.1",
                                              "status": "int8-in/float-out", "reason": "high-precision output",
                                              "suggestion": "intended"},
                                             {"op": "conv2d", "node": "conv2d", "module": "features.0.0",
                                              "status": "int8", "reason": "", "suggestion": "none"}]))
        events.append(StageFinished(stage=stage, metrics={"top1": acc, "top5": 99.0}, seconds=1.0, artifacts=arts))
    events.append(RunFinished(ok=True, seconds=12.0))
    with open(os.path.join(run_dir, "events.jsonl"), "w", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e.to_dict()) + "\n")


async def test_attach_replays_a_finished_run_into_results(tmp_path: Any) -> None:
    """``qat-tui attach RUN_DIR`` on a finished (detached) run: its events are replayed, results open."""
    from textual.widgets import DataTable

    run_dir = str(tmp_path / "detached")
    _write_synthetic_run(run_dir)
    app = QatApp(settings=None, detect=False, attach=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "ResultsScreen" and app.screen.query("#check-table"),
                       10, "the results screen")
        await pilot.pause()
        run = app.run_screen
        assert run.attach_dir == run_dir and not run.running and not run.started_here
        acc = app.screen.query_one("#accuracy-table", DataTable)
        rows = [acc.get_row_at(i) for i in range(acc.row_count)]
        assert [r[1] for r in rows] == ["80.00", "78.50", "79.25", "79.00", "79.00"]
        assert [r[3] for r in rows] == ["baseline", "-1.50", "-0.75", "-1.00", "-1.00"]
        check = app.screen.query_one("#check-table", DataTable)
        rows = [check.get_row_at(i) for i in range(check.row_count)]
        assert [r[0] for r in rows] == ["no-op", "int8-in/float-out"]  # int8 ops are not listed
        assert rows[0][2] == "-"  # flatten is called in the model's own forward: no module
        arts = app.screen.query_one("#artifact-table", DataTable)
        assert arts.get_row_at(0)[:2] == ["float-checkpoint.ckpt", "2.0 kB"]
        await pilot.press("2")
        assert "about float-checkpoint.ckpt" in text_of(app.screen.query_one("#artifact-detail"))
        await pilot.press("3")
        details = []
        for _row in rows:
            await pilot.pause()
            details.append(text_of(app.screen.query_one("#check-detail")).splitlines()[0])
            await pilot.press("down")
        assert details == ["no-op flatten", "int8-in/float-out linear in classifier.1"]
        await pilot.press("escape")
        assert screen_name(app) == "RunScreen"
        assert run.query_one("#epoch-table", DataTable).row_count == 5


async def test_footers_show_quit_at_80_columns(tmp_path: Any, monkeypatch: Any) -> None:
    """The keys that matter (Quit above all) fit the footer at 80 columns on the run, results and debug
    screens; the tab keys are on the tabs and still work."""
    from qat_tui.screens.debug_screen import DebugScreen

    monkeypatch.setattr(DebugScreen, "action_rerun_debug", lambda self: None)  # no report: show the keys only
    run_dir = str(tmp_path / "detached")
    _write_synthetic_run(run_dir)
    app = QatApp(settings=None, detect=False, attach=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "ResultsScreen", 10, "the results screen")
        await wait_for_footer(pilot, app, "Debug layers", "Raw check text", "Back to run", "Quit")
        await pilot.press("3")
        assert app.screen.query_one("#results-tabs").active == "check"
        await pilot.press("escape")
        assert screen_name(app) == "RunScreen"
        await wait_for_footer(pilot, app, "Results", "Back", "Quit")
        await pilot.press("r")
        assert screen_name(app) == "ResultsScreen"
        await pilot.press("d")
        assert screen_name(app) == "DebugScreen"
        await wait_for_footer(pilot, app, "Mark", "Sort", "Fix + rerun", "Back", "Quit")
        await pilot.press("3")
        assert app.screen.query_one("#debug-tabs").active == "classes"


async def test_review_wraps_the_settings_comments_at_80_columns(cifar_python_root: str, tmp_path: Any) -> None:
    """The review shows the settings file's comments wrapped at its width; the file keeps its lines."""
    from core.settings import dumps

    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await _go_to_review(pilot, app)
        view = app.screen.query_one("#toml")
        await wait_for(pilot, lambda: view.scrollable_content_region.width > 0 and "[run]" in view.text, 10,
                       "the settings in the review")
        width = view.scrollable_content_region.width
        await pilot.press("s")  # the file written keeps its lines
        with open(os.path.join(app.current_settings().run_path(), "settings.toml"), encoding="utf-8") as f:
            saved = f.read().splitlines()
        assert saved == dumps(app.current_settings()).splitlines()
        assert max(len(line) for line in saved) > width  # its comments are longer than the view is wide
        shown = view.text.splitlines()
        assert [line for line in shown if line.startswith("#") and len(line) > width] == []

        def words(lines: List[str], comments: bool) -> List[str]:
            return " ".join(line.lstrip("#") for line in lines if line.startswith("#") == comments).split()

        assert words(shown, True) == words(saved, True)  # the same comments, wrapped differently
        assert [line for line in shown if not line.startswith("#")] == [line for line in saved if not line.startswith("#")]
        view.focus()
        await wait_for_footer(pilot, app, "Next", "Back", "Run", "Save", "Export script", "Quit")


def test_app_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, qat_tui.app, qat_tui.screens.data_screen, qat_tui.screens.backend_screen, "
        "qat_tui.screens.stages_screen, qat_tui.screens.qconfig_screen, qat_tui.screens.compile_screen, "
        "qat_tui.screens.review_screen, qat_tui.screens.run_screen, qat_tui.screens.results_screen, "
        "qat_tui.screens.error_modal, qat_tui.screens.debug_screen, qat_tui.debug_table, core.debug; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------------------- slow tests

async def _go_to_review(pilot: Any, app: Any) -> None:
    for expected in ("DataScreen", "ModelScreen", "BackendScreen", "StagesScreen", "QconfigScreen", "CompileScreen"):
        assert screen_name(app) == expected
        await pilot.press("ctrl+n")
    assert screen_name(app) == "ReviewScreen"


async def _go_to_review_and_run(pilot: Any, app: Any) -> Any:
    await _go_to_review(pilot, app)
    await pilot.press("ctrl+r")
    await pilot.pause()
    assert screen_name(app) == "RunScreen"
    return app.screen


@pytest.mark.slow
@requires_torch_backend
@pytest.mark.timeout(600)
async def test_whole_run_to_results(tiny_settings: Any) -> None:
    from textual.widgets import DataTable

    # the one test that builds the package; two float epochs leave time to press keys during one
    settings = tiny_settings(compile={"package": True}, float={"epochs": 2})
    app = QatApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        run = await _go_to_review_and_run(pilot, app)
        tabs = run.query_one("#run-tabs")
        assert tabs.active == "epochs"
        # keys are answered while an epoch runs
        await wait_for(pilot, lambda: run.last_progress is not None and run.last_progress.stage == "float",
                       180, "float training progress")
        await pilot.press("3")
        assert tabs.active == "log"
        await pilot.press("2")
        assert tabs.active == "chart"
        assert run.running, "the key must be handled while the run goes on"
        assert "running" in run.record.status.values()
        await wait_for(pilot, lambda: not run.running, 540, "the run to finish")
        assert run.ui_errors == []
        assert run.record.finished is not None and run.record.finished.ok, run.record.failure
        # epoch table rows for float and qat
        table = run.query_one("#epoch-table", DataTable)
        stages = [table.get_row_at(i)[0] for i in range(table.row_count)]
        assert "float" in stages and "qat" in stages and "calib" in stages
        # the results screen opens by itself
        await wait_for(pilot, lambda: screen_name(app) == "ResultsScreen" and app.screen.query("#check-table"),
                       10, "the results screen")
        await pilot.pause()
        res = app.screen
        arts = res.query_one("#artifact-table", DataTable)
        names = [arts.get_row_at(i)[0] for i in range(arts.row_count)]
        for name in ("float-checkpoint.ckpt", "calib-checkpoint.ckpt", "qat-checkpoint.ckpt", "int_model.pt2",
                     "check_report.txt", "perf.html", "model_graph.txt", "model.pt2"):
            assert name in names, names
        sizes = [arts.get_row_at(i)[1] for i in range(arts.row_count)]
        assert all(s.endswith("B") for s in sizes)
        summary = text_of(res.query_one("#results-summary"))
        assert "PASS" in summary
        assert "qat-tui run --config %s" % os.path.join(settings.run_path(), "settings.toml") in summary
        assert "PASS" in text_of(res.query_one("#check-verdict"))
        acc = res.query_one("#accuracy-table", DataTable)
        rows = [acc.get_row_at(i) for i in range(acc.row_count)]
        assert [r[0].split()[0] for r in rows] == ["float", "calib", "qat", "int_infer", "compile"]
        for r in rows:
            float(r[1])  # a top-1 for every stage, compile = the deployable package
        assert rows[0][3] == "baseline"
        for r in rows[1:]:
            drop = float(r[3])
            assert abs(drop - (float(r[1]) - float(rows[0][1]))) < 0.011
        # tabs of the results screen by key
        await pilot.press("3")
        assert res.query_one("#results-tabs").active == "check"
        await pilot.press("escape")
        assert screen_name(app) == "RunScreen"


@pytest.mark.slow
@requires_torch_backend
@pytest.mark.timeout(300)
async def test_cancel_records_cancelled(tiny_settings: Any) -> None:
    settings = tiny_settings(float={"epochs": 20})
    app = QatApp(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        run = await _go_to_review_and_run(pilot, app)
        await wait_for(pilot, lambda: run.last_progress is not None and run.last_progress.stage == "float",
                       180, "float training progress")
        assert "Cancel run" in [c[0] for c in app.get_system_commands(run)]  # the palette's, the same action
        # c asks first; no keeps the run going
        await pilot.press("c")
        await wait_for(pilot, lambda: screen_name(app) == "ConfirmModal", 10, "the cancel question")
        assert "Cancel the run?" in text_of(app.screen.query_one("#confirm-title"))
        assert "stops at the next batch and is recorded as cancelled" in text_of(app.screen.query_one("#confirm-message"))
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_name(app) == "RunScreen", 10, "the run screen again")
        assert run.running and not run.cancel_requested
        seen = run.last_progress
        await wait_for(pilot, lambda: run.last_progress is not seen, 60, "more progress after no")
        assert run.running and not run.cancel_requested
        # yes cancels
        await pilot.press("c")
        await wait_for(pilot, lambda: screen_name(app) == "ConfirmModal", 10, "the cancel question again")
        await pilot.press("y")
        await wait_for(pilot, lambda: not run.running, 120, "the cancelled run to stop")
        assert run.record.finished is not None and run.record.finished.cancelled
        with open(os.path.join(settings.run_path(), "state.json"), encoding="utf-8") as f:
            state = json.load(f)
        assert state["stages"]["float"]["status"] == "cancelled"
        assert "cancelled" in text_of(run.query_one("#current"))
        assert "float cancelled" in text_of(run.query_one("#stages-line"))
        assert screen_name(app) == "RunScreen"  # no error modal for a cancel
        await pilot.press("escape")
        assert screen_name(app) == "ReviewScreen"
        assert "last try cancelled" in text_of(app.screen.query_one("#plan"))


@pytest.mark.slow
@requires_torch_backend
@pytest.mark.timeout(300)
async def test_failed_setup_shows_error_panel(tiny_settings: Any) -> None:
    """A device that does not exist, given to the run directly (the wizard refuses it earlier): the
    worker process fails at setup and the run screen shows why."""
    settings = tiny_settings(run={"device": "cuda:7"})
    app = QatApp(settings=settings, detect=False)
    async with app.run_test(size=SIZE) as pilot:
        assert app.start_run(settings)
        await pilot.pause()
        run = app.run_screen
        await wait_for(pilot, lambda: not run.running and run.record.finished is not None, 180, "the run to fail")
        await pilot.pause()
        from core.devices import available_devices

        if "cuda:7" in [d.name for d in available_devices()]:
            pytest.skip("this machine has a GPU 7")
        assert not run.record.finished.ok
        panel = run.query_one("#error-panel")
        assert panel.display
        text = text_of(panel)
        assert "Device error" in text and "'cuda:7' does not exist" in text and "use one of" in text
        assert screen_name(app) == "ErrorModal"
        assert "use one of" in text_of(app.screen.query_one("#error-hint"))
        await pilot.press("escape")
        assert screen_name(app) == "RunScreen"
        assert "failed" in text_of(run.query_one("#current"))


@pytest.mark.slow
@requires_torch_backend
@pytest.mark.timeout(300)
async def test_quit_during_a_run_asks_and_leaving_keeps_it_running(tiny_settings: Any) -> None:
    """q during a run asks: leave it running or stop it. Left running, the worker goes on without the
    wizard, and a new wizard attached to the run directory shows its live progress."""
    from core.runs import is_running
    from core.worker import request_cancel

    settings = tiny_settings(float={"epochs": 20})
    app = QatApp(settings=settings, detect=False)
    async with app.run_test(size=SIZE) as pilot:
        assert app.start_run(settings)
        await wait_for(pilot, lambda: app.run_screen is not None, 10, "the run screen")
        run = app.run_screen
        await wait_for(pilot, lambda: run.last_progress is not None, 180, "training progress")
        await pilot.press("q")
        await pilot.pause()
        assert screen_name(app) == "QuitModal"
        assert "qat-tui attach %s" % settings.run_path() in text_of(app.screen.query_one("#quit-message"))
        await pilot.press("escape")  # stay
        assert screen_name(app) == "RunScreen" and run.running
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("l")  # leave it running
        await pilot.pause()
    assert is_running(settings.run_path())
    # a new wizard lists the run on its first screen; ctrl+o follows it
    app2 = QatApp(settings=None, detect=False)
    try:
        async with app2.run_test(size=SIZE) as pilot:
            assert screen_name(app2) == "DataScreen"
            box = app2.screen.query_one("#runs-in-progress")
            await wait_for(pilot, lambda: box.display and settings.run_path() in text_of(box), 20, "the runs in progress")
            assert "ctrl+o" in text_of(box)
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: app2.run_screen is not None, 10, "the run screen")
            run2 = app2.run_screen
            await wait_for(pilot, lambda: run2.last_progress is not None, 120, "live progress after re-attaching")
            assert run2.running and not run2.started_here
            # rebuilt from the event log: the run's earlier float progress is known
            assert run2.record.status["float"] == "running"
            await pilot.press("c")  # stop it from the attached wizard (it asks first)
            await wait_for(pilot, lambda: screen_name(app2) == "ConfirmModal", 10, "the cancel question")
            await pilot.press("y")
            await wait_for(pilot, lambda: not run2.running, 120, "the run to stop")
            assert run2.record.finished is not None and run2.record.finished.cancelled
    finally:
        request_cancel(settings.run_path())
