"""Tests of the test double of Horizon's horizon_plugin_pytorch / hbdk (tests/horizon_double).

They check that the double behaves as the documented API does (the sources are cited in the double's
docstrings and in tests/horizon_double/README.md), on a tiny torchvision MobileNetV2 (width 0.25,
32x32 inputs) with ``QuantStub(scale=1/128)`` - the X3 quick_start sample's model. Runs on torch 1.10
(Python 3.8) and torch 2.x.
"""
import copy
import json
import os
import subprocess
import sys
import tempfile

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

HERE = os.path.dirname(os.path.abspath(__file__))
DOUBLE = os.path.join(HERE, "horizon_double")
_PACKAGES = ("horizon_plugin_pytorch", "horizon_plugin_profiler", "hbdk", "hbdk4")


def _load_double():
    """Put the double on sys.path and bind the names the tests use as module globals. Done in a fixture,
    not at import, and undone afterwards, so that other test modules of the same session never see
    ``horizon_plugin_pytorch``/``hbdk`` as installed (unless another module had loaded it already)."""
    global _PREEXISTING
    _PREEXISTING = "horizon_plugin_pytorch" in sys.modules or DOUBLE in sys.path
    if DOUBLE not in sys.path:
        sys.path.insert(0, DOUBLE)
    import hbdk
    import horizon_plugin_pytorch
    from horizon_plugin_pytorch import _double
    from horizon_plugin_pytorch.functional import rgb2centered_yuv
    from horizon_plugin_pytorch.march import March, get_march, set_march
    from horizon_plugin_pytorch.quantization import (
        DeQuantStub, FakeQuantize, FakeQuantState, QuantStub, check_model, compile_model, convert_fx, export_hbir,
        perf_model, prepare_qat_fx, set_fake_quantize, visualize_model,
    )
    from horizon_plugin_pytorch.quantization.fake_quantize import GlobalFakeQuantSwitch
    from horizon_plugin_pytorch.quantization.qconfig import (
        default_calib_8bit_fake_quant_qconfig, default_calib_8bit_weight_32bit_out_fake_quant_qconfig,
        default_qat_8bit_fake_quant_qconfig, default_qat_8bit_weight_32bit_out_fake_quant_qconfig, get_default_qconfig,
    )

    globals().update({k: v for k, v in locals().items()})


_PREEXISTING = False


def _unload_double():
    if _PREEXISTING:
        return
    for name in [m for m in sys.modules if m.split(".")[0] in _PACKAGES]:
        del sys.modules[name]
    while DOUBLE in sys.path:
        sys.path.remove(DOUBLE)


def _model_class():
    from torchvision.models.mobilenetv2 import MobileNetV2

    class FxQATReadyMobileNetV2(MobileNetV2):
        def __init__(self):
            super().__init__(num_classes=10, width_mult=0.25)
            self.quant = QuantStub(scale=1 / 128)
            self.dequant = DeQuantStub()

        def forward(self, x):
            return self.dequant(super().forward(self.quant(x)))

    return FxQATReadyMobileNetV2


def _images(n, seed):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return rgb2centered_yuv(rgb).float() / 128.0  # the sample's collate: centered YUV, Normalize(0, 128)


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory):
    """The double on sys.path for this module only; one thread (the CI box is small); temp files in a
    test dir."""
    _load_double()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    old_tmp = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("hbdk_tmp"))
    yield
    tempfile.tempdir = old_tmp
    torch.set_num_threads(threads)
    _unload_double()


@pytest.fixture(scope="module")
def float_model():
    torch.manual_seed(0)
    m = _model_class()()
    with torch.no_grad():  # realistic BN statistics, so activations are not vanishingly small
        m.train()
        for i in range(4):
            m(_images(16, 100 + i))
    return m.eval()


def _calib_qconfig():
    return {"": default_calib_8bit_fake_quant_qconfig,
            "module_name": {"classifier": default_calib_8bit_weight_32bit_out_fake_quant_qconfig}}


def _qat_qconfig():
    return {"": default_qat_8bit_fake_quant_qconfig,
            "module_name": {"classifier": default_qat_8bit_weight_32bit_out_fake_quant_qconfig}}


