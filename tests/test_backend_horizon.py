"""The horizon backend against the test double of horizon_plugin_pytorch + hbdk (tests/horizon_double):
the documented call sequence of every stage, feature-detected qconfig names, compile-option checks, and
the captured check/perf output."""
import hashlib
import os
import subprocess
import sys

import pytest

from core import events as E
from core.pipeline import Pipeline
from core.backends.horizon import HorizonSettings
from core.settings import validate

from .conftest import HORIZON_DOUBLE, tiny_settings_dict

pytestmark = pytest.mark.usefixtures("horizon_double")


def _settings(root, run_dir, **over):
    over.setdefault("run", {})["backend"] = "horizon"
    over["run"].setdefault("run_dir", run_dir)
    over.setdefault("horizon", {}).setdefault("march", "bayes")
    data = tiny_settings_dict(root, run_dir, **over)
    return validate(data)


def _calls(double, api):
    return [c for c in double.CALLS if c["api"] == api]


def test_detection_shows_versions():
    from core.backends import detect_backends

    info = {b.name: b for b in detect_backends()}["horizon"]
    assert info.available
    assert info.versions["horizon_plugin_pytorch"] == "1.9.0" and info.versions["hbdk"] == "3.46.4"


@pytest.fixture(scope="module")
def horizon_run(horizon_double, cifar_python_root, tmp_path_factory):
    """A whole pipeline on the double (march bayes, pyramid input, high-precision output)."""
    horizon_double.reset()
    settings = _settings(cifar_python_root, str(tmp_path_factory.mktemp("hz") / "run"))
    events = []
    ok = Pipeline(settings, emit=events.append).run()
    return settings, ok, events, list(horizon_double.CALLS)


def test_all_stages_finish_with_hbm_and_reports(horizon_run):
    settings, ok, events, _calls_ = horizon_run
    assert ok, [(e.title, e.message, e.hint) for e in events if isinstance(e, E.StageFailed)]
    names = {e.name for e in events if isinstance(e, E.ArtifactWritten)}
    assert {"float-checkpoint.ckpt", "calib-checkpoint.ckpt", "qat-checkpoint.ckpt", "int_model.pt",
            "check_report.txt", "model.hbm", "model.hbir", "model.pt", "perf.json", "model.svg"} <= names
    assert any(n.startswith("perf_out/") and n.endswith(".html") for n in names)
    metrics = {e.stage: e.metrics for e in events if isinstance(e, E.StageFinished)}
    assert metrics["compile"]["check_passed"] is True
    assert metrics["compile"]["fps"] > 0 and metrics["compile"]["hbdk_version"] == "3.46.4"
    assert metrics["int_infer"]["top1"] > 20  # the double's integer model still classifies
    check = [e for e in events if isinstance(e, E.CheckAdvice)][0]
    assert check.passed and check.summary.startswith("HBDK model check PASS")
    raw = open(os.path.join(settings.run_path(), "check_report.txt")).read()
    assert "This model is supported!" in raw and "HBDK model check PASS" in raw


