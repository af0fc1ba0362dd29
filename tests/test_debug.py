"""Per-layer debug (core/debug.py, the torch backend's compare_layers, qat-tui debug): a model with a
planted bad layer (tests/assets/planted_net.py) loses most of its top-1 in int8; the debug ranks that
layer first by its own (same-input) error, its top-1 gained in float shows the cure, and
``[qconfig] float_layers`` through ``qat-tui debug --keep-float`` reruns calib and int_infer and
recovers the accuracy."""
import json
import os
from typing import Any, Dict

import pytest

from core import events as E
from core.errors import CheckpointError, SettingsError
from core.pipeline import Pipeline
from core.settings import save, validate

from .conftest import REPO, TORCH_BACKEND, own_model_settings

pytestmark = pytest.mark.skipif(not TORCH_BACKEND, reason="the per-layer debug runs on the torch backend (torch >= 2.5, torchao)")

PLANTED = os.path.join(REPO, "tests", "assets", "planted_net.py") + ":build"


def _settings(root: str, run_dir: str, **extra: Dict[str, Any]) -> Any:
    d = own_model_settings(root, run_dir, {"builder": PLANTED}, qat={"enabled": False}, compile={"enabled": False},
                           qconfig={"calib_observer": "min_max"}, float={"epochs": 3, "lr": 0.01},
                           debug={"images": 16, "eval_images": 60, "sensitivity_layers": 3})
    for name, values in extra.items():
        d.setdefault(name, {}).update(values)
    return validate(d)


def _top1(settings: Any) -> Dict[str, float]:
    done: Dict[str, float] = {}

    def emit(ev: Any) -> None:
        if isinstance(ev, E.StageFailed):
            raise AssertionError("%s failed: %s (%s)" % (ev.stage, ev.message, ev.hint))

    assert Pipeline(settings, emit=emit).run()
    from core.state import RunState

    state = RunState.load(settings.run_path())
    for stage in ("float", "calib", "int_infer"):
        done[stage] = state.stage(stage)["metrics"]["top1"]
    return done


@pytest.fixture(scope="module")
def planted_run(three_class_root: str, tmp_path_factory: Any) -> Any:
    """The planted model through float, calib and int_infer; a copy of the run folder (``<run>-ui``)
    for the wizard test, so that the two tests' fixes do not meet."""
    import shutil

    from core.debug import REPORT_JSON

    run_dir = str(tmp_path_factory.mktemp("planted") / "run")
    settings = _settings(three_class_root, run_dir, debug={"after_run": True})
    top1 = _top1(settings)
    assert os.path.exists(os.path.join(run_dir, REPORT_JSON))  # [debug] after_run: the debug ran after int_infer
    os.unlink(os.path.join(run_dir, REPORT_JSON))  # the wizard test runs it again from its screen
    shutil.copytree(run_dir, run_dir + "-ui")
    return settings, top1


def test_planted_layer_is_found_and_keeping_it_float_recovers_the_accuracy(planted_run: Any, capsys: Any) -> None:
    from core.debug import REPORT_HTML, REPORT_JSON, load_report, run_debug
    from qat_tui.cli import main

    settings, top1 = planted_run
    drop = top1["float"] - top1["int_infer"]
    assert drop >= 5, top1  # the planted outlier channel crushes mid's output in 8 bits

    report = run_debug(settings)
    worst = report.worst()
    assert worst[0]["name"] == "mid", [(r["name"], r["same_input"]["sqnr_db"]) for r in worst]
    assert worst[0]["same_input"]["sqnr_db"] < worst[1]["same_input"]["sqnr_db"] - 10
    assert any("levels" in why for why in worst[0]["reasons"]), worst[0]["reasons"]
    assert worst[0]["top1_gained"] >= drop / 2
    assert report.top1["float"] - report.top1["quantized"] >= 5
    names = [r["name"] for r in report.layers]
    assert names[0] == "input" and names.index("stem.0") < names.index("mid") < names.index("post")
    assert sum(c["images"] for c in report.per_class) == report.eval_images
    assert len(report.confusion["quantized"]) == len(report.classes) == 3
    assert load_report(settings.run_path()).layers == report.layers  # debug_report.json round trip
    assert "mid" in open(os.path.join(settings.run_path(), REPORT_HTML)).read()
    with open(os.path.join(settings.run_path(), REPORT_JSON)) as f:
        assert json.load(f)["source"] == "calib"

    # headless: the table, then the one-key fix written into the run's settings with what reruns
    assert main(["debug", settings.run_path(), "--images", "8", "--layers", "1"]) == 0
    out = capsys.readouterr().out
    assert "mid" in out and "--keep-float mid" in out
    assert "accum SQNR dB" in out  # not a terminal: the table is not cut to 80 columns
    assert main(["debug", settings.run_path(), "--keep-float", "mdi"]) == 2
    assert "nearest: mid" in capsys.readouterr().err
    assert main(["debug", settings.run_path(), "--keep-float", "mid"]) == 0
    out = capsys.readouterr().out
    assert "calib" in out and "int_infer" in out and "float_layers" in out
    assert "float " not in out.split("written to")[1]  # the float stage is kept

    from core.runs import load_run_settings

    fixed, _note = load_run_settings(settings.run_path())
    assert fixed.qconfig.float_layers == ["mid"]
    after = _top1(fixed)
    assert after["float"] == top1["float"]
    assert after["int_infer"] - top1["int_infer"] >= drop / 2, (top1, after)