@pytest.fixture(scope="module")
def pipeline(float_model):
    """The quick_start flow: set_march, calibration, QAT from a fresh copy + calib state, convert, trace."""
    _double.reset()
    set_march(March.BAYES)
    calib = prepare_qat_fx(copy.deepcopy(float_model), _calib_qconfig())
    calib.eval()
    set_fake_quantize(calib, FakeQuantState.CALIBRATION)
    with torch.no_grad():
        for i in range(3):
            calib(_images(16, i))
    calib.eval()
    set_fake_quantize(calib, FakeQuantState.VALIDATION)

    qat = prepare_qat_fx(copy.deepcopy(float_model), _qat_qconfig())
    qat.load_state_dict(calib.state_dict())
    opt = torch.optim.SGD(qat.parameters(), lr=1e-4)
    qat.train()
    set_fake_quantize(qat, FakeQuantState.QAT)
    for i in range(2):
        loss = torch.nn.functional.cross_entropy(qat(_images(16, 10 + i)), torch.arange(16) % 10)
        opt.zero_grad()
        loss.backward()
        opt.step()
    qat.eval()
    set_fake_quantize(qat, FakeQuantState.VALIDATION)
    quantized = convert_fx(qat)
    x = _images(8, 42)
    script = torch.jit.trace(quantized.cpu(), x)
    return {"calib": calib, "qat": qat, "int": quantized, "script": script, "x": x, "calls": list(_double.CALLS)}


# ------------------------------------------------------------------------------------------- march


def test_march_constants_and_global():
    assert March.BERNOULLI2 == "bernoulli2" and March.BAYES == "bayes" and March.BAYES_E == "bayes-e"
    assert isinstance(March.BAYES, str)  # plain constants, not an Enum
    assert horizon_plugin_pytorch.set_march is set_march
    set_march("anything-goes")  # no validation, as in the source
    assert get_march() == "anything-goes"
    assert _double.CALLS[-1] == {"api": "set_march", "march": "anything-goes"}
    set_march(March.BAYES)
    assert horizon_plugin_pytorch.__version__ == os.environ.get("QAT_TUI_DOUBLE_PLUGIN_VERSION", "1.9.0")
    assert hbdk.__version__ == "3.46.4"


# ------------------------------------------------------------------------------ set_fake_quantize


def _small_prepared(float_model, qconfig=None):
    set_march(March.BAYES)
    return prepare_qat_fx(copy.deepcopy(float_model), qconfig or _qat_qconfig())


def test_set_fake_quantize_typechecks_mode(float_model):
    m = _small_prepared(float_model)
    m.eval()
    with pytest.raises(TypeError, match='argument "mode" must be .*FakeQuantState; got str instead'):
        set_fake_quantize(m, "validation")


@pytest.mark.parametrize("mode,training,message", [
    ("QAT", False, "Call model.train() before set fake quant to QAT mode."),
    ("CALIBRATION", True, "Call model.eval() before set fake quant to CALIBRATION mode."),
    ("VALIDATION", True, "Call model.eval() before set fake quant to VALIDATION mode."),
])
def test_set_fake_quantize_asserts_train_eval(float_model, mode, training, message):
    m = _small_prepared(float_model)
    m.train(training)
    with pytest.raises(AssertionError) as info:
        set_fake_quantize(m, getattr(FakeQuantState, mode))
    assert str(info.value) == message
    assert _double.CALLS[-1]["api"] == "set_fake_quantize" and "error" in _double.CALLS[-1]


def _fake_quants(model):
    return [m for m in model.modules() if isinstance(m, FakeQuantize)]


def test_calibration_observes_without_fake_quant_and_keeps_bn(float_model):
    m = prepare_qat_fx(copy.deepcopy(float_model), _calib_qconfig())
    m.eval()
    set_fake_quantize(m, FakeQuantState.CALIBRATION)
    assert GlobalFakeQuantSwitch.state() is False
    fqs = _fake_quants(m)
    assert fqs and all(fq.training for fq in fqs)  # only the fake quantizers are put in train mode
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert bns and not any(bn.training for bn in bns)
    bn_mean = [bn.running_mean.clone() for bn in bns]
    x = _images(16, 7)
    with torch.no_grad():
        y = m(x)
        y_float = float_model(x)
    # no fake quantization: the output is the float model's (up to BN folding arithmetic)
    assert torch.allclose(y, y_float, atol=1e-4, rtol=1e-3)
    observed = [fq for fq in fqs if fq.observer_enabled[0] == 1]
    assert all(torch.isfinite(fq.activation_post_process.min_val).all() for fq in observed)
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(bn_mean, bns))  # BN statistics untouched
    # the QuantStub's fake quantizer has the fixed scale 1/128 and its observer off
    stub_fq = [fq for fq in fqs if fq._hz_info["fixed"]]
    assert len(stub_fq) == 1 and stub_fq[0].observer_enabled[0] == 0
    assert abs(float(stub_fq[0].scale) - 1 / 128) < 1e-9


