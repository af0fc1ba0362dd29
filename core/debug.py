"""Why did the int8 model lose accuracy? The per-layer debug of a run (``qat-tui debug RUN_DIR``).

On ``[debug] images`` test images it compares the float model (``float-checkpoint.ckpt``) with the last
quantized model (``qat-checkpoint.ckpt``, else ``calib-checkpoint.ckpt``, rebuilt as int_infer rebuilds
it) layer by layer, through the backend (:meth:`core.backends.base.QuantBackend.compare_layers`): SQNR,
cosine and max error of each layer's output, *accumulated* (each model fed its own previous output) and
*same input* (the layer's own error, fed the float input), with its range, scale, clipping and levels
used. The layers are ranked by their same-input SQNR; for the ``[debug] sensitivity_layers`` worst, the
top-1 on ``[debug] eval_images`` test images with only that layer in float is measured ("top-1
gained"), and per-class accuracy and the confusion matrices of float vs quantized are computed on the
same images. The fix is ``[qconfig] float_layers`` (see :func:`with_float_layers`).

Writes ``debug_report.json`` and ``debug_report.html`` into the run folder (atomically).
"""
from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .errors import CheckpointError
from .i18n import N_, _

REPORT_JSON = "debug_report.json"
REPORT_HTML = "debug_report.html"

CLIPPED_FRACTION = 0.001
"""A layer whose float outputs fall outside its fake quant's range more often than this is "clipped"."""
FEW_LEVELS = 16
"""99.9 % of a layer's outputs in this many levels or fewer (of 256): a few large values set the scale."""
WEIGHT_OUTLIER_RATIO = 20.0
"""max|w| / mean|w| of an output channel above this: weights with outliers (a Gaussian's ratio at
~1,000 weights is about 4; per-channel 8-bit keeps ~1/127 of the maximum per step)."""
ACCUMULATED_DROP_DB = 6.0
"""Drop of the accumulated SQNR from the previous layer that marks "accumulated error starts here"."""
INT8_SQNR_DB = 48.2
"""6.02·8 dB: the SQNR of a full-scale signal in 8-bit uniform quantization (Bennett 1948; Widrow &
Kollár, *Quantization Noise*, 2008), the most an int8 tensor carries."""


@dataclass
class DebugReport:
    """The result of :func:`run_debug` (as written to ``debug_report.json``).

    Attributes:
        layers: per layer in graph order: LayerComparison's fields plus ``rank`` (1 = worst by same-input
            SQNR), ``reasons`` (plain words), ``top1_gained`` (points, None when not measured).
        top1: {"float": %, "quantized": %} on the evaluation subset; ``eval_images``: its size.
        per_class: [{"class", "images", "float", "quantized"}] accuracy in %.
        confusion: {"float": rows = true class, columns = predicted, counts; "quantized": ...}.
    """

    run_dir: str
    source: str
    backend: str
    images: int
    eval_images: int
    layers: List[Dict[str, Any]]
    top1: Dict[str, float]
    per_class: List[Dict[str, Any]]
    confusion: Dict[str, List[List[int]]]
    classes: List[str]
    float_layers: List[str] = field(default_factory=list)
    fix_key: str = "float_layers"
    """The backend's one-key fix (:meth:`core.backends.base.QuantBackend.precision_fix`): the
    ``[qconfig]`` list that keeps a layer in higher precision, ``float_layers`` or ``int16_layers``."""
    int16_layers: List[str] = field(default_factory=list)
    seconds: float = 0.0
    created: str = ""

    def worst(self) -> List[Dict[str, Any]]:
        """The layers by rank (worst first)."""
        return sorted(self.layers, key=lambda layer: layer["rank"])

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "DebugReport":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _needs(settings: Any) -> None:
    """Refuse a run whose float or quantized checkpoint is missing, naming the stage to run."""
    from .stages import check_inputs, stage_inputs

    for stage in ("calib", "int_infer"):
        for name, producer in stage_inputs(settings, stage):
            path = os.path.join(settings.run_path(), name)
            if not os.path.exists(path):
                raise CheckpointError(
                    _("debug compares the float model with the quantized one and needs {file}, which is not in {folder}").format(
                        file=name, folder=settings.run_path()),
                    hint=_("run the {stage} stage first ({command})").format(
                        stage=producer, command="qat-tui run --config FILE --stage %s" % producer),
                )
        check_inputs(settings, stage)
    from .pipeline import Pipeline

    used = {"float"} | {producer for _n, producer in stage_inputs(settings, "int_infer")}
    for item in Pipeline(settings).plan():
        if item.stage in used and item.action == "run":
            raise CheckpointError(
                _("debug needs the {stage} stage's result for these settings, but it would run again: {reason}").format(
                    stage=item.stage, reason=item.reason),
                hint=_("run the stages first ({command}), then debug").format(
                    command="qat-tui run --config %s" % os.path.join(settings.run_path(), "settings.toml")),
            )