def test_call_sequence_follows_the_sample(horizon_run):
    _settings_, ok, _events, calls = horizon_run
    assert ok
    apis = [c["api"] for c in calls]
    # march is set before any prepare, and is the configured one at every toolchain call
    assert apis.index("set_march") < apis.index("prepare_qat_fx")
    assert all(c["march"] == "bayes" for c in calls if c["api"] != "set_march")
    prepares = [c for c in calls if c["api"] == "prepare_qat_fx"]
    # the trial capture before float trains (a throwaway calib prepare), calib, qat, int_infer (rebuilt
    # from the qat checkpoint)
    assert len(prepares) == 4
    assert all(p["fresh"] and not p["has_fake_quant"] for p in prepares)  # always a fresh float copy
    assert prepares[0]["qconfig_names"] == prepares[1]["qconfig_names"]
    prepares = prepares[1:]
    # calibration qconfig from get_default_qconfig, the classifier with the 32-bit-output qconfig
    # (the double names a qconfig object by its first name; the calib and qat 32-bit-out ones are one object)
    out_names = ("default_calib_8bit_weight_32bit_out_fake_quant_qconfig", "default_qat_8bit_weight_32bit_out_fake_quant_qconfig")
    assert [m for m, _q in prepares[0]["qconfig_names"]["module_name"]] == ["classifier.1"]  # the output layer, found by tracing
    assert prepares[0]["qconfig_names"]["module_name"][0][1] in out_names
    assert prepares[1]["qconfig_names"][""] == "default_qat_8bit_fake_quant_qconfig"
    assert [m for m, _q in prepares[1]["qconfig_names"]["module_name"]] == ["classifier.1"]
    assert prepares[1]["qconfig_names"]["module_name"][0][1] in out_names
    # the QAT model got the calibration state (from a model that went through calibration)
    loads = [c for c in calls if c["api"] == "load_state_dict"]
    assert loads[0]["model_id"] == prepares[1]["result_id"]
    assert "calibration" in loads[0]["source_modes"] and not loads[0]["missing_keys"]
    modes = [c["mode"] for c in calls if c["api"] == "set_fake_quantize" and not c.get("error")]
    assert modes[:2] == ["calibration", "validation"] and "qat" in modes
    assert not [c for c in calls if c["api"] == "set_fake_quantize" and c.get("error")]
    # compile tools run on the CPU, on the traced integer model; never open a browser
    for api in ("check_model", "compile_model", "perf_model", "visualize_model"):
        top = [c for c in calls if c["api"] == api and c["depth"] == 0]
        assert top, api
        assert set(top[0]["devices"]) <= {"cpu"} and set(top[0]["input_devices"]) <= {"cpu"}
    compile_call = [c for c in calls if c["api"] == "compile_model" and c["depth"] == 0][0]
    assert compile_call["hbm"].endswith("model.hbm") and compile_call["input_source"] == "pyramid" and compile_call["opt"] == "O1"
    vis = [c for c in calls if c["api"] == "visualize_model"][0]
    assert vis["show"] is False and vis["save_path"].endswith("model.svg")
    perf = [c for c in calls if c["api"] == "perf_model" and c["depth"] == 0][0]
    assert perf["layer_details"] is True and perf["out_dir"].endswith("perf_out")


def test_compile_never_overwrites_int_model(horizon_run):
    settings, ok, events, _calls_ = horizon_run
    run_dir = settings.run_path()
    int_model = os.path.join(run_dir, "int_model.pt")
    before = hashlib.sha256(open(int_model, "rb").read()).hexdigest()
    assert Pipeline(settings, emit=lambda e: None).run(stages=["compile"], force=True)
    assert hashlib.sha256(open(int_model, "rb").read()).hexdigest() == before
    # hbdk's own traced copy sits beside the hbm under another name
    assert os.path.exists(os.path.join(run_dir, "model.pt")) and os.path.exists(os.path.join(run_dir, "model.hbir"))


def test_march_not_in_plugin_is_refused_at_setup(cifar_python_root, tmp_path):
    settings = _settings(cifar_python_root, str(tmp_path / "r"), horizon={"march": "bayes-x"})
    events = []
    assert not Pipeline(settings, emit=events.append).run()
    fail = [e for e in events if isinstance(e, E.StageFailed)][0]
    assert fail.stage == "setup" and "bayes-x" in fail.message and "bernoulli2" in fail.hint and "bayes" in fail.hint


def test_observer_of_the_other_backend_is_refused(cifar_python_root, tmp_path):
    """The observers are the backend's: the settings refuse another backend's, naming what this one offers
    (before anything runs); settings that bypass validation are refused by the backend when the run starts."""
    from core.errors import SettingsError

    with pytest.raises(SettingsError) as e:
        _settings(cifar_python_root, str(tmp_path / "r"), qconfig={"calib_observer": "moving_average_min_max"})
    assert "moving_average_min_max" in e.value.msg and "percentile" in e.value.msg
    settings = _settings(cifar_python_root, str(tmp_path / "r"))
    object.__setattr__(settings.qconfig, "calib_observer", "moving_average_min_max")
    events = []
    assert not Pipeline(settings, emit=events.append).run()
    fail = [e for e in events if isinstance(e, E.StageFailed)][0]
    assert "moving_average_min_max" in fail.message and "percentile" in fail.hint


def test_compile_options_are_validated_before_hbdk():
    from core.backends.horizon import validate_compile_options
    from core.errors import BackendError, SettingsError

    with pytest.raises(SettingsError) as e:
        validate({"horizon": {"opt": "O4"}})
    assert "horizon.opt" in str(e.value) and "balance" in str(e.value)
    bad = HorizonSettings().model_copy(update={"opt": "O9"})  # bypassing validation, as a stale object could
    with pytest.raises(BackendError) as e:
        validate_compile_options(bad)
    assert "TypeError" in e.value.hint


