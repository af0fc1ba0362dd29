"""What both Horizon generations share: the plugin's detection and marches, the centred-YUV input, the
fake-quant states, and the parsing of hbdk's check and perf output. :class:`HorizonBase` is the base of
:class:`~.hbdk3.Hbdk3Backend` and :class:`~.hbdk4.Hbdk4Backend`.

Calls common to both generations (Horizon's X3 expert docs, quick_start.md; OE-Skills set-fake-quantize):

* every stage: ``horizon_plugin_pytorch.march.set_march(march)`` before any prepare.
* states: ``model.train(); set_fake_quantize(model, FakeQuantState.QAT)`` /
  ``model.eval(); set_fake_quantize(model, FakeQuantState.CALIBRATION | VALIDATION)``.
* input: centred YUV444 / 128 (``horizon_plugin_pytorch.functional.rgb2centered_yuv``), what the BPU's
  pyramid delivers.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from ...i18n import _, ngettext
from ...errors import BackendError
from ...io import atomic_write_json
from ..base import Artifact, BackendInfo, CheckItem, CheckReport, CompileResult, FakeQuantState, QuantBackend
from . import HorizonSettings, validate_compile_options


def _version() -> Tuple[Optional[str], Optional[str]]:
    import horizon_plugin_pytorch

    plugin = getattr(horizon_plugin_pytorch, "__version__", "?")
    try:
        import hbdk

        hb = getattr(hbdk, "__version__", "?")
    except Exception:
        hb = None
    return plugin, hb


def plugin_marches() -> List[str]:
    """March names the installed plugin defines (``horizon_plugin_pytorch.march.March`` constants)."""
    from horizon_plugin_pytorch.march import March

    values = []
    for key in dir(March):
        if key.isupper():
            v = getattr(March, key)
            if isinstance(v, str) and v not in values:
                values.append(v)
    return values


def detect() -> BackendInfo:
    """Whether horizon_plugin_pytorch imports, its version and marches, and which compilers import
    (hbdk for the hbdk3 generation, hbdk4.compiler for nash-*)."""
    try:
        plugin, hb = _version()
    except Exception as e:
        return BackendInfo(
            "horizon",
            False,
            _("horizon_plugin_pytorch does not import (%s: %s): it ships only inside Horizon's "
              "OpenExplorer docker, not on PyPI") % (type(e).__name__, e),
        )
    versions = {"horizon_plugin_pytorch": plugin}
    try:
        import torch

        versions["torch"] = torch.__version__
    except Exception:
        pass
    reason = ""
    if hb is None:
        reason = _("hbdk does not import: training works, the compile stage needs hbdk")
    else:
        versions["hbdk"] = hb
    has_hbdk4 = False
    try:
        import hbdk4.compiler  # noqa: F401  (the hbdk4 generation compiles with it)

        versions["hbdk4"] = getattr(__import__("hbdk4"), "__version__", "?")
        has_hbdk4 = True
    except Exception:
        pass
    from horizon_plugin_pytorch.quantization import qconfig as qc

    extras = {"marches": plugin_marches(), "hbdk3": hb is not None, "hbdk4": has_hbdk4,
              "get_default_qconfig": hasattr(qc, "get_default_qconfig")}
    return BackendInfo(
        "horizon",
        True,
        reason,
        versions,
        _("horizon_plugin_pytorch prepare_qat_fx/convert_fx + hbdk compile -> model.hbm"),
        extras,
    )


def parse_check_output(text: str, returncode: Any) -> CheckReport:
    """Structure what ``check_model`` printed.

    The verdict comes from the return code (0 = pass) and the "HBDK model check PASS/FAIL" line.
    Per-layer advice lines are kept as items: hbdk's advice format is not documented (unconfirmed), so
    every non-empty line that is not a known status line becomes an item with the line as its reason;
    the raw text stays in the report.
    """
    passed = returncode == 0 and "FAIL" not in text
    items: List[CheckItem] = []
    status_lines = ("HBDK model check PASS", "HBDK model check FAIL", "This model is supported!")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or any(line.startswith(s) for s in status_lines):
            continue
        low = line.lower()
        if not any(k in low for k in ("advice", "suggest", "slow", "warning", "error", "not supported", "layer")):
            continue
        m = re.search(r"(layer|op|node)[\s:=]+([\w./-]+)", line, re.IGNORECASE)
        node = m.group(2) if m else ""
        status = "float" if ("not supported" in low or "error" in low) else "advice"
        items.append(CheckItem(op=node or "-", node=node, module=node, status=status, reason=line, suggestion=""))
    verdict = "HBDK model check PASS" if passed else "HBDK model check FAIL"
    summary = "%s (%s)" % (verdict, ngettext("{n} advice line", "{n} advice lines", len(items)).format(n=len(items)))
    return CheckReport(passed=passed, summary=summary, items=items, text=text)


def perf_summary(perf: Dict[str, Any]) -> Dict[str, Any]:
    """The figures the results screen shows from ``perf_model``'s JSON (its ``summary`` dict)."""
    s = perf.get("summary", perf) if isinstance(perf, dict) else {}

    def pick(*keys: str) -> Any:
        for k in keys:
            if k in s:
                return s[k]
        return None

    return {
        "fps": pick("FPS", "frame per second"),
        "latency_us": pick("latency (us)", "latency(us)", "latency", "Latency"),
        "ddr_mb_per_frame": pick("DDR megabytes per frame"),
        "ddr_mb_per_s": pick("DDR megabytes per second"),
        "march": pick("BPU march"),
        "hbdk_version": pick("HBDK version"),
        "compiling_options": pick("compiling options"),
    }