def test_debug_names_the_stage_to_run_and_refuses_unknown_layers(three_class_root: str, tmp_path: Any) -> None:
    from core.debug import run_debug

    empty = _settings(three_class_root, str(tmp_path / "empty"))
    with pytest.raises(CheckpointError) as e:
        run_debug(empty)
    assert "float-checkpoint.ckpt" in str(e.value.msg) and "run the float stage first" in (e.value.hint or "")

    only_float = _settings(three_class_root, str(tmp_path / "float_only"), float={"epochs": 1})
    assert Pipeline(only_float).run(stages=["float"])
    with pytest.raises(CheckpointError) as e:
        run_debug(only_float)
    assert "calib-checkpoint.ckpt" in e.value.msg and "calib stage" in (e.value.hint or "")

    # a layer the model does not have: a settings error naming the nearest layers, before any checkpoint is written
    bad = _settings(three_class_root, str(tmp_path / "float_only"), float={"epochs": 1}, qconfig={"float_layers": ["stem0"]})
    cfg = str(tmp_path / "bad.toml")
    save(bad, cfg)
    failed = []
    assert not Pipeline(bad, emit=lambda ev: failed.append(ev) if isinstance(ev, E.StageFailed) else None).run()
    assert failed and failed[0].stage == "calib" and failed[0].settings_error
    assert "'stem0' (nearest: stem.0" in failed[0].message
    assert not os.path.exists(os.path.join(bad.run_path(), "calib-checkpoint.ckpt"))
    with pytest.raises(SettingsError):
        validate(dict(bad.model_dump(), qconfig=dict(bad.qconfig.model_dump(), float_layers=[" "])))


def test_layers_of_a_prepared_model_and_keep_float() -> None:
    import torch

    from core.backends.torch_pt2e.backend import TorchPt2eBackend
    from core.backends.torch_pt2e.layers import keep_float, quant_layers
    from core.models import build_float_model

    backend = TorchPt2eBackend()
    model = build_float_model(3, stubs=backend.quant_stubs(), builder=os.path.join(REPO, "tests", "assets", "user_net.py") + ":build",
                              kwargs={"width": 8}).eval()
    qconfig = validate({}).qconfig
    prepared = backend.prepare(model, (torch.randn(4, 3, 32, 32),), "calib", qconfig)
    layers = {layer.name: layer for layer in quant_layers(prepared)}
    assert {"input", "stem.0", "block.conv1", "block.conv2", "branch_a.0", "branch_b.0", "cat", "down.0", "head"} <= set(layers)
    assert layers["block.conv2"].op == "conv2d+batch_norm+add+relu"  # the residual add fused into its conv
    assert layers["head"].act_fq == [] and layers["head"].weight_fq  # the float-output layer: weights only
    n_fq = sum(1 for n in prepared.graph.nodes if n.op == "call_module" and "activation_post_process" in str(n.target))
    kept = keep_float(prepared, ["branch_a.0"])
    assert [k.name for k in kept] == ["branch_a.0"]
    assert sum(1 for n in prepared.graph.nodes if n.op == "call_module" and "activation_post_process" in str(n.target)) == n_fq - 2
    assert prepared(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="nearest: block.conv1"):
        keep_float(prepared, ["block.cnv1"])

    # MobileNetV2: torchao's eval mode rewrites its classifier's Dropout without module names; the layer
    # names stay those of the prepared graph (what float_layers is matched against)
    from core.backends.base import FakeQuantState

    mnv2 = build_float_model(3, width_mult=0.25, stubs=backend.quant_stubs()).eval()
    prepared = backend.prepare(mnv2, (torch.randn(4, 3, 32, 32),), "qat", qconfig)
    names = [layer.name for layer in quant_layers(prepared)]
    backend.set_fake_quant_state(prepared, FakeQuantState.VALIDATION)
    assert [layer.name for layer in quant_layers(prepared)] == names
    assert "classifier.1" in names and not any(n.startswith("dropout") for n in names), names