@pytest.mark.parametrize("version, out_name, observers", [
    ("1.5.0", "default_qat_out_8bit_fake_quant_qconfig", ["default"]),
    ("1.8.0", "default_qat_8bit_weight_32bit_out_fake_quant_qconfig", ["min_max", "percentile", "mse", "kl", "mix"]),
])
def test_qconfig_names_by_plugin_version(version, out_name, observers):
    code = (
        "import json\n"
        "from core.backends.horizon.hbdk3 import Hbdk3Backend as HorizonBackend\n"
        "from core.settings import QconfigSettings\n"
        "b = HorizonBackend()\n"
        "qdict, lines = b.qconfig_dict('qat', QconfigSettings())\n"
        "print(json.dumps({'lines': lines, 'observers': list(b.calib_observers())}))\n"
    )
    env = dict(os.environ, QAT_TUI_DOUBLE_PLUGIN_VERSION=version)
    env["PYTHONPATH"] = os.pathsep.join([HORIZON_DOUBLE, os.path.dirname(HORIZON_DOUBLE.rstrip(os.sep).rsplit(os.sep, 1)[0])])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(HORIZON_DOUBLE)))
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert any(out_name in line for line in got["lines"])
    assert "old name 'out_8bit' meant this int32 output" in " ".join(got["lines"])
    assert got["observers"] == observers


