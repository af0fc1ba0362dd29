"""The hbdk4 generation of the Horizon backend: nash-* marches (J6, S100/S600)."""
from __future__ import annotations

import copy
import os
import tempfile
from typing import Any, Dict, List, Optional, Tuple

from ...i18n import _
from ...errors import BackendError
from ...io import atomic_write_json, atomic_write_text
from ..base import Artifact, BackendInfo, CheckItem, CheckReport, CompileResult, Log, Phase, damaged_int_model, no_phase
from . import HBDK4_CALIB_OBSERVERS, HBDK4_OPTS, validate_compile_options
from .common import HorizonBase, _last_line, detect, record_perf

HBDK4_MODEL_NAME = "int_model.bc"
HBDK4_QAT_NAME = "qat.bc"


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
            raise BackendError(_("the HBIR model has %d inputs and %d outputs; qat-tui feeds one image input") % (len(inputs), len(outputs)))
        outs = []
        for i in range(x.shape[0]):
            got = func.feed({inputs[0].name: x[i : i + 1].detach().cpu().float().numpy()})
            outs.append(torch.as_tensor(np.asarray(got[outputs[0].name]), dtype=torch.float32).reshape(1, -1))
        return torch.cat(outs).to(x.device)


class Hbdk4Backend(HorizonBase):
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

    def precision_fix(self) -> str:
        # qint16 through QconfigSetter templates on every nash march (OE-Skills j6-plugin-precision-tuning)
        return "int16_layers"

    # ------------------------------------------------------------------------------------ prepare
    def setter(self, stage: str, qconfig: Any) -> Tuple[Any, List[str]]:
        import torch

        try:
            from horizon_plugin_pytorch.quantization import QconfigSetter, get_qconfig, qint8, qint16
            from horizon_plugin_pytorch.quantization.observer_v2 import MinMaxObserver, MSEObserver
            from horizon_plugin_pytorch.quantization.qconfig_setter import (
                ConvDtypeTemplate,
                MatmulDtypeTemplate,
                ModuleNameTemplate,
            )
        except ImportError as e:
            raise BackendError(
                _("march %s needs the hbdk4-generation plugin API (QconfigSetter, get_qconfig): %s") % (self.options.march, e),
                hint=_("use Horizon's J6/S100 docker, or an hbdk3 march (bernoulli2, bayes, bayes-e)"),
            ) from None
        if stage == "calib":
            name = qconfig.calib_observer
            if name not in HBDK4_CALIB_OBSERVERS:
                raise BackendError(
                    _("calibration observer %r is not offered for %s") % (name, self.options.march),
                    hint=_("choose one of: %s") % ", ".join(HBDK4_CALIB_OBSERVERS),
                )
            observer = MSEObserver if name == "mse" else MinMaxObserver
        else:
            observer = MinMaxObserver
        out_dtype = torch.float16 if self.options.march in ("nash-p", "nash-h") else qint8
        names: Dict[str, Any] = {"": out_dtype}
        names.update({name: qint16 for name in qconfig.int16_layers})
        setter = QconfigSetter(
            get_qconfig(observer=observer),
            templates=[
                ModuleNameTemplate(names),
                ConvDtypeTemplate(input_dtype=qint8, weight_dtype=qint8),
                MatmulDtypeTemplate(input_dtypes=[qint8, qint8]),
            ],
        )
        lines = [
            _("all layers: QconfigSetter(get_qconfig(observer=%s)) - 8-bit weights and conv/matmul inputs, "
            "outputs %s") % (observer.__name__, "float16" if out_dtype is torch.float16 else "8-bit"),
        ]
        for name in qconfig.int16_layers:
            lines.append(_("16-bit output ([qconfig] int16_layers): %s - ModuleNameTemplate({%r: qint16})") % (name, name))
        if qconfig.high_precision_output:
            lines.append(_("high-precision output: not applied for hbdk4 marches yet (the classifier follows all layers)"))
        return setter, lines

    def validate_settings(self, settings: Any) -> None:
        super().validate_settings(settings)
        if settings.qconfig.float_layers:
            from ...errors import SettingsError

            raise SettingsError(_("[qconfig] float_layers is not built for the hbdk4 generation (march %s) yet")
                                % self.options.march,
                                hint=_("clear [qconfig] float_layers, or use an hbdk3 march (bernoulli2, bayes, bayes-e)"))

    def prepare(self, float_model: Any, example_inputs: Tuple[Any, ...], stage: str, qconfig: Any) -> Any:
        self._set_march()
        try:
            from horizon_plugin_pytorch.quantization import prepare
        except ImportError:
            raise BackendError(
                _("this horizon_plugin_pytorch has no quantization.prepare (hbdk4 generation) for %s") % self.options.march,
                hint=_("use Horizon's J6/S100 docker, or an hbdk3 march (bernoulli2, bayes, bayes-e)"),
            ) from None
        self._check_layer_names(float_model, list(qconfig.int16_layers))
        setter, lines = self.setter(stage, qconfig)
        self.last_qconfig_lines = lines
        x = tuple(t.detach().cpu() for t in example_inputs)
        cwd = os.getcwd()
        work = self.work_dir or cwd
        os.makedirs(work, exist_ok=True)
        os.chdir(work)  # prepare writes model_check_result.txt into the current directory
        try:
            return prepare(copy.deepcopy(float_model).cpu(), x, qconfig_setter=setter)
        finally:
            os.chdir(cwd)

    # ---------------------------------------------------------------------------- per-layer debug
    def compare_layers(self, float_model: Any, prepared: Any, stage: str, qconfig: Any, batches: Any) -> List[Any]:
        """``horizon_plugin_profiler.QuantAnalysis`` on ``prepared`` against itself with fake quant off
        (see :func:`core.backends.horizon.debug.compare_quant_analysis`); its files go to
        ``<run>/debug_horizon/``."""
        from . import debug

        return debug.compare_quant_analysis(prepared, batches, os.path.join(self.work_dir or ".", debug.DEBUG_DIR))

    # ---------------------------------------------------------------------------------- int_infer
    def convert(self, prepared: Any, example_inputs: Tuple[Any, ...]) -> HbirModel:
        self._set_march()
        from horizon_plugin_pytorch.quantization import FakeQuantState as HFQ
        from horizon_plugin_pytorch.quantization import set_fake_quantize

        try:
            from hbdk4.compiler import convert
            from horizon_plugin_pytorch.quantization.hbdk4 import export
        except ImportError as e:
            raise BackendError(
                _("march %s converts with hbdk4, which does not import (%s)") % (self.options.march, e),
                hint=_("run int_infer inside Horizon's J6/S100 docker (hbdk4-compiler installed)"),
            ) from None
        model = copy.deepcopy(prepared).cpu()
        model.eval()
        set_fake_quantize(model, HFQ.VALIDATION)  # export wants the validation state (OE j6-plugin-export)
        x = example_inputs[0][:1].detach().cpu()  # the deployed model takes one image
        qat_bc = export(model, x)
        quantized = convert(qat_bc, self.options.march)
        return HbirModel(qat_bc, quantized)

    def save_int_model(self, model: Any, example_inputs: Tuple[Any, ...], out_dir: str) -> List[Artifact]:
        from hbdk4.compiler import save

        arts = []
        for obj, name, what in (
            (model.quantized, HBDK4_MODEL_NAME,
             _("The integer HBIR model for %s (hbdk4 convert of qat.bc; Horizon's quantized.bc): input of compile.")
             % self.options.march),
            (model.qat_bc, HBDK4_QAT_NAME, _("The QAT model exported to HBIR (horizon_plugin_pytorch hbdk4 export).")),
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

    def load_int_model(self, path: str) -> Any:
        try:
            from hbdk4.compiler import load
        except ImportError as e:
            raise BackendError(_("hbdk4 does not import (%s)") % e, hint=_("compile inside Horizon's J6/S100 docker")) from None
        try:
            return load(path)
        except Exception as e:
            raise damaged_int_model(path, "an HBIR file", e) from None

    # ------------------------------------------------------------------------------------ compile
    def compile(self, model: Any, float_model: Any, example_inputs: Tuple[Any, ...], out_dir: str, options: Any,
                log: Log, phase: Optional[Phase] = None) -> CompileResult:
        from ...capture import capture_output

        validate_compile_options(self.options)
        self._set_march()
        phase = phase or no_phase
        try:
            from hbdk4.compiler import compile as hbdk4_compile
            from hbdk4.compiler import hbm_perf, statistics, visualize
        except ImportError as e:
            raise BackendError(_("hbdk4 does not import (%s)") % e, hint=_("compile inside Horizon's J6/S100 docker")) from None
        o = self.options
        march = self.options.march
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
        result.artifacts.append(Artifact("check_report.txt", check_txt, _("hbdk4 statistics of the integer model (hbtl = CPU ops).")))
        result.artifacts.append(Artifact("check_report.json", check_json, _("The same statistics as JSON.")))

        # 2. remove the float Quantize/Dequantize at the model's boundary, then compile -> model.hbm
        model[0].remove_io_op(op_types=["Dequantize", "Quantize"])
        log(_("removed the Quantize/Dequantize ops at the inputs/outputs: the hbm takes and returns quantized tensors"))
        hbm = os.path.join(out_dir, "model.hbm")
        fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".hbm", dir=out_dir)
        os.close(fd)
        jobs = o.jobs or (os.cpu_count() or 1)
        log(_("hbdk4 compile(model.hbm, march=%s, opt=%d, jobs=%d) - this can take minutes") % (march, HBDK4_OPTS[o.opt], jobs))
        try:
            with phase("hbdk4 compile -> model.hbm"), capture_output() as cap:
                hbdk4_compile(model, tmp, march, opt=HBDK4_OPTS[o.opt], jobs=jobs, progress_bar=False)
            os.replace(tmp, hbm)
        except Exception as e:
            atomic_write_text(os.path.join(out_dir, "compile.log"), cap.text)
            raise BackendError(_("hbdk4 compile failed: %s") % (str(e).splitlines()[0] if str(e) else type(e).__name__),
                               hint=_("see compile.log in the run directory")) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        atomic_write_text(os.path.join(out_dir, "compile.log"), cap.text)
        result.deployable = hbm
        result.artifacts.append(Artifact("model.hbm", hbm, _("The deployable model for the BPU (%s): load it with the board's runtime.") % march))
        result.artifacts.append(Artifact("compile.log", os.path.join(out_dir, "compile.log"), _("What hbdk4's compile printed.")))

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
                raise BackendError(_("hbm_perf wrote no model.json: %s") % _last_line(cap.text))
        record_perf(result, perf, cap.text, out_dir, perf_dir, "hbm_perf", _("hbm_perf's report: FPS, latency, per-layer figures."))

        # 4. visualize -> model.onnx (a picture of the HBIR for netron; never starts netron here)
        onnx = os.path.join(out_dir, "model.onnx")
        try:
            with capture_output():
                visualize(model, onnx_file=onnx, use_netron=False)
            if os.path.exists(onnx):
                result.artifacts.append(Artifact("model.onnx", onnx, _("The compiled graph as ONNX for viewing (open it in netron).")))
        except Exception as e:  # the picture is optional; say why it is missing
            log(_("visualize failed: %s") % e)
        return result


    @classmethod
    def detect(cls) -> BackendInfo:
        """The plugin's detection, refused where hbdk4's compiler (needed from int_infer on) does not import."""
        info = detect()
        if info.available and not info.extras.get("hbdk4"):
            info.reason = "hbdk4.compiler does not import: nash-* marches convert and compile with hbdk4"
        return info

    def quant_stubs(self) -> Tuple[Any, Any]:
        from horizon_plugin_pytorch.quantization import QuantStub
        from torch.quantization import DeQuantStub

        # hbdk4 generation: one stub per input/output, no fixed scale (OE-Skills
        # j6-plugin-hbdk-generating/references/full-pipeline-template.md).
        return QuantStub(), DeQuantStub()

    def calib_observers(self) -> Dict[str, str]:
        return dict(HBDK4_CALIB_OBSERVERS)

    def load_calib_state(self, qat_model: Any, calib_state: Dict[str, Any]) -> List[str]:
        # calibration and QAT are prepared with different observers (the template's calibration
        # observer vs MinMaxObserver): load what both have, and say what did not load.
        res = qat_model.load_state_dict(calib_state, strict=False)
        lines = [_("loaded the calibration state (%d tensors) into the QAT model") % (len(calib_state) - len(res.unexpected_keys))]
        if res.missing_keys or res.unexpected_keys:
            lines.append(_("observer entries only in one of the two models (not loaded): %d missing, %d unexpected, e.g. %s")
                         % (len(res.missing_keys), len(res.unexpected_keys), (res.missing_keys + res.unexpected_keys)[0]))
        return lines


__all__ = ["Hbdk4Backend", "HbirModel", "HBDK4_MODEL_NAME", "HBDK4_QAT_NAME"]