def test_validation_fake_quantizes_and_freezes_scales(pipeline, float_model):
    m = pipeline["calib"]
    m.eval()
    set_fake_quantize(m, FakeQuantState.VALIDATION)
    assert GlobalFakeQuantSwitch.state() is True
    fqs = _fake_quants(m)
    before = [fq.scale.clone() for fq in fqs]
    x = _images(16, 99) * 3  # a wider range than calibration saw: scales must not follow it
    with torch.no_grad():
        y = m(x)
        y_float = float_model(x)
    assert all(torch.equal(b, fq.scale) for b, fq in zip(before, fqs))
    assert not torch.allclose(y, y_float, atol=1e-6)  # fake quantization changes the numbers


def test_horizon_fake_quant_observes_only_in_training():
    fq = FakeQuantize()  # Horizon's default: moving-average min/max, qint8 symmetric
    fq.eval()
    fq(torch.randn(100))
    assert torch.isinf(fq.activation_post_process.min_val).all()  # torch's FakeQuantize would observe here
    fq.train()
    fq(torch.randn(100) * 4)
    assert torch.isfinite(fq.activation_post_process.min_val).all()
    assert fq.get_dtype() == "qint8" and int(fq.zero_point) == 128  # symmetric int8 held as quint8


# ----------------------------------------------------------------------------- prepare / convert


def test_flow_call_log(pipeline):
    calls = pipeline["calls"]
    apis = [c["api"] for c in calls]
    assert apis.index("set_march") < apis.index("prepare_qat_fx")
    prepares = [c for c in calls if c["api"] == "prepare_qat_fx"]
    assert len(prepares) == 2 and all(p["fresh"] and p["march"] == "bayes" for p in prepares)
    assert prepares[0]["qconfig_names"]["module_name"] == [
        ("classifier", "default_calib_8bit_weight_32bit_out_fake_quant_qconfig")]
    load = [c for c in calls if c["api"] == "load_state_dict"]
    assert len(load) == 1
    assert load[0]["model_id"] == id(pipeline["qat"]) and load[0]["source_model_id"] == id(pipeline["calib"])
    assert load[0]["source_role"] == "prepared" and "calibration" in load[0]["source_modes"]
    assert load[0]["n_quant_keys"] > 0 and not load[0]["missing_keys"] and not load[0]["unexpected_keys"]
    assert apis.index("load_state_dict") < apis.index("convert_fx")
    conv = [c for c in calls if c["api"] == "convert_fx"][0]
    assert conv["model_id"] == id(pipeline["qat"]) and conv["model_role"] == "prepared"


def test_state_dict_source_survives_torch_save(pipeline, float_model, tmp_path):
    ckpt = str(tmp_path / "calib-checkpoint.ckpt")
    torch.save(pipeline["calib"].state_dict(), ckpt)
    qat = prepare_qat_fx(copy.deepcopy(float_model), _qat_qconfig())
    qat.load_state_dict(torch.load(ckpt))
    entry = _double.CALLS[-1]
    assert entry["api"] == "load_state_dict" and entry["source_model_id"] == id(pipeline["calib"])
    assert entry["model_id"] == id(qat) and "calibration" in entry["source_modes"]


def test_prepare_flags_a_reused_float_model(float_model):
    _double.reset()
    set_march(March.BAYES)
    reused = copy.deepcopy(float_model)
    prepare_qat_fx(reused, _qat_qconfig())
    prepare_qat_fx(reused, _qat_qconfig())  # the same object again: it was mutated/shared by the first
    prepare_qat_fx(copy.deepcopy(reused), _qat_qconfig())  # a copy of a consumed model
    entries = _double.calls("prepare_qat_fx")
    assert [e["fresh"] for e in entries] == [True, False, False]
    assert entries[1]["previously_prepared"] and entries[1]["shares_params_with_prepared"]
    assert entries[0]["model_id"] == entries[1]["model_id"] == id(reused)


