"""Per-layer debug on the horizon backend, through the test double of the plugin's
``featuremap_similarity`` (tests/horizon_double/horizon_plugin_pytorch/utils/quant_profiler.py): the
planted model (tests/assets/planted_net.py) loses most of its top-1 in int8, the debug ranks the planted
layer first (by the fall of the accumulated SQNR there: Horizon's same-input figure is in multiples of
the output scale),
the plugin's files are kept, keeping its output in float (the sensitivity measure) gives the accuracy
back, and ``[qconfig] float_layers`` reaches ``prepare_qat_fx`` as qconfig None for that module. Runs on torch 1.10 / Python 3.8 too (Horizon's XJ3/J5 dockers)."""
import os
from typing import Any, Dict

import pytest

from core import events as E
from core.pipeline import Pipeline
from core.settings import validate
from core.state import RunState

from .conftest import REPO, own_model_settings

PLANTED = os.path.join(REPO, "tests", "assets", "planted_net.py") + ":build"


def _run(settings: Any) -> Dict[str, float]:
    def emit(ev: Any) -> None:
        if isinstance(ev, E.StageFailed):
            raise AssertionError("%s failed: %s (%s)" % (ev.stage, ev.message, ev.hint))

    assert Pipeline(settings, emit=emit).run()
    state = RunState.load(settings.run_path())
    return {s: state.stage(s)["metrics"]["top1"] for s in ("float", "calib", "int_infer")}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_planted_layer_on_the_horizon_double_is_found_and_fixed(three_class_root: str, tmp_path: Any,
                                                                horizon_double: Any) -> None:
    from core.debug import run_debug, with_float_layers

    settings = validate(own_model_settings(
        three_class_root, str(tmp_path / "run"), {"builder": PLANTED}, run={"backend": "horizon"},
        qat={"enabled": False}, compile={"enabled": False}, qconfig={"calib_observer": "min_max"},
        float={"epochs": 3, "lr": 0.01}, debug={"images": 16, "eval_images": 60, "sensitivity_layers": 3}))
    top1 = _run(settings)
    drop = top1["float"] - top1["int_infer"]
    assert drop >= 5, top1

    horizon_double.reset()
    report = run_debug(settings)
    calls = horizon_double.calls("featuremap_similarity")
    assert [c["similarity_func"] for c in calls] == ["Cosine", "per_channel_sqnr"]
    assert not any(c["model1_training"] or c["model2_training"] for c in calls)
    out_dir = os.path.join(settings.run_path(), "debug_horizon")
    for name in ("similarity.txt", "ordered_op_error_similarity.txt", "similarity.html"):
        assert os.path.getsize(os.path.join(out_dir, name)) > 0, name
    assert "Op Error with Same" in open(os.path.join(out_dir, "similarity.txt")).read()

    worst = report.worst()
    assert worst[0]["name"] == "mid", [(r["name"], r["sqnr_drop_db"]) for r in worst]
    assert worst[0]["same_input"]["sqnr_db"] is None and worst[0]["same_input"]["scale_error"] is not None
    assert worst[0]["sqnr_drop_db"] > worst[1]["sqnr_drop_db"] + 10, worst[:2]
    assert any("levels" in why for why in worst[0]["reasons"]), worst[0]
    assert worst[0]["top1_gained"] >= drop / 2, (worst[0]["top1_gained"], drop)

    # [qconfig] float_layers reaches prepare_qat_fx as qconfig None for the module (not quantized). It does
    # not recover this drop on Horizon: the next conv still quantizes mid's output at its input (see the
    # closing note of the debug issue: the Horizon fix for a crushed range is int16 on bayes).
    fixed = with_float_layers(settings, ["mid"])
    after = _run(fixed)
    assert after["float"] == top1["float"]  # float stayed done; calib and int_infer reran
    prepared = [c for c in horizon_double.calls("prepare_qat_fx")][-1]
    assert ("mid", None) in [tuple(x) for x in prepared["qconfig_names"]["module_name"]], prepared["qconfig_names"]
