"""Step 2: quantization backend and device, both detected in a worker thread (importing torch)."""
from __future__ import annotations

from typing import Iterable, Optional

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from core.settings import field_choices

from ..app import Detection, device_problem
from ..widgets.fields import SettingField
from .base import WizardStep

MARCH_LABELS = {
    "bernoulli": "bernoulli (XJ2)",
    "bernoulli2": "bernoulli2 (XJ3, RDK X3)",
    "bayes": "bayes (J5, RDK Ultra) - the sample's",
    "bayes-e": "bayes-e (J5 variant)",
    "nash-e": "nash-e (J6E, RDK S100) - hbdk4",
    "nash-m": "nash-m (J6M) - hbdk4",
    "nash-p": "nash-p (J6P, RDK S600) - hbdk4",
}
"""How each march is shown; the list offered is what the installed plugin defines."""

DEVICE_NOTE = (
    "Horizon's sample hard-codes device cuda:2, which fails on machines with fewer GPUs; "
    "only the devices that exist on this machine are offered here."
)
AUTO_LABEL = "auto (first GPU, else CPU)"


class BackendScreen(WizardStep):
    """Which toolchain quantizes, and where the training runs."""

    STEP = 1
    HEADING = "Step 2 of 6 - Backend and device"

    def compose_form(self) -> Iterable[Widget]:
        yield Static(
            Text("detecting backends and devices... (imports torch: a few seconds)", style="italic yellow"),
            id="detect-status",
        )
        backends = field_choices("run", "backend") or ["torch"]
        yield self.field("run", "backend", options=[(b, b) for b in backends])
        yield self.field("run", "device", options=[(AUTO_LABEL, "auto")])
        yield Static(DEVICE_NOTE, classes="step-note")
        march = self.values["horizon"]["march"]
        yield self.field("horizon", "march", options=[(MARCH_LABELS.get(march, march), march)])
        yield self.field("run", "seed")
        yield self.field("run", "threads")

    def on_mount(self) -> None:
        self.get_field("run", "backend").control.focus()
        self.app.when_detected(self._on_detected)  # type: ignore[attr-defined]

    @property
    def detection(self) -> Optional[Detection]:
        return self.app.detection  # type: ignore[attr-defined]

    def _on_detected(self, det: Detection) -> None:
        if not self.is_attached:
            return
        t = Text()
        t.append("Backends:\n", style="bold")
        for b in det.backends:
            versions = ", ".join("%s %s" % kv for kv in b.versions.items())
            if b.available:
                t.append("  ok  %s" % b.name, style="bold green")
                t.append("  %s\n" % versions)
                if b.description:
                    t.append("      %s\n" % b.description, style="dim")
            else:
                t.append("  --  %s" % b.name, style="bold red")
                t.append("  cannot run here: %s%s\n" % (b.reason, (" (%s)" % versions) if versions else ""), style="red")
        t.append("Devices found:\n", style="bold")
        for d in det.devices:
            t.append("  %-7s %s\n" % (d.name, d.label))
        for e in det.errors:
            t.append(e + "\n", style="red")
        t.rstrip()
        self.query_one("#detect-status", Static).update(t)
        dev = self.get_field("run", "device")
        options = [(AUTO_LABEL, "auto")] + [("%s - %s" % (d.name, d.label), d.name) for d in det.devices]
        dev.set_options(options)
        backend = self.get_field("run", "backend")
        if backend.raw() != self.values["run"]["backend"]:
            backend.set_value(self.values["run"]["backend"])  # horizon became the default
        march = self.get_field("horizon", "march")
        if det.marches:
            march.set_options([(MARCH_LABELS.get(m, m), m) for m in det.marches])
            march.set_help("march: the BPU the model is compiled for; offered from what the installed "
                           "horizon_plugin_pytorch defines. set_march() runs before any prepare.")
        else:
            march.set_help("march (horizon backend only): bernoulli2 = XJ3, bayes = J5, nash-* = J6/S100. "
                           "horizon_plugin_pytorch is not installed here, so its list is not known.")
        self.check_device()
        self.check_backend()

    def check_device(self) -> Optional[str]:
        dev = self.get_field("run", "device")
        err, value = dev.check()
        if err:
            return err
        problem = device_problem(value, self.detection)
        if problem:
            dev.show_error(problem)
        return problem

    def check_backend(self) -> None:
        det = self.detection
        f = self.get_field("run", "backend")
        if det is None:
            return
        name = f.raw()
        for b in det.backends:
            if b.name == name and not b.available:
                f.show_error("backend %r cannot run here: %s (you can still write the settings for another machine)" % (name, b.reason))

    def on_setting_field_changed(self, event: SettingField.Changed) -> None:
        if event.field.key == "device":
            self.check_device()
        elif event.field.key == "backend":
            self.check_backend()

    def extra_check(self) -> Optional[str]:
        problem = self.check_device()
        if problem:
            self.get_field("run", "device").control.focus()
            return "Choose a device that exists here."
        return None

    def commit(self, strict: bool = True) -> bool:
        ok = super().commit(strict)
        self.check_backend()
        return ok
