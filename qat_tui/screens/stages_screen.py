"""Step 3: which stages run, their epochs and learning rates, and which checkpoint each one loads."""
from __future__ import annotations

import copy
import os
from typing import Iterable, List, Optional, Tuple

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from core.errors import QatError
from core.settings import STAGES, Settings, validate
from core.stages import STAGE_SUMMARY, stage_inputs

from ..widgets.fields import SettingField
from .base import WizardStep

STAGE_OUTPUT = {
    "float": "float-checkpoint.ckpt",
    "calib": "calib-checkpoint.ckpt",
    "qat": "qat-checkpoint.ckpt",
    "int_infer": "the integer model (int_model.*)",
    "compile": "the deployable model + check, perf and graph reports",
}

STAGE_PARAMS = {
    "float": ["epochs", "lr"],
    "calib": ["num_images"],
    "qat": ["epochs", "lr", "bn_stats"],
    "int_infer": [],
    "compile": [],
}


def stage_flow(settings: Settings) -> List[Tuple[str, str, Optional[QatError]]]:
    """Per stage: ``(stage, "loads X (written by Y) -> writes Z" line, error)``.

    The error is what the pipeline would refuse with: no input possible (a :class:`StageError`), or an
    input whose stage is off and whose file is not in the run folder (a :class:`CheckpointError`).
    """
    from core.stages import check_inputs, input_path

    out: List[Tuple[str, str, Optional[QatError]]] = []
    enabled = set(settings.enabled_stages())
    for stage in STAGES:
        if stage not in enabled:
            out.append((stage, "off: not run (files it wrote before stay as they are)", None))
            continue
        try:
            inputs = stage_inputs(settings, stage)
        except QatError as e:
            out.append((stage, "cannot run: %s" % e.msg, e))
            continue
        if not inputs:
            src = settings.model.pretrained
            loads = "loads %s" % (src if src else "nothing (MobileNetV2 from scratch)")
            out.append((stage, "%s -> writes %s" % (loads, STAGE_OUTPUT[stage]), None))
            continue
        parts = []
        err: Optional[QatError] = None
        for name, producer in inputs:
            shown = "int_model" if name == "int_model" else name
            if producer in enabled:
                parts.append("%s (from %s)" % (shown, producer))
            elif os.path.exists(input_path(settings, name)):
                parts.append("%s (%s is off; found in the run folder)" % (shown, producer))
            else:
                parts.append("%s (%s is off and it is NOT in the run folder)" % (shown, producer))
                try:
                    check_inputs(settings, stage)
                except QatError as e:
                    err = e
        out.append((stage, "loads %s -> writes %s" % (", ".join(parts), STAGE_OUTPUT[stage]), err))
    return out


class StagesScreen(WizardStep):
    """Turn stages on/off; float/QAT epochs and lr; calibration images; the checkpoint flow."""

    STEP = 2
    HEADING = "Step 3 of 6 - Stages and epochs"
    INTRO = "Each stage loads the checkpoint of the one before it (shown under it, updated as you switch stages)."

    def compose_form(self) -> Iterable[Widget]:
        for stage in STAGES:
            yield self.field(stage, "enabled", label=stage, help=STAGE_SUMMARY[stage])
            yield Static("", id="loads-%s" % stage, classes="stage-loads")
            for key in STAGE_PARAMS[stage]:
                yield self.field(stage, key, label="  %s" % key)

    def on_mount(self) -> None:
        self.refresh_flow()
        self.get_field("float", "enabled").control.focus()

    def current(self) -> Optional[Settings]:
        """The app's values with this screen's stage switches applied."""
        values = copy.deepcopy(self.values)  # type: ignore[attr-defined]
        for stage in STAGES:
            values[stage]["enabled"] = bool(self.get_field(stage, "enabled").raw())
        try:
            return validate(values)
        except QatError:
            return None

    def refresh_flow(self) -> List[Tuple[str, str, Optional[QatError]]]:
        s = self.current()
        if s is None:
            return []
        flow = stage_flow(s)
        enabled = set(s.enabled_stages())
        for stage in STAGES:
            for key in STAGE_PARAMS[stage]:
                self.get_field(stage, key).set_class(stage not in enabled, "-off")
        for stage, line, err in flow:
            w = self.query_one("#loads-%s" % stage, Static)
            if err is not None:
                t = Text(line, style="bold red")
                if err.hint:
                    t.append("\n-> " + err.hint, style="yellow")
            elif line.startswith("off"):
                t = Text(line, style="dim")
            else:
                t = Text(line, style="cyan")
            w.update(t)
        return flow

    def on_setting_field_changed(self, event: SettingField.Changed) -> None:
        if event.field.key == "enabled":
            self.refresh_flow()

    def extra_check(self) -> Optional[str]:
        s = self.current()
        if s is None:
            return None
        if not s.enabled_stages():
            self.app.show_error("Stages", "no stage is enabled", "turn on at least one stage")  # type: ignore[attr-defined]
            return "Turn on at least one stage."
        for stage, _line, err in self.refresh_flow():
            if err is not None:
                self.app.show_qat_error(err)  # type: ignore[attr-defined]
                return "%s cannot run with these stages." % stage
        return None
