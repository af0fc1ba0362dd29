"""The per-layer debug table, defined once: its columns and cells, for the headless ``qat-tui debug``
(rich) and the wizard's debug screen (a DataTable). Reads a :class:`core.debug.DebugReport`; no torch."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from core.i18n import N_, _

Column = Tuple[str, str, Callable[[Dict[str, Any]], Any]]
"""(key, header, value of a layer row): the value sorts; :func:`cell` formats it. The header is English,
marked with ``N_``: shown with :func:`header` (translated)."""

COLUMNS: List[Column] = [
    ("rank", N_("rank"), lambda r: r["rank"]),
    ("name", N_("layer"), lambda r: r["name"]),
    ("op", N_("op"), lambda r: r["op"]),
    ("same_sqnr", N_("own SQNR dB"), lambda r: r["same_input"]["sqnr_db"]),
    ("same_cos", N_("own cos"), lambda r: r["same_input"]["cosine"]),
    ("acc_sqnr", N_("accum SQNR dB"), lambda r: r["accumulated"]["sqnr_db"]),
    ("acc_cos", N_("accum cos"), lambda r: r["accumulated"]["cosine"]),
    ("drop", N_("drop dB"), lambda r: r.get("sqnr_drop_db")),
    ("max_abs", N_("max err"), lambda r: r["same_input"]["max_abs"]),
    ("scale", N_("scale"), lambda r: r["scale"]),
    ("gained", N_("top-1 gain"), lambda r: r["top1_gained"]),
    ("why", N_("why"), lambda r: "; ".join(_(x) for x in r["reasons"])),
]
""""own" = same input (the layer fed the float model's input: its error alone); "accum" = accumulated
(each model fed its own previous output); "drop" = how far the accumulated SQNR falls at the layer (what
Horizon layers rank by: its tool has no same-input SQNR, see core.debug._rank)."""


def header(key: str) -> str:
    """Column ``key``'s header in the current language."""
    return _({k: h for k, h, _f in COLUMNS}[key])


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
    return _("float vs {source}, {images} images; top-1 on {eval_images}: float {float:.2f}%, int8 {int8:.2f}% "
             "({change:+.2f}); {seconds:.0f} s").format(
        source=report.source, images=report.images, eval_images=report.eval_images, float=report.top1["float"],
        int8=report.top1["quantized"], change=report.top1["quantized"] - report.top1["float"], seconds=report.seconds)


def print_report(console: Any, report: Any, rows: int = 0) -> None:
    """The report as rich tables: layers worst first (all, or the first ``rows``), then per class."""
    from rich.table import Table

    console.print(summary(report), highlight=False)
    t = Table(*[_(h) for _k, h, _f in COLUMNS], title=_("layers, worst first (own = same input: the layer's error alone)"))
    layers = report.worst()[: rows or None]
    for r in layers:
        style = "red" if r["rank"] <= 3 and r["reasons"] else None
        t.add_row(*[cell(k, f(r)) for k, _h, f in COLUMNS], style=style)
    console.print(t)
    c = Table(_("class"), _("images"), _("float %"), _("quantized %"), _("change"), title=_("per class"))
    for row in sorted(report.per_class, key=lambda r: r["quantized"] - r["float"]):
        c.add_row(row["class"], str(row["images"]), "%.2f" % row["float"], "%.2f" % row["quantized"],
                  "%+.2f" % (row["quantized"] - row["float"]))
    console.print(c)
    worst = [r for r in report.worst() if (r["top1_gained"] or 0) > 0]
    if worst:
        best = max(worst, key=lambda r: r["top1_gained"])
        int16 = getattr(report, "fix_key", "float_layers") == "int16_layers"
        console.print(_("fix: keep {layer} {where} (top-1 {gain:+.2f} with it in float): {command}").format(
            layer=best["name"], where=_("in int16") if int16 else _("in float"), gain=best["top1_gained"],
            command="qat-tui debug %s %s %s" % (report.run_dir, "--int16" if int16 else "--keep-float", best["name"])),
            highlight=False)
