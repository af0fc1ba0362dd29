"""Results of a run: accuracy of every stage side by side (drop from float in points), the model check's
advice, every artifact with its size and purpose, and how to rerun headless."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from core.settings import SETTINGS_FILENAME, STAGES, Settings

from core import stage_table as T
from core.i18n import N_, _
from core.record import RunRecord

from .base import HelpfulScreen, breadcrumb



def load_check(record: RunRecord) -> Optional[Dict[str, Any]]:
    """The check advice: from the CheckAdvice event, else from check_report.json (compile skipped)."""
    if record.check is not None:
        return record.check
    path = record.artifact_path("check_report.json")
    if path and os.path.exists(path):
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = json.load(f)
            return {"passed": bool(data.get("passed")), "summary": data.get("summary", ""), "items": data.get("items", [])}
        except (OSError, ValueError):
            return None
    m = record.metrics.get("compile", {})
    if "check_passed" in m:
        return {"passed": bool(m["check_passed"]), "summary": m.get("check_summary", ""), "items": m.get("check_items", [])}
    return None


def _strip_verdict(summary: str) -> str:
    """``"PASS: 53 of 53 ..."`` -> ``"53 of 53 ..."`` (the verdict is shown separately)."""
    for word in ("PASS:", "FAIL:", "PASS", "FAIL"):
        if summary.startswith(word):
            return summary[len(word):].strip()
    return summary


def check_where(item: Dict[str, Any]) -> str:
    """``"flatten (flatten_1) in features.0"``: a check item's op, graph node and module, each only when
    known (an op called in the model's own forward has no module)."""
    op, node, module = item.get("op", ""), item.get("node", ""), item.get("module", "")
    where = "%s (%s)" % (op, node) if node and node != op else op
    return where + (_(" in {module}").format(module=module) if module else "")


STATUS_NOTES = {
    "finished": N_("ran now"),
    "skipped": N_("done earlier"),
    "stale": N_("stale: reruns next time"),
    "off": N_("off"),
    "pending": N_("not run"),
    "failed": N_("FAILED"),
    "cancelled": N_("cancelled"),
    "running": N_("interrupted"),
    "interrupted": N_("interrupted"),
}
"""A stage's status as the accuracy table's note says it (English, marked: shown with ``_()``)."""


def accuracy_rows(record: RunRecord, settings: Settings) -> List[List[str]]:
    """``[stage label, top-1, top-5, vs float, note]`` for the five stages."""
    base = record.top1("float")
    rows = []
    for stage in STAGES:
        m = record.metrics.get(stage, {})
        top1 = record.top1(stage)
        top5 = m.get("top5")
        status = record.status.get(stage, "pending")
        note = _(STATUS_NOTES.get(status, status))
        when = record.ran_at(stage)
        if when and status in ("skipped", "stale", "finished", "failed", "cancelled"):
            note += " (%s)" % when
        if stage == "compile" and top1 is None and status in ("finished", "skipped"):
            note += _("; package off") if not settings.compile.package else _("; not evaluated")
        if stage == "float" and top1 is not None:
            drop = _("baseline")
        elif top1 is not None and base is not None:
            drop = "%+.2f" % (top1 - base)
        else:
            drop = "-"
        rows.append([
            _(T.stage(stage).label),
            "-" if top1 is None else "%.2f" % top1,
            "-" if not isinstance(top5, (int, float)) else "%.2f" % top5,
            drop,
            note,
        ])
    return rows


def before_after_rows(before: Dict[str, Any], now: Dict[str, Any]) -> List[List[str]]:
    """``[what, before the fix, now, change]``: top-1 per stage, the int8 latency, the deployable's size
    and the layers kept in float (:func:`core.debug.results_snapshot` of both)."""
    from core.io import human_size

    def pct(v: Any) -> str:
        return "-" if v is None else "%.2f" % v

    rows = []
    for stage in STAGES:
        b, n = before["top1"].get(stage), now["top1"].get(stage)
        rows.append([_(T.stage(stage).label) + " top-1 %", pct(b), pct(n), "-" if b is None or n is None else "%+.2f" % (n - b)])
    for key in sorted(set(before["latency_ms"]) | set(now["latency_ms"])):
        if "int8" in key:
            b, n = before["latency_ms"].get(key), now["latency_ms"].get(key)
            rows.append([_("int8 latency ms (batch {batch})").format(batch=key.rsplit("bs", 1)[-1]), "-" if b is None else "%.2f" % b,
                         "-" if n is None else "%.2f" % n, "-" if b is None or n is None else "%+.2f" % (n - b)])
    b, n = before.get("deployable_size"), now.get("deployable_size")
    rows.append([_("{file} size").format(file=now.get("deployable") or before.get("deployable") or _("deployable")),
                 "-" if b is None else human_size(b), "-" if n is None else human_size(n), ""])
    rows.append([_("layers in float"), ", ".join(before["float_layers"]) or _("none"), ", ".join(now["float_layers"]) or _("none"), ""])
    if before.get("int16_layers") or now.get("int16_layers"):
        rows.append([_("layers in int16"), ", ".join(before.get("int16_layers", [])) or _("none"),
                     ", ".join(now.get("int16_layers", [])) or _("none"), ""])
    return rows


N_("Settings"), N_("Run")  # the breadcrumb's names (translated in breadcrumb())


class ResultsScreen(HelpfulScreen):
    """Tabs: 1 Summary (accuracy, check verdict, rerun), 2 Artifacts, 3 Check advice, and 4 Before/after
    when a debug fix reran stages; ``d`` opens the per-layer debug."""

    HELP_PAGE = "results"

    BINDINGS = [  # the tab keys are on the tabs: the footer keeps room for Quit at 80 columns
        Binding("1", "tab('summary')", N_("Summary"), show=False, id="results.tab_summary"),
        Binding("2", "tab('artifacts')", N_("Artifacts"), show=False, id="results.tab_artifacts"),
        Binding("3", "tab('check')", N_("Check"), show=False, id="results.tab_check"),
        Binding("4", "tab('compare')", N_("Before/after"), show=False, id="results.tab_compare"),
        Binding("d", "debug", N_("Debug layers"), id="results.debug"),
        Binding("t", "raw_check", N_("Raw check text"), id="results.raw_check"),
        Binding("escape", "back", N_("Back to run"), id="results.back"),
    ]

    def __init__(self, record: RunRecord, settings: Settings) -> None:
        super().__init__()
        self.record = record
        self.settings = settings
        self.check_data = load_check(record)
        self.check_items = [i for i in (self.check_data or {}).get("items", []) if i.get("status") != "int8"]
        self.artifact_names = list(record.artifacts)
        from core.debug import load_before_fix

        before = load_before_fix(record.run_dir or settings.run_path())
        changed = before and (before.get("float_layers") != list(settings.qconfig.float_layers)
                              or before.get("int16_layers", []) != list(settings.qconfig.int16_layers))
        self.before = before if changed else None

    def compose(self) -> ComposeResult:
        crumb = breadcrumb(-1, ["Settings"])
        crumb.append(" > %s > " % _("Run"), style="dim")
        crumb.append(" %s " % _("Results"), style="bold reverse")
        crumb.append("   %s" % (self.record.run_dir or self.settings.run_path()), style="dim")
        yield Static(crumb, id="breadcrumb")
        with TabbedContent(initial="summary", id="results-tabs"):
            with TabPane("1 " + _("Summary"), id="summary"):
                with VerticalScroll():
                    yield Static("", id="results-headline")
                    yield DataTable(id="accuracy-table", cursor_type="row", zebra_stripes=True)
                    yield Static("", id="results-summary")
            with TabPane("2 " + _("Artifacts"), id="artifacts"):
                yield DataTable(id="artifact-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="artifact-detail", classes="detail")
            with TabPane("3 " + _("Check"), id="check"):
                yield Static("", id="check-verdict")
                yield DataTable(id="check-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="check-detail", classes="detail")
            if self.before is not None:
                with TabPane("4 " + _("Before/after"), id="compare"):
                    yield Static("", id="compare-note")
                    yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        from core.io import human_size

        r = self.record
        fin = r.finished
        if fin is None:
            head = Text(_("run did not finish"), style="bold yellow")
        elif fin.ok:
            head = Text(_("run finished in {seconds:.0f} s").format(seconds=fin.seconds), style="bold green")
        elif fin.cancelled:
            head = Text(_("run cancelled at {stage} (finished stages are kept)").format(stage=fin.failed_stage), style="bold magenta")
        else:
            head = Text(_("run failed at {stage}").format(stage=fin.failed_stage), style="bold red")
        self.query_one("#results-headline", Static).update(head)

        acc = self.query_one("#accuracy-table", DataTable)
        for label in (N_("stage"), N_("top-1 %"), N_("top-5 %"), N_("vs float"), N_("note")):
            acc.add_column(_(label))
        for row in accuracy_rows(r, self.settings):
            acc.add_row(*row)

        run_dir = r.run_dir or self.settings.run_path()
        settings_path = r.settings_path or os.path.join(run_dir, SETTINGS_FILENAME)
        t = Text()
        if self.check_data is not None:
            passed = self.check_data["passed"]
            t.append(_("model check: "), style="bold")
            t.append("PASS" if passed else "FAIL", style="bold green" if passed else "bold red")
            t.append("  %s %s\n" % (_strip_verdict(self.check_data.get("summary", "")), _("(tab 3)")))
        for label, line in self._perf_lines():
            t.append(_(label) + ": ", style="bold")
            t.append(line + "\n")
        t.append(_("run folder: "), style="bold")
        t.append(run_dir + "\n")
        t.append(_("rerun headless: "), style="bold")
        t.append("qat-tui run --config %s\n" % settings_path, style="cyan")
        t.append(_("(finished stages are skipped when their settings are unchanged; add --force to redo them)"), style="dim")
        self.query_one("#results-summary", Static).update(t)

        arts = self.query_one("#artifact-table", DataTable)
        for label in (N_("file"), N_("size"), N_("stage"), N_("what it is")):
            arts.add_column(_(label))
        for name in self.artifact_names:
            a = r.artifacts[name]
            arts.add_row(name, human_size(int(a.get("size", 0) or 0)), a.get("stage", ""), _(a.get("description", "")), key=name)
        if not self.artifact_names:
            self.query_one("#artifact-detail", Static).update(_("no artifacts recorded"))
        else:
            self._show_artifact(0)

        verdict = self.query_one("#check-verdict", Static)
        ct = self.query_one("#check-table", DataTable)
        for label in (N_("status"), N_("op"), N_("module"), N_("reason"), N_("suggestion")):
            ct.add_column(_(label))
        if self.check_data is None:
            verdict.update(Text(_("no model check (the compile stage did not run)"), style="dim"))
        else:
            passed = self.check_data["passed"]
            v = Text("PASS" if passed else "FAIL", style="bold white on green" if passed else "bold white on red")
            v.append(" " + _strip_verdict(self.check_data.get("summary", "")))
            v.append("\n" + (_("advice (ops that are not plain int8; t: the raw text as printed):") if self.check_items
                            else _("nothing to advise (t: the raw text as printed).")), style="dim")
            verdict.update(v)
            for item in self.check_items:
                ct.add_row(item.get("status", ""), item.get("op", ""), item.get("module") or "-", _(item.get("reason", "")),
                           _(item.get("suggestion", "")))
            if self.check_items:
                self._show_check(0)
        if self.before is not None:
            from core.debug import results_snapshot

            now = results_snapshot(run_dir, self.settings)
            self.query_one("#compare-note", Static).update(Text(
                _("the same run folder before keeping layers in float ({when}) and now").format(
                    when=self.before.get("created", "")), style="dim"))
            cmp_table = self.query_one("#compare-table", DataTable)
            for label in ("", _("before the fix"), _("now"), _("change")):
                cmp_table.add_column(label)
            for row in before_after_rows(self.before, now):
                cmp_table.add_row(*row)
            self.query_one("#results-summary", Static).update(
                Text.assemble(t, ("\n" + _("before/after the debug fix: tab 4"), "bold yellow")))
        acc.focus()

    def action_debug(self) -> None:
        """The per-layer debug of this run (why int8 lost accuracy), with the one-key fix."""
        from .debug_screen import DebugScreen

        self.app.push_screen(DebugScreen(self.settings))

    def _perf_lines(self) -> List[Tuple[str, str]]:
        """What the run's backend says about the compile stage's perf metrics (its spec's result_lines)."""
        from core.backends import get_spec
        from core.errors import BackendError

        try:
            spec = get_spec(self.settings.run.backend)
        except BackendError:  # a run of a backend not installed here: its metrics stay in the record
            return []
        return spec.result_lines(self.record.metrics.get("compile", {}), self.settings)

    def action_raw_check(self) -> None:
        """Show check_report.txt as the toolchain printed it."""
        path = self.record.artifact_path("check_report.txt") or ""
        try:
            with open(path, "r", encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            self.notify(_("check_report.txt is not available for this run"), severity="warning")
            return
        from .text_modal import TextModal

        self.app.push_screen(TextModal(_("check_report.txt (raw)"), text))

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        target = {"summary": "#accuracy-table", "artifacts": "#artifact-table", "check": "#check-table",
                  "compare": "#compare-table"}.get(event.pane.id or "")
        if target:
            self.query_one(target, DataTable).focus()

    def _show_artifact(self, row: int) -> None:
        if 0 <= row < len(self.artifact_names):
            name = self.artifact_names[row]
            a = self.record.artifacts[name]
            t = Text.assemble((name, "bold"), "  ", (self.record.artifact_path(name) or "", "cyan"), "\n", _(a.get("description", "")))
            self.query_one("#artifact-detail", Static).update(t)

    def _show_check(self, row: int) -> None:
        if 0 <= row < len(self.check_items):
            i = self.check_items[row]
            t = Text.assemble(
                (i.get("status", ""), "bold"), " %s\n" % check_where(i),
                _("why: {reason}").format(reason=_(i.get("reason", ""))) + "\n", ("-> %s" % _(i.get("suggestion", "")), "yellow"),
            )
            self.query_one("#check-detail", Static).update(t)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "artifact-table":
            self._show_artifact(event.cursor_row)
        elif event.data_table.id == "check-table":
            self._show_check(event.cursor_row)

    def action_tab(self, tab: str) -> None:
        if tab == "compare" and self.before is None:
            return
        self.query_one("#results-tabs", TabbedContent).active = tab

    def action_back(self) -> None:
        self.app.pop_screen()
