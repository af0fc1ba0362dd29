"""One contract for every registered backend (torchao's pt2e tests reuse one quantizer test case for
every target the same way): the torch backend, the horizon backend on its test double, and the third
backend registered from tests/ through the entry point machinery. Each must prepare a fresh copy,
switch the three fake-quant states, carry a calibration state into a QAT model, train a step, convert,
save and reload its integer model, and compile with a check report - on a tiny MobileNetV2.

The third backend also runs the whole pipeline and shows in the wizard with its own settings section,
with no file outside tests/ changed for it."""
import math
import os
import subprocess
import sys
from typing import Any

import pytest
import torch

from core.backends.base import FakeQuantState
from core.models import build_float_model
from core.settings import validate

from .conftest import TORCH_BACKEND, tiny_settings_dict

BACKENDS = ["torch", "horizon", "fx"]


@pytest.fixture(params=BACKENDS)
def backend_name(request: Any) -> str:
    name = request.param
    if name == "torch" and not TORCH_BACKEND:
        pytest.skip("the torch backend needs torch >= 2.5 and torchao (this is Horizon's Python 3.8 environment)")
    if name == "horizon":
        request.getfixturevalue("horizon_double")
    if name == "fx":
        request.getfixturevalue("third_backend")
    return name


def _settings(name: str, tmp_path: Any) -> Any:
    from core.backends import get_spec

    spec = get_spec(name)
    values = {"run": {"backend": name, "run_dir": str(tmp_path / "run")}}
    offered = spec.choices(dict(values, qconfig={}, horizon={"march": "bayes"}), None).get(("qconfig", "calib_observer"))
    values["qconfig"] = {"calib_observer": "min_max" if "min_max" in offered else sorted(offered)[0]}
    values["compile"] = {"package": False, "perf_batch_sizes": [1, 4], "perf_iterations": 1, "graph_format": "text"}
    return validate(values)


def test_every_backend_keeps_the_contract(backend_name: str, tmp_path: Any) -> None:
    from core.backends import get_backend, get_spec

    spec = get_spec(backend_name)
    info = spec.detect()
    assert info.available and info.name == backend_name, info
    settings = _settings(backend_name, tmp_path)
    backend = get_backend(backend_name, settings)
    backend.validate_settings(settings)
    assert backend.signature()["backend"] == backend_name

    torch.manual_seed(0)
    float_model = build_float_model(10, 0.25, backend.quant_stubs()).eval()
    before = {k: v.clone() for k, v in float_model.state_dict().items()}
    x = torch.randn(8, 3, 32, 32) * 0.5
    y = torch.randint(0, 10, (8,))

    calib = backend.prepare(float_model, (x,), "calib", settings.qconfig)
    assert all(torch.equal(before[k], v) for k, v in float_model.state_dict().items())  # prepared a copy
    backend.set_fake_quant_state(calib, FakeQuantState.CALIBRATION)
    with torch.no_grad():
        calib(x)
    backend.set_fake_quant_state(calib, FakeQuantState.VALIDATION)
    with torch.no_grad():
        out = calib(x)
    assert tuple(out.shape) == (8, 10) and torch.isfinite(out).all()

    qat = backend.prepare(float_model, (x,), "qat", settings.qconfig)
    lines = backend.load_calib_state(qat, calib.state_dict())
    assert lines and all(isinstance(line, str) for line in lines)
    backend.set_fake_quant_state(qat, FakeQuantState.QAT)
    backend.freeze_bn_stats(qat)
    loss = torch.nn.functional.cross_entropy(qat(x), y)
    loss.backward()
    assert math.isfinite(float(loss.detach()))
    assert all(torch.isfinite(p.grad).all() for p in qat.parameters() if p.grad is not None)

    backend.set_fake_quant_state(qat, FakeQuantState.VALIDATION)
    int_model = backend.convert(qat, (x,))
    with torch.no_grad():
        ref = int_model(x)
    assert tuple(ref.shape) == (8, 10)
    out_dir = str(tmp_path / "run")
    os.makedirs(out_dir, exist_ok=True)
    saved = backend.save_int_model(int_model, (x,), out_dir)
    first = saved[0] if isinstance(saved, list) else saved
    assert os.path.isfile(first.path) and os.path.dirname(first.path) == out_dir
    loaded = backend.load_int_model(first.path)
    with torch.no_grad():
        again = loaded(x)
    assert torch.allclose(again, ref, atol=1e-4)

    phases = []

    from contextlib import contextmanager

    @contextmanager
    def phase(name: str) -> Any:
        phases.append(name)
        yield

    result = backend.compile(loaded, float_model, (x,), out_dir, settings.compile, lambda _m: None, phase=phase)
    assert result.check is not None and result.check.summary
    assert result.artifacts and all(os.path.exists(a.path) and a.path.startswith(out_dir) for a in result.artifacts)
    lines = spec.result_lines(result.metrics, settings)  # the results screen shows these as they come
    assert all(isinstance(label, str) and label and isinstance(text, str) and text for label, text in lines)
    assert spec.result_lines({}, settings) == []


