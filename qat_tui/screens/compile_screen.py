"""Step 5: the deployable artifact and its reports - package build, perf batch sizes and runs, graph."""
from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from .base import WizardStep


class CompileScreen(WizardStep):
    """Options of the compile stage (check / perf / graph reports and the packaged model)."""

    STEP = 4
    HEADING = "Step 5 of 6 - Compile options"
    INTRO = (
        "compile turns the integer model into the file you deploy and writes check_report.txt (which ops "
        "run in int8), perf.html (latency per batch size) and the graph picture."
    )

    def compose_form(self) -> Iterable[Widget]:
        if not self.values["compile"]["enabled"]:
            yield Static(
                Text("compile is off (Stages step): these options apply when it is turned on.", style="yellow"),
                classes="step-note",
            )
        yield self.field("compile", "package")
        yield self.field("compile", "perf_batch_sizes", placeholder="e.g. 1, 64")
        yield self.field("compile", "perf_iterations")
        yield self.field("compile", "graph_format")

    def on_mount(self) -> None:
        self.get_field("compile", "package").control.focus()
