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
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import zipfile
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import BackendError, CheckpointError
from ..io import atomic_write_json, atomic_write_text, file_size, human_size
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

INT_MODEL_NAME = "int_model.pt2"

MAX_BATCH = 4096
"""Upper bound of the exported dynamic batch dimension (the package accepts 1..MAX_BATCH images)."""

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
"""Per-channel mean/std of the CIFAR-10 training images in [0, 1], the values commonly used with
torchvision's CIFAR10 (computed over the 50,000 training images)."""

CALIB_OBSERVERS = {
    "min_max": "MinMaxObserver: the full range seen over all calibration batches.",
    "moving_average_min_max": "MovingAverageMinMaxObserver: range averaged over batches (factor 0.01).",
    "mse": "HistogramObserver: searches the clipping range that minimises the L2 quantization error.",
}


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
            return BackendInfo(cls.name, False, "torch does not import: %s" % e, versions)
        if _torch_version_tuple() < (2, 5):
            return BackendInfo(
                cls.name,
                False,
                "torch %s is too old for torch.export-based QAT (needs 2.5 or newer); use the horizon backend"
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
                cls.name, False, "torchao's pt2e QAT does not import (%s): pip install torchao" % e, versions
            )
        return BackendInfo(
            cls.name,
            True,
            "",
            versions,
            "torchao pt2e QAT (X86InductorQuantizer), AOTInductor package model.pt2",
        )

    # ------------------------------------------------------------------------------- model pieces
    def quant_stubs(self) -> Tuple[Any, Any]:
        from torch.ao.quantization import DeQuantStub, QuantStub

        # Identity modules in the float model; they mark where the quantized region begins and ends.
        return QuantStub(), DeQuantStub()

    def normalize_transform(self) -> Callable:
        import torchvision.transforms as T

        return T.Normalize(CIFAR10_MEAN, CIFAR10_STD)

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
                    "calibration observer %r is not offered by the torch backend" % observer,
                    hint="choose one of: %s" % ", ".join(CALIB_OBSERVERS),
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
            raise BackendError("export needs an example batch of at least 2 images (size 1 is specialised)")
        batch = Dim("batch", min=1, max=MAX_BATCH)
        return export(model, tuple(example_inputs), dynamic_shapes=({0: batch},))

    def prepare(self, float_model: Any, example_inputs: Tuple[Any, ...], stage: str, qconfig: Any) -> Any:
        from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

        if stage not in ("calib", "qat"):
            raise ValueError("stage must be 'calib' or 'qat', got %r" % stage)
        model = copy.deepcopy(float_model).cpu().train()
        example = tuple(t.detach().cpu() for t in example_inputs)
        try:
            gm = self._export(model, example).module()
        except Exception as e:
            raise BackendError(
                "torch.export could not capture the float model: %s" % str(e).splitlines()[0],
                hint="the model must be traceable by torch.export (no data-dependent Python control flow)",
            ) from e
        return prepare_qat_pt2e(gm, self._quantizer(stage, qconfig))

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
                "the calibration state does not fit this model (%d tensors missing, %d of another shape; e.g. %s)"
                % (len(missing), len(wrong), ", ".join((missing + wrong)[:3])),
                hint="rerun calib with the same model settings (width_mult, num_classes)",
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
            "loaded %d tensors of the calibration state (weights, BatchNorm statistics, scales)" % len(fit),
            "started %d activation observers at their calibrated ranges" % seeded,
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
            "The integer (converted) model as a torch.export ExportedProgram: torch.export.load(path).module() "
            "runs it in Python (reference int8 arithmetic); input of compile.",
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

        from ..safe_load import UnsafeFileError, check_pt2_archive

        try:
            check_pt2_archive(path)
        except UnsafeFileError as e:
            raise CheckpointError(
                "%s was refused without loading it: %s. torch.export.load would run that code" % (path, e),
                hint="qat-tui never writes such an entry: delete the file and run the int_infer stage again",
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
            log("model.pt2 written in %.0f s (%s)" % (time.time() - t0, human_size(file_size(package_path))))
            kernels = package_kernels(package_path)
            _add_lowering_items(check, kernels)
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
                    "Deployable int8 model: AOTInductor package, load with torch._inductor.aoti_load_package(path) "
                    "and call it on float32 (N,3,32,32) tensors; no training code needed.",
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
            Artifact("check_report.txt", check_txt, "Model check: which ops run in int8, which stayed float and why.")
        )
        result.artifacts.append(Artifact("check_report.json", check_json, "The model check as JSON (per-op advice)."))

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
            Artifact("perf.html", perf_html, "Perf report: latency at each batch size, sizes, parameters, FLOPs.")
        )
        result.artifacts.append(Artifact("perf.json", perf_json, "The perf figures as JSON."))

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

