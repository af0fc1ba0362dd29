"""The Horizon backend: ``horizon_plugin_pytorch`` + ``hbdk``, as Horizon's MobileNetV2 sample calls them.

These packages exist only inside Horizon's OpenExplorer docker (never on PyPI). This module is the
backend's spec - its ``[horizon]`` settings section, the choices it offers (marches, calibration
observers, compile options) and their help - and imports none of them. Two generations implement it:

* :mod:`.hbdk3` - bernoulli2 (XJ3), bayes (J5), bayes-e: ``prepare_qat_fx`` / ``convert_fx`` / TorchScript,
  ``check_model`` / ``compile_model`` / ``perf_model`` / ``visualize_model``;
* :mod:`.hbdk4` - nash-* (J6, S100/S600): ``prepare`` with a ``QconfigSetter``, ``hbdk4.export`` /
  ``convert``, ``statistics`` / ``compile`` / ``hbm_perf`` / ``visualize``;

over a shared base (:mod:`.common`). The march picks the generation (:func:`create`). Sources: Horizon's
X3 expert docs (HorizonRDK/rdk_x3_doc ``quick_start.md``, ``api_reference.md``), the plugin's and hbdk's
sources and HorizonRobotics/OE-Skills, summarised in ``shared/reference/horizon-api.md``.
``export_horizon.py.txt`` is the template of its exported script (hbdk3 marches).
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Literal, Optional, Tuple

from pydantic import Field, field_validator

from ...i18n import N_, _
from ...errors import BackendError
from ...settings import Section
from ..base import BackendInfo
from ..spec import BackendSpec, Choices, spec_of

INPUT_SOURCES = ("ddr", "pyramid", "resizer")
LAYOUTS = ("NHWC", "NCHW", "BPU_RAW")

HBDK3_OPTS = ("O0", "O1", "O2", "O3", "ddr", "fast", "balance")
"""``opt`` values hbdk3's compile accepts (hbdk ``torch_script/tools.py`` docstring: O0, O1, O2, O3, ddr,
fast, balance). hbdk does not reject others up front - it fails later with a TypeError - so they are
validated before compiling."""

HBDK4_OPTS = {"O0": 0, "O1": 1, "O2": 2}
"""``[horizon] opt`` -> hbdk4's ``compile(opt=0..2)`` (OE-Skills hbdk-manual api_reference: opt 0-2)."""

OPT_HELP = {
    "O0": N_("no optimisation: fastest compile"),
    "O1": N_("the sample's choice"),
    "O2": N_("more optimisation, slower compile"),
    "O3": N_("most optimisation (hbdk3)"),
    "ddr": N_("minimise DDR traffic (hbdk3)"),
    "fast": N_("minimise latency (hbdk3)"),
    "balance": N_("trade latency for DDR bandwidth by balance_factor (hbdk3)"),
}

CALIB_OBSERVERS = {
    "min_max": N_("min_max: the full range seen in calibration."),
    "percentile": N_("percentile: clip the range at a high percentile (robust to outliers)."),
    "mse": N_("mse: clip to minimise the quantization error (the calibration guide's advice for activations)."),
    "kl": N_("kl: clip to minimise the KL divergence of the distributions."),
    "mix": N_("mix: pick the best of the above per layer."),
}
"""Activation observers of ``get_default_qconfig`` (plugin >= 1.7) offered for calibration."""

HBDK4_CALIB_OBSERVERS = {
    "min_max": N_("min_max: the full range seen in calibration (get_qconfig(observer=MinMaxObserver))."),
    "mse": N_("mse: clip to minimise the quantization error (get_qconfig(observer=MSEObserver))."),
}
"""Calibration observers of the hbdk4 generation's ``get_qconfig(observer=...)``, which accepts
MinMaxObserver and MSEObserver (plugin source, ``quantization/qconfig.py``)."""

MARCH_LABELS = {
    "bernoulli": N_("bernoulli (XJ2)"),
    "bernoulli2": N_("bernoulli2 (XJ3, RDK X3)"),
    "bayes": N_("bayes (J5, RDK Ultra) - the sample's"),
    "bayes-e": N_("bayes-e (J5 variant)"),
    "nash-e": N_("nash-e (J6E, RDK S100) - hbdk4"),
    "nash-m": N_("nash-m (J6M) - hbdk4"),
    "nash-p": N_("nash-p (J6P, RDK S600) - hbdk4"),
}
"""How each march is shown; the list offered is what the installed plugin defines."""

