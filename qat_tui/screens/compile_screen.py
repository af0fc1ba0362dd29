"""Step 5: the deployable artifact and its reports - package build, perf batch sizes and runs, graph."""
from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from .base import WizardStep


HORIZON_INTRO = (
    "horizon backend: compile runs check_model (advice), compile_model -> model.hbm (also model.hbir and "
    "model.pt), perf_model -> perf_out/*.html (FPS, latency, DDR) and visualize_model -> model.svg, on the CPU."
)
PYRAMID_NOTE = (
    "The model is trained on centred YUV444 images / 128 with QuantStub(scale=1/128), as Horizon's sample: "
    "that fixed scale is what input_source = pyramid requires (camera frames arrive as YUV)."
)


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
        if self.values["run"]["backend"] == "horizon":
            yield Static(Text(HORIZON_INTRO), classes="step-note")
            for key in ("input_source", "opt", "balance_factor", "input_layout", "output_layout", "advice_us", "jobs"):
                yield self.field("horizon", key)
            yield Static(Text(PYRAMID_NOTE, style="dim"), classes="step-note")
        else:
            yield self.field("compile", "package")
            yield self.field("compile", "perf_batch_sizes", placeholder="e.g. 1, 64")
            yield self.field("compile", "perf_iterations")
            yield self.field("compile", "graph_format")

    def on_mount(self) -> None:
        first = ("horizon", "input_source") if self.values["run"]["backend"] == "horizon" else ("compile", "package")
        self.get_field(*first).control.focus()
