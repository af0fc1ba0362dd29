"""The embedded default backend: torchao's pt2e quantization-aware training on the x86 recipe.

Calls, in the order the stages make them (sources: torchao ``quantization/pt2e/quantize_pt2e.py``
docstrings and the "PyTorch 2 Export Quantization-Aware Training" / "PT2E x86 Inductor" tutorials):

* ``prepare``: ``torch.export.export(copy.deepcopy(float_model), (x,), dynamic_shapes={0: Dim("batch")})
  .module()`` then ``prepare_qat_pt2e(gm, X86InductorQuantizer)``. Calibration and QAT both prepare with
  QAT fake quantizers (as Horizon prepares both with ``prepare_qat_fx``) so their state dicts line up;
  only the observers differ (calibration: the chosen observer; QAT: moving-average min/max).
* fake-quant states: ``move_exported_model_to_train/eval`` (exported graphs ignore ``.train()``) with
  ``enable/disable_fake_quant`` and ``enable/disable_observer`` (see :class:`FakeQuantState`).
* ``convert``: ``convert_pt2e`` on a copy in validation state -> a graph of int8 quantize/dequantize ops
  around float compute (the reference representation that Inductor pattern-matches into int8 kernels).
* ``compile``: ``torch.export.export`` of the converted model and
  ``torch._inductor.aoti_compile_and_package(..., inductor_configs={"freezing": True})`` under
  ``torch.no_grad()``; without both, Inductor silently keeps fp32 kernels (pytorch/ao issue #4566).

Quantization scheme (X86InductorQuantizer's default, ``get_default_x86_inductor_quantization_config``):
activations uint8 per-tensor affine [0, 255]; weights int8 per-channel symmetric [-128, 127], axis 0.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
import re
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ...i18n import _
from ...errors import BackendError, CheckpointError, ModelError
from ...io import atomic_write_json, atomic_write_text, file_size, human_size
from ..base import (
    Artifact,
    BackendInfo,
    CompileResult,
    FakeQuantState,
    Log,
    Phase,
    QuantBackend,
    damaged_int_model,
    no_phase,
)
from .module_calls import distinct_module_calls
from .check import _op_name, _output_producer, add_lowering_items, analyze_converted_graph, package_kernels
from .graph import write_graph_picture
from .perf import measure_perf, render_perf_html

INT_MODEL_NAME = "int_model.pt2"

MAX_BATCH = 4096
"""Upper bound of the exported dynamic batch dimension (the package accepts 1..MAX_BATCH images)."""

from . import CALIB_OBSERVERS  # noqa: E402  (the spec owns the choices it offers)


def _quiet_torchao_import() -> None:
    """torchao registers an Enum with torch's pytree at import, which torch >= 2.10 answers with a
    deprecation line on the log (not actionable for users); keep that logger to errors."""
    import logging

    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)


@contextlib.contextmanager
def _quiet_inductor() -> Iterator[None]:
    """Silence two messages of Inductor's C++ build that users cannot act on: the CUDA-runtime notice
    of a CUDA build of torch on a CPU machine, and a copy-construct UserWarning inside torch's oneDNN
    lowering. Errors still surface as exceptions."""
    import logging
    import warnings

    cpp_log = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_log.level
    cpp_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._inductor")
            yield
    finally:
        cpp_log.setLevel(level)


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Keep what torch.export prints on a model it cannot capture off the user's terminal: the partial
    FX graph it prints to sys.stderr (torch/export/_trace.py) and symbolic_shapes' "Unable to find user
    code" warning. The exception still carries the error, which :func:`core.models.capture_problem`
    turns into one message naming the line."""
    import logging

    shapes_log = logging.getLogger("torch.fx.experimental.symbolic_shapes")
    level = shapes_log.level
    shapes_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        shapes_log.setLevel(level)


def _torch_version_tuple() -> Tuple[int, int]:
    import torch

    m = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


