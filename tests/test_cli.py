"""The qat-tui command: fast start, presets, headless runs and their exit codes."""
import os
import subprocess
import sys

from core import settings as S
from core.state import RunState
from qat_tui.cli import main

from .conftest import requires_torch_backend, tiny_settings_dict


def test_help_and_app_modules_do_not_import_torch():
    code = (
        "import sys, qat_tui.cli, qat_tui.headless, qat_tui.app\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'torchao'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "qat_tui", "--help"], check=True, capture_output=True, text=True).stdout
    assert "qat-tui run --config" in out


def test_preset_writes_a_loadable_file(tmp_path, capsys):
    path = str(tmp_path / "quick.toml")
    assert main(["preset", "quick", "-o", path, "--data", "/data/cifar", "--run-dir", "runs/q"]) == 0
    s = S.load(path)
    assert s.float.epochs == 1 and s.data.root == "/data/cifar" and s.run.run_dir == "runs/q"
    assert main(["preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["preset", "quick", "-o", path, "--set", "model.builder=nets/my.py:build", "--set",
                 "model.kwargs={width = 16}", "--set", "data.image_size=64", "--set", "compile.perf_batch_sizes=[1, 4]"]) == 0
    s = S.load(path)
    assert (s.model.builder, s.model.kwargs, s.data.image_size) == ("nets/my.py:build", {"width": 16}, 64)
    assert s.compile.perf_batch_sizes == [1, 4]
    assert '# arch = "mobilenet_v2"  (not used: builder is set)' in open(path).read()
    assert main(["preset", "quick", "--set", "image_size=64"]) == 2
    assert "not SECTION.KEY=VALUE" in capsys.readouterr().err


def test_run_with_bad_settings_exits_2_naming_the_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[qat]\nepochs = 2\nlearning_rate = 0.1\n')
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "learning_rate" in err and "lr_schedule" in err
    assert "in [qat]" in err  # the section, printed literally (not swallowed as rich markup)
    path.write_text('[run]\nbackend = "tensorrt"\n')
    assert main(["run", "--config", str(path)]) == 2
    assert "'torch'" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "missing.toml")]) == 2


@requires_torch_backend
def test_headless_run_gives_all_stages_and_artifacts(cifar_python_root, tmp_path, capsys):
    settings = S.validate(tiny_settings_dict(cifar_python_root, str(tmp_path / "run")))
    path = str(tmp_path / "settings.toml")
    S.save(settings, path)
    assert main(["run", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "Accuracy on the test set" in out and "model check: PASS" in out and "done in" in out
    state = RunState.load(settings.run_path())
    assert state.finished_stages() == ["float", "calib", "qat", "int_infer", "compile"]
    arts = set()
    for stage in state.finished_stages():
        arts |= set(state.stage(stage)["artifacts"])
    assert arts == {"float-checkpoint.ckpt", "calib-checkpoint.ckpt", "qat-checkpoint.ckpt", "int_model.pt2",
                    "check_report.txt", "check_report.json", "perf.html", "perf.json", "model_graph.txt"}
    # again: nothing reruns, results are shown, exit 0
    assert main(["run", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "skipped: already done with these settings" in out and "Accuracy on the test set" in out
    # one stage whose input is missing in a fresh run directory: exit 1 with the stage to run first
    assert main(["run", "--config", path, "--stage", "qat", "--run-dir", str(tmp_path / "other")]) == 1
    out = capsys.readouterr().out
    assert "run the calib stage first" in out
    assert os.path.exists(os.path.join(settings.run_path(), "model_graph.txt"))


def test_wizard_without_a_terminal_says_what_to_run_instead(tmp_path):
    """qat-tui < /dev/null, or piped: one line on stderr, exit code 2, no escape codes, no waiting."""
    env = dict(os.environ, TERM="xterm-256color")
    for args in ([], ["--preset", "quick"], ["attach", str(tmp_path)], ["resume", str(tmp_path)]):
        proc = subprocess.run([sys.executable, "-m", "qat_tui"] + args, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stdout == "" and "\x1b" not in proc.stderr, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "needs a terminal" in lines[0], (args, proc.stderr)
    assert "qat-tui run --config FILE" in subprocess.run(
        [sys.executable, "-m", "qat_tui"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120).stderr


def test_status_fits_80_columns_and_models_without_a_match_exits_2(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "a-run-folder-with-a-rather-long-name-to-fold"
    state = RunState(str(run_dir))
    state.data["stages"] = {
        "float": {"status": "finished", "metrics": {"top1": 91.25}, "finished_at": "2026-12-02T10:18:07"},
        "calib": {"status": "stale", "metrics": {"top1": 90.5}, "finished_at": "2026-12-02T10:19:00"},
        "qat": {"status": "failed", "finished_at": "2026-12-02T10:20:00"},
    }
    state.save()
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    for needle in ("float", "int_infer", "compile", "91.2", "~90.5", "x", "2026-12-02 10:20"):
        assert needle in out, (needle, out)
    assert main(["models", "zzz"]) == 2
    assert "no torchvision classifier has 'zzz' in its name" in capsys.readouterr().err
