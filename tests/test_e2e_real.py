"""End to end on the real CIFAR-10 from ../shared/data (skipped with a reason where it is absent):
the full-width MobileNetV2 through all five stages on a few hundred images, with the AOTInductor
package, from the cifar-python layout; and the ImageFolder layout through float and calib."""
import os

import pytest

from core import events as E
from core.pipeline import Pipeline
from core.settings import validate

from .conftest import requires_torch_backend

pytestmark = [pytest.mark.slow, requires_torch_backend]


def _settings(root, run_dir, **over):
    data = {
        "run": {"run_dir": run_dir, "threads": 2},
        "data": {"root": root, "train_images": 640, "eval_images": 500, "batch_size": 32, "eval_batch_size": 250,
                 "num_workers": 0, "augment": "none"},
        "model": {},
        "float": {"epochs": 2, "lr": 0.003},
        "calib": {"num_images": 256},
        "qat": {"epochs": 1},
        "compile": {"package": True, "perf_batch_sizes": [1, 64], "perf_iterations": 3, "graph_format": "auto"},
    }
    for k, v in over.items():
        data.setdefault(k, {}).update(v)
    return validate(data)


def test_real_cifar10_all_stages_with_package(real_cifar10, tmp_path):
    events = []
    settings = _settings(os.path.join(real_cifar10, "cifar-10-batches-py"), str(tmp_path / "run"))
    ok = Pipeline(settings, emit=events.append).run()
    failed = [(e.title, e.message) for e in events if isinstance(e, E.StageFailed)]
    assert ok, failed
    # the rebuilt batches (other md5 sums than the official ones) load through the restricted reader
    assert any(e.text.startswith("cifar-python in") for e in events if isinstance(e, E.LogLine))
    metrics = {e.stage: e.metrics for e in events if isinstance(e, E.StageFinished)}
    assert set(metrics) == {"float", "calib", "qat", "int_infer", "compile"}
    # the deployable package gives the integer model's accuracy on the same 500 test images
    assert abs(metrics["compile"]["top1"] - metrics["int_infer"]["top1"]) <= 1.0
    assert metrics["compile"]["check_passed"]
    names = {e.name for e in events if isinstance(e, E.ArtifactWritten)}
    assert {"model.pt2", "int_model.pt2", "perf.html", "check_report.txt"} <= names
    assert ("model.svg" in names) or ("model_graph.txt" in names)
    assert metrics["compile"]["latency_ms_int8_bs64"] > 0
    # int8 weights: the integer model is far smaller than the fp32 float checkpoint
    sizes = {e.name: e.size for e in events if isinstance(e, E.ArtifactWritten)}
    assert sizes["int_model.pt2"] < 0.5 * sizes["float-checkpoint.ckpt"]
    # compile alone in a fresh process (a compile-only run, a resume): still int8 kernels in the package
    import subprocess
    import sys

    from core.backends.torch_pt2e.check import package_kernels

    in_process = package_kernels(os.path.join(settings.run_path(), "model.pt2"))
    assert in_process["int8_conv"] > 0 and in_process["fp32_conv"] == 0, in_process
    proc = subprocess.run([sys.executable, "-m", "qat_tui", "run", "--config", os.path.join(settings.run_path(), "settings.toml"),
                           "--stage", "compile", "--force"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert package_kernels(os.path.join(settings.run_path(), "model.pt2")) == in_process


def test_real_cifar10_imagefolder_layout(real_cifar10, tmp_path):
    events = []
    settings = _settings(
        real_cifar10, str(tmp_path / "run"),
        data={"layout": "imagefolder", "train_images": 256, "eval_images": 256},
        model={"width_mult": 0.5},
        float={"epochs": 1},
        qat={"enabled": False},
        int_infer={"enabled": False},
        compile={"enabled": False},
    )
    ok = Pipeline(settings, emit=events.append).run()
    assert ok, [(e.title, e.message) for e in events if isinstance(e, E.StageFailed)]
    logs = " ".join(e.text for e in events if isinstance(e, E.LogLine))
    assert "imagefolder in" in logs and "256 train images (of 50000)" in logs
    assert [e.stage for e in events if isinstance(e, E.StageFinished)] == ["float", "calib"]


def test_qat_after_calibrating_a_barely_trained_model_trains(real_cifar10, tmp_path):
    """Issue 7's reproduction: width 0.25, 256 images, float 1 epoch, calib on 128 with min_max, QAT lr
    1e-5. With BatchNorm batch statistics the loss became NaN within a few batches (fake quant rounds
    some channels to one value; their zero batch variance makes train-mode BatchNorm multiply the
    gradient by 1/sqrt(eps)): the hint names the remedy, and the default (frozen statistics) trains."""
    over = dict(data={"train_images": 256, "eval_images": 256}, model={"width_mult": 0.25},
                float={"epochs": 1}, calib={"num_images": 128}, qconfig={"calib_observer": "min_max"},
                qat={"epochs": 1, "lr": 1e-5, "bn_stats": "batch"}, int_infer={"enabled": False},
                compile={"enabled": False})
    root = os.path.join(real_cifar10, "cifar-10-batches-py")
    events = []
    ok = Pipeline(_settings(root, str(tmp_path / "run"), **over), emit=events.append).run()
    (fail,) = [e for e in events if isinstance(e, E.StageFailed)]
    assert not ok and fail.stage == "qat" and "the loss is nan" in fail.message
    assert 'bn_stats = "frozen"' in fail.hint
    over["qat"]["bn_stats"] = "frozen"
    events = []
    ok = Pipeline(_settings(root, str(tmp_path / "run"), **over), emit=events.append).run()
    assert ok, [(e.title, e.message) for e in events if isinstance(e, E.StageFailed)]
    assert [e.stage for e in events if isinstance(e, E.StageStarted)] == ["qat"]  # float and calib were kept
    losses = [e.train_loss for e in events if isinstance(e, E.EpochEnd) and e.stage == "qat"]
    assert losses and all(l == l and l < 10 for l in losses)
