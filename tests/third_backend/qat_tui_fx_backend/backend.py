"""The third (test) backend's implementation: torch's FX graph-mode quantization.

* prepare: ``prepare_qat_fx(copy.deepcopy(float_model), {"": qconfig})`` (plus ``example_inputs`` on
  torch 2.x); calibration with ``FakeQuantize(observer=<the chosen observer>)``, QAT with
  ``get_default_qat_qconfig(engine)``.
* states: ``train()``/``eval()`` with ``enable/disable_fake_quant`` and ``enable/disable_observer``.
* convert: ``convert_fx`` on a copy (quantized::conv2d kernels of the chosen engine); saved with
  ``torch.jit.trace`` as ``int_model_fx.pt``.
* compile: which modules became quantized (the check), median latency at the ``[compile]`` batch
  sizes, and ``model.pt`` (``torch.jit.freeze`` of the traced integer model) when ``[fx] script``.
"""
import copy
import inspect
import os
import statistics
import tempfile
import time
from typing import Any, Dict, List, Tuple

import torch

from core.backends.base import Artifact, BackendInfo, CheckItem, CheckReport, CompileResult, FakeQuantState, QuantBackend, damaged_int_model, no_phase
from core.io import atomic_write_json, atomic_write_text

try:
    from torch.ao.quantization import quantize_fx
    from torch.ao import quantization as tq
except ImportError:  # torch 1.10
    from torch.quantization import quantize_fx
    from torch import quantization as tq

from . import CALIB_OBSERVERS, FxSettings

INT_MODEL_NAME = "int_model_fx.pt"


