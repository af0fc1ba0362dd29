"""Export as script: a standalone script with the settings baked in as literals, which reproduces the
wizard's run stage by stage."""
import json
import os
import subprocess
import sys

import pytest

from core import events as E
from core import settings as S
from core.export import export_script, render_script, script_run_dir, with_absolute_paths
from core.pipeline import Pipeline
from qat_tui.cli import main

from .conftest import requires_torch_backend


@requires_torch_backend
def test_hostile_values_stay_literals(tmp_path):
    evil = 'a"; import os; os.system("touch %s")  # \n\'\'\' 中文 目录 with spaces' % (tmp_path / "pwned")
    s = S.preset("quick", data={"root": evil}, run={"run_dir": str(tmp_path / "运行 dir")})
    script, toml = export_script(s, str(tmp_path / "out" / "qat_script.py"))
    out = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--stage" in out.stdout
    assert not (tmp_path / "pwned").exists()
    # the value survives exactly, and the TOML beside the script holds the same settings
    probe = "import runpy, json; g = runpy.run_path(%r); print(json.dumps(g['SETTINGS']['data']['root']))" % script
    got = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    want = with_absolute_paths(s)  # a relative data folder is resolved against the current directory
    assert want.data.root.endswith(evil) and json.loads(got) == want.data.root
    assert S.load(toml) == want
    assert os.access(script, os.X_OK)


def test_cli_export_from_a_run_directory(tmp_path, capsys):
    s = S.preset("quick", run={"run_dir": str(tmp_path / "run")})
    os.makedirs(s.run_path())
    S.save(s, os.path.join(s.run_path(), "settings.toml"))
    out = str(tmp_path / "exported.py")
    assert main(["export", s.run_path(), "-o", out]) == 0
    assert os.path.exists(out) and os.path.exists(str(tmp_path / "exported.toml"))
    assert "SETTINGS = {" in open(out).read()
    assert main(["export", str(tmp_path / "nothing-here"), "-o", out]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "nothing-here does not exist" in err and "settings.toml" in err


def test_relative_paths_are_made_absolute_in_script_and_toml(tmp_path, monkeypatch):
    """A relative data folder (the preset's "data") works from any directory and the TOML agrees."""
    monkeypatch.chdir(tmp_path)
    s = S.preset("quick", run={"run_dir": "runs/x"}, data={"root": "data"}, model={"pretrained": "~/w.pt"})
    script, toml = export_script(s, "out/exported.py")
    text = open(script).read()
    for p in (str(tmp_path / "data"), script_run_dir(script), os.path.expanduser("~/w.pt")):
        assert repr(p) in text, p
    back = S.load(toml)
    assert back.data.root == str(tmp_path / "data") and back.run.run_dir == str(tmp_path / "runs" / "x")


@pytest.mark.slow
@requires_torch_backend
def test_exported_torch_script_reproduces_the_pipeline(real_cifar10, tmp_path):
    common = {
        "run": {"threads": 2, "seed": 3},
        "data": {"root": os.path.join(real_cifar10, "cifar-10-batches-py"), "train_images": 768, "eval_images": 400,
                 "batch_size": 32, "eval_batch_size": 200, "num_workers": 0, "augment": "crop_flip"},
        "model": {"width_mult": 0.5},
        "float": {"epochs": 2, "lr": 0.003},
        "calib": {"num_images": 256},
        "qat": {"epochs": 1},
        "compile": {"package": False, "perf_batch_sizes": [1], "perf_iterations": 1, "graph_format": "text"},
    }
    wizard = S.validate(dict(common, run=dict(common["run"], run_dir=str(tmp_path / "wizard"))))
    events = []
    assert Pipeline(wizard, emit=events.append).run(), [e.message for e in events if isinstance(e, E.StageFailed)]
    engine = {e.stage: e.metrics for e in events if isinstance(e, E.StageFinished)}

    scripted = S.validate(dict(common, run=dict(common["run"], run_dir=str(tmp_path / "script"))))
    script, _toml = export_script(scripted, str(tmp_path / "qat_mobilenetv2.py"))
    for stage in ("float", "calib", "qat", "int_infer", "compile"):
        proc = subprocess.run([sys.executable, script, "--stage", stage], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    own = script_run_dir(script)  # the script writes into a folder of its own
    with open(os.path.join(own, "metrics.json")) as f:
        metrics = json.load(f)
    for stage in ("float", "calib", "qat", "int_infer"):
        assert abs(metrics[stage]["top1"] - engine[stage]["top1"]) <= 0.5, (stage, metrics[stage], engine[stage])
    assert abs(metrics["compile"]["top1"] - metrics["int_infer"]["top1"]) <= 1.0
    from core.backends.torch_pt2e.check import package_kernels

    kernels = package_kernels(os.path.join(own, "model.pt2"))  # --stage compile ran in a process of its own
    assert kernels["int8_conv"] > 0 and kernels["fp32_conv"] == 0, kernels
    # pointed at the qat-tui run folder, it refuses instead of writing over qat-tui's checkpoints
    before = open(os.path.join(wizard.run_path(), "float-checkpoint.ckpt"), "rb").read()
    proc = subprocess.run([sys.executable, script, "--stage", "float", "--run-dir", wizard.run_path()],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "is a qat-tui run folder" in proc.stderr, proc.stderr[-2000:]
    assert open(os.path.join(wizard.run_path(), "float-checkpoint.ckpt"), "rb").read() == before


@requires_torch_backend
def test_script_writes_its_own_folder_and_refuses_a_qat_tui_run(tmp_path):
    """The exported script's default folder is its own; given a qat-tui run folder it stops before
    touching anything (checked without torch work: the guard runs first)."""
    s = S.preset("quick", run={"run_dir": str(tmp_path / "run")}, data={"root": str(tmp_path / "no-data")})
    os.makedirs(s.run_path())
    with open(os.path.join(s.run_path(), "state.json"), "w") as f:
        f.write('{"version": 2, "stages": {}}')
    script, toml = export_script(s, str(tmp_path / "qat_x.py"))
    probe = "import runpy; g = runpy.run_path(%r); print(g['RUN_DIR'])" % script
    got = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert got == str(tmp_path / "qat_x_run") == script_run_dir(script)
    assert S.load(toml).run.run_dir == s.run_path()  # the TOML continues the qat-tui run
    proc = subprocess.run([sys.executable, script, "--stage", "float", "--run-dir", s.run_path()],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "is a qat-tui run folder (it holds state.json)" in proc.stderr
    assert sorted(os.listdir(s.run_path())) == ["state.json"]


def test_render_refuses_unknown_backend():
    s = S.Settings()
    object.__setattr__(s.run, "backend", "tensorrt")
    with pytest.raises(Exception) as e:
        render_script(s)
    assert "tensorrt" in str(e.value)
