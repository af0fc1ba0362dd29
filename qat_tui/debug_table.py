"""The per-layer debug table, defined once: its columns and cells, for the headless ``qat-tui debug``
(rich) and the wizard's debug screen (a DataTable). Reads a :class:`core.debug.DebugReport`; no torch."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

Column = Tuple[str, str, Callable[[Dict[str, Any]], Any]]
"""(key, header, value of a layer row): the value sorts; :func:`cell` formats it."""

COLUMNS: List[Column] = [
    ("rank", "rank", lambda r: r["rank"]),
    ("name", "layer", lambda r: r["name"]),
    ("op", "op", lambda r: r["op"]),
    ("same_sqnr", "own SQNR dB", lambda r: r["same_input"]["sqnr_db"]),
    ("same_cos", "own cos", lambda r: r["same_input"]["cosine"]),
    ("acc_sqnr", "accum SQNR dB", lambda r: r["accumulated"]["sqnr_db"]),
    ("acc_cos", "accum cos", lambda r: r["accumulated"]["cosine"]),
    ("drop", "drop dB", lambda r: r.get("sqnr_drop_db")),
    ("max_abs", "max err", lambda r: r["same_input"]["max_abs"]),
    ("scale", "scale", lambda r: r["scale"]),
    ("gained", "top-1 gain", lambda r: r["top1_gained"]),
    ("why", "why", lambda r: "; ".join(r["reasons"])),
]
""""own" = same input (the layer fed the float model's input: its error alone); "accum" = accumulated
(each model fed its own previous output); "drop" = how far the accumulated SQNR falls at the layer (what
Horizon layers rank by: its tool has no same-input SQNR, see core.debug._rank)."""


def cell(key: str, value: Any) -> str:
    """A column's value as shown."""
    if value is None:
        return "-"
    if key in ("same_sqnr", "acc_sqnr", "drop"):
        return "%.1f" % value
    if key in ("same_cos", "acc_cos"):
        return "%.4f" % value
    if key in ("max_abs", "scale"):
        return "%.3g" % value
    if key == "gained":
        return "%+.2f" % value
    return str(value)


def sort_key(key: str) -> Callable[[Dict[str, Any]], Any]:
    """Sort key of column ``key`` (missing values last)."""
    get = {k: f for k, _h, f in COLUMNS}[key]

    def k(row: Dict[str, Any]) -> Any:
        v = get(row)
        return (v is None, v if v is not None else 0)

    return k


def summary(report: Any) -> str:
    """One line: what was compared and the top-1 of both models."""
    return "float vs %s, %d images; top-1 on %d: float %.2f%%, int8 %.2f%% (%+.2f); %.0f s" % (
        report.source, report.images, report.eval_images, report.top1["float"], report.top1["quantized"],
        report.top1["quantized"] - report.top1["float"], report.seconds)


def print_report(console: Any, report: Any, rows: int = 0) -> None:
    """The report as rich tables: layers worst first (all, or the first ``rows``), then per class."""
    from rich.table import Table

    console.print(summary(report), highlight=False)
    t = Table(*[h for _k, h, _f in COLUMNS], title="layers, worst first (own = same input: the layer's error alone)")
    layers = report.worst()[: rows or None]
    for r in layers:
        style = "red" if r["rank"] <= 3 and r["reasons"] else None
        t.add_row(*[cell(k, f(r)) for k, _h, f in COLUMNS], style=style)
    console.print(t)
    c = Table("class", "images", "float %", "quantized %", "change", title="per class")
    for row in sorted(report.per_class, key=lambda r: r["quantized"] - r["float"]):
        c.add_row(row["class"], str(row["images"]), "%.2f" % row["float"], "%.2f" % row["quantized"],
                  "%+.2f" % (row["quantized"] - row["float"]))
    console.print(c)
    worst = [r for r in report.worst() if (r["top1_gained"] or 0) > 0]
    if worst:
        best = max(worst, key=lambda r: r["top1_gained"])
        int16 = getattr(report, "fix_key", "float_layers") == "int16_layers"
        console.print("fix: keep %s %s (top-1 %+.2f with it in float): qat-tui debug %s %s %s" % (
            best["name"], "in int16" if int16 else "in float", best["top1_gained"], report.run_dir,
            "--int16" if int16 else "--keep-float", best["name"]), highlight=False)