class FxBackend(QuantBackend):
    name = "fx"

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else FxSettings()

    @classmethod
    def detect(cls) -> BackendInfo:
        from . import SPEC

        return SPEC.detect()

    def quant_stubs(self) -> Tuple[Any, Any]:
        return torch.nn.Identity(), torch.nn.Identity()  # FX inserts its own quant/dequant

    def calib_observers(self) -> Dict[str, str]:
        return dict(CALIB_OBSERVERS)

    def _qconfig(self, stage: str, observer: str) -> Any:
        torch.backends.quantized.engine = self.options.engine
        if stage == "qat":
            return tq.get_default_qat_qconfig(self.options.engine)
        obs = {"min_max": tq.MinMaxObserver, "moving_average_min_max": tq.MovingAverageMinMaxObserver}[observer]
        act = tq.FakeQuantize.with_args(observer=obs, quant_min=0, quant_max=255)
        return tq.QConfig(activation=act, weight=tq.default_per_channel_weight_fake_quant)

    def prepare(self, float_model: Any, example_inputs: Tuple[Any, ...], stage: str, qconfig: Any) -> Any:
        model = copy.deepcopy(float_model).cpu().train()
        qconf = self._qconfig(stage, qconfig.calib_observer)
        if "example_inputs" in inspect.signature(quantize_fx.prepare_qat_fx).parameters:  # torch >= 1.13
            mapping = tq.QConfigMapping().set_global(qconf)
            return quantize_fx.prepare_qat_fx(model, mapping, tuple(t.cpu() for t in example_inputs))
        return quantize_fx.prepare_qat_fx(model, {"": qconf})

    def set_fake_quant_state(self, model: Any, state: FakeQuantState) -> None:
        state = FakeQuantState(state)
        model.train(state is FakeQuantState.QAT)
        model.apply(tq.disable_fake_quant if state is FakeQuantState.CALIBRATION else tq.enable_fake_quant)
        model.apply(tq.disable_observer if state is FakeQuantState.VALIDATION else tq.enable_observer)

    def load_calib_state(self, qat_model: Any, calib_state: Dict[str, Any]) -> List[str]:
        own = qat_model.state_dict()
        fit = {k: v for k, v in calib_state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
        qat_model.load_state_dict(fit, strict=False)
        return ["loaded %d of %d tensors of the calibration state" % (len(fit), len(own))]

    def convert(self, prepared: Any, example_inputs: Tuple[Any, ...]) -> Any:
        torch.backends.quantized.engine = self.options.engine
        model = copy.deepcopy(prepared).cpu()
        self.set_fake_quant_state(model, FakeQuantState.VALIDATION)
        return quantize_fx.convert_fx(model)

    def save_int_model(self, int_model: Any, example_inputs: Tuple[Any, ...], out_dir: str) -> Artifact:
        path = os.path.join(out_dir, INT_MODEL_NAME)
        with torch.no_grad():
            script = torch.jit.trace(int_model.cpu().eval(), example_inputs[0].cpu())
        fd, tmp = tempfile.mkstemp(prefix=".int_model_fx.", suffix=".pt", dir=out_dir)
        os.close(fd)
        try:
            torch.jit.save(script, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return Artifact(INT_MODEL_NAME, path, "The integer model (convert_fx), traced as TorchScript: input of compile.")

    def load_int_model(self, path: str) -> Any:
        torch.backends.quantized.engine = self.options.engine
        try:
            return torch.jit.load(path, map_location="cpu")
        except Exception as e:
            raise damaged_int_model(path, "a TorchScript file", e) from None

    def compile(self, int_model: Any, float_model: Any, example_inputs: Tuple[Any, ...], out_dir: str, options: Any,
                log: Any, phase: Any = None) -> CompileResult:
        phase = phase or no_phase
        result = CompileResult()
        ops = [n.kind() for n in int_model.inlined_graph.nodes()]
        quantized = sorted({k for k in ops if k.startswith("quantized::")})
        items = [CheckItem(op=k, node="", module="", status="int8", reason="quantized kernel", suggestion="none") for k in quantized]
        convs = sum(1 for k in ops if k in ("aten::conv2d", "aten::_convolution"))
        passed = bool(quantized) and convs == 0
        summary = "%s: %d quantized kernel kinds, %d float convolutions" % ("PASS" if passed else "FAIL", len(quantized), convs)
        result.check = CheckReport(passed=passed, summary=summary, items=items, text=summary + "\n" + "\n".join(quantized) + "\n")
        check_json = os.path.join(out_dir, "check_report.json")
        atomic_write_json(check_json, {"passed": passed, "summary": summary, "items": [i.to_dict() for i in items]})
        result.artifacts.append(Artifact("check_report.json", check_json, "Which quantized kernels the integer model calls."))
        with phase("latency at batch sizes %s" % options.perf_batch_sizes):
            for bs in options.perf_batch_sizes:
                x = torch.randn((bs,) + tuple(example_inputs[0].shape[1:]))
                times = []
                with torch.no_grad():
                    for _ in range(3):
                        t0 = time.perf_counter()
                        int_model(x)
                        times.append((time.perf_counter() - t0) * 1000.0)
                result.metrics["latency_ms_int8_bs%d" % bs] = round(statistics.median(times), 3)
        perf = os.path.join(out_dir, "perf.json")
        atomic_write_json(perf, dict(result.metrics))
        result.artifacts.append(Artifact("perf.json", perf, "Median latency of the integer model per batch size (ms)."))
        if self.options.script:
            target = os.path.join(out_dir, "model.pt")
            with phase("torch.jit.freeze -> model.pt"):
                frozen = torch.jit.freeze(int_model.eval())
                fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".pt", dir=out_dir)
                os.close(fd)
                torch.jit.save(frozen, tmp)
                os.replace(tmp, target)
            result.artifacts.append(Artifact("model.pt", target, "The deployable integer model: torch.jit.load(path)."))
            result.deployable = target
        atomic_write_text(os.path.join(out_dir, "check_report.txt"), result.check.text)
        result.artifacts.append(Artifact("check_report.txt", os.path.join(out_dir, "check_report.txt"), "The check as text."))
        return result

    def load_deployable(self, path: str) -> Any:
        return torch.jit.load(path, map_location="cpu")

    def signature(self) -> Dict[str, Any]:
        return {"backend": self.name, "engine": self.options.engine}


def create(settings: Any = None) -> FxBackend:
    return FxBackend(getattr(settings, "fx", None) if settings is not None else None)


__all__ = ["FxBackend", "create"]