class TorchPt2eBackend(QuantBackend):
    """torchao pt2e QAT + AOTInductor packaging; runs on any machine with torch >= 2.5 and torchao."""

    name = "torch"

    @classmethod
    def detect(cls) -> BackendInfo:
        versions: Dict[str, str] = {}
        try:
            import torch

            versions["torch"] = torch.__version__
        except Exception as e:  # pragma: no cover - torch is a hard dependency
            return BackendInfo(cls.name, False, _("torch does not import: %s") % e, versions)
        if _torch_version_tuple() < (2, 5):
            return BackendInfo(
                cls.name,
                False,
                _("torch %s is too old for torch.export-based QAT (needs 2.5 or newer); use a backend made for this torch")
                % torch.__version__,
                versions,
            )
        try:
            _quiet_torchao_import()
            import torchao  # noqa: F401
            from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e  # noqa: F401

            versions["torchao"] = getattr(torchao, "__version__", "?")
        except Exception as e:
            return BackendInfo(
                cls.name, False, _("torchao's pt2e QAT does not import (%s): pip install torchao") % e, versions
            )
        return BackendInfo(
            cls.name,
            True,
            "",
            versions,
            _("torchao pt2e QAT (X86InductorQuantizer), AOTInductor package model.pt2"),
        )

    # ------------------------------------------------------------------------------- model pieces
    def quant_stubs(self) -> Tuple[Any, Any]:
        from torch.ao.quantization import DeQuantStub, QuantStub

        # Identity modules in the float model; they mark where the quantized region begins and ends.
        return QuantStub(), DeQuantStub()

    def calib_observers(self) -> Dict[str, str]:
        return dict(CALIB_OBSERVERS)

    # ----------------------------------------------------------------------------------- quantizer
    def _quantization_config(self, stage: str, observer: str) -> Any:
        import torch
        from torchao.quantization.pt2e import (
            FakeQuantize,
            FusedMovingAvgObsFakeQuantize,
            HistogramObserver,
            MinMaxObserver,
            MovingAverageMinMaxObserver,
            MovingAveragePerChannelMinMaxObserver,
            PerChannelMinMaxObserver,
        )
        from torchao.quantization.pt2e.quantizer import QuantizationSpec
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import QuantizationConfig

        eps = 2 ** -12  # as get_default_x86_inductor_quantization_config
        if stage == "calib":
            act_obs = {
                "min_max": MinMaxObserver,
                "moving_average_min_max": MovingAverageMinMaxObserver,
                "mse": HistogramObserver,
            }.get(observer)
            if act_obs is None:
                raise BackendError(
                    _("calibration observer %r is not offered by the torch backend") % observer,
                    hint=_("choose one of: %s") % ", ".join(CALIB_OBSERVERS),
                )
            act_ctr = FakeQuantize.with_args(observer=act_obs, eps=eps)
            w_ctr = FakeQuantize.with_args(observer=PerChannelMinMaxObserver, eps=eps)
        else:
            act_ctr = FusedMovingAvgObsFakeQuantize.with_args(observer=MovingAverageMinMaxObserver, eps=eps)
            w_ctr = FusedMovingAvgObsFakeQuantize.with_args(
                observer=MovingAveragePerChannelMinMaxObserver, eps=eps
            )
        act = QuantizationSpec(
            dtype=torch.uint8,
            quant_min=0,
            quant_max=255,
            qscheme=torch.per_tensor_affine,
            is_dynamic=False,
            observer_or_fake_quant_ctr=act_ctr,
        )
        weight = QuantizationSpec(
            dtype=torch.int8,
            quant_min=-128,
            quant_max=127,
            qscheme=torch.per_channel_symmetric,
            ch_axis=0,
            is_dynamic=False,
            observer_or_fake_quant_ctr=w_ctr,
        )
        return QuantizationConfig(act, act, weight, None, True)

    def _quantizer(self, stage: str, qconfig: Any) -> Any:
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

        config = self._quantization_config(stage, qconfig.calib_observer)
        quantize_output = not qconfig.high_precision_output

        class OutputAwareX86Quantizer(X86InductorQuantizer):
            """X86InductorQuantizer leaves a model-output conv/linear unquantized (float output), the
            counterpart of Horizon's 32-bit-output qconfig. With ``high_precision_output = false`` the
            output of that op is fake-quantized to uint8 as well."""

            def annotate(self, model: Any) -> Any:
                model = super().annotate(model)
                if quantize_output:
                    node = _output_producer(model)
                    ann = node.meta.get("quantization_annotation") if node is not None else None
                    if ann is not None and _op_name(node) in ("conv2d", "linear"):
                        ann.output_qspec = config.output_activation
                        ann._annotated = True
                return model

        return OutputAwareX86Quantizer().set_global(config)

    # ------------------------------------------------------------------------------------- prepare
    def _export(self, model: Any, example_inputs: Tuple[Any, ...]) -> Any:
        from torch.export import Dim, export

        if example_inputs[0].shape[0] < 2:
            raise BackendError(_("export needs an example batch of at least 2 images (size 1 is specialised)"))
        batch = Dim("batch", min=1, max=MAX_BATCH)
        with _quiet_export():
            return export(model, tuple(example_inputs), dynamic_shapes=({0: batch},))

    def prepare(self, float_model: Any, example_inputs: Tuple[Any, ...], stage: str, qconfig: Any) -> Any:
        from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

        if stage not in ("calib", "qat"):
            raise ValueError("stage must be 'calib' or 'qat', got %r" % stage)
        model = copy.deepcopy(float_model).cpu().train()
        example = tuple(t.detach().cpu() for t in example_inputs)
        try:
            gm = self._export(model, example).module()
        except BackendError:
            raise
        except Exception as e:
            from ...models import capture_problem

            msg, hint = capture_problem(e, "torch.export")
            raise ModelError(msg, hint=hint) from e
        distinct_module_calls(gm)
        prepared = prepare_qat_pt2e(gm, self._quantizer(stage, qconfig))
        self._float_layers = []
        names = list(getattr(qconfig, "float_layers", None) or [])
        if names:
            from ...errors import SettingsError
            from .layers import keep_float

            try:
                self._float_layers = keep_float(prepared, names)
            except ValueError as e:
                raise SettingsError(str(e), hint=_("use the names `qat-tui debug RUN_DIR` shows, or clear [qconfig] float_layers")) from None
        from .layers import label_layers

        label_layers(prepared)
        return prepared

    def qconfig_lines(self) -> List[str]:
        return ["kept in float ([qconfig] float_layers): %s (%s)" % (layer.name, layer.op)
                for layer in getattr(self, "_float_layers", [])]

    # ----------------------------------------------------------------------------- per-layer debug
    def compare_layers(self, float_model: Any, prepared: Any, stage: str, qconfig: Any, batches: Any) -> List[Any]:
        """See :class:`~core.backends.base.QuantBackend.compare_layers` and :mod:`.debug`."""
        from . import debug

        batches = list(batches)
        ref = debug.float_reference(self, float_model, batches[0], stage, qconfig)
        return debug.compare(ref, prepared, batches)

    def layers_in_float(self, prepared: Any, names: List[str]) -> Any:
        from . import debug

        return debug.layers_in_float(prepared, names)

    def set_fake_quant_state(self, model: Any, state: FakeQuantState) -> None:
        from torchao.quantization.pt2e import (
            disable_fake_quant,
            disable_observer,
            enable_fake_quant,
            enable_observer,
            move_exported_model_to_eval,
            move_exported_model_to_train,
        )

        state = FakeQuantState(state)
        if state is FakeQuantState.QAT:
            move_exported_model_to_train(model)
            model.apply(enable_fake_quant)
            model.apply(enable_observer)
        elif state is FakeQuantState.CALIBRATION:
            move_exported_model_to_eval(model)
            model.apply(disable_fake_quant)
            model.apply(enable_observer)
        else:
            move_exported_model_to_eval(model)
            model.apply(enable_fake_quant)
            model.apply(disable_observer)

    def freeze_bn_stats(self, model: Any) -> int:
        """Exported graphs ignore ``.eval()``: set ``training=False`` on the graph's
        ``aten.batch_norm`` calls (what torchao's ``move_exported_model_to_eval`` does to them, without
        also switching dropout off). ``move_exported_model_to_train`` switches them back."""
        import torch

        frozen = 0
        for node in model.graph.nodes:
            if node.op == "call_function" and node.target is torch.ops.aten.batch_norm.default and node.args[5] is True:
                args = list(node.args)
                args[5] = False
                node.args = tuple(args)
                frozen += 1
        if frozen:
            model.recompile()
        return frozen

    def load_calib_state(self, qat_model: Any, calib_state: Dict[str, Any]) -> List[str]:
        import torch

        own = qat_model.state_dict()
        fq_names = {name for name, _m in _fake_quants(qat_model)}

        def is_fq_key(key: str) -> bool:
            return any(key.startswith(n + ".") for n in fq_names)

        missing = [k for k in own if not is_fq_key(k) and k not in calib_state]
        wrong = [
            k for k in own if not is_fq_key(k) and k in calib_state and tuple(calib_state[k].shape) != tuple(own[k].shape)
        ]
        if missing or wrong:
            raise CheckpointError(
                _("the calibration state does not fit this model (%d tensors missing, %d of another shape; e.g. %s)")
                % (len(missing), len(wrong), ", ".join((missing + wrong)[:3])),
                hint=_("rerun calib with the same model settings (width_mult, num_classes)"),
            )
        fit = {k: v for k, v in calib_state.items() if k in own}
        qat_model.load_state_dict(fit, strict=False)
        seeded = 0
        for _name, fq in _fake_quants(qat_model):
            obs = getattr(fq, "activation_post_process", None)
            if obs is None or fq.qscheme != torch.per_tensor_affine:
                continue
            if not bool(torch.isfinite(fq.scale).all()) or float(fq.scale.reshape(-1)[0]) == 1.0:
                continue  # never calibrated
            scale = fq.scale.reshape(-1)[0].float()
            zp = fq.zero_point.reshape(-1)[0].float()
            lo = (fq.quant_min - zp) * scale
            hi = (fq.quant_max - zp) * scale
            # MovingAverageMinMaxObserver recomputes scale/zero point from min_val/max_val; start them
            # at the calibrated range so QAT begins exactly where calibration ended.
            obs.min_val = lo.to(obs.min_val.device).reshape(())
            obs.max_val = hi.to(obs.max_val.device).reshape(())
            seeded += 1
        return [
            _("loaded {n} tensors of the calibration state (weights, BatchNorm statistics, scales)").format(n=len(fit)),
            _("started {n} activation observers at their calibrated ranges").format(n=seeded),
        ]

    def convert(self, prepared: Any, example_inputs: Tuple[Any, ...]) -> Any:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        model = copy.deepcopy(prepared).cpu()
        self.set_fake_quant_state(model, FakeQuantState.VALIDATION)
        return _drop_unused_attributes(convert_pt2e(model))

    # ---------------------------------------------------------------------------- integer model
    def save_int_model(self, int_model: Any, example_inputs: Tuple[Any, ...], out_dir: str) -> Artifact:
        import torch

        path = os.path.join(out_dir, INT_MODEL_NAME)
        example = tuple(t.detach().cpu() for t in example_inputs)
        with torch.no_grad():
            ep = self._export(int_model.cpu(), example)
        fd, tmp = tempfile.mkstemp(prefix=".int_model.", suffix=".pt2", dir=out_dir)
        os.close(fd)
        try:
            torch.export.save(ep, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return Artifact(
            INT_MODEL_NAME,
            path,
            _("The integer (converted) model as a torch.export ExportedProgram: torch.export.load(path).module() "
            "runs it in Python (reference int8 arithmetic); input of compile."),
        )

    def load_int_model(self, path: str) -> Any:
        """``torch.export.load(path).module()`` after :func:`core.safe_load.check_pt2_archive` found
        nothing in the archive that would run code (pickled weights, evaluated strings, ops outside
        aten/quantized_decomposed).

        Raises:
            CheckpointError: the archive is refused (what was found is named) or damaged.
        """
        import torch
        import torch.ao.quantization.fx._decomposed  # noqa: F401  registers the quantized_decomposed ops

        from ...safe_load import UnsafeFileError, check_pt2_archive

        try:
            check_pt2_archive(path)
        except UnsafeFileError as e:
            raise CheckpointError(
                _("%s was refused without loading it: %s. torch.export.load would run that code") % (path, e),
                hint=_("qat-tui never writes such an entry: delete the file and run the int_infer stage again"),
            ) from None
        except Exception as e:  # not a zip, unreadable, bad JSON
            raise damaged_int_model(path, "an exported program", e) from None
        try:
            return torch.export.load(path).module()
        except Exception as e:
            raise damaged_int_model(path, "an exported program", e) from None

    # ------------------------------------------------------------------------------------- compile
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
        import torch

        phase = phase or no_phase
        # Importing torchao's x86 quantizer registers the Inductor passes that turn dequantize-conv-
        # quantize into oneDNN int8 kernels; a process that only compiles (a compile-only run, a resume)
        # never imported it and built an fp32 package.
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401

        os.makedirs(out_dir, exist_ok=True)
        example = tuple(t.detach().cpu() for t in example_inputs)
        result = CompileResult()

        # 1. model check on the converted graph: which ops stayed float, and why
        check = analyze_converted_graph(int_model)
        package_path = os.path.join(out_dir, "model.pt2")
        runner = None
        if options.package:
            t0 = time.time()
            with phase("export + AOTInductor build of model.pt2 (a C++ compile, about a minute)"), torch.no_grad(), _quiet_inductor():
                ep = self._export(int_model, example)
                fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".pt2", dir=out_dir)
                os.close(fd)
                try:
                    built = torch._inductor.aoti_compile_and_package(
                        ep, package_path=tmp, inductor_configs={"freezing": True}
                    )
                    os.replace(built, package_path)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            log(_("model.pt2 written in %.0f s (%s)") % (time.time() - t0, human_size(file_size(package_path))))
            kernels = package_kernels(package_path)
            add_lowering_items(check, kernels)
            runner = self.load_deployable(package_path)
            with torch.no_grad():
                ref = int_model(*example)
                got = runner(*example)
            diff = float((ref - got).abs().max())
            check.text += "\npackage output vs converted model on %d images: max |diff| = %.3g\n" % (
                example[0].shape[0],
                diff,
            )
            result.perf["package_max_abs_diff"] = diff
            result.perf["kernels"] = kernels
            result.deployable = package_path
            result.artifacts.append(
                Artifact(
                    "model.pt2",
                    package_path,
                    _("Deployable int8 model: AOTInductor package, load with torch._inductor.aoti_load_package(path) "
                    "and call it on float32 (N,%d,%d,%d) tensors (normalised as in training); no training code needed.")
                    % tuple(example[0].shape[1:]),
                )
            )
        check_txt = os.path.join(out_dir, "check_report.txt")
        check_json = os.path.join(out_dir, "check_report.json")
        atomic_write_text(check_txt, check.text)
        atomic_write_json(
            check_json,
            {"passed": check.passed, "summary": check.summary, "items": [i.to_dict() for i in check.items]},
        )
        result.check = check
        result.artifacts.append(
            Artifact("check_report.txt", check_txt, _("Model check: which ops run in int8, which stayed float and why."))
        )
        result.artifacts.append(Artifact("check_report.json", check_json, _("The model check as JSON (per-op advice).")))

        # 2. perf report: fp32 eager model vs the package (or the converted graph when not packaged)
        with phase("perf: latency of fp32 vs int8 at batch sizes %s" % ", ".join(str(b) for b in options.perf_batch_sizes)):
            perf = measure_perf(
                float_model,
                runner if runner is not None else int_model,
                "int8 package (model.pt2)" if runner is not None else "int8 converted graph (eager)",
                example[0].shape[1:],
                options.perf_batch_sizes,
                options.perf_iterations,
            )
        perf.update(result.perf)
        perf["sizes"] = {a.name: file_size(a.path) for a in result.artifacts}
        result.perf = perf
        for row in perf["rows"]:
            key = "latency_ms_%s_bs%d" % ("fp32" if row["model"].startswith("fp32") else "int8", row["batch"])
            result.metrics[key] = round(row["latency_ms"], 3)
        perf_json = os.path.join(out_dir, "perf.json")
        perf_html = os.path.join(out_dir, "perf.html")
        atomic_write_json(perf_json, perf)
        atomic_write_text(perf_html, render_perf_html(perf))
        result.artifacts.append(
            Artifact("perf.html", perf_html, _("Perf report: latency at each batch size, sizes, parameters, FLOPs."))
        )
        result.artifacts.append(Artifact("perf.json", perf_json, _("The perf figures as JSON.")))

        # 3. picture of the quantized graph
        graph = write_graph_picture(int_model, out_dir, options.graph_format, log)
        result.artifacts.append(graph)
        return result

    def load_deployable(self, path: str) -> Optional[Callable]:
        import torch

        runner = torch._inductor.aoti_load_package(path)

        def run(x: Any) -> Any:
            with torch.no_grad():
                return runner(x.cpu().contiguous())

        return run

    def signature(self) -> Dict[str, Any]:
        return {"backend": self.name}