def test_reasons_in_plain_words() -> None:
    from core.debug import reasons

    base = {"scale": 0.1, "zero_point": 0, "levels": 256, "clipped": 0.0, "levels_used": 120, "float_min": 0.0,
            "float_max": 25.0, "weight_outliers": 5.0, "same_input": {"sqnr_db": 35.0}}
    assert reasons(base) == []
    assert "output range clipped" in reasons(dict(base, clipped=0.05))[0]
    assert "use 3 of 256 levels" in reasons(dict(base, levels_used=3))[0]
    assert "weights with outliers" in reasons(dict(base, weight_outliers=80.0))[0]
    assert reasons(base, starts_here=True) == ["accumulated error starts here"]
    assert "own 8-bit error" in reasons(dict(base, same_input={"sqnr_db": 12.0}))[0]


@pytest.mark.timeout(600)
async def test_wizard_results_debug_mark_fix_rerun_and_compare(planted_run: Any) -> None:
    """Pilot, 80x24: results -> d (debug) -> the planted layer on top -> space marks it -> f shows what
    reruns -> enter reruns in the background -> results with the before/after tab."""
    from textual.widgets import DataTable

    from qat_tui.app import QatApp

    from .test_app import SIZE, screen_name, text_of, wait_for

    settings, top1 = planted_run
    run_dir = settings.run_path() + "-ui"
    app = QatApp(settings=None, detect=False, attach=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "ResultsScreen", 30, "the results screen")
        await pilot.pause()
        await pilot.press("d")
        assert screen_name(app) == "DebugScreen"
        debug = app.screen
        await wait_for(pilot, lambda: debug.report is not None, 300, "the per-layer debug")
        await pilot.pause()
        table = debug.query_one("#layer-table", DataTable)
        assert table.get_row_at(0)[2].plain == "mid"  # rank 1: the planted layer
        assert "levels" in text_of(debug.query_one("#layer-detail"))
        await pilot.press("s")  # sorts by the next column (layer name), then back by rank
        assert [table.get_row_at(i)[2].plain for i in range(table.row_count)] == sorted(r["name"] for r in debug.report.layers)
        for _ in range(len(("rank", "name", "same_sqnr", "acc_sqnr", "gained", "op", "why")) - 1):
            await pilot.press("s")
        assert table.get_row_at(0)[2].plain == "mid"
        await pilot.press("3")
        assert debug.query_one("#class-table", DataTable).row_count == 3
        await pilot.press("1")
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("space")
        assert debug.marked == {"mid"} and table.get_row_at(0)[0].plain == "*"
        await pilot.press("f")
        assert screen_name(app) == "FixModal"
        plan = text_of(app.screen.query_one("#fix-message"))
        assert "calib" in plan and "int_infer" in plan and "float_layers" in plan
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen_name(app) == "RunScreen", 30, "the run screen of the rerun")
        run = app.screen
        await wait_for(pilot, lambda: not run.running, 540, "the rerun to finish")
        assert run.record.finished is not None and run.record.finished.ok, run.record.failure
        assert run.record.status["float"] == "skipped"  # only what float_layers changes reruns
        await wait_for(pilot, lambda: screen_name(app) == "ResultsScreen" and app.screen.query("#compare-table"),
                       30, "the results with the before/after tab")
        await pilot.press("4")
        cmp_table = app.screen.query_one("#compare-table", DataTable)
        rows = {cmp_table.get_row_at(i)[0]: cmp_table.get_row_at(i) for i in range(cmp_table.row_count)}
        before, now = float(rows["int_infer (integer model) top-1 %"][1]), float(rows["int_infer (integer model) top-1 %"][2])
        assert before == pytest.approx(top1["int_infer"], abs=0.01)
        assert now - before >= (top1["float"] - top1["int_infer"]) / 2
        assert rows["layers in float"][1:3] == ["none", "mid"]
