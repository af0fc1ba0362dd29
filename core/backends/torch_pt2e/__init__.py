"""The embedded default backend: torchao's pt2e QAT (``X86InductorQuantizer``) and an AOTInductor package.

This module is the backend's spec (what the wizard, the settings schema and the registry read, without
importing torch); the implementation is in :mod:`.backend`, the model check in :mod:`.check`, the perf
report in :mod:`.perf` and the graph picture in :mod:`.graph`; ``export_torch.py.txt`` is the template
of its exported script. Registered in qat-tui's ``pyproject.toml`` (entry point group
``qat_tui.backends``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ...i18n import N_, _
from ..base import BackendInfo
from ..spec import BackendSpec, Choices, spec_of

CALIB_OBSERVERS = {
    "min_max": N_("MinMaxObserver: the full range seen over all calibration batches."),
    "moving_average_min_max": N_("MovingAverageMinMaxObserver: range averaged over batches (factor 0.01)."),
    "mse": N_("HistogramObserver: searches the clipping range that minimises the L2 quantization error."),
}
"""Calibration observers (torchao's pt2e observers) offered by this backend, with their help."""


TEMPLATE_COMMENTS = {
    'torch.doc': N_('QAT of the model chosen in qat-tui (a torchvision classifier or your own builder, SETTINGS["model"]) on the chosen images with torchao\'s pt2e flow - exported by qat-tui.\n\nOne readable script, the same five stages as Horizon\'s sample and as qat-tui\'s torch backend, with the settings chosen in qat-tui baked in (SETTINGS below; the settings TOML written beside this file holds the same values, except run_dir: this script writes into a folder of its own, never over a qat-tui run). Only public packages: torch, torchvision, torchao.\n\n    python THIS_FILE --stage float      # train the float model        -> float-checkpoint.ckpt\n    python THIS_FILE --stage calib      # calibrate scales (observers)  -> calib-checkpoint.ckpt\n    python THIS_FILE --stage qat        # quantization-aware training   -> qat-checkpoint.ckpt\n    python THIS_FILE --stage int_infer  # convert + evaluate int model  -> int_model.pt2\n    python THIS_FILE --stage compile    # AOTInductor package (CPU)     -> model.pt2\n\nWhich checkpoint loads where: calib loads float-checkpoint.ckpt; qat loads calib-checkpoint.ckpt (or the float one when calib is disabled); int_infer loads qat-checkpoint.ckpt (or calib\'s when QAT is disabled); compile loads int_model.pt2. Each stage prints its test top-1 and records it in metrics.json.'),
    'torch.cpu_state': N_('model.state_dict() on the CPU, keeping its _metadata: the module versions that observers need to load per-channel min/max buffers (torch.ao.quantization.observer._load_from_state_dict).'),
    'torch.save_atomic': N_('torch.save to a temp file in the same folder, then rename: never a half-written checkpoint.'),
    'torch.record': N_("Print and keep each stage's figures in metrics.json."),
    'torch.seed_stage': N_("The same seed per stage as qat-tui: seed * 100 + the stage's index."),
    'torch.data_note': N_('Data (layouts, classes, transforms, subsets) and new_float_model are in the shared part above.'),
    'torch.float_model': N_('The float model with float-checkpoint.ckpt loaded (eval mode).'),
    'torch.quantizer': N_('X86InductorQuantizer: activations uint8 per tensor, weights int8 per channel. Calibration uses the chosen observer with fake quant off; QAT uses moving-average min/max fake quantizers.'),
    'torch.quantizer_comment': N_("X86InductorQuantizer leaves the model output (the classifier) in float: Horizon's 32-bit out. For an 8-bit output, also fake-quantize the output of the op that produces it."),
    'torch.export': N_('torch.export with a dynamic batch dimension (1..4096 images).'),
    'torch.prepare': N_('A fresh float copy, captured with torch.export and prepared for calib or QAT (never the calibrated model itself).'),
    'torch.prepare_comment': N_("[qconfig] float_layers: these layers' output and weights stay float (their fake quants removed)"),
    'torch.set_state': N_("Horizon's three FakeQuantState: qat (train, fake quant + observers), calibration (eval, observers only), validation (eval, fake quant with frozen scales)."),
    'torch.set_state_comment': N_("BatchNorm keeps the float model's running statistics, as calibration used them (qat-tui's default; batch statistics diverge when fake quant rounds a channel to one value). Exported graphs ignore .eval(): switch the graph's batch_norm calls to training=False."),
    'torch.evaluate': N_('Top-1 / top-5 in percent on the test set.'),
    'torch.train': N_("Train for the stage's epochs (cosine lr per step, or constant); keep the best test top-1."),
    'torch.stage_qat_comment': N_('Load the calibrated weights and scales, then start each activation observer at its calibrated range (min = (qmin - zp) * scale, max = (qmax - zp) * scale).'),
    'torch.stage_int_infer_comment': N_('convert_pt2e folds weights into int8 constants but keeps the fp32 originals registered: drop what no graph node reads so the saved integer model holds int8 weights only.'),
    'torch.stage_compile_comment': N_("registers Inductor's int8 patterns (dequantize-conv-quantize -> oneDNN qconv); without this import a process that only compiles builds fp32 kernels"),
    'torch.stage_compile_comment_2': N_('Inductor freezing under no_grad lets the x86 patterns turn dequantize-conv-quantize into oneDNN int8 kernels; without it the package silently runs fp32 convolutions.'),
}
"""The comments and docstrings of the exported script's template (its ``{{#key}}`` markers, see
core/export.py), in English; the script has them in the current language."""


class TorchSpec(BackendSpec):
    """torchao pt2e QAT + AOTInductor; runs on any machine with torch >= 2.5 and torchao."""

    default = True  # the embedded default: new settings start with it

    def detect(self) -> BackendInfo:
        from .backend import TorchPt2eBackend

        return TorchPt2eBackend.detect()

    def choices(self, values: Dict[str, Dict[str, Any]], info: Optional[BackendInfo]) -> Choices:
        return {("qconfig", "calib_observer"): {k: _(v) for k, v in CALIB_OBSERVERS.items()}}

    def result_lines(self, metrics: Dict[str, Any], settings: Any) -> List[Tuple[str, str]]:
        """The measured CPU latency per batch size (:mod:`.perf` records ``latency_ms_{fp32,int8}_bs<N>``)."""
        parts = []
        for bs in settings.compile.perf_batch_sizes:
            f, i = metrics.get("latency_ms_fp32_bs%d" % bs), metrics.get("latency_ms_int8_bs%d" % bs)
            if f is not None or i is not None:
                parts.append(_("batch {bs}: fp32 {fp32}, int8 {int8} ms").format(bs=bs, fp32=_ms(f), int8=_ms(i)))
        return [(_("latency (CPU)"), "; ".join(parts))] if parts else []


def _ms(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) else "%.1f" % v


SPEC = spec_of(__name__, TorchSpec(
    name="torch",
    summary=N_("torchao pt2e QAT (X86InductorQuantizer) + AOTInductor package model.pt2; runs anywhere"),
    factory="core.backends.torch_pt2e.backend:create",
    stale_keys={},
    compile_keys=("package", "perf_batch_sizes", "perf_iterations", "graph_format"),
    template="export_torch.py.txt",
    template_comments=TEMPLATE_COMMENTS,
    preferred=0,
))

__all__ = ["SPEC", "CALIB_OBSERVERS", "TorchSpec"]
