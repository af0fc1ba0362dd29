"""Step 5: the deployable artifact and its reports: the core ``[compile]`` options the chosen backend
reads (its spec's ``compile_keys``), then its own section's fields marked ``step = compile``, with the
notes its spec gives for this step."""
from __future__ import annotations

from typing import Iterable, List, Tuple

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from core.backends import specs
from core.i18n import N_, _

from ..widgets.fields import step_fields
from .base import WizardStep

PLACEHOLDERS = {("compile", "perf_batch_sizes"): "1, 64"}
"""Examples shown in empty text boxes (after "e.g.")."""


class CompileScreen(WizardStep):
    """Options of the compile stage (check / perf / graph reports and the packaged model)."""

    INTRO = N_(
        "compile turns the integer model into the file you deploy and writes check_report.txt (which ops "
        "run in int8), the perf report and the graph picture."
    )

    def shown(self) -> List[Tuple[str, str]]:
        """``(section, key)`` of the fields this step shows for the chosen backend."""
        spec = specs().get(self.values["run"]["backend"])
        if spec is None:
            return []
        keys = [("compile", k) for k in spec.compile_keys]
        if spec.options is not None:
            keys += [(spec.name, k) for k in step_fields(spec.name, "compile")]
        return keys

    def compose_form(self) -> Iterable[Widget]:
        if not self.values["compile"]["enabled"]:
            yield Static(
                Text(_("compile is off (Stages step): these options apply when it is turned on."), style="yellow"),
                classes="step-note",
            )
        spec = specs().get(self.values["run"]["backend"])
        notes = spec.step_notes.get("compile", []) if spec is not None else []
        if notes:
            yield Static(Text(_(notes[0])), classes="step-note")
        for section, key in self.shown():
            choices = self.wizard.offered(section, key)
            options = [(_(label), value) for value, label in choices.items()] if choices else None
            example = PLACEHOLDERS.get((section, key), "")
            yield self.field(section, key, options=options, placeholder=_("e.g. {example}").format(example=example) if example else "")
        for note in notes[1:]:
            yield Static(Text(_(note), style="dim"), classes="step-note")
        if not self.shown():
            yield Static(Text(_("the {backend} backend has no compile options").format(backend=self.values["run"]["backend"]), style="dim"),
                         classes="step-note")

    def on_mount(self) -> None:
        shown = self.shown()
        if shown:
            self.get_field(*shown[0]).control.focus()