_QDQ_OPS = {
    "quantize_per_tensor",
    "dequantize_per_tensor",
    "quantize_per_channel",
    "dequantize_per_channel",
    "quantize_affine",
    "dequantize_affine",
}
_COMPUTE_OPS = {
    "conv2d", "conv1d", "conv3d", "linear", "addmm", "mm", "matmul", "bmm",
    "add", "add_", "mul", "mul_", "cat", "adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "mean",
}
_ACTIVATIONS = {"relu", "relu_", "hardtanh", "hardtanh_", "relu6", "hardswish", "hardswish_", "silu", "gelu"}
_NOOPS = {
    "dropout": "identity in eval mode",
    "flatten": "reshape only, no arithmetic",
    "view": "reshape only, no arithmetic",
    "reshape": "reshape only, no arithmetic",
    "clone": "copy only",
    "contiguous": "layout only",
    "_assert_tensor_metadata": "shape guard",
}


def _op_name(node: Any) -> str:
    target = getattr(node, "target", None)
    name = getattr(target, "__name__", str(target))
    # aten ops print as "conv2d.default"; python ops as their name
    return name.split(".")[0]


def _is_qdq(node: Any) -> bool:
    return node.op == "call_function" and _op_name(node) in _QDQ_OPS


def _is_dq(node: Any) -> bool:
    return _is_qdq(node) and _op_name(node).startswith("dequantize")


def _is_q(node: Any) -> bool:
    return _is_qdq(node) and _op_name(node).startswith("quantize")


def _module_path(node: Any) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return str(path).replace("L['self'].", "").replace("L__self___", "")


def _output_producer(gm: Any) -> Any:
    for node in gm.graph.nodes:
        if node.op == "output":
            out = node.args[0]
            while isinstance(out, (tuple, list)) and out:
                out = out[0]
            return out if hasattr(out, "op") else None
    return None


def _fake_quants(model: Any) -> List[Tuple[str, Any]]:
    from torchao.quantization.pt2e import FakeQuantizeBase

    return [(n, m) for n, m in model.named_modules() if isinstance(m, FakeQuantizeBase)]


def _tensor_inputs(node: Any) -> List[Any]:
    return [a for a in node.args if hasattr(a, "op")]


_BINARY = {"add", "add_"}


def _output_quantized(node: Any) -> bool:
    """True when the op's result reaches a quantize node directly, or through the activation or the
    residual add that the x86 lowering fuses into it (conv + add + ReLU -> one int8 kernel)."""
    users = list(node.users)
    if not users:
        return False
    if all(_is_q(u) for u in users):
        return True
    if len(users) == 1 and _op_name(users[0]) in _ACTIVATIONS | _BINARY:
        return _output_quantized(users[0])
    return False


