"""Step 3: which stages run, their epochs and learning rates, and which checkpoint each one loads."""
from __future__ import annotations

import copy
import os
from typing import Iterable, List, Optional, Tuple

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from core import stage_table as T
from core.errors import QatError
from core.i18n import N_, _
from core.settings import STAGES, Settings, validate

from ..widgets.fields import SettingField
from .base import WizardStep

def _writes(stage: str) -> str:
    out = T.stage(stage).output
    if out == T.INT_MODEL:
        return _("the integer model (int_model.*)")
    return out or _("the deployable model + check, perf and graph reports")


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
            out.append((stage, _("off: not run (files it wrote before stay as they are)"), None))
            continue
        try:
            inputs = T.inputs(settings, stage)
        except QatError as e:
            out.append((stage, _("cannot run: {reason}").format(reason=e.msg), e))
            continue
        if not inputs:
            src = settings.model.pretrained
            out.append((stage, _("loads {inputs} -> writes {outputs}").format(
                inputs=src if src else _("nothing (MobileNetV2 from scratch)"), outputs=_writes(stage)), None))
            continue
        parts = []
        err: Optional[QatError] = None
        for name, producer in inputs:
            shown = "int_model" if name == "int_model" else name
            if producer in enabled:
                parts.append(_("{file} (from {stage})").format(file=shown, stage=producer))
            elif os.path.exists(input_path(settings, name)):
                parts.append(_("{file} ({stage} is off; found in the run folder)").format(file=shown, stage=producer))
            else:
                parts.append(_("{file} ({stage} is off and it is NOT in the run folder)").format(file=shown, stage=producer))
                try:
                    check_inputs(settings, stage)
                except QatError as e:
                    err = e
        out.append((stage, _("loads {inputs} -> writes {outputs}").format(inputs=", ".join(parts), outputs=_writes(stage)), err))
    return out


class StagesScreen(WizardStep):
    """Turn stages on/off; float/QAT epochs and lr; calibration images; the checkpoint flow."""

    INTRO = N_("Each stage loads the checkpoint of the one before it (shown under it, updated as you switch stages).")

    def compose_form(self) -> Iterable[Widget]:
        for stage in STAGES:
            yield self.field(stage, "enabled", label=stage, help=_(T.stage(stage).summary), topic=stage)
            yield Static("", id="loads-%s" % stage, classes="stage-loads")
            for key in T.stage(stage).wizard_keys:
                yield self.field(stage, key, label="  %s" % key)

    def on_mount(self) -> None:
        self.refresh_flow()
        self.get_field("float", "enabled").control.focus()

    def after_recompose(self) -> None:
        self.refresh_flow()

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
            for key in T.stage(stage).wizard_keys:
                self.get_field(stage, key).set_class(stage not in enabled, "-off")
        for stage, line, err in flow:
            w = self.query_one("#loads-%s" % stage, Static)
            if err is not None:
                t = Text(line, style="bold red")
                if err.hint:
                    t.append("\n-> " + err.hint, style="yellow")
            elif stage not in enabled:
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
            self.show_error(QatError(_("no stage is enabled"), hint=_("turn on at least one stage"), title=_("Stages")))
            return _("Turn on at least one stage.")
        for stage, _line, err in self.refresh_flow():
            if err is not None:
                self.show_error(err)
                return _("{stage} cannot run with these stages.").format(stage=stage)
        return None
