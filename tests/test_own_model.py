"""Your own model and your own images, through all five stages: torchvision's resnet18 and
mobilenet_v3_small and a model file of the user's (a residual add, a channel concat, adaptive pooling;
``[model] builder = "tests/assets/user_net.py:build"``) on a 3-class ImageFolder of mixed image sizes at
64x64, on the torch backend and on the horizon test double; the exported torch script of the user model
reproduces the engine; bad model and data inputs get one clear message and exit code 2."""
import json
import os
import subprocess
import sys
from typing import Any, Dict

import pytest

from core import events as E
from core.pipeline import Pipeline
from core.settings import save, validate
from core.state import RunState

from .conftest import TORCH_BACKEND, USER_NET, own_model_settings

MODELS = {
    "resnet18": {"arch": "resnet18"},
    "mobilenet_v3_small": {"arch": "mobilenet_v3_small"},
    "user_net": {"builder": USER_NET + ":build", "kwargs": {"width": 12}},
}
OUTPUT_LAYER = {"resnet18": "fc", "mobilenet_v3_small": "classifier.3", "user_net": "head"}


def _run(settings: Any) -> Dict[str, Any]:
    events: list = []
    ok = Pipeline(settings, emit=events.append).run()
    assert ok, [(e.stage, e.title, e.message) for e in events if isinstance(e, E.StageFailed)]
    logs = "\n".join(e.text for e in events if isinstance(e, E.LogLine))
    return {"metrics": {e.stage: e.metrics for e in events if isinstance(e, E.StageFinished)}, "log": logs}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_five_stages_with_your_model_on_the_torch_backend(name: str, three_class_root: str, tmp_path: Any) -> None:
    if not TORCH_BACKEND:
        pytest.skip("the torch backend needs torch >= 2.5 and torchao (this is Horizon's Python 3.8 environment)")
    # the user model also builds the AOTInductor package (a minute) and evaluates it
    s = validate(own_model_settings(three_class_root, str(tmp_path / "run"), MODELS[name],
                                    compile={"package": name == "user_net"}))
    out = _run(s)
    m = out["metrics"]
    state = RunState.load(s.run_path())
    assert state.finished_stages() == ["float", "calib", "qat", "int_infer", "compile"]
    assert "DeQuantStub after the output layer %s" % OUTPUT_LAYER[name] in out["log"]
    assert "3 classes, 64x64 input" in out["log"] and "Normalize(mean=[0.485" in out["log"]  # ImageNet's: not CIFAR
    for stage in ("float", "calib", "qat", "int_infer"):
        assert 0.0 <= m[stage]["top1"] <= 100.0
    assert abs(m["int_infer"]["top1"] - m["qat"]["top1"]) <= 12, m  # 60 images: 7 disagreements at most
    if name == "user_net":
        assert abs(m["compile"]["top1"] - m["int_infer"]["top1"]) <= 2, m  # the package runs the integer model
        assert m["float"]["top1"] > 50, m  # the shapes are learnable: well above chance (33%)
    report = open(os.path.join(s.run_path(), "check_report.txt")).read()
    assert OUTPUT_LAYER[name] in report  # the high-precision output layer is named in the check report


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_five_stages_with_your_model_on_the_horizon_double(name: str, three_class_root: str, tmp_path: Any,
                                                           horizon_double: Any) -> None:
    s = validate(own_model_settings(three_class_root, str(tmp_path / "run"), MODELS[name], run={"backend": "horizon"},
                                    qconfig={"calib_observer": "min_max"}, float={"epochs": 1}))
    horizon_double.reset()
    out = _run(s)
    state = RunState.load(s.run_path())
    assert state.finished_stages() == ["float", "calib", "qat", "int_infer", "compile"]
    assert "output layer %s: default_calib_8bit_weight_32bit_out" % OUTPUT_LAYER[name] in out["log"]
    assert "the backend's CenteredYUV()" in out["log"]  # Horizon's pyramid input, not mean/std
    apis = [c["api"] for c in horizon_double.calls()]
    # Horizon's documented order: set_march, prepare_qat_fx (calib, qat, int_infer), convert_fx, check_model, compile_model
    assert apis.index("set_march") < apis.index("prepare_qat_fx") < apis.index("convert_fx") < apis.index("check_model") \
        < apis.index("compile_model"), apis
    assert all(c["fresh"] for c in horizon_double.calls("prepare_qat_fx"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_exported_script_builds_the_same_user_model(three_class_root: str, tmp_path: Any) -> None:
    if not TORCH_BACKEND:
        pytest.skip("the torch backend needs torch >= 2.5 and torchao")
    from core.export import export_script, script_run_dir

    # one layer kept in float: the script must remove the same fake quants as the engine ([qconfig] float_layers)
    common = own_model_settings(three_class_root, "", MODELS["user_net"], run={"threads": 2, "seed": 1},
                                qconfig={"float_layers": ["branch_a.0"]})
    engine = _run(validate(dict(common, run=dict(common["run"], run_dir=str(tmp_path / "engine")))))["metrics"]
    script, _toml = export_script(validate(dict(common, run=dict(common["run"], run_dir=str(tmp_path / "x")))),
                                  str(tmp_path / "qat_user_net.py"))
    text = open(script).read()
    assert USER_NET in text  # the user's file, by its absolute path
    assert "keep_float(prepared, SETTINGS" in text
    for stage in ("float", "calib", "qat", "int_infer"):
        proc = subprocess.run([sys.executable, script, "--stage", stage], capture_output=True, text=True, cwd=str(tmp_path))
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    with open(os.path.join(script_run_dir(script), "metrics.json")) as f:
        metrics = json.load(f)
    for stage in ("float", "calib", "qat", "int_infer"):
        assert abs(metrics[stage]["top1"] - engine[stage]["top1"]) <= 0.5, (stage, metrics[stage], engine[stage])


# ------------------------------------------------------------------------------------ bad inputs

def _headless(settings_path: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "qat_tui", "run", "--config", settings_path],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("model,needle", [
    ({"builder": USER_NET + ":nope"}, "has no function 'nope'"),
    ({"builder": USER_NET + ":wrong_shape"}, "expected (2, 3) = (N, num_classes)"),
    ({"builder": "missing_dir/net.py:build"}, "does not exist"),
    ({"arch": "resnet19"}, "'resnet19' is not a classification model of torchvision"),
    ({"builder": USER_NET + ":branchy"}, "could not capture the model"),  # found before float trains
    ({"builder": USER_NET + ":build", "num_classes": 10}, "but [model] num_classes = 10"),  # a data error: also 2
])
def test_a_bad_model_stops_with_exit_code_2_and_keeps_the_last_checkpoint(model: Dict[str, Any], needle: str,
                                                                           three_class_root: str, tmp_path: Any,
                                                                           request: Any) -> None:
    extra: Dict[str, Any] = {}
    if not TORCH_BACKEND:  # Horizon's Python 3.8 environment: the same through the horizon backend (its double)
        request.getfixturevalue("horizon_double")
        extra = {"run": {"backend": "horizon"}, "qconfig": {"calib_observer": "min_max"}}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    kept = run_dir / "float-checkpoint.ckpt"
    kept.write_bytes(b"an earlier float checkpoint")
    cfg = str(tmp_path / "s.toml")
    save(validate(own_model_settings(three_class_root, str(run_dir), model, **extra)), cfg)
    proc = _headless(cfg)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, out[-3000:]
    assert needle in out and "Traceback" not in out and "def forward" not in out, out[-3000:]
    assert kept.read_bytes() == b"an earlier float checkpoint"


def test_class_count_and_folders_that_do_not_match_name_both(three_class_root: str, tmp_path: Any) -> None:
    from core.data import DataBundle
    from core.errors import DataError
    from core.settings import DataSettings

    d = DataSettings(root=three_class_root, image_size=64, num_workers=0)
    with pytest.raises(DataError) as e:
        DataBundle(d, 0, num_classes=10)
    assert "the data has 3 classes (circle, cross, stripes) but [model] num_classes = 10" in e.value.msg
    b = DataBundle(d, 0)  # unset: from the data
    assert b.num_classes == 3 and tuple(b.test[0][0].shape) == (3, 64, 64)
    assert "ImageNet" in b.normalization


def test_unreadable_images_are_named_or_skipped_with_a_count(tmp_path: Any) -> None:
    import shutil

    from core.data import BadImageError, DataBundle
    from core.settings import DataSettings

    from .conftest import write_three_class_folder

    root = write_three_class_folder(str(tmp_path / "imgs"), n_train=12, n_val=6)
    bad = os.path.join(root, "train", "cross", "0001.png")
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[: len(data) // 3])  # a copy cut short
    shutil.copy(bad, os.path.join(root, "val", "circle", "bad.png"))
    b = DataBundle(DataSettings(root=root, image_size=32, num_workers=0), 0)
    with pytest.raises(BadImageError) as e:
        [b.train_full[i] for i in range(len(b.train_full))]
    assert bad in e.value.msg and "skip_bad_images" in e.value.hint
    warnings: list = []
    b = DataBundle(DataSettings(root=root, image_size=32, num_workers=0, skip_bad_images=True), 0, warn=warnings.append)
    assert len(b.train_full) == 11 and len(b.test_full) == 6
    assert any("skipped 1 unreadable image(s) of train/" in w and bad in w for w in warnings), warnings
    assert [b.train_full[i][1] for i in range(len(b.train_full))]  # all of the rest load


@pytest.mark.parametrize("backend_name", ["torch", "horizon"])
def test_a_model_the_toolchain_cannot_capture_names_the_line(backend_name: str, request: Any) -> None:
    import torch

    from core.backends import get_backend
    from core.errors import ModelError
    from core.models import build_float_model

    if backend_name == "torch" and not TORCH_BACKEND:
        pytest.skip("the torch backend needs torch >= 2.5 and torchao")
    if backend_name == "horizon":
        request.getfixturevalue("horizon_double")
    s = validate({"run": {"backend": backend_name}, "qconfig": {"calib_observer": "min_max"}})
    backend = get_backend(backend_name, s)
    model = build_float_model(3, builder=USER_NET + ":branchy", stubs=backend.quant_stubs()).eval()
    with pytest.raises(ModelError) as e:  # a settings error (exit code 2): the fix is in the model file
        backend.prepare(model, (torch.randn(4, 3, 32, 32),), "calib", s.qconfig)
    assert "could not capture the model" in e.value.msg, e.value.msg
    assert "user_net.py, line" in e.value.msg and "if x.mean() > 0:" in e.value.msg, e.value.msg
    assert "torch.where" in e.value.hint