def test_every_spec_imports_without_torch(backend_name: str) -> None:
    """A spec is read at start-up (CLI, wizard): importing it must not import torch or a toolchain."""
    from core.backends import get_spec

    module = type(get_spec(backend_name)).__module__
    code = ("import sys, %s\nheavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'torchvision', 'torchao', 'horizon_plugin_pytorch', 'hbdk', 'hbdk4'))\nassert not heavy, heavy\n" % module)
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


@pytest.mark.slow
def test_third_backend_runs_all_five_stages(third_backend: str, cifar_python_root: str, tmp_path: Any) -> None:
    from core import events as E
    from core.pipeline import Pipeline
    from core.state import RunState

    settings = validate(tiny_settings_dict(cifar_python_root, str(tmp_path / "run"), run={"backend": third_backend},
                                           qconfig={"calib_observer": "min_max"}, fx={"engine": "fbgemm"},
                                           compile={"perf_batch_sizes": [1]}))
    events = []
    ok = Pipeline(settings, emit=events.append).run()
    assert ok, [(e.title, e.message) for e in events if isinstance(e, E.StageFailed)]
    state = RunState.load(settings.run_path())
    assert state.finished_stages() == ["float", "calib", "qat", "int_infer", "compile"]
    assert "int_model_fx.pt" in state.stage("int_infer")["artifacts"] and "model.pt" in state.stage("compile")["artifacts"]
    metrics = {e.stage: e.metrics for e in events if isinstance(e, E.StageFinished)}
    assert metrics["float"]["top1"] > 20 and abs(metrics["int_infer"]["top1"] - metrics["qat"]["top1"]) < 10
    assert metrics["compile"]["check_passed"] and metrics["compile"]["top1"] == metrics["int_infer"]["top1"]
    # its own section is in the settings file and a change to it makes only its stages stale
    assert "[fx]" in open(os.path.join(settings.run_path(), "settings.toml")).read()
    script_off = validate(dict(settings.model_dump(), fx={"engine": "fbgemm", "script": False}))
    assert [p.action for p in Pipeline(script_off).plan()] == ["skip", "skip", "skip", "skip", "run"]


async def test_wizard_offers_the_third_backend_with_its_section(third_backend: str, cifar_python_root: str, tmp_path: Any) -> None:
    from textual.widgets import Select

    from core.settings import save
    from qat_tui.app import QatApp

    from .test_app import SIZE, screen_name, wait_for

    settings = validate(tiny_settings_dict(cifar_python_root, str(tmp_path / "run"), run={"backend": third_backend},
                                           qconfig={"calib_observer": "min_max"}))
    save(settings, str(tmp_path / "s.toml"))
    app = QatApp(settings=settings, detect=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n", "ctrl+n")  # Data -> Model -> Backend
        await wait_for(pilot, lambda: screen_name(app) == "BackendScreen", 30, "the backend step")
        await wait_for(pilot, lambda: app.detection is not None, 120, "detection")
        await pilot.pause()
        screen = app.screen
        options = [v for _l, v in screen.get_field("run", "backend").control._options]
        assert third_backend in options and "torch" in options
        engine = screen.query_one("#field-fx-engine")
        assert engine.display and screen.query_one("#backend-options-fx").display
        assert {v for _l, v in engine.query_one(Select)._options} >= {"fbgemm"}
        for step in ("StagesScreen", "QconfigScreen", "CompileScreen"):
            await pilot.press("ctrl+n")
            await wait_for(pilot, lambda: screen_name(app) == step, 30,
                           "%s (on %s: %s)" % (step, screen_name(app), app.screen.query("#nav-status").first().render() if app.screen.query("#nav-status") else ""))
        shown = [(f.section, f.key) for f in app.screen.fields()]
        assert shown == [("compile", "perf_batch_sizes"), ("fx", "script")]