def run_debug(settings: Any, log: Callable[[str], None] = lambda _m: None, backend: Any = None,
              cancel: Any = None) -> DebugReport:
    """Run the per-layer debug of the run folder of ``settings`` and write its reports.

    Args:
        settings: the run's settings (``[debug]`` sizes; the run folder).
        log: progress lines.
        backend: a backend instance instead of the settings' one (tests pass a toolchain's double).
        cancel: a ``threading.Event``; set, the debug stops with :class:`core.errors.Cancelled`.

    Raises:
        CheckpointError: the float or quantized checkpoint is missing/changed (names the stage to run).
        BackendError: the backend has no per-layer debug.
    """
    import threading

    from .backends.base import FakeQuantState
    from .engine import LoopContext
    from .io import atomic_write_json, atomic_write_text
    from .pipeline import Pipeline
    from .stages import load_float_model, restore_prepared

    t0 = time.time()
    _needs(settings)
    cancel = cancel or threading.Event()
    pipeline = Pipeline(settings, backend=backend, cancel=cancel,
                        emit=lambda ev: log(ev.text) if hasattr(ev, "text") else None)
    ctx = pipeline.context()
    ctx.stage = "debug"
    loop = LoopContext("debug", lambda _e: None, cancel, "cpu")
    cfg = settings.debug
    float_model = load_float_model(ctx).cpu().eval()
    prepared, source = restore_prepared(ctx)
    prepared = prepared.cpu()
    ctx.backend.set_fake_quant_state(prepared, FakeQuantState.VALIDATION)

    images = _batches(ctx.data.debug_loader(cfg.images), loop)
    log(_("comparing every quantized layer's output on {n} test images: float model vs the {stage} model").format(
        n=sum(b.shape[0] for b in images), stage=source))
    comparisons = ctx.backend.compare_layers(float_model, prepared, source, settings.qconfig, images)
    loop.check_cancel()
    layers = _rank([c.to_dict() for c in comparisons])

    eval_loader = ctx.data.debug_loader(cfg.eval_images, salt=5)
    log(_("float vs {stage} top-1 and per-class accuracy on {n} test images").format(stage=source, n=len(eval_loader.dataset)))
    classes = list(ctx.data.classes)
    base = _predict(float_model, prepared, eval_loader, len(classes), loop)
    for layer in sorted(layers, key=lambda r: r["rank"])[: cfg.sensitivity_layers]:
        with ctx.backend.layers_in_float(prepared, [layer["name"]]):
            top1 = _top1(prepared, eval_loader, loop)
        layer["top1_gained"] = round(top1 - base["top1_q"], 2)
        log(_("  {layer} in float: top-1 {top1:.2f}% ({gained:+.2f})").format(layer=layer["name"], top1=top1, gained=layer["top1_gained"]))

    report = DebugReport(
        run_dir=settings.run_path(), source=source, backend=settings.run.backend,
        images=sum(b.shape[0] for b in images), eval_images=len(eval_loader.dataset), layers=layers,
        top1={"float": base["top1_f"], "quantized": base["top1_q"]},
        per_class=[{"class": c, "images": base["n"][i], "float": base["acc_f"][i], "quantized": base["acc_q"][i]}
                   for i, c in enumerate(classes)],
        confusion={"float": base["cm_f"], "quantized": base["cm_q"]}, classes=classes,
        float_layers=list(settings.qconfig.float_layers), fix_key=ctx.backend.precision_fix(),
        int16_layers=list(settings.qconfig.int16_layers), seconds=round(time.time() - t0, 1),
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    atomic_write_json(os.path.join(settings.run_path(), REPORT_JSON), report.to_dict())
    atomic_write_text(os.path.join(settings.run_path(), REPORT_HTML), render_html(report))
    return report


def load_report(run_dir: str) -> Optional[DebugReport]:
    """The debug report of ``run_dir``, or None when there is none (or it does not parse)."""
    import json

    try:
        with open(os.path.join(run_dir, REPORT_JSON), encoding="utf-8") as f:
            return DebugReport.from_dict(json.load(f))
    except (OSError, ValueError, TypeError):
        return None


# ------------------------------------------------------------------------------------ measurement

def _batches(loader: Any, loop: Any) -> List[Any]:
    out = []
    for images, _target in loader:
        loop.check_cancel()
        out.append(images)
    return out


def _top1(model: Any, loader: Any, loop: Any) -> float:
    import torch

    hit = seen = 0
    with torch.no_grad():
        for images, target in loader:
            loop.check_cancel()
            hit += int((model(images).argmax(1) == target).sum())
            seen += int(target.numel())
    return 100.0 * hit / max(seen, 1)


def _predict(float_model: Any, quantized: Any, loader: Any, n_classes: int, loop: Any) -> Dict[str, Any]:
    import torch

    cm_f = torch.zeros(n_classes, n_classes, dtype=torch.long)
    cm_q = torch.zeros_like(cm_f)
    with torch.no_grad():
        for images, target in loader:
            loop.check_cancel()
            for cm, model in ((cm_f, float_model), (cm_q, quantized)):
                pred = model(images).argmax(1)
                cm.index_put_((target, pred), torch.ones_like(target), accumulate=True)
    n = cm_f.sum(1)

    def acc(cm: Any) -> List[float]:
        return [round(100.0 * float(cm[i, i]) / max(int(n[i]), 1), 2) for i in range(n_classes)]

    total = max(int(n.sum()), 1)
    return {"cm_f": cm_f.tolist(), "cm_q": cm_q.tolist(), "n": n.tolist(), "acc_f": acc(cm_f), "acc_q": acc(cm_q),
            "top1_f": round(100.0 * float(cm_f.diag().sum()) / total, 2),
            "top1_q": round(100.0 * float(cm_q.diag().sum()) / total, 2)}


def _rank(layers: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rank (1 = largest own error) and give each layer its reasons in plain words.

    The own error is the same-input SQNR (lowest first). A backend that cannot measure it leaves it
    None (Horizon's featuremap_similarity gives the single-op error only in multiples of the output
    scale, blind to a crushed range); then the layers rank by ``sqnr_drop_db``, how far the accumulated
    SQNR falls at the layer: from the layer before it in graph order, at most :data:`INT8_SQNR_DB` (an
    exact input, e.g. the QuantStub's fixed scale, is not a loss of the first conv), to its own."""
    for i, layer in enumerate(layers):
        before = min(layers[i - 1]["accumulated"]["sqnr_db"], INT8_SQNR_DB) if i else INT8_SQNR_DB
        layer["sqnr_drop_db"] = round(max(before - layer["accumulated"]["sqnr_db"], 0.0), 2)
    if all(layer["same_input"].get("sqnr_db") is not None for layer in layers):
        order = sorted(range(len(layers)), key=lambda i: layers[i]["same_input"]["sqnr_db"])
    else:
        order = sorted(range(len(layers)), key=lambda i: -layers[i]["sqnr_drop_db"])
    for rank, i in enumerate(order, 1):
        layers[i]["rank"] = rank
    drops = [(layers[i - 1]["accumulated"]["sqnr_db"] - layers[i]["accumulated"]["sqnr_db"], i)
             for i in range(1, len(layers))]
    start = max(drops)[1] if drops and max(drops)[0] >= ACCUMULATED_DROP_DB else None
    for i, layer in enumerate(layers):
        layer.setdefault("top1_gained", None)
        layer["reasons"] = reasons(layer, starts_here=(i == start))
    return layers


def reasons(layer: Dict[str, Any], starts_here: bool = False) -> List[str]:
    """Plain-words reasons for a layer's error (thresholds: the module constants)."""
    out = []
    if layer.get("scale") is not None and layer["clipped"] > CLIPPED_FRACTION:
        lo = (0 - (layer["zero_point"] or 0)) * layer["scale"]
        hi = lo + (layer["levels"] - 1) * layer["scale"]
        out.append(_("output range clipped: {share} of the float outputs fall outside [{lo:.3g}, {hi:.3g}]").format(
            share="%.1f%%" % (100 * layer["clipped"]), lo=lo, hi=hi))
    if layer.get("levels_used") is not None and layer["levels_used"] <= FEW_LEVELS:
        out.append(_("a few large values set the scale: {share} of the outputs use {used} of {levels} levels (range {lo:.3g}..{hi:.3g})").format(
            share="99.9%", used=layer["levels_used"], levels=layer["levels"], lo=layer["float_min"], hi=layer["float_max"]))
    if layer.get("weight_outliers") is not None and layer["weight_outliers"] > WEIGHT_OUTLIER_RATIO:
        out.append(_("weights with outliers: a channel's largest weight is {ratio:.0f}x its mean").format(ratio=layer["weight_outliers"]))
    if starts_here:
        out.append(_("accumulated error starts here"))
    own = layer["same_input"].get("sqnr_db")
    if not out and own is not None and own < 20:
        out.append(_("its own 8-bit error is large (same-input SQNR {sqnr:.1f} dB)").format(sqnr=own))
    elif not out and own is None and layer.get("sqnr_drop_db", 0.0) >= ACCUMULATED_DROP_DB:
        out.append(_("the accumulated SQNR falls by {drop:.1f} dB here").format(drop=layer["sqnr_drop_db"]))
    return out


def with_float_layers(settings: Any, names: List[str], key: str = "float_layers") -> Any:
    """A copy of ``settings`` with ``names`` added to ``[qconfig] <key>``: ``float_layers`` (the one-key fix
    of the torch backend), or ``int16_layers`` where the backend's fix is 16-bit activations
    (:attr:`DebugReport.fix_key`). A name moves out of the other list."""
    from . import settings as S

    other = "int16_layers" if key == "float_layers" else "float_layers"
    data = settings.model_dump()
    data["qconfig"][key] = list(dict.fromkeys(list(getattr(settings.qconfig, key)) + list(names)))
    data["qconfig"][other] = [n for n in getattr(settings.qconfig, other) if n not in names]
    return S.validate(data)


FIX_WORDS = {"float_layers": N_("in float"), "int16_layers": N_("in int16")}
"""How the fix keeps a layer, for messages ("keep mid in int16"); translate where shown: ``_(FIX_WORDS[key])``."""


BEFORE_FIX = "before_fix.json"
"""The run's results before ``[qconfig] float_layers`` changed, for the side-by-side comparison."""


def results_snapshot(run_dir: str, settings: Any) -> Dict[str, Any]:
    """Top-1 per stage, the compile stage's latency figures, the deployable's size and the layers in
    float of the run in ``run_dir`` as it is now (from its state.json)."""
    from .record import RunRecord
    from .stage_table import STAGES

    rec = RunRecord.from_state(run_dir)
    compile_metrics = rec.metrics.get("compile", {})
    sizes = {name: a.get("size") for name, a in rec.artifacts.items() if a.get("stage") == "compile"}
    deployable = next((n for n in ("model.hbm", "model.pt2") if n in sizes), None)
    return {
        "top1": {stage: rec.top1(stage) for stage in STAGES},
        "latency_ms": {k: v for k, v in compile_metrics.items() if k.startswith("latency_ms_")},
        "deployable": deployable,
        "deployable_size": sizes.get(deployable) if deployable else None,
        "float_layers": list(settings.qconfig.float_layers),
        "int16_layers": list(settings.qconfig.int16_layers),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def save_before_fix(run_dir: str, settings: Any) -> str:
    """Keep :func:`results_snapshot` as ``before_fix.json`` (atomically) before a fix reruns stages."""
    from .io import atomic_write_json

    path = os.path.join(run_dir, BEFORE_FIX)
    atomic_write_json(path, results_snapshot(run_dir, settings))
    return path


def load_before_fix(run_dir: str) -> Optional[Dict[str, Any]]:
    """What :func:`save_before_fix` kept, or None."""
    import json

    try:
        with open(os.path.join(run_dir, BEFORE_FIX), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------- html

def render_html(report: DebugReport) -> str:
    """A self-contained page: summary, per-layer table (worst highlighted), SQNR along the depth as an
    inline SVG, per-class accuracy."""
    e = html.escape
    rows = []
    for layer in report.layers:
        worst = layer["rank"] <= 3
        gained = "" if layer["top1_gained"] is None else "%+.2f" % layer["top1_gained"]
        own = layer["same_input"]
        rows.append("<tr%s><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%.1f</td>"
                    "<td>%.4f</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                        ' class="worst"' if worst else "", layer["rank"], e(layer["name"]), e(layer["op"]),
                        _num(own.get("sqnr_db"), "%.1f"), _num(own.get("cosine"), "%.4f"), _num(own.get("max_abs"), "%.3g"),
                        layer["accumulated"]["sqnr_db"], layer["accumulated"]["cosine"],
                        "-" if layer["scale"] is None else "%.3g" % layer["scale"], gained, e("; ".join(layer["reasons"]))))
    classes = "".join("<tr><td>%s</td><td>%d</td><td>%.2f</td><td>%.2f</td><td>%+.2f</td></tr>" % (
        e(c["class"]), c["images"], c["float"], c["quantized"], c["quantized"] - c["float"]) for c in report.per_class)
    return """<!doctype html><html><head><meta charset="utf-8"><title>qat-tui debug report</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;
font-size:13px}tr.worst{background:#fde2e2}</style></head><body>
<h1>Per-layer debug: float vs %s model</h1>
<p>%s. Backend %s; %d images compared, %d for top-1 (float %.2f%%, quantized %.2f%%); %.0f s.
Layers kept in float: %s; with 16-bit output: %s.</p>
<h2>SQNR along the depth (dB)</h2>%s
<h2>Layers (graph order; rank 1 = largest own error)</h2>
<table><tr><th>rank</th><th>layer</th><th>op</th><th>same-input SQNR</th><th>cosine</th><th>max err</th>
<th>accumulated SQNR</th><th>cosine</th><th>scale</th><th>top-1 gained in float</th><th>why</th></tr>%s</table>
<h2>Per class (top-1 %%)</h2><table><tr><th>class</th><th>images</th><th>float</th><th>quantized</th><th>change</th></tr>%s</table>
</body></html>
""" % (e(report.source), e(report.run_dir), e(report.backend), report.images, report.eval_images,
       report.top1["float"], report.top1["quantized"], report.seconds, e(", ".join(report.float_layers) or "none"), e(", ".join(report.int16_layers) or "none"),
       _svg(report.layers), "".join(rows), classes)


def _num(v: Any, fmt: str) -> str:
    return "-" if v is None else fmt % v


def _svg(layers: List[Dict[str, Any]], w: int = 720, h: int = 220) -> str:
    if not layers:
        return ""
    vals = [(layer["same_input"].get("sqnr_db") or 0.0, layer["accumulated"]["sqnr_db"]) for layer in layers]
    top = max(max(v) for v in vals) or 1.0
    n = max(len(vals) - 1, 1)

    def line(k: int, colour: str) -> str:
        pts = " ".join("%.1f,%.1f" % (10 + i * (w - 20) / n, h - 10 - max(v[k], 0) * (h - 20) / top) for i, v in enumerate(vals))
        return '<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (colour, pts)

    return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">%s%s'
            '<text x="12" y="14" font-size="12" fill="#c33">same input</text>'
            '<text x="100" y="14" font-size="12" fill="#36c">accumulated</text></svg>' % (w, h, line(0, "#c33"), line(1, "#36c")))


__all__ = ["DebugReport", "run_debug", "results_snapshot", "save_before_fix", "load_before_fix", "BEFORE_FIX", "load_report", "reasons", "with_float_layers", "FIX_WORDS", "render_html", "REPORT_JSON", "REPORT_HTML"]
