"""The Horizon backend: ``horizon_plugin_pytorch`` + ``hbdk``, called as Horizon's MobileNetV2 sample does.

These packages exist only inside Horizon's OpenExplorer docker (never on PyPI); everything is imported
lazily and feature-detected, because names changed across plugin versions. Sources: Horizon's X3
expert docs (HorizonRDK/rdk_x3_doc ``docs/toolchain_development/expert/quick_start.md`` and
``api_reference.md``), the plugin's ``quantization/fake_quantize.py`` and hbdk's
``torch_script/tools.py``, summarised in ``shared/reference/horizon-api.md``.

Calls per stage (hbdk3 generation: bernoulli2 = XJ3, bayes = J5, bayes-e):

* every stage: ``horizon_plugin_pytorch.march.set_march(march)`` before any prepare.
* model: ``horizon_plugin_pytorch.quantization.QuantStub(scale=1/128)`` (the input is centred YUV444
  divided by 128, made with ``horizon_plugin_pytorch.functional.rgb2centered_yuv``; the fixed scale is
  required for ``input_source="pyramid"``) and ``torch.quantization.DeQuantStub``.
* calib / qat: ``prepare_qat_fx(copy.deepcopy(float_model), {"": qconfig, "module_name":
  {"classifier": out_qconfig}})`` - always a fresh copy of the float model; qat then
  ``qat_model.load_state_dict(calib_model.state_dict())``.
* states: ``model.train(); set_fake_quantize(model, FakeQuantState.QAT)`` /
  ``model.eval(); set_fake_quantize(model, FakeQuantState.CALIBRATION | VALIDATION)``.
* int_infer: ``convert_fx(prepared)``; ``torch.jit.trace(quantized.cpu(), x)`` -> ``int_model.pt``.
* compile (CPU): ``check_model(script, [x], march, input_source, advice)``,
  ``compile_model(script, [x], hbm=model.hbm, march, input_source, input_layout, output_layout, opt,
  balance_factor, jobs)`` (also writes ``model.hbir`` and ``model.pt``), ``perf_model(script, [x],
  out_dir=perf_out, ..., layer_details=True)`` and ``visualize_model(script, [x],
  save_path=model.svg, show=False)``.

The hbdk4 generation (nash-*: J6, S100) prepares with ``quantization.prepare`` and a qconfig setter,
exports with ``quantization.hbdk4.export`` and compiles with ``hbdk4.compiler``; see :class:`Hbdk4Flow`.
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ..errors import BackendError
from ..io import atomic_write_json, atomic_write_text
from .base import (
    Artifact,
    BackendInfo,
    CheckItem,
    CheckReport,
    CompileResult,
    FakeQuantState,
    Log,
    Phase,
    QuantBackend,
    damaged_int_model,
    no_phase,
)

INT_MODEL_NAME = "int_model.pt"

HBDK3_OPTS = ("O0", "O1", "O2", "O3", "ddr", "fast", "balance")
"""``opt`` values hbdk3's compile accepts (hbdk ``torch_script/tools.py`` docstring: O0, O1, O2, O3, ddr,
fast, balance). hbdk does not reject others up front - it fails later with a TypeError - so they are
validated before compiling."""

INPUT_SOURCES = ("ddr", "pyramid", "resizer")
LAYOUTS = ("NHWC", "NCHW", "BPU_RAW")

CALIB_OBSERVERS = {
    "min_max": "min_max: the full range seen in calibration.",
    "percentile": "percentile: clip the range at a high percentile (robust to outliers).",
    "mse": "mse: clip to minimise the quantization error (the calibration guide's advice for activations).",
    "kl": "kl: clip to minimise the KL divergence of the distributions.",
    "mix": "mix: pick the best of the above per layer.",
}
"""Activation observers of ``get_default_qconfig`` (plugin >= 1.7) offered for calibration."""

HBDK4_CALIB_OBSERVERS = {
    "min_max": "min_max: the full range seen in calibration (get_qconfig(observer=MinMaxObserver)).",
    "mse": "mse: clip to minimise the quantization error (get_qconfig(observer=MSEObserver)).",
}
"""Calibration observers of the hbdk4 generation's ``get_qconfig(observer=...)``, which accepts
MinMaxObserver and MSEObserver (plugin source, ``quantization/qconfig.py``)."""

OUT_QCONFIG_NAMES = {
    "qat": ("default_qat_8bit_weight_32bit_out_fake_quant_qconfig", "default_qat_out_8bit_fake_quant_qconfig"),
    "calib": ("default_calib_8bit_weight_32bit_out_fake_quant_qconfig", "default_calib_out_8bit_fake_quant_qconfig"),
}
"""The high-precision (32-bit) output qconfig, newest name first: the ``*_out_8bit_*`` names were renamed
to ``*_8bit_weight_32bit_out_*`` in plugin 1.6.2/1.7.0 and removed in 1.9.0. Both mean: 8-bit weights,
the conv/linear output left un-requantized (int32 on the BPU)."""

PLAIN_QCONFIG_NAMES = {
    "qat": "default_qat_8bit_fake_quant_qconfig",
    "calib": "default_calib_8bit_fake_quant_qconfig",
}


def _version() -> Tuple[Optional[str], Optional[str]]:
    import horizon_plugin_pytorch

    plugin = getattr(horizon_plugin_pytorch, "__version__", "?")
    try:
        import hbdk

        hb = getattr(hbdk, "__version__", "?")
    except Exception:
        hb = None
    return plugin, hb


def plugin_marches() -> List[str]:
    """March names the installed plugin defines (``horizon_plugin_pytorch.march.March`` constants)."""
    from horizon_plugin_pytorch.march import March

    values = []
    for key in dir(March):
        if key.isupper():
            v = getattr(March, key)
            if isinstance(v, str) and v not in values:
                values.append(v)
    return values


def is_hbdk4_march(march: str) -> bool:
    """nash-* (J6, S100/S600) compile with hbdk4; bernoulli2/bayes/bayes-e with hbdk3."""
    return march.lower().startswith("nash")


HBDK4_OPTS = {"O0": 0, "O1": 1, "O2": 2}
"""``[horizon] opt`` -> hbdk4's ``compile(opt=0..2)`` (OE-Skills hbdk-manual api_reference: opt 0-2)."""

