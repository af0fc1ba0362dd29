"""Step 2: the float model: a torchvision classifier (type to jump in the list) or your own builder
function, its keyword arguments, the input size, the number of classes and the starting weights. A
worker builds the model as the values change and shows its parameter count, MACs at that size, the
output shape of one forward pass, the classes found in the data and where the stubs go."""
from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Tuple

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from core.errors import QatError
from core.i18n import N_, _, get_language

from ..widgets.fields import SettingField
from .base import WizardStep

SHOWN = (("model", "arch"), ("model", "builder"), ("model", "kwargs"), ("data", "image_size"),
         ("model", "num_classes"), ("model", "pretrained"))


def model_report(values: Dict[str, Dict[str, Any]]) -> "Tuple[Text, Optional[str]]":
    """``(report, problem)``: what the model of ``values`` is (built on CPU with plain stubs: parameters,
    MACs, output shape, output layer, classes in the data), or the ModelError message and hint, with
    that message as the problem that keeps the step from going on. Imports torch: call it in a worker."""
    from types import SimpleNamespace

    from core.data import class_names
    from core.models import summarize

    m, d = values["model"], values["data"]
    t = Text()
    classes = None
    try:
        classes = class_names(d["root"], d["layout"])
    except QatError as e:
        t.append(_("data: {problem}").format(problem=e.msg) + "\n", style="yellow")
    if classes is not None:
        t.append(_("data: {n} classes ({names})").format(
            n=len(classes), names=", ".join(classes[:6]) + (" ..." if len(classes) > 6 else "")) + "\n")
    n = m.get("num_classes") or (len(classes) if classes else None)
    if n is None:
        t.append(_("set [model] num_classes (no data found to count the classes)"), style="yellow")
        return t, None
    if classes is not None and m.get("num_classes") and m["num_classes"] != len(classes):
        problem = _("num_classes = {n} but the data has {found} classes: leave it unset to take it from the data").format(
            n=m["num_classes"], found=len(classes))
        t.append(problem + "\n", style="red")
        return t, problem
    try:
        s = summarize(SimpleNamespace(**m), n, int(d["image_size"]))
    except QatError as e:
        t.append(e.msg + "\n", style="red")
        if e.hint:
            t.append("-> " + e.hint, style="yellow")
        return t, e.msg
    for line in s.lines():
        t.append(line + "\n", style="green")
    return t, None


class ModelScreen(WizardStep):
    """The float model and its input; the report on the right values comes from a worker."""

    INTRO = N_(
        "The float model: any classifier of torchvision, or your own nn.Module (builder = file.py:function, "
        "called with num_classes and kwargs). qat-tui adds QuantStub at the input and DeQuantStub at the "
        "output; your code needs no change."
    )

    def compose_form(self) -> Iterable[Widget]:
        for section, key in SHOWN:
            if key == "arch":
                value = self.values["model"]["arch"]
                yield self.field(section, key, options=[(value, value)])
            else:
                yield self.field(section, key, placeholder={"builder": _("e.g. {example}").format(example="models/net.py:build"),
                                                           "kwargs": _("e.g. {example}").format(example="{width_mult = 0.5}"),
                                                           "num_classes": _("unset: from the data"),
                                                           "pretrained": _("state_dict file, or DEFAULT (torchvision)")}.get(key, ""))
        yield Static(Text(_("building the model ..."), style="dim"), id="model-report")

    def on_mount(self) -> None:
        self.get_field("model", "arch").control.focus()
        self.run_worker(self._load_archs, thread=True, group="archs", exclusive=True)
        self.refresh_report()

    def after_recompose(self) -> None:
        if self.archs:
            self._show_archs(self.archs)
        self.refresh_report()

    def _load_archs(self) -> None:
        from core.models import arch_choices

        try:
            archs = arch_choices()
        except Exception as e:  # torchvision missing or broken: the value typed stays
            self.app.call_from_thread(self.notify, _("cannot list torchvision's models: {error}").format(error=e),
                                      severity="warning")
            return
        self.app.call_from_thread(self._show_archs, archs)

    @property
    def leaving(self) -> bool:
        """The screen is being removed (left, or built ahead and dropped, qat_tui.screen_cache): its
        widgets go first, so what a worker sends now is dropped."""
        return not self.is_attached or self._pruning or self._closing

    def _show_archs(self, archs: Dict[str, str]) -> None:
        if self.leaving:
            return
        f = self.get_field("model", "arch")
        current = f.raw()
        f.set_options([(name, name) for name in sorted(archs)], current if current in archs else "mobilenet_v2")
        f.set_help(self.arch_help(len(archs), archs.get(current, "")))
        self.archs = archs

    archs: Dict[str, str] = {}

    @staticmethod
    def arch_help(n: int, about: str) -> str:
        """The arch field's help: how many models, and the first line of torchvision's docstring of the one
        chosen. That line is torchvision's English (no catalog has it): other languages leave it out."""
        if get_language() != "en":
            about = ""
        return _("{n} torchvision classifiers; type to jump. {about}").format(n=n, about=about).strip()

    def _current(self) -> Optional[Dict[str, Dict[str, Any]]]:
        values = {"model": dict(self.values["model"]), "data": dict(self.values["data"])}
        for section, key in SHOWN:
            err, value = self.get_field(section, key).check()
            if err:
                return None
            values[section][key] = value
        return values

    def refresh_report(self) -> None:
        self.problem = None
        values = self._current()
        if values is None:
            self.query_one("#model-report", Static).update(Text(_("fix the values marked in red"), style="dim"))
            return
        self.query_one("#model-report", Static).update(Text(_("building the model ..."), style="dim"))
        self.run_worker(lambda: self._report(values), thread=True, group="model-report", exclusive=True)

    problem: Optional[str] = None
    """Why the model of the values shown cannot be built (from the last report), or None."""

    def _report(self, values: Dict[str, Dict[str, Any]]) -> None:
        try:
            text, problem = model_report(values)
        except Exception as e:  # the report must never take the wizard down
            problem = _("cannot build the model: {error}").format(error="%s: %s" % (type(e).__name__, e))
            text = Text(problem, style="red")
        self.app.call_from_thread(self._show_report, text, problem, values)

    def _show_report(self, text: Text, problem: Optional[str], values: Dict[str, Dict[str, Any]]) -> None:
        if not self.leaving and values == self._current():  # a report of values since changed is dropped
            self.problem = problem
            self.query_one("#model-report", Static).update(text)

    def extra_check(self) -> Optional[str]:
        if self.problem:
            return _("The model cannot be built: see the report below the fields.")
        return None

    def on_setting_field_changed(self, event: SettingField.Changed) -> None:
        if self.leaving:
            return
        if event.field.key == "arch" and self.archs:
            event.field.set_help(self.arch_help(len(self.archs), self.archs.get(event.field.raw(), "")))
        self.refresh_report()