COMPILE_NOTES = [
    N_("horizon backend: compile runs check_model (advice), compile_model -> model.hbm (also model.hbir and "
    "model.pt), perf_model -> perf_out/*.html (FPS, latency, DDR) and visualize_model -> model.svg, on the CPU."),
    N_("The model is trained on centred YUV444 images / 128 with QuantStub(scale=1/128), as Horizon's sample: "
    "that fixed scale is what input_source = pyramid requires (camera frames arrive as YUV)."),
]


TEMPLATE_COMMENTS = {
    'horizon.doc': N_('QAT of the model chosen in qat-tui (a torchvision classifier or your own builder, SETTINGS["model"]) with Horizon\'s horizon_plugin_pytorch + hbdk - exported by qat-tui.\n\nThe FX-only, end-to-end flow of Horizon\'s MobileNetV2 sample (X3 expert docs, quick_start.md), one stage per run, with the settings chosen in qat-tui baked in (SETTINGS below; the settings TOML written beside this file holds the same values, except run_dir: this script writes into a folder of its own, never over a qat-tui run). Runs inside Horizon\'s OpenExplorer docker, where horizon_plugin_pytorch and hbdk are installed.\n\n    python THIS_FILE --stage float      # train the float model        -> float-checkpoint.ckpt\n    python THIS_FILE --stage calib      # calibration                   -> calib-checkpoint.ckpt\n    python THIS_FILE --stage qat        # quantization-aware training   -> qat-checkpoint.ckpt\n    python THIS_FILE --stage int_infer  # convert_fx + evaluate         -> int_model.pt (TorchScript)\n    python THIS_FILE --stage compile    # check_model, compile_model    -> model.hbm, perf_out/, model.svg\n\nWhich checkpoint loads where: calib loads float-checkpoint.ckpt; qat prepares a fresh copy of the float model and loads calib-checkpoint.ckpt into it (the float one only when calib is disabled); int_infer converts the QAT model (or the calibrated one when QAT is disabled); compile works on int_model.pt, on the CPU. "32bit_out" qconfigs keep the output layer\'s output in 32 bits (old plugins called them "out_8bit": 8-bit weights, int32 output).'),
    'horizon.cpu_state': N_('model.state_dict() on the CPU, keeping its _metadata: the module versions that observers need to load per-channel min/max buffers (torch.ao.quantization.observer._load_from_state_dict).'),
    'horizon.save_atomic': N_('Save to a temp file in the same folder, then rename: never a half-written file.'),
    'horizon.centered_yuv': N_("RGB in [0, 1] -> centred YUV444 / 128, as the sample feeds the model (rgb2centered_yuv on uint8 images, then Normalize(mean=0, std=128)); the BPU's pyramid input delivers YUV frames."),
    'horizon.new_model': N_('The sample\'s wrapping of the chosen model: QuantStub(scale=1/128) before the network (fixed scale for the centred YUV input; required for input_source="pyramid"), DeQuantStub after its output.'),
    'horizon.qconfig_dict': N_('{"": global qconfig, "module_name": {out_layer: 32-bit-output qconfig}} (out_layer: the conv/linear that computes the model\'s output, found by output_layer), with the names the installed plugin has (the *_out_8bit_* names were renamed *_8bit_weight_32bit_out_* and removed in 1.9).'),
    'horizon.qconfig_dict_comment': N_('[qconfig] int16_layers: 8-bit weights, 16-bit output (march bayes); float_layers: qconfig None (not quantized)'),
    'horizon.prepare': N_('prepare_qat_fx on a fresh deep copy of the float model (it mutates what it gets), march set first.'),
    'horizon.set_train_comment': N_("BatchNorm keeps the float model's running statistics, as calibration used them (qat-tui's default; batch statistics diverge when fake quant rounds a channel to one value)"),
    'horizon.stage_int_infer_comment': N_('hbdk compiles on the CPU: trace the fixed-point model there'),
    'horizon.stage_compile_comment': N_("compile_model also writes model.hbir and model.pt (hbdk's traced copy) beside model.hbm"),
    'horizon.stage_compile_comment_2': N_('show=False: visualize_model would otherwise start firefox'),
}
"""The comments and docstrings of the exported script's template (its ``{{#key}}`` markers, see
core/export.py), in English; the script has them in the current language."""


