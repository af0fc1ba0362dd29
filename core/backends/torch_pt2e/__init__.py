"""The embedded default backend: torchao's pt2e QAT (``X86InductorQuantizer``) and an AOTInductor package.

This module is the backend's spec (what the wizard, the settings schema and the registry read, without
importing torch); the implementation is in :mod:`.backend`, the model check in :mod:`.check`, the perf
report in :mod:`.perf` and the graph picture in :mod:`.graph`; ``export_torch.py.txt`` is the template
of its exported script. Registered in qat-tui's ``pyproject.toml`` (entry point group
``qat_tui.backends``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..base import BackendInfo
from ..spec import BackendSpec, Choices, spec_of

CALIB_OBSERVERS = {
    "min_max": "MinMaxObserver: the full range seen over all calibration batches.",
    "moving_average_min_max": "MovingAverageMinMaxObserver: range averaged over batches (factor 0.01).",
    "mse": "HistogramObserver: searches the clipping range that minimises the L2 quantization error.",
}
"""Calibration observers (torchao's pt2e observers) offered by this backend, with their help."""


class TorchSpec(BackendSpec):
    """torchao pt2e QAT + AOTInductor; runs on any machine with torch >= 2.5 and torchao."""

    default = True  # the embedded default: new settings start with it

    def detect(self) -> BackendInfo:
        from .backend import TorchPt2eBackend

        return TorchPt2eBackend.detect()

    def choices(self, values: Dict[str, Dict[str, Any]], info: Optional[BackendInfo]) -> Choices:
        return {("qconfig", "calib_observer"): dict(CALIB_OBSERVERS)}

    def result_lines(self, metrics: Dict[str, Any], settings: Any) -> List[Tuple[str, str]]:
        """The measured CPU latency per batch size (:mod:`.perf` records ``latency_ms_{fp32,int8}_bs<N>``)."""
        parts = []
        for bs in settings.compile.perf_batch_sizes:
            f, i = metrics.get("latency_ms_fp32_bs%d" % bs), metrics.get("latency_ms_int8_bs%d" % bs)
            if f is not None or i is not None:
                parts.append("batch %d: fp32 %s, int8 %s ms" % (bs, _ms(f), _ms(i)))
        return [("latency (CPU)", "; ".join(parts))] if parts else []


def _ms(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) else "%.1f" % v


SPEC = spec_of(__name__, TorchSpec(
    name="torch",
    summary="torchao pt2e QAT (X86InductorQuantizer) + AOTInductor package model.pt2; runs anywhere",
    factory="core.backends.torch_pt2e.backend:create",
    stale_keys={},
    compile_keys=("package", "perf_batch_sizes", "perf_iterations", "graph_format"),
    template="export_torch.py.txt",
    preferred=0,
))

__all__ = ["SPEC", "CALIB_OBSERVERS", "TorchSpec"]