def analyze_converted_graph(gm: Any) -> CheckReport:
    """Model check of a ``convert_pt2e`` graph: for every op, whether it computes on int8 data.

    An op counts as int8 when its tensor inputs come from ``dequantize`` nodes (the x86 lowering fuses
    dequantize-op-quantize into one int8 kernel); an activation directly after such an op is fused
    into it. Returns a :class:`CheckReport` whose items give each op's status, reason and a suggestion.
    """
    items: List[CheckItem] = []
    out_node = _output_producer(gm)
    for node in gm.graph.nodes:
        if node.op != "call_function" or _is_qdq(node):
            continue
        op = _op_name(node)
        module = _module_path(node)
        inputs = _tensor_inputs(node)
        in_q = bool(inputs) and any(_is_dq(a) for a in inputs)
        if op in _NOOPS:
            if op != "_assert_tensor_metadata":
                items.append(CheckItem(op, node.name, module, "no-op", _NOOPS[op], "nothing to do"))
            continue
        if op in _ACTIVATIONS:
            producer = inputs[0] if inputs else None
            if producer is not None and _op_name(producer) in _COMPUTE_OPS and any(
                _is_dq(a) for a in _tensor_inputs(producer)
            ):
                items.append(
                    CheckItem(op, node.name, module, "int8", "fused into the preceding %s" % _op_name(producer), "none")
                )
                continue
        out_q = _output_quantized(node)
        if in_q and out_q:
            users = list(node.users)
            fused = len(users) == 1 and not _is_q(users[0])
            reason = "int8 inputs and output" + (", fused with the following %s" % _op_name(users[0]) if fused else "")
            items.append(CheckItem(op, node.name, module, "int8", reason, "none"))
        elif in_q:
            if node is out_node:
                items.append(
                    CheckItem(
                        op,
                        node.name,
                        module,
                        "int8-in/float-out",
                        "model output kept in float: high-precision output (Horizon: 32-bit out)",
                        "intended; set [qconfig] high_precision_output = false for an 8-bit output",
                    )
                )
            else:
                items.append(
                    CheckItem(
                        op,
                        node.name,
                        module,
                        "int8-in/float-out",
                        "output is not re-quantized (the next op takes float)",
                        "fine when the next op is a no-op; else check that op's entry",
                    )
                )
        else:
            items.append(
                CheckItem(
                    op,
                    node.name,
                    module,
                    "float",
                    "inputs are not quantized: X86InductorQuantizer has no int8 recipe for aten.%s here" % op,
                    "runs in fp32; replace it with a supported op (conv, linear, add, pooling, ReLU/ReLU6) "
                    "or keep it if its cost is small",
                )
            )
    counts = Counter(i.status for i in items)
    heavy_float = [i for i in items if i.status == "float" and i.op in ("conv2d", "linear", "addmm", "mm", "matmul", "bmm")]
    passed = not heavy_float
    n_heavy = sum(1 for i in items if i.op in ("conv2d", "linear", "addmm", "mm", "matmul", "bmm"))
    summary = "%s: %d of %d conv/linear ops take int8 inputs; %d ops int8, %d int8-in/float-out, %d float, %d no-op" % (
        "PASS" if passed else "FAIL",
        n_heavy - len(heavy_float),
        n_heavy,
        counts.get("int8", 0),
        counts.get("int8-in/float-out", 0),
        counts.get("float", 0),
        counts.get("no-op", 0),
    )
    report = CheckReport(passed=passed, summary=summary, items=items)
    report.text = render_check_text(report)
    return report


def render_check_text(report: CheckReport) -> str:
    lines = [
        "qat-tui model check (torch backend: torchao pt2e, X86InductorQuantizer)",
        report.summary,
        "",
        "%-18s %-28s %-30s %s" % ("status", "op (node)", "module", "reason / suggestion"),
    ]
    for i in report.items:
        if i.status == "int8" and i.suggestion == "none":
            continue
        lines.append("%-18s %-28s %-30s %s" % (i.status, "%s (%s)" % (i.op, i.node), i.module or "-", i.reason))
        if i.suggestion and i.suggestion != "none":
            lines.append("%-18s %-28s %-30s -> %s" % ("", "", "", i.suggestion))
    lines.append("")
    lines.append("This model is supported!" if report.passed else "Some conv/linear ops stay in float.")
    lines.append("model check %s" % ("PASS" if report.passed else "FAIL"))
    return "\n".join(lines) + "\n"


