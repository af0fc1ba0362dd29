"""Step 2: quantization backend and device, both detected in a worker thread (importing torch), and
the chosen backend's own options for this step (its spec's section fields marked ``step = backend``)."""
from __future__ import annotations

from typing import Iterable, Optional

from rich.text import Text
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from core.backends import specs
from core.i18n import N_, _

from ..state import Detection, device_problem
from ..widgets.fields import SettingField, step_fields
from .base import WizardStep

DEVICE_NOTE = N_(
    "Horizon's sample hard-codes device cuda:2, which fails on machines with fewer GPUs; "
    "only the devices that exist on this machine are offered here."
)
AUTO_LABEL = N_("auto (first GPU, else CPU)")
"""English, marked: shown with ``_()``."""


class BackendScreen(WizardStep):
    """Which toolchain quantizes, and where the training runs."""

    def compose_form(self) -> Iterable[Widget]:
        yield Static(
            Text(_("detecting backends and devices... (imports torch: a few seconds)"), style="italic yellow"),
            id="detect-status",
        )
        yield self.field("run", "backend", options=[(name, name) for name in specs()],
                         help=self._backend_help(self.values["run"]["backend"]))
        yield self.field("run", "device", options=[(_(AUTO_LABEL), "auto")])
        yield Static(_(DEVICE_NOTE), classes="step-note")
        for name, spec in specs().items():  # each backend's own options for this step, shown for it only
            keys = step_fields(name, "backend") if spec.options is not None else []
            if not keys:
                continue
            with Vertical(id="backend-options-%s" % name, classes="backend-options"):
                for key in keys:
                    yield self.field(name, key, options=self._options(name, key))
        yield self.field("run", "seed")
        yield self.field("run", "threads")
        yield self.field("run", "nice")

    def _options(self, section: str, key: str) -> Optional[list]:
        choices = self.wizard.offered(section, key)
        if choices is None:
            return None
        return [(_(label), value) for value, label in choices.items()]

    @staticmethod
    def _backend_help(name: str) -> str:
        spec = specs().get(name)
        return _(spec.summary) if spec is not None else ""

    def on_mount(self) -> None:
        self._show_backend_options()
        self.get_field("run", "backend").control.focus()
        self.watch(self.app, "detection", self._on_detected)

    def after_recompose(self) -> None:
        self._show_backend_options()
        self._on_detected(self.detection)

    def _show_backend_options(self) -> None:
        chosen = self.get_field("run", "backend").raw()
        for box in self.query(".backend-options"):
            box.display = box.id == "backend-options-%s" % chosen

    @property
    def detection(self) -> Optional[Detection]:
        return self.wizard.detection

    def _on_detected(self, det: Optional[Detection]) -> None:
        if det is None or not self.is_attached:
            return
        t = Text()
        t.append(_("Backends:") + "\n", style="bold")
        for b in det.backends:
            versions = ", ".join("%s %s" % kv for kv in b.versions.items())
            if b.available:
                t.append("  ok  %s" % b.name, style="bold green")
                t.append("  %s\n" % versions)
                if b.description:
                    t.append("      %s\n" % _(b.description), style="dim")
                if b.reason:
                    t.append("      %s\n" % _(b.reason), style="yellow")
            else:
                t.append("  --  %s" % b.name, style="bold red")
                t.append("  " + _("cannot run here: {reason}").format(reason=_(b.reason))
                         + ((" (%s)" % versions) if versions else "") + "\n", style="red")
        t.append(_("Devices found:") + "\n", style="bold")
        for d in det.devices:
            t.append("  %-7s %s\n" % (d.name, d.label))
        for e in det.errors:
            t.append(e + "\n", style="red")
        t.rstrip()
        self.query_one("#detect-status", Static).update(t)
        dev = self.get_field("run", "device")
        dev.set_options([(_(AUTO_LABEL), "auto")] + [("%s - %s" % (d.name, d.label), d.name) for d in det.devices])
        backend = self.get_field("run", "backend")
        if backend.raw() != self.values["run"]["backend"]:
            backend.set_value(self.values["run"]["backend"])  # a preferred backend became the default
        self._offer_choices()
        self.check_device()
        self.check_backend()

    def _offer_choices(self) -> None:
        """Refresh the selects of the backends' options from what the chosen backend offers now."""
        for f in self.fields():
            if f.section in specs() and f.kind == "choice":
                options = self._options(f.section, f.key)
                if options is not None:
                    f.set_options(options)

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
        info = det.info(f.raw())
        if info is not None and not info.available:
            f.show_error(_("backend {backend!r} cannot run here: {reason} (you can still write the settings for another machine)")
                         .format(backend=f.raw(), reason=_(info.reason)))

    def on_setting_field_changed(self, event: SettingField.Changed) -> None:
        super().on_setting_field_changed(event)
        if event.field.key == "device":
            self.check_device()
        elif event.field.section == "run" and event.field.key == "backend":
            self.values["run"]["backend"] = event.field.raw()
            event.field.set_help(self._backend_help(event.field.raw()))
            self._show_backend_options()
            self._offer_choices()
            self.check_backend()

    def extra_check(self) -> Optional[str]:
        problem = self.check_device()
        if problem:
            self.get_field("run", "device").control.focus()
            return _("Choose a device that exists here.")
        return None

    def commit(self, strict: bool = True) -> bool:
        ok = super().commit(strict)
        self.check_backend()
        return ok