def test_int_model_tracks_fake_quant_model(pipeline):
    qat, q, x = pipeline["qat"], pipeline["int"], pipeline["x"]
    with torch.no_grad():
        y_fake = qat(x)
        y_int = q(x)
        y_script = pipeline["script"](x)
    span = float(y_fake.max() - y_fake.min())
    assert span > 0
    assert float((y_fake - y_int).abs().max()) < 0.1 * span
    assert torch.allclose(y_int, y_script)
    assert pipeline["script"].original_name == "FxQATReadyMobileNetV2"  # as in the sample's perf output
    # integer model: quantized convolutions, int8-weight float-output classifier (32-bit output qconfig)
    kinds = {n.kind() for n in pipeline["script"].inlined_graph.nodes()}
    assert "quantized::conv2d" in kinds and "aten::quantize_per_tensor" in kinds
    assert type(q.get_submodule("classifier.1")).__name__ == "_Int8WeightFloatOutLinear"
    assert q.get_submodule("classifier.1").qweight.dtype == torch.qint8


def test_qconfig_priorities_and_none(float_model):
    m = prepare_qat_fx(copy.deepcopy(float_model), {
        "": default_qat_8bit_fake_quant_qconfig,
        "module_type": [(torch.nn.Linear, None)],
        "module_name": [("classifier.1", default_qat_8bit_weight_32bit_out_fake_quant_qconfig)],
    })
    assert type(m.get_submodule("classifier.1")).__name__ == "_WeightFakeQuantLinear"  # module_name beats module_type
    m2 = prepare_qat_fx(copy.deepcopy(float_model), {"": default_qat_8bit_fake_quant_qconfig,
                                                     "module_type": [(torch.nn.Linear, None)]})
    assert type(m2.get_submodule("classifier.1")) is torch.nn.Linear  # None: left float
    with pytest.raises(ValueError):
        prepare_qat_fx(copy.deepcopy(float_model), {"object_name": []})


def test_get_default_qconfig_checks():
    with pytest.raises(AssertionError, match="unsupport observer_namebogus"):
        get_default_qconfig(activation_observer="bogus")
    with pytest.raises(TypeError):
        get_default_qconfig(activation_observer=3)
    wq = {}
    qc = get_default_qconfig(activation_fake_quant=None, weight_qkwargs=wq)
    assert qc.activation is None and qc.weight is not None
    assert wq == {"qscheme": torch.per_channel_symmetric, "ch_axis": 0}  # the source writes into the dict
    for obs in ("min_max", "fixed_scale", "clip", "percentile", "clip_std", "mse", "kl", "mix"):
        fq = get_default_qconfig(activation_observer=obs).activation()
        assert isinstance(fq, FakeQuantize)
    assert default_calib_8bit_weight_32bit_out_fake_quant_qconfig is default_qat_8bit_weight_32bit_out_fake_quant_qconfig


_VERSION_PROBE = r"""
import json, logging, os, sys, warnings
sys.path.insert(0, sys.argv[1])
logging.basicConfig(level=logging.WARNING, format="LOG %(message)s")
NAMES = ("default_qat_8bit_weight_32bit_out_fake_quant_qconfig", "default_qat_out_8bit_fake_quant_qconfig",
         "default_calib_out_8bit_fake_quant_qconfig", "default_qat_8bit_weight_16bit_act_fake_quant_qconfig")
results = {}
for version in sys.argv[2:]:
    os.environ["QAT_TUI_DOUBLE_PLUGIN_VERSION"] = version  # read when the package is imported
    for mod in [m for m in sys.modules if m.split(".")[0] in ("horizon_plugin_pytorch", "hbdk")]:
        del sys.modules[mod]
    import horizon_plugin_pytorch as h
    from horizon_plugin_pytorch.quantization import qconfig as q
    import horizon_plugin_pytorch.quantization as Q
    out = {"version": h.__version__, "BAYES_E": hasattr(h.March, "BAYES_E"), "NASH_E": hasattr(h.March, "NASH_E"),
           "get_default_qconfig": hasattr(Q, "get_default_qconfig")}
    for name in NAMES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out[name] = "present" if getattr(q, name) is not None else "none"
            except AttributeError:
                out[name] = "AttributeError"
            except RuntimeError as e:
                out[name] = "RuntimeError: " + str(e)
        out[name + ":warned"] = [str(w.message) for w in caught if w.category is DeprecationWarning]
    results[version] = out
print(json.dumps(results))
"""