def package_kernels(path: str) -> Dict[str, int]:
    """Count the kernels an AOTInductor package calls, from its generated C++ wrapper.

    Returns counts for ``int8_conv`` (oneDNN qconv), ``int8_linear`` (qlinear), ``fp32_conv`` and
    ``fp32_matmul`` (aten convolution / addmm / mm fallbacks).
    """
    counts = {"int8_conv": 0, "int8_linear": 0, "fp32_conv": 0, "fp32_matmul": 0}
    try:
        with zipfile.ZipFile(path) as z:
            wrappers = [n for n in z.namelist() if n.endswith("wrapper.cpp")]
            text = "".join(z.read(n).decode("utf-8", "replace") for n in wrappers)
    except (OSError, zipfile.BadZipFile):
        return counts
    counts["int8_conv"] = len(re.findall(r"aoti_torch_cpu__qconv\w*\(", text))
    counts["int8_linear"] = len(re.findall(r"aoti_torch_cpu__qlinear\w*\(", text))
    counts["fp32_conv"] = len(re.findall(r"aoti_torch_cpu_convolution\w*\(", text))
    counts["fp32_matmul"] = len(re.findall(r"aoti_torch_cpu_(?:addmm|mm|bmm)\w*\(", text))
    return counts


def _add_lowering_items(check: CheckReport, kernels: Dict[str, int]) -> None:
    line = "package kernels: %d int8 conv, %d int8 linear, %d fp32 conv, %d fp32 matmul" % (
        kernels["int8_conv"],
        kernels["int8_linear"],
        kernels["fp32_conv"],
        kernels["fp32_matmul"],
    )
    if kernels["fp32_conv"]:
        check.items.append(
            CheckItem(
                "convolution",
                "(package)",
                "",
                "float",
                "%d convolutions were not lowered to int8 kernels by Inductor" % kernels["fp32_conv"],
                "check that torch and torchao versions match (freezing patterns come from torchao)",
            )
        )
        check.passed = False
        check.summary = check.summary.replace("PASS", "FAIL", 1)
    if kernels["fp32_matmul"]:
        check.items.append(
            CheckItem(
                "linear",
                "(package)",
                "",
                "int8-in/float-out" if not kernels["fp32_conv"] else "float",
                "%d matmuls run as fp32 kernels (dequantized weights): Inductor fuses int8 linear only when its "
                "output is re-quantized or its input is 2-D int8" % kernels["fp32_matmul"],
                "small for a classifier; set [qconfig] high_precision_output = false to try an int8 linear",
            )
        )
    check.summary += "; " + line
    check.text = render_check_text(check)


# ================================================================================== performance

def _latency_ms(fn: Callable, x: Any, iters: int) -> float:
    import torch

    with torch.no_grad():
        for _ in range(3):
            fn(x)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t0) * 1000.0)
    return float(statistics.median(times))


def count_flops(model: Any, x: Any) -> Optional[int]:
    """FLOPs of one forward pass (2 x multiply-accumulates of conv/linear/matmul), via
    ``torch.utils.flop_counter.FlopCounterMode`` (torch >= 2.1); None where unavailable."""
    import torch

    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops())


