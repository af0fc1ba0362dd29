"""The torch (torchao pt2e) backend on a tiny MobileNetV2, no data set needed."""
import pytest
import torch

from core.backends import detect_backends, get_backend
from core.backends.base import FakeQuantState
from core.backends.torch_pt2e.backend import TorchPt2eBackend, _fake_quants
from core.backends.torch_pt2e.check import analyze_converted_graph, package_kernels
from core.backends.torch_pt2e.graph import graph_dot, graph_text
from core.models import build_float_model
from core.settings import CompileStageSettings, QconfigSettings

from .conftest import requires_torch_backend

pytestmark = requires_torch_backend


@pytest.fixture(scope="module")
def backend():
    return get_backend("torch")


@pytest.fixture(scope="module")
def float_model(backend):
    torch.manual_seed(0)
    m = build_float_model(10, 0.25, backend.quant_stubs())
    # a few training steps so BatchNorm statistics are not the initial ones
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    m.train()
    for _ in range(20):
        x = torch.randn(16, 3, 32, 32)
        loss = m(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


def _example():
    torch.manual_seed(1)
    return torch.randn(8, 3, 32, 32)


def test_detection_reports_versions():
    info = {b.name: b for b in detect_backends()}["torch"]
    assert info.available and info.versions["torch"] == torch.__version__ and "torchao" in info.versions


def test_prepare_uses_a_copy_and_states_switch_observers_and_fake_quant(backend, float_model):
    before = {k: v.clone() for k, v in float_model.state_dict().items()}
    prepared = backend.prepare(float_model, (_example(),), "calib", QconfigSettings())
    # the float model is untouched
    for k, v in float_model.state_dict().items():
        assert torch.equal(v, before[k])
    fqs = [m for _n, m in _fake_quants(prepared)]
    assert fqs

    backend.set_fake_quant_state(prepared, FakeQuantState.CALIBRATION)
    assert all(int(m.observer_enabled[0]) == 1 and int(m.fake_quant_enabled[0]) == 0 for m in fqs)
    bn_mean = prepared.state_dict()["features.0.1.running_mean"].clone()
    with torch.no_grad():
        prepared(torch.randn(32, 3, 32, 32) * 3)  # eval mode: BatchNorm statistics must not move
    assert torch.equal(prepared.state_dict()["features.0.1.running_mean"], bn_mean)

    backend.set_fake_quant_state(prepared, FakeQuantState.VALIDATION)
    assert all(int(m.observer_enabled[0]) == 0 and int(m.fake_quant_enabled[0]) == 1 for m in fqs)

    backend.set_fake_quant_state(prepared, FakeQuantState.QAT)
    assert all(int(m.observer_enabled[0]) == 1 and int(m.fake_quant_enabled[0]) == 1 for m in fqs)


def _calibrated(backend, float_model, observer="min_max"):
    q = QconfigSettings(calib_observer=observer)
    prepared = backend.prepare(float_model, (_example(),), "calib", q)
    backend.set_fake_quant_state(prepared, FakeQuantState.CALIBRATION)
    torch.manual_seed(2)
    with torch.no_grad():
        for _ in range(4):
            prepared(torch.randn(32, 3, 32, 32))
    backend.set_fake_quant_state(prepared, FakeQuantState.VALIDATION)
    return prepared


@pytest.mark.parametrize("observer", ["min_max", "moving_average_min_max", "mse"])
def test_calibrated_fake_quant_model_stays_close_to_float(backend, float_model, observer):
    prepared = _calibrated(backend, float_model, observer)
    x = torch.randn(64, 3, 32, 32)
    with torch.no_grad():
        ref = float_model(x)
        got = prepared(x)
    rel = (got - ref).norm() / ref.norm()
    assert rel < 0.25, "fake-quant output deviates %.2f from float" % rel
    # and quantization does change something (fake quant is really on)
    assert not torch.allclose(got, ref)


def test_calib_state_carries_into_a_fresh_qat_model(backend, float_model):
    calib = _calibrated(backend, float_model, "mse")
    qat = backend.prepare(float_model, (_example(),), "qat", QconfigSettings())
    msgs = backend.load_calib_state(qat, calib.state_dict())
    assert any("activation observers" in m for m in msgs)
    cal_fq = dict(_fake_quants(calib))
    for name, fq in _fake_quants(qat):
        assert torch.allclose(fq.scale, cal_fq[name].scale)
        if fq.qscheme == torch.per_tensor_affine:
            obs = fq.activation_post_process
            lo = (fq.quant_min - fq.zero_point.float()) * fq.scale
            assert torch.allclose(obs.min_val.reshape(1), lo.reshape(1))
    backend.set_fake_quant_state(qat, FakeQuantState.VALIDATION)
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        a, b = qat(x), calib(x)
    # same scales, weights and statistics; the fused QAT fake-quant kernel may round a value at a
    # .5 boundary the other way, so allow a few quantization steps of difference, not more
    assert (a - b).abs().max() < 0.05 * b.abs().max()


@pytest.fixture(scope="module")
def calibrated(backend, float_model):
    return _calibrated(backend, float_model)


@pytest.fixture(scope="module")
def int_model(backend, calibrated):
    # convert_pt2e costs ~20 s (it traces its conv-bn folding patterns each call): convert once
    return backend.convert(calibrated, (_example(),))


def test_convert_matches_fake_quant_and_check_report(calibrated, int_model):
    calib = calibrated
    x = torch.randn(32, 3, 32, 32)
    with torch.no_grad():
        fq_out = calib(x)
        int_out = int_model(x)
    assert (fq_out.argmax(1) == int_out.argmax(1)).float().mean() > 0.9
    report = analyze_converted_graph(int_model)
    assert report.passed and report.summary.startswith("PASS")
    out = [i for i in report.items if i.module == "classifier.1"]
    assert out and out[0].status == "int8-in/float-out" and "high-precision output" in out[0].reason
    assert not [i for i in report.items if i.status == "float"]
    assert "model check PASS" in report.text
    text = graph_text(int_model)
    assert "features.0.0" in text and "int8" in text
    assert graph_dot(int_model).startswith("digraph")


def test_eight_bit_output_quantizes_the_classifier(backend, float_model):
    q = QconfigSettings(calib_observer="min_max", high_precision_output=False)
    prepared = backend.prepare(float_model, (_example(),), "calib", q)
    backend.set_fake_quant_state(prepared, FakeQuantState.CALIBRATION)
    with torch.no_grad():
        prepared(torch.randn(32, 3, 32, 32))
    int_model = backend.convert(prepared, (_example(),))
    out = [i for i in analyze_converted_graph(int_model).items if i.module == "classifier.1"]
    assert out and out[0].status == "int8"


def test_int_model_round_trip_and_aoti_package(backend, float_model, int_model, tmp_path):
    ex = _example()
    art = backend.save_int_model(int_model, (ex,), str(tmp_path))
    assert art.name == "int_model.pt2"
    loaded = backend.load_int_model(art.path)
    x = torch.randn(5, 3, 32, 32)  # another batch size: the batch dimension is dynamic
    with torch.no_grad():
        assert torch.allclose(loaded(x), int_model(x), atol=1e-5)

    logs = []
    opts = CompileStageSettings(package=True, perf_batch_sizes=[1, 4], perf_iterations=2, graph_format="text")
    result = backend.compile(loaded, float_model, (ex,), str(tmp_path), opts, logs.append)
    names = [a.name for a in result.artifacts]
    assert names[0] == "model.pt2" and "check_report.txt" in names and "perf.html" in names
    assert "model_graph.txt" in names
    kernels = package_kernels(str(tmp_path / "model.pt2"))
    # the x86 lowering really produced int8 convolution kernels (freezing under no_grad)
    assert kernels["int8_conv"] > 0 and kernels["fp32_conv"] == 0
    assert result.check.passed
    run = backend.load_deployable(str(tmp_path / "model.pt2"))
    with torch.no_grad():
        diff = (run(x) - loaded(x)).abs().max()
    assert diff < 0.1
    perf = result.perf
    assert {r["batch"] for r in perf["rows"]} == {1, 4} and perf["params"] > 0 and perf["flops_per_image"] > 0
    html = (tmp_path / "perf.html").read_text()
    assert "<table>" in html and "int8 package" in html


def test_damaged_int_model_is_reported(backend, tmp_path):
    from core.errors import CheckpointError

    p = tmp_path / "int_model.pt2"
    p.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError) as e:
        backend.load_int_model(str(p))
    assert "int_infer" in e.value.hint


def test_svg_without_dot_is_a_clear_error(int_model, tmp_path, monkeypatch):
    import shutil

    from core.backends.torch_pt2e.graph import write_graph_picture
    from core.errors import BackendError

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BackendError) as e:
        write_graph_picture(int_model, str(tmp_path), "svg", print)
    assert "graphviz" in e.value.hint
    art = write_graph_picture(int_model, str(tmp_path), "auto", print)
    assert art.name == "model_graph.txt"


@pytest.mark.skipif(__import__("shutil").which("dot") is None, reason="graphviz 'dot' is not installed here")
def test_svg_with_dot(int_model, tmp_path):
    from core.backends.torch_pt2e.graph import write_graph_picture

    art = write_graph_picture(int_model, str(tmp_path), "auto", print)
    assert art.name == "model.svg" and (tmp_path / "model.svg").read_text().lstrip().startswith("<?xml")


def test_backend_is_torch_pt2e(backend):
    assert isinstance(backend, TorchPt2eBackend)