def record_perf(result: CompileResult, perf: Dict[str, Any], printed: str, out_dir: str, perf_dir: str, tool: str,
                html_what: str) -> None:
    """Put a perf tool's JSON into ``result``: the summary figures into ``metrics``, ``perf.json``
    (the JSON, its summary and what the tool printed) and the tool's HTML reports as artifacts."""
    summary = perf_summary(perf)
    result.perf = {"hbdk_perf": perf, "summary": summary, "printed": printed}
    result.metrics.update({k: v for k, v in summary.items() if v is not None})
    perf_json = os.path.join(out_dir, "perf.json")
    atomic_write_json(perf_json, result.perf)
    for name in sorted(os.listdir(perf_dir)) if os.path.isdir(perf_dir) else []:
        if name.endswith(".html"):
            result.artifacts.append(Artifact("perf_out/" + name, os.path.join(perf_dir, name), html_what))
    result.artifacts.append(Artifact("perf.json", perf_json, _("%s's JSON (summary: FPS, latency, DDR) and what it printed.") % tool))


class HorizonBase(QuantBackend):
    """What both generations share (see the module docstring for the calls and their sources).

    Args:
        options: the ``[horizon]`` settings (march, input_source, opt, layouts, advice, jobs).
    """

    name = "horizon"

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else HorizonSettings()
        self.work_dir: Optional[str] = None  # the run directory, set by validate_settings
        self.last_qconfig_lines: List[str] = []

    @classmethod
    def detect(cls) -> BackendInfo:
        return detect()

    def marches(self) -> List[str]:
        return plugin_marches()

    def _set_march(self) -> str:
        from horizon_plugin_pytorch.march import set_march

        march = self.options.march
        available = plugin_marches()
        if march not in available:
            raise BackendError(
                _("[horizon] march = %r is not defined by the installed horizon_plugin_pytorch") % march,
                hint=_("use one of: %s (bernoulli2 = XJ3, bayes = J5, nash-* = J6/S100)") % ", ".join(available),
            )
        set_march(march)
        return march

    def normalize_transform(self) -> Callable:
        return CenteredYUV()

    def qconfig_lines(self) -> List[str]:
        return list(self.last_qconfig_lines)

    def set_fake_quant_state(self, model: Any, state: FakeQuantState) -> None:
        from horizon_plugin_pytorch.quantization import FakeQuantState as HFQ
        from horizon_plugin_pytorch.quantization import set_fake_quantize

        state = FakeQuantState(state)
        if state is FakeQuantState.QAT:
            model.train()
            set_fake_quantize(model, HFQ.QAT)
        elif state is FakeQuantState.CALIBRATION:
            model.eval()
            set_fake_quantize(model, HFQ.CALIBRATION)
        else:
            model.eval()
            set_fake_quantize(model, HFQ.VALIDATION)

    def signature(self) -> Dict[str, Any]:
        return {"backend": self.name, "march": self.options.march}

    INT16_MARCHES: Tuple[str, ...] = ()
    """Marches on which this generation deploys 16-bit activations (``[qconfig] int16_layers``)."""

    def precision_fix(self) -> str:
        return "int16_layers" if self.options.march in self.INT16_MARCHES else "float_layers"

    def validate_settings(self, settings: Any) -> None:
        if settings.qconfig.int16_layers and self.precision_fix() != "int16_layers":
            from ...errors import SettingsError

            raise SettingsError(
                _("[qconfig] int16_layers needs a march with 16-bit activations (%s); this run's march is %s")
                % (", ".join(self.INT16_MARCHES) or "none in this generation", self.options.march),
                hint=_("use [qconfig] float_layers (qconfig None: not quantized) instead, or change [horizon] march"))
        super().validate_settings(settings)
        self.work_dir = settings.run_path()
        self._set_march()
        if settings.compile.enabled:
            validate_compile_options(self.options)

    @staticmethod
    def _check_layer_names(float_model: Any, names: List[str]) -> None:
        """Refuse names in ``[qconfig] float_layers``/``int16_layers`` that are no module of the model,
        with the nearest names (SettingsError), before prepare."""
        import difflib

        from ...errors import SettingsError

        mods = [n for n, _m in float_model.named_modules() if n]
        for name in names:
            if name not in mods:
                close = difflib.get_close_matches(name, mods, n=5)
                raise SettingsError(_("[qconfig] float_layers/int16_layers: the model has no layer %r%s") % (
                    name, "; nearest: %s" % ", ".join(close) if close else ""),
                    hint=_("use the names `qat-tui debug RUN_DIR` shows, or clear that setting"))

    def layers_in_float(self, prepared: Any, names: List[str]) -> Any:
        """Fake quant off on the named layers' outputs and weights (the debug's sensitivity measure)."""
        from . import debug

        return debug.layers_in_float(prepared, names)


def _has(module: Any, name: str) -> bool:
    """hasattr that survives plugin >= 1.9.0, whose removed qconfig names raise on access."""
    try:
        return hasattr(module, name)
    except Exception:
        return False


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(nothing printed)"


class CenteredYUV:
    """Tensor transform: RGB float in [0, 1] (C, H, W) -> centred YUV444 / 128, as Horizon's sample feeds
    the model (``rgb2centered_yuv`` on uint8 images, then ``Normalize(mean=0, std=128)``).

    Picklable (data-loader workers); imports the plugin on first use.
    """

    def __call__(self, x: Any) -> Any:
        from horizon_plugin_pytorch.functional import rgb2centered_yuv

        u8 = (x * 255.0).round().clamp(0, 255).to(dtype=__import__("torch").uint8)
        yuv = rgb2centered_yuv(u8.unsqueeze(0))[0]
        return yuv.float() / 128.0

    def __repr__(self) -> str:
        return "CenteredYUV()"


__all__ = ["HorizonBase", "CenteredYUV", "detect", "parse_check_output", "perf_summary", "plugin_marches", "record_perf"]