def test_qconfig_names_by_plugin_version():
    """Emulated plugin versions (QAT_TUI_DOUBLE_PLUGIN_VERSION, read at import; re-imported in a child)."""
    res = subprocess.run([sys.executable, "-c", _VERSION_PROBE, DOUBLE, "1.5.0", "1.8.0", "1.9.0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    r = json.loads(res.stdout.decode().strip().splitlines()[-1])
    new, old = "default_qat_8bit_weight_32bit_out_fake_quant_qconfig", "default_qat_out_8bit_fake_quant_qconfig"
    v15, v18, v19 = r["1.5.0"], r["1.8.0"], r["1.9.0"]
    assert [v["version"] for v in (v15, v18, v19)] == ["1.5.0", "1.8.0", "1.9.0"]
    # 1.5.0: only the old names, no get_default_qconfig, no BAYES_E
    assert v15[new] == "AttributeError" and v15[old] == "present" and not v15[old + ":warned"]
    assert not v15["get_default_qconfig"] and not v15["BAYES_E"]
    assert v15["default_qat_8bit_weight_16bit_act_fake_quant_qconfig"] == "AttributeError"
    # 1.8.0: both; the old one is deprecated (logged by the plugin; DeprecationWarning added by the double)
    assert v18[new] == "present" and v18[old] == "present" and v18["get_default_qconfig"]
    assert v18[old + ":warned"][0].startswith(
        "[Deprecated] TODO(horizon): `default_qat_out_8bit_fake_quant_qconfig` was deprecated since 1.6.2 "
        "and will be removed in 1.9.0. Please use `default_qat_8bit_weight_32bit_out_fake_quant_qconfig` instead.")
    # 1.9.0: removed - the deprecation wrapper raises RuntimeError on access (so hasattr raises too)
    assert v19[new] == "present" and v19[old].startswith("RuntimeError: [Deprecated] TODO(horizon): `" + old)
    assert v19["default_calib_out_8bit_fake_quant_qconfig"].startswith("RuntimeError")
    assert v19["NASH_E"] and v19["BAYES_E"]
    assert b"LOG [Deprecated] TODO(horizon)" in res.stderr  # logged with logger.warning, as the plugin does


def test_rgb2centered_yuv_values():
    rgb = torch.tensor([[255, 0, 0, 255], [255, 0, 255, 0], [255, 0, 0, 0]], dtype=torch.uint8).reshape(1, 3, 1, 4)
    studio = rgb2centered_yuv(rgb)
    assert studio.dtype == torch.int32
    assert studio[0, :, 0, 0].tolist() == [107, 0, 0]  # white
    assert studio[0, :, 0, 1].tolist() == [-112, 0, 0]  # black
    full = rgb2centered_yuv(rgb, "full")
    assert full[0, :, 0, 0].tolist() == [127, 0, 0] and full[0, :, 0, 1].tolist() == [-128, 0, 0]
    assert int(full[0, 2, 0, 3]) > 100  # red: high V
    with pytest.raises(AssertionError):
        rgb2centered_yuv(rgb, "broadcast")


# ------------------------------------------------------------------------------------------- hbdk


def test_check_model(pipeline, float_model, capsys):
    _double.reset()
    assert check_model(pipeline["script"], [pipeline["x"]]) == 0
    out = capsys.readouterr().out
    assert "This model is supported!" in out and out.rstrip().endswith("HBDK model check PASS")
    assert check_model(pipeline["script"], [pipeline["x"]], advice=1) == 0
    assert "ADVICE: layer _features_0_0_hz_conv2d" in capsys.readouterr().out
    assert check_model(float_model, [pipeline["x"]]) != 0  # a float model is not compilable
    res = capsys.readouterr()
    assert "HBDK model check FAIL, please check with HBDK Group" in res.out and "float weights" in res.err
    top = [c for c in _double.CALLS if c["depth"] == 0]
    assert [c["api"] for c in top] == ["check_model"] * 3 and top[0]["devices"] == ["cpu"]
    assert top[0]["returned"] == 0 and top[0]["march"] == "bayes"


def test_check_model_with_quantized_linear(float_model, tmp_path):
    """An int8 classifier (quantized::linear; unpacking its weights must not crash torch 1.10)."""
    set_march(March.BERNOULLI2)
    m = prepare_qat_fx(copy.deepcopy(float_model), {"": default_qat_8bit_fake_quant_qconfig})
    m.eval()
    set_fake_quantize(m, FakeQuantState.CALIBRATION)
    with torch.no_grad():
        m(_images(8, 5))
    m.eval()
    set_fake_quantize(m, FakeQuantState.VALIDATION)
    x = _images(4, 6)
    script = torch.jit.trace(convert_fx(m), x)
    hbir = str(tmp_path / "m.hbir")
    assert export_hbir(script, [x], hbir) == (["arg0"], ["_output_0"])
    layers = json.load(open(hbir))["layers"]
    linear = [l for l in layers if l["op"] == "linear"]
    assert len(linear) == 1 and linear[0]["weight_shape"] == [10, 1280] and linear[0]["ops"] == 2 * 4 * 10 * 1280
    assert check_model(script, [x]) == 0
    set_march(March.BAYES)


def test_compile_hbm_suffix_rule(pipeline, tmp_path, capsys):
    ret = compile_model(pipeline["script"], [pipeline["x"]], hbm=str(tmp_path / "model.bin"))
    assert ret == 1
    assert 'argument "hbm" must end with .hbm' in capsys.readouterr().out
    assert os.listdir(str(tmp_path)) == []
    assert export_hbir(pipeline["script"], [pipeline["x"]], str(tmp_path / "model.ir")) == 1


def test_compile_writes_hbm_hbir_pt(pipeline, tmp_path, capsys):
    from hbdk.hbm import read_hbm

    _double.reset()
    hbm = str(tmp_path / "model.hbm")
    assert compile_model(pipeline["script"], [pipeline["x"]], hbm=hbm, input_source="pyramid", opt="O1") == 0
    out = capsys.readouterr().out
    assert "INFO: launch 16 threads for optimization" in out  # printed by the child process (hbdk-cc)
    assert "WARNING: arg0 can not be assigned to NCHW_NATIVE layout" in out
    assert out.rstrip().endswith("HBDK model compilation SUCCESS")
    assert sorted(os.listdir(str(tmp_path))) == ["model.hbir", "model.hbm", "model.pt"]
    header, payload = read_hbm(hbm)
    assert header["model_name"] == "FxQATReadyMobileNetV2" and header["march"] == "bayes"
    assert "--O1" in header["compiling options"] and "-i pyramid" in header["compiling options"]
    with open(str(tmp_path / "model.pt"), "rb") as f:
        assert payload == f.read()
    reloaded = torch.jit.load(str(tmp_path / "model.pt"))
    assert torch.allclose(reloaded(pipeline["x"]), pipeline["script"](pipeline["x"]))
    hbir = json.load(open(str(tmp_path / "model.hbir")))
    assert hbir["inputs"][0]["name"] == "arg0" and abs(hbir["inputs"][0]["scale"] - 1 / 128) < 1e-9
    entry = [c for c in _double.CALLS if c["api"] == "compile_model"][0]
    assert entry["depth"] == 0 and entry["devices"] == ["cpu"] and hbm in entry["files"]


def test_compile_argument_checks(pipeline, tmp_path):
    args = (pipeline["script"], [pipeline["x"]])
    with pytest.raises(TypeError):  # unknown opt: not rejected up front, fails building the command line
        compile_model(*args, hbm=str(tmp_path / "a.hbm"), opt="O4")
    with pytest.raises(RuntimeError, match="HBDK model compilation FAIL, please check with HBDK Group"):
        compile_model(*args, hbm=str(tmp_path / "b.hbm"), output_layout="NHCW")
    with pytest.raises(RuntimeError, match="HBDK model compilation FAIL"):
        compile_model(*args, hbm=str(tmp_path / "c.hbm"), input_source="camera")
    with pytest.raises(RuntimeError, match="HBDK model compilation FAIL"):
        compile_model(*args, hbm=str(tmp_path / "d.hbm"), march="nash-e")  # not an hbdk3 march
    assert compile_model(*args, hbm=str(tmp_path / "e.hbm"), input_source=["DDR"], opt="balance",
                         balance_factor=50, output_layout="NHWC") == 0
    assert compile_model(*args, hbm=str(tmp_path / "f.hbm"), input_source="ddr", opt=3, jobs=0) == 0


def test_march_none_is_an_error(pipeline, tmp_path):
    old = get_march()
    set_march(None)
    try:
        with pytest.raises(RuntimeError, match="march"):
            compile_model(pipeline["script"], [pipeline["x"]], hbm=str(tmp_path / "m.hbm"))
    finally:
        set_march(old)


def test_perf_model_json_and_html(pipeline, tmp_path, capsys):
    _double.reset()
    out_dir = str(tmp_path / "perf_out")
    r = perf_model(pipeline["script"], [pipeline["x"]], out_dir=out_dir, input_source="pyramid", opt="O1",
                   layer_details=True)
    printed = capsys.readouterr().out
    name = "FxQATReadyMobileNetV2"
    assert sorted(os.listdir(out_dir)) == [name + ".html", name + ".json"]
    with open(os.path.join(out_dir, name + ".json")) as f:
        assert json.load(f) == r
    s = r["summary"]
    for key in ("FPS", "latency (us)", "latency (ms)", "DDR megabytes per frame", "BPU march", "HBDK version",
                "compiling options", "model name", "frame per run", "input features", "layer details"):
        assert key in s
    assert r["test double"] is True and s["test double"] is True
    assert s["BPU march"] == "BAYES" and s["HBDK version"] == "3.46.4" and s["model name"] == name
    assert s["input features"][1] == ["arg0", "8x32x32x3"]  # NHWC, as in the sample
    assert abs(s["FPS"] - s["frame per run"] / (s["latency (us)"] / 1e6)) < 0.02
    assert "FPS=%.2f, latency = %.1f us   (see %s/%s.html)" % (s["FPS"], s["latency (us)"], out_dir, name) in printed
    assert printed.rstrip().endswith("HBDK performance estimation SUCCESS")
    assert "-m " + tempfile.gettempdir() + "/hbdktmp_" in s["compiling options"]  # the temporary hbm's hbir
    top = [c for c in _double.CALLS if c["depth"] == 0]
    assert [c["api"] for c in top] == ["perf_model"] and top[0]["returned"] == "dict"


def test_visualize_refuses_show_true(pipeline, tmp_path):
    _double.reset()
    with pytest.raises(_double.DoubleRefusal, match="would launch a browser"):
        visualize_model(pipeline["script"], [pipeline["x"]], save_path=str(tmp_path / "m.svg"))  # show defaults to True
    assert [c["api"] for c in _double.CALLS] == ["visualize_model"] and _double.CALLS[0]["show"] is True


def test_visualize_runs_dot(pipeline, tmp_path, monkeypatch):
    bin_dir = _double.make_fake_dot(str(tmp_path / "bin"))
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ.get("PATH", ""))
    svg = str(tmp_path / "model.svg")
    assert visualize_model(pipeline["script"], [pipeline["x"]], save_path=svg, show=False) is None
    with open(svg) as f:
        assert f.read().startswith("<svg")
    entry = [c for c in _double.CALLS if c["api"] == "visualize_model"][-1]
    assert entry["show"] is False and svg in entry["files"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError):  # no graphviz: subprocess cannot start "dot"
        visualize_model(pipeline["script"], [pipeline["x"]], save_path=svg, show=False)


def test_visualize_needs_a_real_stdout(pipeline, tmp_path, monkeypatch):
    """The real visualize_model passes sys.stdout to subprocess for dot: a stdout without fileno() fails."""
    import contextlib
    import io

    monkeypatch.setenv("PATH", _double.make_fake_dot(str(tmp_path / "bin")) + os.pathsep + os.environ.get("PATH", ""))
    with pytest.raises(io.UnsupportedOperation):
        with contextlib.redirect_stdout(io.StringIO()):
            visualize_model(pipeline["script"], [pipeline["x"]], save_path=str(tmp_path / "m.svg"), show=False)


def test_cli_output_can_go_to_fd(pipeline, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("QAT_TUI_DOUBLE_HBDK_CLI_OUTPUT", "inherit")
    assert check_model(pipeline["script"], [pipeline["x"]]) == 0
    out = capfd.readouterr().out
    assert "This model is supported!" in out and "HBDK model check PASS" in out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_hbdk_refuses_cuda_models(pipeline, tmp_path):
    x = pipeline["x"].cuda()
    with pytest.raises(RuntimeError, match="CPU"):
        compile_model(copy.deepcopy(pipeline["qat"]).cuda(), [x], hbm=str(tmp_path / "g.hbm"))
    assert _double.CALLS[-1]["devices"] == ["cuda:0"] or any(c.get("devices") == ["cuda:0"] for c in _double.CALLS)


def test_call_log_reset():
    _double.CALLS.append({"api": "x"})
    _double.reset()
    assert _double.CALLS == []


# ------------------------------------------------------------------------------- hbdk4 generation

_HBDK4_FLOW = r"""
import copy, json, os, sys
sys.path.insert(0, sys.argv[1])
os.chdir(sys.argv[2])
import torch
torch.set_num_threads(1)
from torch import nn
from horizon_plugin_pytorch import set_march, _double
from horizon_plugin_pytorch.quantization import (FakeQuantState, QconfigSetter, QuantStub, get_qconfig, prepare,
                                                 qint8, set_fake_quantize)
from horizon_plugin_pytorch.quantization.hbdk4 import export
from horizon_plugin_pytorch.quantization.observer_v2 import HistogramObserver
from horizon_plugin_pytorch.quantization.qconfig_setter import ConvDtypeTemplate, MatmulDtypeTemplate, ModuleNameTemplate
from hbdk4.compiler import compile, convert, hbm_perf, load, save, statistics

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = QuantStub(), torch.quantization.DeQuantStub()
        self.conv, self.bn, self.relu = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.fc = nn.Linear(8, 10)
    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        return self.dequant(self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)))

out = {}
set_march("nash-e")
torch.manual_seed(0)  # fixed weights and input: the test must not depend on a random draw
model, x = Net().eval(), torch.randn(2, 3, 16, 16)
setter = QconfigSetter(get_qconfig(observer=HistogramObserver), templates=[
    ModuleNameTemplate({"": qint8}), ConvDtypeTemplate(input_dtype=qint8, weight_dtype=qint8),
    MatmulDtypeTemplate(input_dtypes=[qint8, qint8])])
try:
    prepare(copy.deepcopy(model), qconfig_setter=setter)
except ValueError:
    out["needs_example_inputs"] = True
calib = prepare(copy.deepcopy(model), (x,), qconfig_setter=setter)
out["check_file"] = os.path.exists("model_check_result.txt")
calib.eval(); set_fake_quantize(calib, FakeQuantState.CALIBRATION)
with torch.no_grad():
    calib(x)
calib.eval(); set_fake_quantize(calib, FakeQuantState.VALIDATION)
qat_bc = export(calib, x)
try:
    convert(qat_bc, "bayes")
except ValueError:
    out["hbdk3_march_refused"] = True
quantized = convert(qat_bc, "nash-e")
save(quantized, "quantized.bc")
quantized.functions[0].remove_io_op(op_types=["Dequantize", "Quantize"])
save(quantized, "quantized_remove.bc")
out["stats"] = statistics(quantized)
hbm = compile(quantized, "model.hbm", "nash-e", opt=2, jobs=64, progress_bar=True, debug=False)
with torch.no_grad():
    out["max_diff"] = float((hbm.graphs[0].feed([x]) - calib(x)).abs().max())
out["perf"] = hbm_perf("model.hbm", output_dir="perf")
out["files"] = sorted(os.listdir("."))
out["reloaded"] = load("quantized_remove.bc").stage
out["apis"] = [c["api"] for c in _double.CALLS]
print(json.dumps(out))
"""


def test_hbdk4_generation_flow(tmp_path):
    env = dict(os.environ, QAT_TUI_DOUBLE_PLUGIN_VERSION="3.3.4", PYTHONWARNINGS="ignore")
    res = subprocess.run([sys.executable, "-c", _HBDK4_FLOW, DOUBLE, str(tmp_path)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert res.returncode == 0, res.stderr.decode()[-3000:]
    r = json.loads(res.stdout.decode().strip().splitlines()[-1])
    assert r["needs_example_inputs"] and r["check_file"] and r["hbdk3_march_refused"]
    assert r["stats"].get("hbir.conv2d") == 1 and not any(k.startswith("hbtl") for k in r["stats"])
    assert r["max_diff"] < 0.05
    assert r["perf"]["test double"] is True and r["perf"]["summary"]["BPU march"] == "nash-e"
    for f in ("model.hbm", "quantized.bc", "quantized_remove.bc", "model_check_result.txt", "perf"):
        assert f in r["files"]
    assert sorted(os.listdir(str(tmp_path / "perf"))) == ["model.html", "model.json"]
    assert r["reloaded"] == "quantized"
    apis = r["apis"]
    assert apis.index("set_march") < apis.index("prepare") < apis.index("export") < apis.index("hbdk4.compile")
