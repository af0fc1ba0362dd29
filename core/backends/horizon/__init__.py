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
    "O0": "no optimisation: fastest compile",
    "O1": "the sample's choice",
    "O2": "more optimisation, slower compile",
    "O3": "most optimisation (hbdk3)",
    "ddr": "minimise DDR traffic (hbdk3)",
    "fast": "minimise latency (hbdk3)",
    "balance": "trade latency for DDR bandwidth by balance_factor (hbdk3)",
}

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

MARCH_LABELS = {
    "bernoulli": "bernoulli (XJ2)",
    "bernoulli2": "bernoulli2 (XJ3, RDK X3)",
    "bayes": "bayes (J5, RDK Ultra) - the sample's",
    "bayes-e": "bayes-e (J5 variant)",
    "nash-e": "nash-e (J6E, RDK S100) - hbdk4",
    "nash-m": "nash-m (J6M) - hbdk4",
    "nash-p": "nash-p (J6P, RDK S600) - hbdk4",
}
"""How each march is shown; the list offered is what the installed plugin defines."""

COMPILE_NOTES = [
    "horizon backend: compile runs check_model (advice), compile_model -> model.hbm (also model.hbir and "
    "model.pt), perf_model -> perf_out/*.html (FPS, latency, DDR) and visualize_model -> model.svg, on the CPU.",
    "The model is trained on centred YUV444 images / 128 with QuantStub(scale=1/128), as Horizon's sample: "
    "that fixed scale is what input_source = pyramid requires (camera frames arrive as YUV).",
]


def is_hbdk4_march(march: str) -> bool:
    """nash-* (J6, S100/S600) compile with hbdk4; bernoulli2/bayes/bayes-e with hbdk3."""
    return march.lower().startswith("nash")


def _step(name: str) -> Dict[str, Any]:
    return {"step": name}


class HorizonSettings(Section):
    """The ``[horizon]`` section: the target BPU and hbdk's compile options."""

    march: str = Field(
        "bayes",
        description="BPU architecture: bernoulli2 = XJ3 (RDK X3), bayes = J5 (the sample), bayes-e, nash-* = J6/S100 "
        "(hbdk4). Only what the installed plugin defines is accepted.",
        json_schema_extra=_step("backend"),
    )
    input_source: Literal["ddr", "pyramid", "resizer"] = Field(
        "pyramid",
        description="Where the deployed model reads its image: pyramid = camera YUV frames (the sample; needs "
        "QuantStub scale 1/128), ddr = a tensor in memory, resizer = ROI resize.",
        json_schema_extra=_step("compile"),
    )
    opt: Literal["O0", "O1", "O2", "O3", "ddr", "fast", "balance"] = Field(
        "O1",
        description="hbdk compile optimisation: O0-O3 (higher: faster model, slower compile; the sample uses O1), "
        "ddr, fast, or balance (uses balance_factor).",
        json_schema_extra=_step("compile"),
    )
    balance_factor: int = Field(2, ge=0, le=100, description="With opt = balance: hbdk's balance factor, 0-100 (trade-off between latency and DDR bandwidth).",
                                json_schema_extra=_step("compile"))
    input_layout: Optional[Literal["NHWC", "NCHW", "BPU_RAW"]] = Field(
        None, description="Input layout of the compiled model (unset: hbdk picks it from input_source).",
        json_schema_extra=_step("compile"),
    )
    output_layout: Literal["NHWC", "NCHW", "BPU_RAW"] = Field("NCHW", description="Output layout of the compiled model.",
                                                              json_schema_extra=_step("compile"))
    advice_us: Optional[int] = Field(
        0, ge=0, description="check_model advice: report layers slower than this many microseconds (unset: no advice).",
        json_schema_extra=_step("compile"),
    )
    jobs: int = Field(16, ge=0, description="Threads hbdk uses to compile (0: all cores; hbdk's default is 16).",
                      json_schema_extra=_step("compile"))

    @field_validator("march")
    @classmethod
    def _march_form(cls, v: str) -> str:
        v = v.strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]+", v):
            raise ValueError("must be a march name such as 'bernoulli2', 'bayes', 'bayes-e' or 'nash-e'")
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
            observers = dict(HBDK4_CALIB_OBSERVERS)
            opts = {k: OPT_HELP[k] for k in HBDK4_OPTS}
        else:
            observers = dict(CALIB_OBSERVERS)
            if extras.get("get_default_qconfig") is False:
                observers = {"default": "this plugin version has only default_calib_8bit_fake_quant_qconfig"}
            opts = {k: OPT_HELP[k] for k in HBDK3_OPTS}
        return {
            ("horizon", "march"): {m: MARCH_LABELS.get(m, m) for m in marches},
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
            parts.append("latency %s us" % metrics["latency_us"])
        if metrics.get("ddr_mb_per_frame") is not None:
            parts.append("DDR %s MB/frame" % metrics["ddr_mb_per_frame"])
        if metrics.get("march"):
            parts.append("march %s" % metrics["march"])
        return [("BPU estimate (hbdk perf)", ", ".join(parts))] if parts else []

    def export_problem(self, settings: Any) -> Optional[Any]:
        from ...errors import QatError

        if is_hbdk4_march(settings.horizon.march):
            return QatError(
                "the exported horizon script follows Horizon's hbdk3 sample (prepare_qat_fx, compile_model); "
                "march %s uses the hbdk4 flow, which it does not cover yet" % settings.horizon.march,
                hint="run this march with qat-tui run --config FILE, or export with an hbdk3 march "
                "(bernoulli2, bayes, bayes-e)",
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
    summary="Horizon backend: horizon_plugin_pytorch + hbdk -> model.hbm for the BPU (Horizon's docker only)",
    factory="core.backends.horizon:create",
    options=HorizonSettings,
    stale_keys={"calib": ("march",), "qat": ("march",), "int_infer": ("march",), "compile": "*"},
    compile_keys=(),
    template="export_horizon.py.txt",
    preferred=10,
    step_notes={"compile": COMPILE_NOTES},
))

__all__ = ["SPEC", "HorizonSettings", "create", "is_hbdk4_march", "validate_compile_options", "CALIB_OBSERVERS",
           "HBDK4_CALIB_OBSERVERS", "HBDK3_OPTS", "HBDK4_OPTS", "MARCH_LABELS"]
