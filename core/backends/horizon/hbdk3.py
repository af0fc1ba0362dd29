"""The hbdk3 generation of the Horizon backend: bernoulli2 (XJ3), bayes (J5), bayes-e - the calls of
Horizon's MobileNetV2 sample (X3 expert docs ``quick_start.md``, ``api_reference.md``; the plugin's
``quantization/fake_quantize.py`` and hbdk's ``torch_script/tools.py``):

* model: ``horizon_plugin_pytorch.quantization.QuantStub(scale=1/128)`` (the input is centred YUV444 / 128;
  the fixed scale is required for ``input_source="pyramid"``) and ``torch.quantization.DeQuantStub``.
* calib / qat: ``prepare_qat_fx(copy.deepcopy(float_model), {"": qconfig, "module_name":
  {"classifier": out_qconfig}})`` - always a fresh copy of the float model; qat then
  ``qat_model.load_state_dict(calib_model.state_dict())``.
* int_infer: ``convert_fx(prepared)``; ``torch.jit.trace(quantized.cpu(), x)`` -> ``int_model.pt``.
* compile (CPU): ``check_model(script, [x], march, input_source, advice)``,
  ``compile_model(script, [x], hbm=model.hbm, march, input_source, input_layout, output_layout, opt,
  balance_factor, jobs)`` (also writes ``model.hbir`` and ``model.pt``), ``perf_model(script, [x],
  out_dir=perf_out, ..., layer_details=True)`` and ``visualize_model(script, [x],
  save_path=model.svg, show=False)``.
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Tuple, Union

from ...i18n import _
from ...errors import BackendError
from ...io import atomic_write_json, atomic_write_text
from ..base import Artifact, BackendInfo, CompileResult, Log, Phase, damaged_int_model, no_phase
from . import CALIB_OBSERVERS, validate_compile_options
from .common import HorizonBase, _has, _last_line, detect, parse_check_output, record_perf

INT_MODEL_NAME = "int_model.pt"

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


class Hbdk3Backend(HorizonBase):
    """horizon_plugin_pytorch's FX flow + hbdk3 (see the module docstring for every call and its source)."""

    INT16_MARCHES = ("bayes",)  # the expert guide: int16 can be set only on RDK Ultra (march bayes)

    @classmethod
    def detect(cls) -> BackendInfo:
        """The plugin's detection; without hbdk only the compile stage cannot run (said in the reason)."""
        return detect()

    def quant_stubs(self) -> Tuple[Any, Any]:
        from horizon_plugin_pytorch.quantization import QuantStub
        from torch.quantization import DeQuantStub

        # Inputs are centred YUV444 / 128, i.e. in [-1, 1): a fixed scale of 1/128 maps them exactly to
        # int8; Horizon requires it for input_source="pyramid" (quick_start.md, "获取浮点模型").
        return QuantStub(scale=1.0 / 128), DeQuantStub()

    def calib_observers(self) -> Dict[str, str]:
        from horizon_plugin_pytorch.quantization import qconfig as qc

        if hasattr(qc, "get_default_qconfig"):
            return dict(CALIB_OBSERVERS)
        return {"default": "this plugin version has only default_calib_8bit_fake_quant_qconfig"}

    def qconfig_dict(self, stage: str, qconfig: Any, out_layer: Optional[str] = "classifier") -> Tuple[Dict[str, Any], List[str]]:
        """The qconfig dict for ``prepare_qat_fx`` and lines explaining it in plain words.

        ``out_layer``: the module computing the model's output (found by tracing,
        :func:`core.models.output_layer`), where the 32-bit-output qconfig applies (``module_name``).

        Raises:
            BackendError: the chosen observer or the high-precision output is not available here.
        """
        from horizon_plugin_pytorch.quantization import qconfig as qc

        lines = []
        if stage == "calib" and hasattr(qc, "get_default_qconfig"):
            observer = qconfig.calib_observer
            if observer not in CALIB_OBSERVERS:
                raise BackendError(
                    _("calibration observer %r is not offered by horizon_plugin_pytorch") % observer,
                    hint=_("choose one of: %s") % ", ".join(CALIB_OBSERVERS),
                )
            glob = qc.get_default_qconfig(activation_observer=observer, weight_observer="min_max")
            lines.append(
                _("all layers: get_default_qconfig(activation_observer=%r, weight_observer='min_max') - "
                "8-bit weights (per channel) and activations, calibrated with %s") % (observer, observer)
            )
        else:
            name = PLAIN_QCONFIG_NAMES[stage]
            glob = getattr(qc, name)
            lines.append(_("all layers: %s - 8-bit weights and activations") % name)
            if stage == "calib":
                lines.append(_("(this plugin version has no get_default_qconfig: the calibration observer is fixed)"))
        qdict: Dict[str, Any] = {"": glob}
        if qconfig.high_precision_output and out_layer is None:
            lines.append(_("output layer: none found (no conv/linear computes the output): same as all layers"))
        elif qconfig.high_precision_output:
            for name in OUT_QCONFIG_NAMES[stage]:
                if _has(qc, name):
                    qdict["module_name"] = {out_layer: getattr(qc, name)}
                    lines.append(
                        _("output layer %s: %s - 8-bit weights and inputs, output kept in 32 bits (not re-quantized; "
                        "the old name 'out_8bit' meant this int32 output)") % (out_layer, name)
                    )
                    break
            else:
                raise BackendError(
                    _("this horizon_plugin_pytorch has none of %s") % ", ".join(OUT_QCONFIG_NAMES[stage]),
                    hint=_("set [qconfig] high_precision_output = false"),
                )
        else:
            lines.append(_("output layer %s: same as all layers (8-bit output)") % out_layer)
        for name in qconfig.int16_layers:
            qdict.setdefault("module_name", {})[name] = self._int16_qconfig(qc, stage, qconfig)
            lines.append(_("16-bit output ([qconfig] int16_layers): %s - 8-bit weights, 16-bit activation (the guide's "
                         "int16 for march bayes)") % name)
        for name in getattr(qconfig, "float_layers", None) or []:
            qdict.setdefault("module_name", {})[name] = None
            lines.append(_("kept in float ([qconfig] float_layers): %s - qconfig None (prepare_qat_fx: not quantized); "
                         "Horizon's check_model names what then runs on the CPU") % name)
        return qdict, lines

    @staticmethod
    def _int16_qconfig(qc: Any, stage: str, qconfig: Any) -> Any:
        """8-bit weights, 16-bit activation: ``get_default_qconfig(..., activation_qkwargs={"dtype": qint16})``
        for calibration where the plugin has it, else ``default_<stage>_8bit_weight_16bit_act_fake_quant_qconfig``
        (plugin >= 1.7.0)."""
        if stage == "calib" and hasattr(qc, "get_default_qconfig"):
            from horizon_plugin_pytorch.dtype import qint16

            return qc.get_default_qconfig(activation_observer=qconfig.calib_observer, weight_observer="min_max",
                                          activation_qkwargs={"dtype": qint16})
        name = "default_%s_8bit_weight_16bit_act_fake_quant_qconfig" % stage
        if not _has(qc, name):
            raise BackendError(_("this horizon_plugin_pytorch has no %s (16-bit activations need plugin >= 1.7.0)") % name,
                               hint=_("clear [qconfig] int16_layers, or use a newer plugin"))
        return getattr(qc, name)

    def prepare(self, float_model: Any, example_inputs: Tuple[Any, ...], stage: str, qconfig: Any) -> Any:
        from horizon_plugin_pytorch.quantization import prepare_qat_fx

        self._set_march()
        from ...models import output_layer

        self._check_layer_names(float_model, list(qconfig.float_layers) + list(qconfig.int16_layers))
        qdict, lines = self.qconfig_dict(stage, qconfig, output_layer(float_model, example_inputs[0]))
        self.last_qconfig_lines = lines
        # prepare mutates (and may move) the model it gets: always hand it a fresh float copy.
        try:
            return prepare_qat_fx(copy.deepcopy(float_model).cpu(), qdict)
        except Exception as e:  # torch.fx cannot trace the model (TraceError, a control-flow error, ...)
            from ...models import capture_problem

            from ...errors import ModelError

            msg, hint = capture_problem(e, "prepare_qat_fx (torch.fx symbolic tracing)")
            raise ModelError(msg, hint=hint) from e

    # ---------------------------------------------------------------------------- per-layer debug
    def compare_layers(self, float_model: Any, prepared: Any, stage: str, qconfig: Any, batches: Any) -> List[Any]:
        """The plugin's ``featuremap_similarity`` on ``prepared`` against itself with fake quant off
        (see :mod:`core.backends.horizon.debug`); its files go to ``<run>/debug_horizon/``."""
        from . import debug

        return debug.compare(prepared, batches, os.path.join(self.work_dir or ".", debug.DEBUG_DIR))

    def load_calib_state(self, qat_model: Any, calib_state: Dict[str, Any]) -> List[str]:
        # quick_start.md: qat_model.load_state_dict(calib_model.state_dict())
        qat_model.load_state_dict(calib_state)
        return ["loaded the calibration state (%d tensors) into the QAT model" % len(calib_state)]

    def convert(self, prepared: Any, example_inputs: Tuple[Any, ...]) -> Any:
        from horizon_plugin_pytorch.quantization import convert_fx

        self._set_march()
        return convert_fx(copy.deepcopy(prepared).cpu())

    def save_int_model(self, int_model: Any, example_inputs: Tuple[Any, ...], out_dir: str) -> Union[Artifact, List[Artifact]]:
        import torch

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
            _("The fixed-point model traced with torch.jit.trace (TorchScript): input of check_model/compile_model."),
        )

    def load_int_model(self, path: str) -> Any:
        import torch

        try:
            return torch.jit.load(path, map_location="cpu")
        except Exception as e:
            raise damaged_int_model(path, "a TorchScript file", e) from None

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
        from ...capture import capture_output

        phase = phase or no_phase
        validate_compile_options(self.options)
        try:
            from horizon_plugin_pytorch.quantization import (
                check_model,
                compile_model,
                perf_model,
                visualize_model,
            )
        except ImportError as e:
            raise BackendError(_("the compile tools do not import (%s)") % e, hint=_("compile needs hbdk in Horizon's docker")) from None
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
        result.artifacts.append(Artifact("check_report.txt", check_txt, _("check_model's output as printed (advice and verdict).")))
        result.artifacts.append(Artifact("check_report.json", check_json, _("check_model's verdict and advice lines as JSON.")))
        if not check.passed:
            raise BackendError(
                _("check_model failed: the model cannot be compiled for %s") % march,
                hint=_("see %s for hbdk's messages") % check_txt,
            )

        # 2. compile_model -> model.hbm (+ model.hbir and model.pt written beside it by hbdk)
        hbm = os.path.join(out_dir, "model.hbm")
        stem = hbm[: -len(".hbm")]
        protected = {os.path.join(out_dir, INT_MODEL_NAME)}
        for extra in (stem + ".hbir", stem + ".pt"):
            if extra in protected:
                raise BackendError(_("compile_model would overwrite %s") % extra, hint=_("choose another hbm name"))
        log(_("compile_model(hbm=model.hbm, opt=%s, input_source=%s) - this can take minutes") % (o.opt, sources))
        with phase("hbdk compile_model -> model.hbm"), capture_output() as cap:
            rc = compile_model(
                script, [x], hbm=hbm, march=march, input_source=sources, input_layout=o.input_layout,
                output_layout=o.output_layout, opt=o.opt, balance_factor=o.balance_factor,
                progressbar=False, jobs=o.jobs,
            )
        atomic_write_text(os.path.join(out_dir, "compile.log"), cap.text)
        if rc != 0 or not os.path.exists(hbm):
            raise BackendError(
                _("compile_model failed (return code %s): %s") % (rc, _last_line(cap.text)),
                hint=_("see compile.log in the run directory"),
            )
        result.deployable = hbm
        result.artifacts.append(Artifact("model.hbm", hbm, _("The deployable model for the BPU (%s): load it with the board's runtime.") % march))
        if os.path.exists(stem + ".hbir"):
            result.artifacts.append(Artifact("model.hbir", stem + ".hbir", _("hbdk's intermediate representation, written by compile_model.")))
        if os.path.exists(stem + ".pt"):
            result.artifacts.append(Artifact("model.pt", stem + ".pt", _("hbdk's traced copy of int_model.pt, written by compile_model.")))
        result.artifacts.append(Artifact("compile.log", os.path.join(out_dir, "compile.log"), _("What compile_model printed.")))

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
            raise BackendError(_("perf_model failed (return code %s): %s") % (perf, _last_line(cap.text)))
        record_perf(result, perf, cap.text, out_dir, perf_dir, "perf_model",
                    _("hbdk-perf's report: FPS, latency, DDR traffic, per-layer details."))

        # 4. visualize_model -> model.svg (needs graphviz's dot; never opens a browser in a TUI)
        if shutil.which("dot"):
            svg = os.path.join(out_dir, "model.svg")
            with phase("hbdk visualize_model"), capture_output() as cap:
                try:
                    visualize_model(script, [x], march=march, save_path=svg, show=False)
                except Exception as e:  # the picture is optional; say why it is missing
                    log(_("visualize_model failed: %s") % e)
            if os.path.exists(svg):
                result.artifacts.append(Artifact("model.svg", svg, _("hbdk's picture of the compiled graph.")))
        else:
            log(_("graphviz 'dot' is not installed: no model.svg (apt-get install graphviz)"))
        return result


__all__ = ["Hbdk3Backend", "OUT_QCONFIG_NAMES", "PLAIN_QCONFIG_NAMES", "INT_MODEL_NAME"]