@pytest.mark.slow
def test_headless_run_and_exported_script_on_the_double(cifar_python_root, tmp_path, capsys):
    """The same settings headless (qat-tui run) give the same stages and artifacts as the engine run;
    the exported horizon script runs stage by stage against the double."""
    import json

    from core import settings as S
    from core.export import export_script, script_run_dir
    from core.state import RunState
    from qat_tui.cli import main

    settings = _settings(cifar_python_root, str(tmp_path / "headless"))
    path = str(tmp_path / "hz.toml")
    S.save(settings, path)
    assert main(["run", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "model check: HBDK model check PASS" in out and "wrote model.hbm" in out
    state = RunState.load(settings.run_path())
    assert state.finished_stages() == ["float", "calib", "qat", "int_infer", "compile"]
    assert {"model.hbm", "model.hbir", "model.pt", "int_model.pt"} <= set(state.stage("compile")["artifacts"]) | set(state.stage("int_infer")["artifacts"])

    scripted = _settings(cifar_python_root, str(tmp_path / "script"))
    script, _toml = export_script(scripted, str(tmp_path / "qat_horizon.py"))
    for stage in ("float", "calib", "qat", "int_infer", "compile"):
        proc = subprocess.run([sys.executable, script, "--stage", stage], capture_output=True, text=True)
        assert proc.returncode == 0, (stage, proc.stdout[-2000:], proc.stderr[-3000:])
    run_dir = script_run_dir(script)  # the script's own folder, never a qat-tui run's
    for name in ("float-checkpoint.ckpt", "calib-checkpoint.ckpt", "qat-checkpoint.ckpt", "int_model.pt", "model.hbm", "model.hbir"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["int_infer"]["top1"] > 20 and metrics["compile"]["fps"] > 0
    # pointed at the qat-tui run folder, the script stops before writing over its checkpoints
    proc = subprocess.run([sys.executable, script, "--stage", "float", "--run-dir", settings.run_path()],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "is a qat-tui run folder" in proc.stderr, proc.stderr[-2000:]


HBDK4_RUN = r"""
import json, sys
from horizon_plugin_pytorch import _double
from qat_tui.cli import main
rc = main(["run", "--config", sys.argv[1]])
keys = ("api", "march", "method", "has_example_inputs", "training", "march_arg", "stage", "opt", "io_removed",
        "use_netron", "path", "output_dir")
print("CALLS=" + json.dumps([{k: c[k] for k in keys if k in c} for c in _double.CALLS]))
sys.exit(rc)
"""


@pytest.mark.slow
def test_hbdk4_march_runs_all_stages_on_the_double(cifar_python_root, tmp_path):
    """nash-e (J6/S100): prepare with a QconfigSetter, export -> convert -> HBIR evaluation in int_infer,
    statistics -> remove_io_op -> compile -> hbm_perf -> visualize in compile (OE-Skills full-pipeline
    template), run headless against the double of plugin 2.1.0 + hbdk4."""
    import json

    from core import settings as S
    from core.state import RunState

    settings = _settings(cifar_python_root, str(tmp_path / "run"), horizon={"march": "nash-e", "opt": "O2"})
    path = str(tmp_path / "nash.toml")
    S.save(settings, path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    repo = os.path.dirname(os.path.dirname(HORIZON_DOUBLE.rstrip(os.sep)))
    env = dict(os.environ, QAT_TUI_DOUBLE_PLUGIN_VERSION="2.1.0", PYTHONPATH=os.pathsep.join([HORIZON_DOUBLE, repo]))
    proc = subprocess.run([sys.executable, "-c", HBDK4_RUN, path], env=env, cwd=str(cwd), capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    calls = json.loads(proc.stdout.split("CALLS=", 1)[1].strip())
    apis = [c["api"] for c in calls]

    # march first, then prepare (never prepare_qat_fx from us: the double's prepare delegates to it)
    first_prepare = apis.index("prepare")
    assert any(c["api"] == "set_march" and c.get("march") == "nash-e" for c in calls[:first_prepare])
    prepares = [c for c in calls if c["api"] == "prepare"]
    assert len(prepares) >= 3 and all(c["has_example_inputs"] for c in prepares)  # calib, qat, int_infer restore
    assert all(apis[i - 1] == "prepare" for i, a in enumerate(apis) if a == "prepare_qat_fx")
    # int_infer: export of the model in eval/validation state, convert for the march, HBIR inference
    export = [c for c in calls if c["api"] == "export"]
    assert len(export) == 1 and export[0]["training"] is False
    convert = [c for c in calls if c["api"] == "hbdk4.convert"]
    assert [c["march_arg"] for c in convert] == ["nash-e"]
    feeds = [c for c in calls if c["api"] == "hbdk4.feed"]
    assert len(feeds) == settings.data.eval_images  # one image at a time (static batch-1 HBIR)
    # compile: statistics before remove_io_op before compile, opt O2 -> 2, then perf and the ONNX picture
    order = [a for a in apis if a in ("hbdk4.statistics", "hbdk4.remove_io_op", "hbdk4.compile", "hbdk4.hbm_perf", "hbdk4.visualize")]
    assert order == ["hbdk4.statistics", "hbdk4.remove_io_op", "hbdk4.compile", "hbdk4.hbm_perf", "hbdk4.visualize"]
    comp = [c for c in calls if c["api"] == "hbdk4.compile"][0]
    assert comp["opt"] == 2 and comp["io_removed"] == ["Dequantize", "Quantize"]
    assert [c["use_netron"] for c in calls if c["api"] == "hbdk4.visualize"] == [False]
    # no hbdk3 tool is touched for a nash march
    assert not {"check_model", "compile_model", "perf_model", "visualize_model"} & set(apis)

    run_dir = settings.run_path()
    state = RunState.load(run_dir)
    assert state.finished_stages() == ["float", "calib", "qat", "int_infer", "compile"]
    arts = set(state.stage("int_infer")["artifacts"]) | set(state.stage("compile")["artifacts"])
    assert {"int_model.bc", "qat.bc", "model.hbm", "perf_out/model.html", "perf.json", "model.onnx", "check_report.txt"} <= arts
    # prepare's model_check_result.txt lands in the run directory, not wherever qat-tui was started
    assert os.path.exists(os.path.join(run_dir, "model_check_result.txt"))
    assert not os.path.exists(cwd / "model_check_result.txt")
    m = {s: state.stage(s)["metrics"] for s in ("qat", "int_infer", "compile")}
    # The HBIR integer model learned the synthetic classes (chance is 10%). How close it comes to the
    # fake-quant top-1 is the double's numerics (its export runs torch's quantized kernels): within 5
    # points on torch 2.14; on torch 1.10 measured 70.7 vs 89.5, with the HBIR outputs identical to the
    # double's convert_fx model, so the gap is in those kernels, not in the HBIR evaluation.
    assert m["int_infer"]["top1"] >= 50.0 and abs(m["int_infer"]["top1"] - m["qat"]["top1"]) <= 25.0, m
    assert m["compile"]["check_passed"] is True and m["compile"]["fps"] > 0
    assert "wrote model.hbm" in proc.stdout


def test_hbdk4_options_and_export_refused_clearly(cifar_python_root, tmp_path):
    from core.backends.horizon import validate_compile_options
    from core.errors import BackendError, QatError
    from core.export import render_script

    nash = _settings(cifar_python_root, str(tmp_path / "run"), horizon={"march": "nash-e", "opt": "O3"})
    with pytest.raises(BackendError) as e:
        validate_compile_options(nash.horizon)
    assert "opt 0-2" in str(e.value) and "O0, O1, O2" in e.value.hint
    with pytest.raises(QatError) as e:
        render_script(nash)
    assert "hbdk4" in str(e.value) and "bayes" in e.value.hint