def measure_perf(
    float_model: Any,
    quantized: Callable,
    quantized_label: str,
    image_shape: Any,
    batch_sizes: List[int],
    iterations: int,
) -> Dict[str, Any]:
    """Median latency (ms) per batch size of the fp32 eager model and the quantized model, CPU.

    Returns a JSON-ready dict: ``rows`` (one per model and batch size: latency_ms, images_per_s),
    ``speedup`` per batch size, ``params``, ``flops_per_image``, and the machine/threads used.
    """
    import torch

    float_model = float_model.cpu().eval()
    rows = []
    speedup = {}
    for bs in batch_sizes:
        x = torch.randn((bs,) + tuple(image_shape))
        f_ms = _latency_ms(float_model, x, iterations)
        q_ms = _latency_ms(quantized, x, iterations)
        rows.append({"model": "fp32 float model (eager)", "batch": bs, "latency_ms": f_ms, "images_per_s": bs * 1000.0 / f_ms})
        rows.append({"model": quantized_label, "batch": bs, "latency_ms": q_ms, "images_per_s": bs * 1000.0 / q_ms})
        speedup[str(bs)] = f_ms / q_ms if q_ms > 0 else None
    x1 = torch.randn((1,) + tuple(image_shape))
    return {
        "rows": rows,
        "speedup": speedup,
        "params": int(sum(p.numel() for p in float_model.parameters())),
        "flops_per_image": count_flops(float_model, x1),
        "iterations": iterations,
        "threads": torch.get_num_threads(),
        "machine": "%s, %s, %d cores" % (platform.machine(), platform.processor() or platform.system(), os.cpu_count() or 1),
        "torch": torch.__version__,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def render_perf_html(perf: Dict[str, Any]) -> str:
    """A self-contained HTML page of the perf figures (no scripts, no external files)."""
    import html

    def esc(v: Any) -> str:
        return html.escape(str(v))

    rows = "".join(
        "<tr><td>%s</td><td>%d</td><td>%.2f</td><td>%.0f</td></tr>"
        % (esc(r["model"]), r["batch"], r["latency_ms"], r["images_per_s"])
        for r in perf.get("rows", [])
    )
    speed = "".join(
        "<tr><td>%s</td><td>%s</td></tr>" % (esc(bs), "%.2fx" % s if s else "-") for bs, s in perf.get("speedup", {}).items()
    )
    sizes = "".join(
        "<tr><td>%s</td><td>%s</td><td>%d</td></tr>" % (esc(k), esc(human_size(v)), v)
        for k, v in perf.get("sizes", {}).items()
    )
    flops = perf.get("flops_per_image")
    kernels = perf.get("kernels") or {}
    kern = "".join("<tr><td>%s</td><td>%d</td></tr>" % (esc(k), v) for k, v in kernels.items())
    return """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>qat-tui perf report</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #999;padding:4px 10px;text-align:right}th{background:#eee}td:first-child{text-align:left}</style>
</head><body>
<h1>Perf report</h1>
<p>Median of %(iters)d timed runs after 3 warm-up runs, CPU, %(threads)d threads, %(machine)s, torch %(torch)s,
measured %(when)s.</p>
<h2>Latency</h2>
<table><tr><th>model</th><th>batch</th><th>latency (ms)</th><th>images/s</th></tr>%(rows)s</table>
<h2>Speed-up of the quantized model over fp32</h2>
<table><tr><th>batch</th><th>speed-up</th></tr>%(speed)s</table>
<h2>Model</h2>
<table><tr><th>figure</th><th>value</th></tr>
<tr><td>parameters</td><td>%(params)s</td></tr>
<tr><td>FLOPs per image (2 x MACs, conv/linear)</td><td>%(flops)s</td></tr></table>
<h2>Kernels in the package</h2>
<table><tr><th>kind</th><th>count</th></tr>%(kern)s</table>
<h2>Files</h2>
<table><tr><th>file</th><th>size</th><th>bytes</th></tr>%(sizes)s</table>
</body></html>
""" % {
        "iters": perf.get("iterations", 0),
        "threads": perf.get("threads", 0),
        "machine": esc(perf.get("machine", "")),
        "torch": esc(perf.get("torch", "")),
        "when": esc(perf.get("measured_at", "")),
        "rows": rows,
        "speed": speed,
        "params": "{:,}".format(perf.get("params", 0)),
        "flops": "{:,}".format(flops) if flops is not None else "n/a",
        "kern": kern or "<tr><td>(no package)</td><td>-</td></tr>",
        "sizes": sizes,
    }


# ======================================================================================== graph

def _graph_nodes(gm: Any) -> List[Dict[str, Any]]:
    """Compute nodes of a converted graph with their producers (looking through quantize/dequantize)
    and whether each input edge carries int8 data."""
    report = {i.node: i for i in analyze_converted_graph(gm).items}
    nodes = []

    def producers(arg: Any, quantized: bool = False) -> List[Tuple[str, str]]:
        if not hasattr(arg, "op"):
            return []
        if arg.op == "placeholder":
            return [(arg.name, "int8" if quantized else "fp32")]
        if arg.op == "get_attr":
            return []
        if _is_qdq(arg):
            out: List[Tuple[str, str]] = []
            for a in _tensor_inputs(arg):
                out += producers(a, True)
            return out
        if quantized:
            return [(arg.name, "int8")]
        # float data from an op whose output the lowering fuses into this one
        return [(arg.name, "fused" if _output_quantized(arg) else "fp32")]

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            nodes.append({"name": node.name, "op": "input", "module": "", "status": "input", "inputs": []})
        elif node.op == "call_function" and not _is_qdq(node) and _op_name(node) != "_assert_tensor_metadata":
            inputs: List[Tuple[str, str]] = []
            for a in _tensor_inputs(node):
                inputs += producers(a)
            item = report.get(node.name)
            nodes.append(
                {
                    "name": node.name,
                    "op": _op_name(node),
                    "module": _module_path(node),
                    "status": item.status if item else "float",
                    "inputs": inputs,
                }
            )
        elif node.op == "output":
            inputs = []
            args = node.args[0] if isinstance(node.args[0], (tuple, list)) else [node.args[0]]
            for a in args:
                inputs += producers(a)
            nodes.append({"name": "output", "op": "output", "module": "", "status": "output", "inputs": inputs})
    return nodes


_COLORS = {
    "int8": "#b7e1a1",
    "int8-in/float-out": "#ffe08a",
    "float": "#f4a6a6",
    "no-op": "#dddddd",
    "input": "#9ecae1",
    "output": "#9ecae1",
}


def graph_dot(gm: Any) -> str:
    """Graphviz DOT of the converted graph: one box per op (green int8, yellow int8-in/float-out,
    red float, grey no-op); edges say int8 (quantized data), fused (folded into one int8 kernel with
    the next op) or fp32."""
    lines = [
        "digraph quantized_model {",
        '  rankdir=TB; node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
    ]
    for n in _graph_nodes(gm):
        label = "%s\\n%s\\n[%s]" % (n["op"], n["module"] or n["name"], n["status"])
        lines.append('  "%s" [label="%s", fillcolor="%s"];' % (n["name"], label, _COLORS.get(n["status"], "#ffffff")))
        for src, kind in n["inputs"]:
            lines.append('  "%s" -> "%s" [label="%s", fontsize=8];' % (src, n["name"], kind))
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_text(gm: Any) -> str:
    """The converted graph as text: one line per op with its module, status and inputs."""
    lines = [
        "Quantized graph (torch backend). One line per op; inputs: int8 = quantized data, fused = folded",
        "into one int8 kernel with this op by the x86 lowering, fp32 = float data.",
        "%-24s %-22s %-32s %-18s %s" % ("node", "op", "module", "status", "inputs"),
    ]
    for n in _graph_nodes(gm):
        ins = ", ".join("%s(%s)" % (src, kind) for src, kind in n["inputs"])
        lines.append("%-24s %-22s %-32s %-18s %s" % (n["name"], n["op"], n["module"] or "-", n["status"], ins))
    return "\n".join(lines) + "\n"


def write_graph_picture(gm: Any, out_dir: str, fmt: str, log: Log) -> Artifact:
    """Write ``model.svg`` (graphviz ``dot``) or, when ``dot`` is missing or ``fmt == "text"``,
    ``model_graph.txt``. ``fmt="svg"`` without ``dot`` raises :class:`BackendError`."""
    dot = shutil.which("dot")
    if fmt == "svg" and dot is None:
        raise BackendError(
            "graph_format = 'svg' needs graphviz's 'dot' program, which is not on PATH",
            hint="install graphviz (apt-get install graphviz) or set [compile] graph_format = 'auto'",
        )
    if fmt != "text" and dot is not None:
        svg_path = os.path.join(out_dir, "model.svg")
        proc = subprocess.run([dot, "-Tsvg"], input=graph_dot(gm).encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.returncode == 0:
            atomic_write_text(svg_path, proc.stdout.decode("utf-8"))
            return Artifact("model.svg", svg_path, "Picture of the quantized graph (green int8, red float).")
        log("dot failed (%s); writing the graph as text" % proc.stderr.decode(errors="replace").strip()[:200])
    txt_path = os.path.join(out_dir, "model_graph.txt")
    atomic_write_text(txt_path, graph_text(gm))
    return Artifact("model_graph.txt", txt_path, "The quantized graph as text (graphviz 'dot' not found for SVG).")


__all__ = ["TorchPt2eBackend", "analyze_converted_graph", "package_kernels", "measure_perf", "graph_dot", "graph_text"]
