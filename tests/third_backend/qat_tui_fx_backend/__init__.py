"""The spec of the third (test) backend: torch's FX graph-mode quantization. See ../README.md.

Light to import, as every spec must be: pydantic and qat-tui's spec types only."""
from typing import Any, Dict, Literal, Optional

from pydantic import Field

from core.backends.base import BackendInfo
from core.backends.spec import BackendSpec, spec_of
from core.settings import Section

CALIB_OBSERVERS = {
    "min_max": "MinMaxObserver: the full range seen in calibration.",
    "moving_average_min_max": "MovingAverageMinMaxObserver: the range averaged over batches.",
}


class FxSettings(Section):
    """The ``[fx]`` section of the FX graph-mode backend."""

    engine: Literal["fbgemm", "qnnpack"] = Field(
        "fbgemm", description="Quantized CPU kernels: fbgemm (x86 servers) or qnnpack (ARM).",
        json_schema_extra={"step": "backend"},
    )
    script: bool = Field(
        True, description="Also write model.pt, the integer model frozen as TorchScript.",
        json_schema_extra={"step": "compile"},
    )


class FxSpec(BackendSpec):
    def detect(self) -> BackendInfo:
        try:
            import torch

            from .backend import quantize_fx  # noqa: F401
        except Exception as e:
            return BackendInfo(self.name, False, "torch's quantize_fx does not import: %s" % e)
        return BackendInfo(self.name, True, "", {"torch": torch.__version__}, self.summary,
                           {"engines": list(torch.backends.quantized.supported_engines)})

    def choices(self, values: Dict[str, Dict[str, Any]], info: Optional[BackendInfo]) -> Dict[Any, Dict[str, str]]:
        engines = {"fbgemm": "x86 servers", "qnnpack": "ARM"}
        if info is not None and info.extras.get("engines"):
            engines = {k: v for k, v in engines.items() if k in info.extras["engines"]}
        return {("qconfig", "calib_observer"): dict(CALIB_OBSERVERS), ("fx", "engine"): engines}


SPEC = spec_of(__name__, FxSpec(
    name="fx",
    summary="torch FX graph-mode QAT (prepare_qat_fx/convert_fx) + TorchScript model.pt (a test backend)",
    factory="qat_tui_fx_backend.backend:create",
    options=FxSettings,
    stale_keys={"calib": ("engine",), "qat": ("engine",), "int_infer": ("engine",), "compile": "*"},
    compile_keys=("perf_batch_sizes",),
))