HBDK4_MODEL_NAME = "int_model.bc"
HBDK4_QAT_NAME = "qat.bc"


def validate_compile_options(options: Any) -> None:
    """Check ``[horizon]`` compile options before hbdk sees them.

    Raises:
        BackendError: unknown opt, input_source, layout or balance factor, naming the allowed values;
            for an hbdk4 march (nash-*), an opt outside O0-O2.
    """
    if is_hbdk4_march(options.march):
        if options.opt not in HBDK4_OPTS:
            raise BackendError(
                "[horizon] opt = %r: hbdk4 (march %s) compiles with opt 0-2 only" % (options.opt, options.march),
                hint="use one of: %s" % ", ".join(HBDK4_OPTS),
            )
        return
    if options.opt not in HBDK3_OPTS:
        raise BackendError(
            "[horizon] opt = %r is not an hbdk optimisation option" % options.opt,
            hint="use one of: %s (hbdk would accept it and fail later with a TypeError)" % ", ".join(HBDK3_OPTS),
        )
    if options.input_source not in INPUT_SOURCES:
        raise BackendError("[horizon] input_source = %r" % options.input_source, hint="use one of: %s" % ", ".join(INPUT_SOURCES))
    for key in ("output_layout", "input_layout"):
        v = getattr(options, key)
        if v is not None and v not in LAYOUTS:
            raise BackendError("[horizon] %s = %r" % (key, v), hint="use one of: %s" % ", ".join(LAYOUTS))
    if options.opt == "balance" and not 0 <= options.balance_factor <= 100:
        raise BackendError("[horizon] balance_factor = %r" % options.balance_factor, hint="use 0..100")


def parse_check_output(text: str, returncode: Any) -> CheckReport:
    """Structure what ``check_model`` printed.

    The verdict comes from the return code (0 = pass) and the "HBDK model check PASS/FAIL" line.
    Per-layer advice lines are kept as items: hbdk's advice format is not documented (unconfirmed), so
    every non-empty line that is not a known status line becomes an item with the line as its reason;
    the raw text stays in the report.
    """
    passed = returncode == 0 and "FAIL" not in text
    items: List[CheckItem] = []
    status_lines = ("HBDK model check PASS", "HBDK model check FAIL", "This model is supported!")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or any(line.startswith(s) for s in status_lines):
            continue
        low = line.lower()
        if not any(k in low for k in ("advice", "suggest", "slow", "warning", "error", "not supported", "layer")):
            continue
        m = re.search(r"(layer|op|node)[\s:=]+([\w./-]+)", line, re.IGNORECASE)
        node = m.group(2) if m else ""
        status = "float" if ("not supported" in low or "error" in low) else "advice"
        items.append(CheckItem(op=node or "-", node=node, module=node, status=status, reason=line, suggestion=""))
    verdict = "HBDK model check PASS" if passed else "HBDK model check FAIL"
    summary = "%s (%d advice lines)" % (verdict, len(items))
    return CheckReport(passed=passed, summary=summary, items=items, text=text)


def perf_summary(perf: Dict[str, Any]) -> Dict[str, Any]:
    """The figures the results screen shows from ``perf_model``'s JSON (its ``summary`` dict)."""
    s = perf.get("summary", perf) if isinstance(perf, dict) else {}

    def pick(*keys: str) -> Any:
        for k in keys:
            if k in s:
                return s[k]
        return None

    return {
        "fps": pick("FPS", "frame per second"),
        "latency_us": pick("latency (us)", "latency(us)", "latency", "Latency"),
        "ddr_mb_per_frame": pick("DDR megabytes per frame"),
        "ddr_mb_per_s": pick("DDR megabytes per second"),
        "march": pick("BPU march"),
        "hbdk_version": pick("HBDK version"),
        "compiling_options": pick("compiling options"),
    }