def is_hbdk4_march(march: str) -> bool:
    """nash-* (J6, S100/S600) compile with hbdk4; bernoulli2/bayes/bayes-e with hbdk3."""
    return march.lower().startswith("nash")


def _step(name: str) -> Dict[str, Any]:
    return {"step": name}


class HorizonSettings(Section):
    """The ``[horizon]`` section: the target BPU and hbdk's compile options."""

    march: str = Field(
        "bayes",
        description=N_("BPU architecture: bernoulli2 = XJ3 (RDK X3), bayes = J5 (the sample), bayes-e, nash-* = J6/S100 "
        "(hbdk4). Only what the installed plugin defines is accepted."),
        json_schema_extra=_step("backend"),
    )
    input_source: Literal["ddr", "pyramid", "resizer"] = Field(
        "pyramid",
        description=N_("Where the deployed model reads its image: pyramid = camera YUV frames (the sample; needs "
        "QuantStub scale 1/128), ddr = a tensor in memory, resizer = ROI resize."),
        json_schema_extra=_step("compile"),
    )
    opt: Literal["O0", "O1", "O2", "O3", "ddr", "fast", "balance"] = Field(
        "O1",
        description=N_("hbdk compile optimisation: O0-O3 (higher: faster model, slower compile; the sample uses O1), "
        "ddr, fast, or balance (uses balance_factor)."),
        json_schema_extra=_step("compile"),
    )
    balance_factor: int = Field(2, ge=0, le=100, description=N_("With opt = balance: hbdk's balance factor, 0-100 (trade-off between latency and DDR bandwidth)."),
                                json_schema_extra=_step("compile"))
    input_layout: Optional[Literal["NHWC", "NCHW", "BPU_RAW"]] = Field(
        None, description=N_("Input layout of the compiled model (unset: hbdk picks it from input_source)."),
        json_schema_extra=_step("compile"),
    )
    output_layout: Literal["NHWC", "NCHW", "BPU_RAW"] = Field("NCHW", description=N_("Output layout of the compiled model."),
                                                              json_schema_extra=_step("compile"))
    advice_us: Optional[int] = Field(
        0, ge=0, description=N_("check_model advice: report layers slower than this many microseconds (unset: no advice)."),
        json_schema_extra=_step("compile"),
    )
    jobs: int = Field(16, ge=0, description=N_("Threads hbdk uses to compile (0: all cores; hbdk's default is 16)."),
                      json_schema_extra=_step("compile"))

    @field_validator("march")
    @classmethod
    def _march_form(cls, v: str) -> str:
        v = v.strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]+", v):
            raise ValueError(_("must be a march name such as 'bernoulli2', 'bayes', 'bayes-e' or 'nash-e'"))
        return v


def validate_compile_options(options: Any) -> None:
    """Check ``[horizon]`` compile options before hbdk sees them.

    Raises:
        BackendError: unknown opt, input_source, layout or balance factor, naming the allowed values;
            for an hbdk4 march (nash-*), an opt outside O0-O2.
    """
    if is_hbdk4_march(options.march):
        if options.opt not in HBDK4_OPTS:
            raise BackendError(
                _("[horizon] opt = %r: hbdk4 (march %s) compiles with opt 0-2 only") % (options.opt, options.march),
                hint=_("use one of: %s") % ", ".join(HBDK4_OPTS),
            )
        return
    if options.opt not in HBDK3_OPTS:
        raise BackendError(
            _("[horizon] opt = %r is not an hbdk optimisation option") % options.opt,
            hint=_("use one of: %s (hbdk would accept it and fail later with a TypeError)") % ", ".join(HBDK3_OPTS),
        )
    if options.input_source not in INPUT_SOURCES:
        raise BackendError(_("[horizon] input_source = %r") % options.input_source, hint=_("use one of: %s") % ", ".join(INPUT_SOURCES))
    for key in ("output_layout", "input_layout"):
        v = getattr(options, key)
        if v is not None and v not in LAYOUTS:
            raise BackendError(_("[horizon] %s = %r") % (key, v), hint=_("use one of: %s") % ", ".join(LAYOUTS))
    if options.opt == "balance" and not 0 <= options.balance_factor <= 100:
        raise BackendError(_("[horizon] balance_factor = %r") % options.balance_factor, hint=_("use 0..100"))