# ============================================================================== graph inspection

def _drop_unused_attributes(gm: Any) -> Any:
    """Delete parameters and buffers that no graph node reads any more.

    ``convert_pt2e`` folds each weight into an int8 constant (``_frozen_paramN``) and BatchNorm into
    the conv bias, but leaves the original fp32 weights and BatchNorm tensors registered on the
    module; exporting it would store them too (about 4x the int8 size for MobileNetV2)."""
    gm.graph.eliminate_dead_code()
    used = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    names = [n for n, _ in gm.named_parameters()] + [n for n, _ in gm.named_buffers()]
    for name in names:
        if name in used:
            continue
        owner_path, _, attr = name.rpartition(".")
        owner = gm.get_submodule(owner_path) if owner_path else gm
        if attr in owner._parameters:
            del owner._parameters[attr]
        elif attr in owner._buffers:
            del owner._buffers[attr]
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _fake_quants(model: Any) -> List[Tuple[str, Any]]:
    from torchao.quantization.pt2e import FakeQuantizeBase

    return [(n, m) for n, m in model.named_modules() if isinstance(m, FakeQuantizeBase)]


def create(settings: Any = None) -> TorchPt2eBackend:
    """The spec's factory (``[run] backend = "torch"``): the backend takes no options of its own."""
    return TorchPt2eBackend()

