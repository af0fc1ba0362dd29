"""Why did the int8 model lose accuracy? The per-layer debug of a run, and the one-key fix.

Tabs: 1 Layers (sortable table, worst highlighted, the highlighted layer's figures and reasons below),
2 Depth (own and accumulated SQNR along the network, textual-plotext), 3 Classes (per-class top-1 and
where the quantized model's predictions went). ``space`` marks layers, ``f`` shows which stages keeping
them in float reruns and why, and reruns them (:class:`FixModal`). The debug itself
(:func:`core.debug.run_debug`) runs in a thread worker; an earlier ``debug_report.json`` of the same
settings is shown at once (``r`` runs it again).
"""
from __future__ import annotations

import threading
from typing import Any, List, Optional, Set

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Static, TabbedContent, TabPane

from core.i18n import N_, _

from .. import messages as M
from ..debug_table import COLUMNS, cell, header, sort_key, summary
from .base import TranslatedBindings

SHOWN = ("rank", "name", "same_sqnr", "acc_sqnr", "gained", "op", "why")
"""The columns of the layer table at 80 columns (all of them are in the detail line and the reports)."""


class DebugScreen(TranslatedBindings, Screen):
    BINDINGS = [  # the tab keys are on the tabs: the footer keeps room for Back and Quit at 80 columns
        Binding("1", "tab('layers')", N_("Layers"), show=False, id="debug.tab_layers"),
        Binding("2", "tab('depth')", N_("Depth"), show=False, id="debug.tab_depth"),
        Binding("3", "tab('classes')", N_("Classes"), show=False, id="debug.tab_classes"),
        Binding("space", "mark", N_("Mark"), id="debug.mark"),
        Binding("s", "sort", N_("Sort"), id="debug.sort"),
        Binding("f", "fix", N_("Fix + rerun"), id="debug.fix"),
        Binding("r", "rerun_debug", N_("Debug again"), show=False, id="debug.again"),
        Binding("escape", "back", N_("Back"), id="debug.back"),
    ]

    def __init__(self, settings: Any) -> None:
        super().__init__()
        self.settings = settings
        self.report: Any = None
        self.rows: List[Any] = []
        self.marked: Set[str] = set()
        self.sort_index = 0
        self.cancel = threading.Event()

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(" %s > " % _("Results"), (" %s " % _("Debug"), "bold reverse"),
                                   ("   " + self.settings.run_path(), "dim")),
                     id="breadcrumb")
        yield Static("", id="debug-summary")
        with TabbedContent(initial="layers", id="debug-tabs"):
            with TabPane("1 " + _("Layers"), id="layers"):
                yield DataTable(id="layer-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="layer-detail", classes="detail")
            with TabPane("2 " + _("Depth"), id="depth"):
                yield self._make_plot()
            with TabPane("3 " + _("Classes"), id="classes"):
                with VerticalScroll():
                    yield DataTable(id="class-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def _make_plot(self) -> Any:
        try:
            from textual_plotext import PlotextPlot

            return PlotextPlot(id="depth-plot")
        except Exception:  # plotext missing: the table has the same numbers
            return Static(_("(textual-plotext is not installed: the table has the same figures)"), id="depth-plot")

    def on_mount(self) -> None:
        table = self.query_one("#layer-table", DataTable)
        table.add_column("", key="mark")
        for key in SHOWN:
            table.add_column(header(key), key=key)
        from core.debug import load_report

        report = load_report(self.settings.run_path())
        if (report is not None and report.float_layers == list(self.settings.qconfig.float_layers)
                and report.int16_layers == list(self.settings.qconfig.int16_layers)):
            self.show(report, _("report of {when} (r: run it again)").format(when=report.created.replace("T", " ")[5:16]))
        else:
            self.action_rerun_debug()

    def on_unmount(self) -> None:
        self.cancel.set()

    # ------------------------------------------------------------------------------------ debug
    def action_rerun_debug(self) -> None:
        self.query_one("#debug-summary", Static).update(Text(_("running the per-layer debug..."), style="yellow"))
        self.cancel = threading.Event()
        self.run_worker(self._debug, thread=True, group="debug", exclusive=True)

    def _debug(self) -> None:
        from core.debug import run_debug
        from core.errors import Cancelled, QatError

        def log(line: str) -> None:
            self.app.call_from_thread(self.query_one("#debug-summary", Static).update, Text(line[:160], style="yellow"))

        try:
            report = run_debug(self.settings, log=log, cancel=self.cancel)
        except Cancelled:
            return
        except QatError as e:
            self.app.call_from_thread(self.post_message, M.ShowError.of(e))
            self.app.call_from_thread(self.query_one("#debug-summary", Static).update, Text(_("debug failed: {error}").format(error=e.msg), style="red"))
            return
        self.app.call_from_thread(self.show, report, "")

    def show(self, report: Any, note: str) -> None:
        self.report = report
        self.rows = sorted(report.layers, key=sort_key("rank"))
        head = Text(summary(report))
        extra = (([_("in float now: {layers}").format(layers=", ".join(report.float_layers))] if report.float_layers else [])
                 + ([_("in int16 now: {layers}").format(layers=", ".join(report.int16_layers))] if report.int16_layers else [])
                 + ([note] if note else []))
        if extra:
            head.append("\n" + "; ".join(extra), style="dim")
        self.query_one("#debug-summary", Static).update(head)
        self._fill_layers()
        self._fill_plot()
        self._fill_classes()
        self.query_one("#layer-table", DataTable).focus()

    def _fill_layers(self) -> None:
        table = self.query_one("#layer-table", DataTable)
        table.clear()
        get = {k: f for k, _h, f in COLUMNS}
        for r in self.rows:
            style = "bold red" if r["rank"] <= 3 and r["reasons"] else ""
            cells = [Text("*" if r["name"] in self.marked else " ", style="bold yellow")]
            cells += [Text(cell(k, get[k](r)), style=style) for k in SHOWN]
            table.add_row(*cells, key=r["name"])
        if self.rows:
            self._detail(0)

    def _detail(self, i: int) -> None:
        if not 0 <= i < len(self.rows):
            return
        r = self.rows[i]
        t = Text.assemble((r["name"], "bold"), " %s  " % r["op"], _("rank {rank}").format(rank=r["rank"]), "  ")
        own = r["same_input"]
        t.append(_("own: SQNR {sqnr} dB cos {cos} max err {max_err} | accumulated: SQNR {acc_sqnr:.1f} dB "
                   "({drop} dB drop here) cos {acc_cos:.4f}").format(
            sqnr=cell("same_sqnr", own.get("sqnr_db")), cos=cell("same_cos", own.get("cosine")),
            max_err=cell("max_abs", own.get("max_abs")), acc_sqnr=r["accumulated"]["sqnr_db"],
            drop=cell("drop", r.get("sqnr_drop_db")), acc_cos=r["accumulated"]["cosine"]) + "\n")
        t.append(_("range {low:.3g}..{high:.3g}").format(low=r["float_min"], high=r["float_max"]))
        if r["scale"] is not None:
            t.append(_(", scale {scale:.3g}, {used} of {levels} levels hold 99.9%, clipped {clipped:.2f}%").format(
                scale=r["scale"], used=r["levels_used"] or 0, levels=r["levels"] or 0, clipped=100 * r["clipped"]))
        if r["top1_gained"] is not None:
            t.append(_(", top-1 {gain:+.2f} in float").format(gain=r["top1_gained"]), style="bold")
        for why in r["reasons"]:
            t.append("\n- " + _(why), style="yellow")
        self.query_one("#layer-detail", Static).update(t)

    def _fill_plot(self) -> None:
        plot = self.query_one("#depth-plot")
        if not hasattr(plot, "plt"):
            return
        layers = self.report.layers
        x = list(range(1, len(layers) + 1))
        plt = plot.plt
        plt.clear_data()
        if all(r["same_input"].get("sqnr_db") is not None for r in layers):
            plt.plot(x, [r["same_input"]["sqnr_db"] for r in layers], label=_("own (same input)"))
        plt.plot(x, [r["accumulated"]["sqnr_db"] for r in layers], label=_("accumulated"))
        plt.title(_("SQNR (dB) along the depth: layer 1 = {first} ... {n} = {last}").format(
            first=layers[0]["name"], n=len(layers), last=layers[-1]["name"]))
        plt.xlabel(_("layer (graph order)"))
        plot.refresh()

    def _fill_classes(self) -> None:
        table = self.query_one("#class-table", DataTable)
        table.clear(columns=True)
        names = self.report.classes
        for label in (N_("class"), N_("images"), N_("float %"), N_("int8 %"), N_("change"), N_("int8 predicted most as")):
            table.add_column(_(label))
        cm = self.report.confusion["quantized"]
        for i, c in sorted(enumerate(self.report.per_class), key=lambda ic: ic[1]["quantized"] - ic[1]["float"]):
            row = cm[i]
            others = [(n, j) for j, n in enumerate(row) if j != i and n]
            most = max(others) if others else None
            table.add_row(c["class"], str(c["images"]), "%.2f" % c["float"], "%.2f" % c["quantized"],
                          "%+.2f" % (c["quantized"] - c["float"]),
                          "-" if most is None else "%s (%d)" % (names[most[1]], most[0]))

    # ---------------------------------------------------------------------------------- actions
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "layer-table":
            self._detail(event.cursor_row)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SHOWN:
            self._sort_by(key)

    def action_sort(self) -> None:
        """Sort by the next column (rank, layer, own SQNR, accumulated SQNR, top-1 gain, op, why)."""
        self.sort_index = (self.sort_index + 1) % len(SHOWN)
        self._sort_by(SHOWN[self.sort_index])

    def _sort_by(self, key: str) -> None:
        if self.report is None:
            return
        self.rows = sorted(self.report.layers, key=sort_key(key), reverse=key == "gained")
        self._fill_layers()
        self.notify(_("sorted by {column}").format(column=header(key)), timeout=2)

    def action_mark(self) -> None:
        table = self.query_one("#layer-table", DataTable)
        if not self.rows or table.cursor_row >= len(self.rows):
            return
        name = self.rows[table.cursor_row]["name"]
        self.marked.symmetric_difference_update({name})
        table.update_cell(name, "mark", Text("*" if name in self.marked else " ", style="bold yellow"))

    def action_fix(self) -> None:
        from core.debug import FIX_WORDS, with_float_layers

        key = getattr(self.report, "fix_key", "float_layers")
        if not self.marked:
            self.notify(_("mark the layers to keep {where} with space first").format(where=_(FIX_WORDS[key])),
                        severity="warning", timeout=3)
            return
        from core.errors import QatError
        from core.pipeline import Pipeline

        try:
            fixed = with_float_layers(self.settings, sorted(self.marked), key)
            plan = [(i.stage, i.reason) for i in Pipeline(fixed).plan() if i.action == "run"]
        except QatError as e:
            self.post_message(M.ShowError.of(e))
            return

        def chosen(go: Optional[bool]) -> None:
            if go:
                from core.debug import save_before_fix

                save_before_fix(self.settings.run_path(), self.settings)
                self.post_message(M.StartRun(fixed))

        self.app.push_screen(FixModal(list(getattr(fixed.qconfig, key)), plan, key), chosen)

    def action_tab(self, tab: str) -> None:
        self.query_one("#debug-tabs", TabbedContent).active = tab

    def action_back(self) -> None:
        self.app.pop_screen()


class FixModal(TranslatedBindings, ModalScreen):
    """Which stages keeping ``layers`` in higher precision (``[qconfig] <key>``: float_layers or
    int16_layers) reruns, and why; dismisses True to rerun them."""

    BINDINGS = [Binding("enter", "choose(True)", N_("Rerun"), id="fix.rerun"),
                Binding("escape", "choose(False)", N_("Cancel"), id="fix.cancel")]

    def __init__(self, layers: List[str], plan: List[Any], key: str = "float_layers") -> None:
        super().__init__()
        self.fix_layers, self.reruns, self.key = layers, plan, key

    def compose(self) -> ComposeResult:
        from core.debug import FIX_WORDS

        with Vertical(id="fix-box"):
            yield Static(Text(" %s " % _("Keep {where}: {layers}").format(
                where=_(FIX_WORDS[self.key]), layers=", ".join(self.fix_layers)), style="bold black on yellow"))
            lines = "\n".join("  %-10s %s" % (stage, _(why)) for stage, why in self.reruns) or "  " + _("nothing reruns")
            yield Static("[qconfig] %s = %s\n" % (self.key, list(self.fix_layers))
                         + _("These stages rerun (the others are kept):") + "\n" + lines + "\n"
                         + _("The results before the fix are kept for the side-by-side comparison."),
                         id="fix-message", markup=False)
            with Horizontal(id="fix-buttons"):
                yield Button(_("Rerun") + " (enter)", id="fix-go", variant="primary", compact=True)
                yield Button(_("Cancel") + " (esc)", id="fix-cancel", compact=True)

    def action_choose(self, go: bool) -> None:
        self.dismiss(go)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "fix-go")