class HorizonSpec(BackendSpec):
    """horizon_plugin_pytorch + hbdk (Horizon's docker only); the wizard's default where they import."""

    def detect(self) -> BackendInfo:
        from .common import detect

        return detect()

    def choices(self, values: Dict[str, Dict[str, Any]], info: Optional[BackendInfo]) -> Choices:
        march = str(values.get("horizon", {}).get("march", "bayes"))
        extras = info.extras if info is not None else {}
        marches: List[str] = list(extras.get("marches") or MARCH_LABELS)
        if march not in marches:
            marches.append(march)
        if is_hbdk4_march(march):
            observers = {k: _(v) for k, v in HBDK4_CALIB_OBSERVERS.items()}
            opts = {k: _(OPT_HELP[k]) for k in HBDK4_OPTS}
        else:
            observers = {k: _(v) for k, v in CALIB_OBSERVERS.items()}
            if extras.get("get_default_qconfig") is False:
                observers = {"default": _("this plugin version has only default_calib_8bit_fake_quant_qconfig")}
            opts = {k: _(OPT_HELP[k]) for k in HBDK3_OPTS}
        return {
            ("horizon", "march"): {m: _(MARCH_LABELS[m]) if m in MARCH_LABELS else m for m in marches},
            ("qconfig", "calib_observer"): observers,
            ("horizon", "opt"): opts,
        }

    def result_lines(self, metrics: Dict[str, Any], settings: Any) -> List[Tuple[str, str]]:
        """hbdk's static perf estimate for the BPU (``perf_summary`` in :mod:`.common` records
        ``fps``, ``latency_us``, ``ddr_mb_per_frame`` and ``march``)."""
        parts = []
        if metrics.get("fps") is not None:
            parts.append("FPS %s" % metrics["fps"])
        if metrics.get("latency_us") is not None:
            parts.append(_("latency {us} us").format(us=metrics["latency_us"]))
        if metrics.get("ddr_mb_per_frame") is not None:
            parts.append(_("DDR {mb} MB/frame").format(mb=metrics["ddr_mb_per_frame"]))
        if metrics.get("march"):
            parts.append("march %s" % metrics["march"])
        return [(_("BPU estimate (hbdk perf)"), ", ".join(parts))] if parts else []

    def export_problem(self, settings: Any) -> Optional[Any]:
        from ...errors import QatError

        if is_hbdk4_march(settings.horizon.march):
            return QatError(
                _("the exported horizon script follows Horizon's hbdk3 sample (prepare_qat_fx, compile_model); "
                "march %s uses the hbdk4 flow, which it does not cover yet") % settings.horizon.march,
                hint=_("run this march with qat-tui run --config FILE, or export with an hbdk3 march "
                "(bernoulli2, bayes, bayes-e)"),
                title="Export",
            )
        return None


def create(settings: Any = None) -> Any:
    """The backend for ``settings`` (its ``[horizon]`` section): the hbdk4 generation for nash-* marches,
    hbdk3 otherwise."""
    options = getattr(settings, "horizon", None) if settings is not None else None
    options = options if options is not None else HorizonSettings()
    if is_hbdk4_march(options.march):
        from .hbdk4 import Hbdk4Backend

        return Hbdk4Backend(options)
    from .hbdk3 import Hbdk3Backend

    return Hbdk3Backend(options)


SPEC = spec_of(__name__, HorizonSpec(
    name="horizon",
    summary=N_("Horizon backend: horizon_plugin_pytorch + hbdk -> model.hbm for the BPU (Horizon's docker only)"),
    factory="core.backends.horizon:create",
    options=HorizonSettings,
    stale_keys={"calib": ("march",), "qat": ("march",), "int_infer": ("march",), "compile": "*"},
    compile_keys=(),
    template="export_horizon.py.txt",
    template_comments=TEMPLATE_COMMENTS,
    preferred=10,
    step_notes={"compile": COMPILE_NOTES},  # N_-marked: the wizard shows _(note)
))

__all__ = ["SPEC", "HorizonSettings", "create", "is_hbdk4_march", "validate_compile_options", "CALIB_OBSERVERS",
           "HBDK4_CALIB_OBSERVERS", "HBDK3_OPTS", "HBDK4_OPTS", "MARCH_LABELS"]
