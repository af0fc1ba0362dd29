"""Step 4: quantization choices - the calibration observer and the high-precision (unquantized) output."""
from __future__ import annotations

from typing import Dict, Iterable, Optional

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from core.i18n import N_, _

from ..state import Detection
from ..widgets.fields import SettingField
from .base import WizardStep

HIGH_PRECISION_HELP = N_(
    "Keep the classifier output unquantized: 8-bit weights and inputs, float/int32 output - Horizon's "
    "`*_32bit_out*` qconfig ('out_8bit' in old plugin names confusingly meant this int32 output). "
    "Usually a little more accurate at no speed cost; off = the last layer outputs int8 too."
)


class QconfigScreen(WizardStep):
    """Calibration observer (with each choice's help) and the high-precision output switch."""


    def compose_form(self) -> Iterable[Widget]:
        yield self.field("qconfig", "calib_observer", label="calib_observer",
                         options=[(name, name) for name in self.observers()])
        yield Static("", id="observer-help", classes="choice-help")
        yield self.field("qconfig", "high_precision_output", label="high_precision_output", help=_(HIGH_PRECISION_HELP))

    def after_recompose(self) -> None:
        self._offer_backend_observers(self.wizard.detection)

    def on_mount(self) -> None:
        self.refresh_observer_help()
        self.watch(self.app, "detection", self._offer_backend_observers)
        self.get_field("qconfig", "calib_observer").control.focus()

    def _offer_backend_observers(self, _det: Optional[Detection]) -> None:
        if not self.is_attached:
            return
        obs = self.observers()
        if obs and "default" not in obs:
            self.get_field("qconfig", "calib_observer").set_options([(name, name) for name in obs])
        self.refresh_observer_help()

    def observers(self) -> Dict[str, str]:
        """The calibration observers the chosen backend offers for the current values (its spec's
        choices: they may depend on other settings, e.g. a target chip's compiler generation)."""
        return self.wizard.offered("qconfig", "calib_observer") or {self.values["qconfig"]["calib_observer"]: ""}

    def refresh_observer_help(self) -> None:
        if not self.is_attached:
            return
        chosen = self.get_field("qconfig", "calib_observer").raw()
        t = Text()
        obs = self.observers()
        for name, help_text in obs.items():
            style = "bold" if name == chosen else "dim"
            t.append(("> " if name == chosen else "  ") + name, style=style)
            if help_text:
                t.append(": " + _(help_text), style=style)
            t.append("\n")
        t.append(_("Observers of the {backend} backend. Calibration runs the chosen one over the calibration images to "
                   "set the initial scales; QAT then trains the scales with moving-average min/max.").format(
                 backend=self.values["run"]["backend"]), style="dim")
        self.query_one("#observer-help", Static).update(t)

    def on_setting_field_changed(self, event: SettingField.Changed) -> None:
        if event.field.key == "calib_observer":
            self.refresh_observer_help()


__all__ = ["QconfigScreen", "HIGH_PRECISION_HELP"]