def record_perf(result: CompileResult, perf: Dict[str, Any], printed: str, out_dir: str, perf_dir: str, tool: str,
                html_what: str) -> None:
    """Put a perf tool's JSON into ``result``: the summary figures into ``metrics``, ``perf.json``
    (the JSON, its summary and what the tool printed) and the tool's HTML reports as artifacts."""
    summary = perf_summary(perf)
    result.perf = {"hbdk_perf": perf, "summary": summary, "printed": printed}
    result.metrics.update({k: v for k, v in summary.items() if v is not None})
    perf_json = os.path.join(out_dir, "perf.json")
    atomic_write_json(perf_json, result.perf)
    for name in sorted(os.listdir(perf_dir)) if os.path.isdir(perf_dir) else []:
        if name.endswith(".html"):
            result.artifacts.append(Artifact("perf_out/" + name, os.path.join(perf_dir, name), html_what))
    result.artifacts.append(Artifact("perf.json", perf_json, "%s's JSON (summary: FPS, latency, DDR) and what it printed." % tool))


class HorizonBackend(QuantBackend):
    """horizon_plugin_pytorch + hbdk (see the module docstring for every call and its source).

    Args:
        options: the ``[horizon]`` settings (march, input_source, opt, layouts, advice, jobs).
    """

    name = "horizon"

    def __init__(self, options: Any = None) -> None:
        if options is None:
            from ..settings import HorizonSettings

            options = HorizonSettings()
        self.options = options
        self.work_dir: Optional[str] = None  # the run directory, set by validate_settings

    # ---------------------------------------------------------------------------------- detection
    @classmethod
    def detect(cls) -> BackendInfo:
        try:
            plugin, hb = _version()
        except Exception as e:
            return BackendInfo(
                cls.name,
                False,
                "horizon_plugin_pytorch does not import (%s: %s): it ships only inside Horizon's "
                "OpenExplorer docker, not on PyPI" % (type(e).__name__, e),
            )
        versions = {"horizon_plugin_pytorch": plugin}
        try:
            import torch

            versions["torch"] = torch.__version__
        except Exception:
            pass
        reason = ""
        if hb is None:
            reason = "hbdk does not import: training works, the compile stage needs hbdk"
        else:
            versions["hbdk"] = hb
        try:
            import hbdk4.compiler  # noqa: F401

            versions["hbdk4"] = getattr(__import__("hbdk4"), "__version__", "?")
        except Exception:
            pass
        return BackendInfo(
            cls.name,
            True,
            reason,
            versions,
            "horizon_plugin_pytorch prepare_qat_fx/convert_fx + hbdk compile -> model.hbm",
        )

    def marches(self) -> List[str]:
        return plugin_marches()

    def _set_march(self) -> str:
        from horizon_plugin_pytorch.march import set_march

        march = self.options.march
        available = plugin_marches()
        if march not in available:
            raise BackendError(
                "[horizon] march = %r is not defined by the installed horizon_plugin_pytorch" % march,
                hint="use one of: %s (bernoulli2 = XJ3, bayes = J5, nash-* = J6/S100)" % ", ".join(available),
            )
        set_march(march)
        return march

    # ------------------------------------------------------------------------------- model pieces
    def quant_stubs(self) -> Tuple[Any, Any]:
        from horizon_plugin_pytorch.quantization import QuantStub
        from torch.quantization import DeQuantStub

        if is_hbdk4_march(self.options.march):
            # hbdk4 generation: one stub per input/output, no fixed scale (OE-Skills
            # j6-plugin-hbdk-generating/references/full-pipeline-template.md).
            return QuantStub(), DeQuantStub()
        # Inputs are centred YUV444 / 128, i.e. in [-1, 1): a fixed scale of 1/128 maps them exactly to
        # int8; Horizon requires it for input_source="pyramid" (quick_start.md, "获取浮点模型").
        return QuantStub(scale=1.0 / 128), DeQuantStub()

    def normalize_transform(self) -> Callable:
        return CenteredYUV()

    def calib_observers(self) -> Dict[str, str]:
        from horizon_plugin_pytorch.quantization import qconfig as qc

        if is_hbdk4_march(self.options.march):
            return dict(HBDK4_CALIB_OBSERVERS)
        if hasattr(qc, "get_default_qconfig"):
            return dict(CALIB_OBSERVERS)
        return {"default": "this plugin version has only default_calib_8bit_fake_quant_qconfig"}

    # ------------------------------------------------------------------------------------ qconfig
    def qconfig_dict(self, stage: str, qconfig: Any) -> Tuple[Dict[str, Any], List[str]]:
        """The qconfig dict for ``prepare_qat_fx`` and lines explaining it in plain words.

        Raises:
            BackendError: the chosen observer or the high-precision output is not available here.
        """
        from horizon_plugin_pytorch.quantization import qconfig as qc

        lines = []
        if stage == "calib" and hasattr(qc, "get_default_qconfig"):
            observer = qconfig.calib_observer
            if observer not in CALIB_OBSERVERS:
                raise BackendError(
                    "calibration observer %r is not offered by horizon_plugin_pytorch" % observer,
                    hint="choose one of: %s" % ", ".join(CALIB_OBSERVERS),
                )
            glob = qc.get_default_qconfig(activation_observer=observer, weight_observer="min_max")
            lines.append(
                "all layers: get_default_qconfig(activation_observer=%r, weight_observer='min_max') - "
                "8-bit weights (per channel) and activations, calibrated with %s" % (observer, observer)
            )
        else:
            name = PLAIN_QCONFIG_NAMES[stage]
            glob = getattr(qc, name)
            lines.append("all layers: %s - 8-bit weights and activations" % name)
            if stage == "calib":
                lines.append("(this plugin version has no get_default_qconfig: the calibration observer is fixed)")
        qdict: Dict[str, Any] = {"": glob}
        if qconfig.high_precision_output:
            for name in OUT_QCONFIG_NAMES[stage]:
                if _has(qc, name):
                    qdict["module_name"] = {"classifier": getattr(qc, name)}
                    lines.append(
                        "classifier: %s - 8-bit weights and inputs, output kept in 32 bits (not re-quantized; "
                        "the old name 'out_8bit' meant this int32 output)" % name
                    )
                    break
            else:
                raise BackendError(
                    "this horizon_plugin_pytorch has none of %s" % ", ".join(OUT_QCONFIG_NAMES[stage]),
                    hint="set [qconfig] high_precision_output = false",
                )
        else:
            lines.append("classifier: same as all layers (8-bit output)")
        return qdict, lines

    # ------------------------------------------------------------------------------------ prepare
    def prepare(self, float_model: Any, example_inputs: Tuple[Any, ...], stage: str, qconfig: Any) -> Any:
        from horizon_plugin_pytorch.quantization import prepare_qat_fx

        march = self._set_march()
        if is_hbdk4_march(march):
            return Hbdk4Flow(self).prepare(float_model, example_inputs, stage, qconfig)
        qdict, lines = self.qconfig_dict(stage, qconfig)
        self.last_qconfig_lines = lines
        # prepare mutates (and may move) the model it gets: always hand it a fresh float copy.
        return prepare_qat_fx(copy.deepcopy(float_model).cpu(), qdict)

    def set_fake_quant_state(self, model: Any, state: FakeQuantState) -> None:
        from horizon_plugin_pytorch.quantization import FakeQuantState as HFQ
        from horizon_plugin_pytorch.quantization import set_fake_quantize

        state = FakeQuantState(state)
        if state is FakeQuantState.QAT:
            model.train()
            set_fake_quantize(model, HFQ.QAT)
        elif state is FakeQuantState.CALIBRATION:
            model.eval()
            set_fake_quantize(model, HFQ.CALIBRATION)
        else:
            model.eval()
            set_fake_quantize(model, HFQ.VALIDATION)

    def load_calib_state(self, qat_model: Any, calib_state: Dict[str, Any]) -> List[str]:
        if is_hbdk4_march(self.options.march):
            # calibration and QAT are prepared with different observers (the template's calibration
            # observer vs MinMaxObserver): load what both have, and say what did not load.
            res = qat_model.load_state_dict(calib_state, strict=False)
            lines = ["loaded the calibration state (%d tensors) into the QAT model" % (len(calib_state) - len(res.unexpected_keys))]
            if res.missing_keys or res.unexpected_keys:
                lines.append("observer entries only in one of the two models (not loaded): %d missing, %d unexpected, e.g. %s"
                             % (len(res.missing_keys), len(res.unexpected_keys), (res.missing_keys + res.unexpected_keys)[0]))
            return lines
        # quick_start.md: qat_model.load_state_dict(calib_model.state_dict())
        qat_model.load_state_dict(calib_state)
        return ["loaded the calibration state (%d tensors) into the QAT model" % len(calib_state)]

    def convert(self, prepared: Any, example_inputs: Tuple[Any, ...]) -> Any:
        from horizon_plugin_pytorch.quantization import convert_fx

        march = self._set_march()
        if is_hbdk4_march(march):
            return Hbdk4Flow(self).convert(prepared, example_inputs)
        return convert_fx(copy.deepcopy(prepared).cpu())

    # ------------------------------------------------------------------------------ integer model
    def save_int_model(self, int_model: Any, example_inputs: Tuple[Any, ...], out_dir: str) -> Union[Artifact, List[Artifact]]:
        import torch

        if isinstance(int_model, HbirModel):
            return Hbdk4Flow(self).save(int_model, out_dir)
        path = os.path.join(out_dir, INT_MODEL_NAME)
        x = example_inputs[0].detach().cpu()
        model = int_model.cpu().eval()
        with torch.no_grad():
            script = torch.jit.trace(model, x)
        fd, tmp = tempfile.mkstemp(prefix=".int_model.", suffix=".pt", dir=out_dir)
        os.close(fd)
        try:
            torch.jit.save(script, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return Artifact(
            INT_MODEL_NAME,
            path,
            "The fixed-point model traced with torch.jit.trace (TorchScript): input of check_model/compile_model.",
        )

    def load_int_model(self, path: str) -> Any:
        import torch

        if path.endswith(".bc"):
            return Hbdk4Flow(self).load(path)
        try:
            return torch.jit.load(path, map_location="cpu")
        except Exception as e:
            raise damaged_int_model(path, "a TorchScript file", e) from None

    # ------------------------------------------------------------------------------------ compile
    def compile(
        self,
        int_model: Any,
        float_model: Any,
        example_inputs: Tuple[Any, ...],
        out_dir: str,
        options: Any,
        log: Log,
        phase: Optional[Phase] = None,
    ) -> CompileResult:
        from ..capture import capture_output

        phase = phase or no_phase
        validate_compile_options(self.options)
        if is_hbdk4_march(self.options.march):
            self._set_march()
            return Hbdk4Flow(self).compile(int_model, example_inputs, out_dir, log, phase)
        try:
            from horizon_plugin_pytorch.quantization import (
                check_model,
                compile_model,
                perf_model,
                visualize_model,
            )
        except ImportError as e:
            raise BackendError("the compile tools do not import (%s)" % e, hint="compile needs hbdk in Horizon's docker") from None
        o = self.options
        validate_compile_options(o)
        march = self._set_march()
        x = example_inputs[0].detach().cpu()
        script = int_model  # TorchScript, on CPU (hbdk compiles on CPU only)
        result = CompileResult()
        sources = o.input_source

        # 1. check_model: printed advice, captured with what hbdk's CLI prints
        log("check_model(march=%s, input_source=%s, advice=%s)" % (march, sources, o.advice_us))
        with phase("hbdk check_model"), capture_output() as cap:
            rc = check_model(script, [x], march=march, input_source=sources, advice=o.advice_us)
        check = parse_check_output(cap.text, rc)
        check_txt = os.path.join(out_dir, "check_report.txt")
        check_json = os.path.join(out_dir, "check_report.json")
        atomic_write_text(check_txt, cap.text)
        atomic_write_json(check_json, {"passed": check.passed, "summary": check.summary, "items": [i.to_dict() for i in check.items]})
        result.check = check
        result.artifacts.append(Artifact("check_report.txt", check_txt, "check_model's output as printed (advice and verdict)."))
        result.artifacts.append(Artifact("check_report.json", check_json, "check_model's verdict and advice lines as JSON."))
        if not check.passed:
            raise BackendError(
                "check_model failed: the model cannot be compiled for %s" % march,
                hint="see %s for hbdk's messages" % check_txt,
            )

        # 2. compile_model -> model.hbm (+ model.hbir and model.pt written beside it by hbdk)
        hbm = os.path.join(out_dir, "model.hbm")
        stem = hbm[: -len(".hbm")]
        protected = {os.path.join(out_dir, INT_MODEL_NAME)}
        for extra in (stem + ".hbir", stem + ".pt"):
            if extra in protected:
                raise BackendError("compile_model would overwrite %s" % extra, hint="choose another hbm name")
        log("compile_model(hbm=model.hbm, opt=%s, input_source=%s) - this can take minutes" % (o.opt, sources))
        with phase("hbdk compile_model -> model.hbm"), capture_output() as cap:
            rc = compile_model(
                script, [x], hbm=hbm, march=march, input_source=sources, input_layout=o.input_layout,
                output_layout=o.output_layout, opt=o.opt, balance_factor=o.balance_factor,
                progressbar=False, jobs=o.jobs,
            )
        atomic_write_text(os.path.join(out_dir, "compile.log"), cap.text)
        if rc != 0 or not os.path.exists(hbm):
            raise BackendError(
                "compile_model failed (return code %s): %s" % (rc, _last_line(cap.text)),
                hint="see compile.log in the run directory",
            )
        result.deployable = hbm
        result.artifacts.append(Artifact("model.hbm", hbm, "The deployable model for the BPU (%s): load it with the board's runtime." % march))
        if os.path.exists(stem + ".hbir"):
            result.artifacts.append(Artifact("model.hbir", stem + ".hbir", "hbdk's intermediate representation, written by compile_model."))
        if os.path.exists(stem + ".pt"):
            result.artifacts.append(Artifact("model.pt", stem + ".pt", "hbdk's traced copy of int_model.pt, written by compile_model."))
        result.artifacts.append(Artifact("compile.log", os.path.join(out_dir, "compile.log"), "What compile_model printed."))

        # 3. perf_model -> perf_out/<name>.html + .json (returned as a dict)
        perf_dir = os.path.join(out_dir, "perf_out")
        log("perf_model(out_dir=perf_out, layer_details=True)")
        with phase("hbdk perf_model"), capture_output() as cap:
            perf = perf_model(
                script, [x], march=march, out_dir=perf_dir, input_source=sources, input_layout=o.input_layout,
                output_layout=o.output_layout, opt=o.opt, balance_factor=o.balance_factor, progressbar=False,
                jobs=o.jobs, layer_details=True,
            )
        if not isinstance(perf, dict):
            raise BackendError("perf_model failed (return code %s): %s" % (perf, _last_line(cap.text)))
        record_perf(result, perf, cap.text, out_dir, perf_dir, "perf_model",
                    "hbdk-perf's report: FPS, latency, DDR traffic, per-layer details.")

        # 4. visualize_model -> model.svg (needs graphviz's dot; never opens a browser in a TUI)
        if shutil.which("dot"):
            svg = os.path.join(out_dir, "model.svg")
            with phase("hbdk visualize_model"), capture_output() as cap:
                try:
                    visualize_model(script, [x], march=march, save_path=svg, show=False)
                except Exception as e:  # the picture is optional; say why it is missing
                    log("visualize_model failed: %s" % e)
            if os.path.exists(svg):
                result.artifacts.append(Artifact("model.svg", svg, "hbdk's picture of the compiled graph."))
        else:
            log("graphviz 'dot' is not installed: no model.svg (apt-get install graphviz)")
        return result

    def signature(self) -> Dict[str, Any]:
        return {"backend": self.name, "march": self.options.march}

    def validate_settings(self, settings: Any) -> None:
        super().validate_settings(settings)
        self.work_dir = settings.run_path()
        self._set_march()
        if settings.compile.enabled:
            validate_compile_options(self.options)


def _has(module: Any, name: str) -> bool:
    """hasattr that survives plugin >= 1.9.0, whose removed qconfig names raise on access."""
    try:
        return hasattr(module, name)
    except Exception:
        return False


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(nothing printed)"


class CenteredYUV:
    """Tensor transform: RGB float in [0, 1] (C, H, W) -> centred YUV444 / 128, as Horizon's sample feeds
    the model (``rgb2centered_yuv`` on uint8 images, then ``Normalize(mean=0, std=128)``).

    Picklable (data-loader workers); imports the plugin on first use.
    """

    def __call__(self, x: Any) -> Any:
        from horizon_plugin_pytorch.functional import rgb2centered_yuv

        u8 = (x * 255.0).round().clamp(0, 255).to(dtype=__import__("torch").uint8)
        yuv = rgb2centered_yuv(u8.unsqueeze(0))[0]
        return yuv.float() / 128.0

    def __repr__(self) -> str:
        return "CenteredYUV()"


class HbirModel:
    """The hbdk4 integer model, called like a torch model.

    Holds ``qat_bc`` (``horizon_plugin_pytorch.quantization.hbdk4.export`` of the QAT model in
    validation state) and ``quantized`` (``hbdk4.compiler.convert(qat_bc, march)``). Calling it with a
    float32 ``(N, 3, H, W)`` batch feeds one image at a time through ``quantized[0].feed`` (HBIR
    inference on the CPU, OE-Skills ``horizon/skills/hbdk/hbdk-manual/model-inference.md``: inputs and
    outputs are ``{name: numpy array}``; the HBIR keeps the static batch-1 shape it was exported with)
    and returns float32 logits ``(N, num_classes)``.
    """

    def __init__(self, qat_bc: Any, quantized: Any) -> None:
        self.qat_bc = qat_bc
        self.quantized = quantized

    def to(self, *args: Any, **kwargs: Any) -> "HbirModel":
        return self  # HBIR inference runs on the CPU

    def eval(self) -> "HbirModel":
        return self

    def __call__(self, x: Any) -> Any:
        import numpy as np
        import torch

        func = self.quantized[0]
        inputs = list(getattr(func, "flatten_inputs", func.inputs))
        outputs = list(getattr(func, "flatten_outputs", func.outputs))
        if len(inputs) != 1 or not outputs:
            raise BackendError("the HBIR model has %d inputs and %d outputs; qat-tui feeds one image input" % (len(inputs), len(outputs)))
        outs = []
        for i in range(x.shape[0]):
            got = func.feed({inputs[0].name: x[i : i + 1].detach().cpu().float().numpy()})
            outs.append(torch.as_tensor(np.asarray(got[outputs[0].name]), dtype=torch.float32).reshape(1, -1))
        return torch.cat(outs).to(x.device)


class Hbdk4Flow:
    """The hbdk4 generation (nash-*: J6, S100/S600), as HorizonRobotics/OE-Skills
    ``horizon/skills/plugin/j6-plugin-hbdk-generating/references/full-pipeline-template.md`` does it:

    * prepare: ``prepare(model, (x,), qconfig_setter=QconfigSetter(get_qconfig(observer=...),
      templates=[ModuleNameTemplate({"": out_dtype}), ConvDtypeTemplate(input_dtype=qint8,
      weight_dtype=qint8), MatmulDtypeTemplate(input_dtypes=[qint8, qint8])]))`` on a fresh float copy;
      ``out_dtype`` is float16 for nash-p/nash-h and qint8 otherwise (the template's choice); QAT
      prepares with MinMaxObserver, calibration with the chosen observer. prepare writes
      ``model_check_result.txt`` into the current directory: it runs in the run directory.
    * int_infer: ``model.eval(); set_fake_quantize(VALIDATION)``; ``export(model, x)`` -> ``qat.bc``;
      ``hbdk4.compiler.convert(qat_bc, march)`` -> ``int_model.bc`` (Horizon's ``quantized.bc``),
      evaluated with ``Module[0].feed`` (hbdk-manual model-inference.md).
    * compile: ``statistics`` (``hbtl`` ops run on the CPU: the check report),
      ``functions[0].remove_io_op(op_types=["Dequantize", "Quantize"])``, ``compile(m, "model.hbm",
      march, opt=0..2, jobs, progress_bar=False)``, ``hbm_perf("model.hbm", output_dir=perf_out)`` and
      ``visualize(m, onnx_file="model.onnx")``.

    Unconfirmed without the real packages: the high-precision (int16/float) classifier output through
    a template (not applied: every output follows the template's global dtype), which state-dict keys
    a HistogramObserver/MSEObserver calibration shares with a MinMaxObserver QAT model (loaded
    non-strictly, with the keys that did not load logged), and the wall time of HBIR inference.
    """

    def __init__(self, backend: "HorizonBackend") -> None:
        self.backend = backend
        self.march = backend.options.march

    # ------------------------------------------------------------------------------------ prepare
    def setter(self, stage: str, qconfig: Any) -> Tuple[Any, List[str]]:
        import torch

        try:
            from horizon_plugin_pytorch.quantization import QconfigSetter, get_qconfig, qint8
            from horizon_plugin_pytorch.quantization.observer_v2 import MinMaxObserver, MSEObserver
            from horizon_plugin_pytorch.quantization.qconfig_setter import (
                ConvDtypeTemplate,
                MatmulDtypeTemplate,
                ModuleNameTemplate,
            )
        except ImportError as e:
            raise BackendError(
                "march %s needs the hbdk4-generation plugin API (QconfigSetter, get_qconfig): %s" % (self.march, e),
                hint="use Horizon's J6/S100 docker, or an hbdk3 march (bernoulli2, bayes, bayes-e)",
            ) from None
        if stage == "calib":
            name = qconfig.calib_observer
            if name not in HBDK4_CALIB_OBSERVERS:
                raise BackendError(
                    "calibration observer %r is not offered for %s" % (name, self.march),
                    hint="choose one of: %s" % ", ".join(HBDK4_CALIB_OBSERVERS),
                )
            observer = MSEObserver if name == "mse" else MinMaxObserver
        else:
            observer = MinMaxObserver
        out_dtype = torch.float16 if self.march in ("nash-p", "nash-h") else qint8
        setter = QconfigSetter(
            get_qconfig(observer=observer),
            templates=[
                ModuleNameTemplate({"": out_dtype}),
                ConvDtypeTemplate(input_dtype=qint8, weight_dtype=qint8),
                MatmulDtypeTemplate(input_dtypes=[qint8, qint8]),
            ],
        )
        lines = [
            "all layers: QconfigSetter(get_qconfig(observer=%s)) - 8-bit weights and conv/matmul inputs, "
            "outputs %s" % (observer.__name__, "float16" if out_dtype is torch.float16 else "8-bit"),
        ]
        if qconfig.high_precision_output:
            lines.append("high-precision output: not applied for hbdk4 marches yet (the classifier follows all layers)")
        return setter, lines

    def prepare(self, float_model: Any, example_inputs: Tuple[Any, ...], stage: str, qconfig: Any) -> Any:
        try:
            from horizon_plugin_pytorch.quantization import prepare
        except ImportError:
            raise BackendError(
                "this horizon_plugin_pytorch has no quantization.prepare (hbdk4 generation) for %s" % self.march,
                hint="use Horizon's J6/S100 docker, or an hbdk3 march (bernoulli2, bayes, bayes-e)",
            ) from None
        setter, lines = self.setter(stage, qconfig)
        self.backend.last_qconfig_lines = lines
        x = tuple(t.detach().cpu() for t in example_inputs)
        cwd = os.getcwd()
        work = self.backend.work_dir or cwd
        os.makedirs(work, exist_ok=True)
        os.chdir(work)  # prepare writes model_check_result.txt into the current directory
        try:
            return prepare(copy.deepcopy(float_model).cpu(), x, qconfig_setter=setter)
        finally:
            os.chdir(cwd)

    # ---------------------------------------------------------------------------------- int_infer
    def convert(self, prepared: Any, example_inputs: Tuple[Any, ...]) -> HbirModel:
        from horizon_plugin_pytorch.quantization import FakeQuantState as HFQ
        from horizon_plugin_pytorch.quantization import set_fake_quantize

        try:
            from hbdk4.compiler import convert
            from horizon_plugin_pytorch.quantization.hbdk4 import export
        except ImportError as e:
            raise BackendError(
                "march %s converts with hbdk4, which does not import (%s)" % (self.march, e),
                hint="run int_infer inside Horizon's J6/S100 docker (hbdk4-compiler installed)",
            ) from None
        model = copy.deepcopy(prepared).cpu()
        model.eval()
        set_fake_quantize(model, HFQ.VALIDATION)  # export wants the validation state (OE j6-plugin-export)
        x = example_inputs[0][:1].detach().cpu()  # the deployed model takes one image
        qat_bc = export(model, x)
        quantized = convert(qat_bc, self.march)
        return HbirModel(qat_bc, quantized)

    def save(self, model: HbirModel, out_dir: str) -> List[Artifact]:
        from hbdk4.compiler import save

        arts = []
        for obj, name, what in (
            (model.quantized, HBDK4_MODEL_NAME,
             "The integer HBIR model for %s (hbdk4 convert of qat.bc; Horizon's quantized.bc): input of compile." % self.march),
            (model.qat_bc, HBDK4_QAT_NAME, "The QAT model exported to HBIR (horizon_plugin_pytorch hbdk4 export)."),
        ):
            target = os.path.join(out_dir, name)
            fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".bc", dir=out_dir)  # save wants .bc
            os.close(fd)
            try:
                save(obj, tmp)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            arts.append(Artifact(name, target, what))
        return arts

    def load(self, path: str) -> Any:
        try:
            from hbdk4.compiler import load
        except ImportError as e:
            raise BackendError("hbdk4 does not import (%s)" % e, hint="compile inside Horizon's J6/S100 docker") from None
        try:
            return load(path)
        except Exception as e:
            raise damaged_int_model(path, "an HBIR file", e) from None

    # ------------------------------------------------------------------------------------ compile
    def compile(self, model: Any, example_inputs: Tuple[Any, ...], out_dir: str, log: Log,
                phase: Optional[Phase] = None) -> CompileResult:
        from ..capture import capture_output

        phase = phase or no_phase
        try:
            from hbdk4.compiler import compile as hbdk4_compile
            from hbdk4.compiler import hbm_perf, statistics, visualize
        except ImportError as e:
            raise BackendError("hbdk4 does not import (%s)" % e, hint="compile inside Horizon's J6/S100 docker") from None
        o = self.backend.options
        march = self.march
        result = CompileResult()

        # 1. statistics: hbtl ops run on the CPU instead of the BPU - the check report of this generation
        log("statistics(int_model.bc)")
        with phase("hbdk4 statistics"), capture_output() as cap:
            stats = statistics(model)
        stats = dict(stats or {})
        items = []
        for op, n in sorted(stats.items()):
            if "hbtl" in op.lower():
                items.append(CheckItem(op=op, node="", module="", status="float",
                                       reason="%d op(s) run on the CPU (hbtl), not the BPU" % n,
                                       suggestion="replace the op with a BPU-supported one or check its qconfig; "
                                                  "it costs latency on the board"))
        bpu = sum(n for op, n in stats.items() if "hbtl" not in op.lower())
        passed = not items
        summary = "%s: %d BPU ops, %d CPU (hbtl) op kinds" % ("PASS" if passed else "CPU ops present", bpu, len(items))
        text = cap.text + "\n" + "\n".join("%-40s %d" % kv for kv in sorted(stats.items())) + "\n"
        check_txt = os.path.join(out_dir, "check_report.txt")
        check_json = os.path.join(out_dir, "check_report.json")
        atomic_write_text(check_txt, text)
        atomic_write_json(check_json, {"passed": passed, "summary": summary, "statistics": stats, "items": [i.to_dict() for i in items]})
        result.check = CheckReport(passed=passed, summary=summary, items=items, text=text)
        result.artifacts.append(Artifact("check_report.txt", check_txt, "hbdk4 statistics of the integer model (hbtl = CPU ops)."))
        result.artifacts.append(Artifact("check_report.json", check_json, "The same statistics as JSON."))

        # 2. remove the float Quantize/Dequantize at the model's boundary, then compile -> model.hbm
        model[0].remove_io_op(op_types=["Dequantize", "Quantize"])
        log("removed the Quantize/Dequantize ops at the inputs/outputs: the hbm takes and returns quantized tensors")
        hbm = os.path.join(out_dir, "model.hbm")
        fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".hbm", dir=out_dir)
        os.close(fd)
        jobs = o.jobs or (os.cpu_count() or 1)
        log("hbdk4 compile(model.hbm, march=%s, opt=%d, jobs=%d) - this can take minutes" % (march, HBDK4_OPTS[o.opt], jobs))
        try:
            with phase("hbdk4 compile -> model.hbm"), capture_output() as cap:
                hbdk4_compile(model, tmp, march, opt=HBDK4_OPTS[o.opt], jobs=jobs, progress_bar=False)
            os.replace(tmp, hbm)
        except Exception as e:
            atomic_write_text(os.path.join(out_dir, "compile.log"), cap.text)
            raise BackendError("hbdk4 compile failed: %s" % (str(e).splitlines()[0] if str(e) else type(e).__name__),
                               hint="see compile.log in the run directory") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        atomic_write_text(os.path.join(out_dir, "compile.log"), cap.text)
        result.deployable = hbm
        result.artifacts.append(Artifact("model.hbm", hbm, "The deployable model for the BPU (%s): load it with the board's runtime." % march))
        result.artifacts.append(Artifact("compile.log", os.path.join(out_dir, "compile.log"), "What hbdk4's compile printed."))

        # 3. hbm_perf -> perf_out/model.html + model.json
        perf_dir = os.path.join(out_dir, "perf_out")
        log("hbm_perf(model.hbm, output_dir=perf_out)")
        with phase("hbdk4 hbm_perf"), capture_output() as cap:
            perf = hbm_perf(hbm, output_dir=perf_dir)
        if not isinstance(perf, dict):
            stem_json = os.path.join(perf_dir, "model.json")
            if os.path.exists(stem_json):
                import json

                with open(stem_json, encoding="utf-8") as f:
                    perf = json.load(f)
            else:
                raise BackendError("hbm_perf wrote no model.json: %s" % _last_line(cap.text))
        record_perf(result, perf, cap.text, out_dir, perf_dir, "hbm_perf", "hbm_perf's report: FPS, latency, per-layer figures.")

        # 4. visualize -> model.onnx (a picture of the HBIR for netron; never starts netron here)
        onnx = os.path.join(out_dir, "model.onnx")
        try:
            with capture_output():
                visualize(model, onnx_file=onnx, use_netron=False)
            if os.path.exists(onnx):
                result.artifacts.append(Artifact("model.onnx", onnx, "The compiled graph as ONNX for viewing (open it in netron)."))
        except Exception as e:  # the picture is optional; say why it is missing
            log("visualize failed: %s" % e)
        return result

__all__ = ["HorizonBackend", "HbirModel", "Hbdk4Flow", "CenteredYUV", "parse_check_output", "perf_summary", "plugin_marches", "validate_compile_options"]
