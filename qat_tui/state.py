"""What the wizard's screens share, in a leaf module: the step list, the settings being edited, what
detection found, and the pure helpers around them. Screens import this module (never ``qat_tui.app``);
the app owns one :class:`WizardState` and hands it down (``app.wizard``), screens send requests up as
messages (:mod:`qat_tui.messages`), and detection arrives through the app's reactive ``detection``,
which screens watch (``self.watch(self.app, "detection", callback)``).

Nothing here imports torch or Textual.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from core.errors import QatError
from core.i18n import N_, _, set_language
from core.settings import PRESETS, Settings, preset, validate


@dataclass(frozen=True)
class Step:
    """A wizard step: its breadcrumb name, heading and screen (``"module:Class"``, imported when shown).

    ``name`` and ``heading`` are English, marked with ``N_``: shown through :attr:`title` /
    :attr:`heading_shown` (or ``_()``), in the language of the moment."""

    name: str
    heading: str
    screen: str

    @property
    def id(self) -> str:
        """The step's id, its name in lower case (``"data"``, ``"qconfig"``): names its help pages,
        ``qat_tui/help/<lang>/<id>.md`` (see :mod:`qat_tui.i18n`)."""
        return self.name.lower()

    @property
    def title(self) -> str:
        """The breadcrumb name in the current language."""
        return _(self.name)

    @property
    def heading_shown(self) -> str:
        """The heading in the current language."""
        return _(self.heading)


STEPS: Tuple[Step, ...] = (
    Step(N_("Data"), N_("Data and run directory"), "qat_tui.screens.data_screen:DataScreen"),
    Step(N_("Model"), N_("Model and input size"), "qat_tui.screens.model_screen:ModelScreen"),
    Step(N_("Backend"), N_("Backend and device"), "qat_tui.screens.backend_screen:BackendScreen"),
    Step(N_("Stages"), N_("Stages and epochs"), "qat_tui.screens.stages_screen:StagesScreen"),
    Step(N_("Qconfig"), N_("Quantization config (qconfig)"), "qat_tui.screens.qconfig_screen:QconfigScreen"),
    Step(N_("Compile"), N_("Compile options"), "qat_tui.screens.compile_screen:CompileScreen"),
    Step(N_("Review"), N_("Review"), "qat_tui.screens.review_screen:ReviewScreen"),
)
"""The wizard's steps in order; breadcrumbs and "Step n of N" headings are derived from it."""

STEP_NAMES = [s.name for s in STEPS]
"""The steps' names in English (translate with ``_()`` where shown: :func:`breadcrumb`)."""


def step_index(screen_path: str) -> int:
    """The 0-based position of the step whose screen is ``"module:Class"``."""
    return [s.screen for s in STEPS].index(screen_path)


def step_heading(index: int) -> str:
    """``"Step 3 of 7 - Backend and device"``, in the current language."""
    return _("Step {n} of {total} - {heading}").format(n=index + 1, total=len(STEPS), heading=STEPS[index].heading_shown)


def screen_class(index: int) -> type:
    import importlib

    module, _, name = STEPS[index].screen.partition(":")
    return getattr(importlib.import_module(module), name)


_PRESET_NEUTRAL = {
    "run": ("run_dir", "device", "backend", "seed", "threads", "nice"),
    "data": ("root", "layout", "download", "num_workers"),
    "ui": ("keymap",),
}
"""Keys a preset does not set (where the data and run live, which machine, the wizard's keys): kept when
switching."""


def _strip_neutral(values: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(values)
    for section, keys in _PRESET_NEUTRAL.items():
        for k in keys:
            out[section].pop(k, None)
    return out


def detect_preset(settings: Optional[Settings]) -> str:
    """The preset ``settings`` equal (ignoring locations and device), or ``custom``."""
    if settings is None:
        return "sample"
    mine = _strip_neutral(settings.model_dump())
    for name in PRESETS:
        if _strip_neutral(preset(name).model_dump()) == mine:
            return name
    return "custom"


@dataclass
class Detection:
    """What the detection worker found: each backend's :class:`~core.backends.base.BackendInfo`, the
    devices, and errors met on the way."""

    backends: List[Any] = field(default_factory=list)  # core.backends.base.BackendInfo
    devices: List[Any] = field(default_factory=list)  # core.devices.DeviceInfo
    errors: List[str] = field(default_factory=list)

    def device_names(self) -> List[str]:
        return [d.name for d in self.devices]

    def info(self, backend: str) -> Optional[Any]:
        for b in self.backends:
            if b.name == backend:
                return b
        return None

    def available(self, backend: str) -> bool:
        info = self.info(backend)
        return bool(info is not None and info.available)


def backend_choices(values: Dict[str, Dict[str, Any]], detection: Optional[Detection],
                    backend: Optional[str] = None) -> Dict[Tuple[str, str], Dict[str, str]]:
    """What a backend (default: the chosen one) offers for the current values (its spec's
    ``choices``): ``{(section, key): {value: help}}``; empty for a backend that is not registered."""
    from core.backends import specs

    spec = specs().get(backend or values["run"]["backend"])
    if spec is None:
        return {}
    return spec.choices(values, detection.info(spec.name) if detection is not None else None)


def offered(values: Dict[str, Dict[str, Any]], detection: Optional[Detection], section: str,
            key: str) -> Optional[Dict[str, str]]:
    """The values offered for ``[section] key`` with their help: a backend's own section asks that
    backend, a core section the chosen one; None when nothing is offered (a free value)."""
    from core.backends import specs

    backend = section if section in specs() else None
    return backend_choices(values, detection, backend).get((section, key))


def preferred_available(detection: Detection) -> Optional[str]:
    """The available backend with the highest ``preferred`` in its spec (the wizard's default when no
    settings file chose one), or None."""
    from core.backends import specs

    for name in specs():  # ordered by preference
        if detection.available(name):
            return name
    return None


def device_problem(device: str, detection: Optional[Detection]) -> Optional[str]:
    """Why ``device`` cannot be used here (as :func:`core.devices.resolve_device` would say), or None.

    Without a finished detection nothing is refused (the pipeline checks again when it starts).
    """
    if detection is None or not detection.devices:
        return None
    names = detection.device_names()
    spec = device.strip().lower()
    if spec == "auto" or spec in names or (spec == "cuda" and "cuda:0" in names):
        return None
    return _("device {device!r} does not exist on this machine -> use one of: {names} (or 'auto')").format(
        device=spec, names=", ".join(names))


class WizardState:
    """The settings being edited (``values``: valid values, the shape of ``Settings.model_dump()``),
    the preset they came from, what detection found, the language the wizard shows, and whether the
    settings were edited since they were last loaded or saved (:meth:`unsaved_keys`).

    Args:
        settings: starting settings (None: the defaults).
        lang: ``"en"`` or ``"zh"`` (:func:`qat_tui.i18n.resolve_lang`: ``--lang``, else the locale);
            the help pages are shown in it.
    """

    def __init__(self, settings: Optional[Settings] = None, lang: str = "en") -> None:
        self.lang = lang  # also the language of every _() in this process (core.i18n.set_language)
        self.have_settings = settings is not None
        start = settings if settings is not None else Settings()
        self.values: Dict[str, Dict[str, Any]] = start.model_dump()
        self.preset_name = detect_preset(settings)
        self.detection: Optional[Detection] = None
        self._saved: Dict[str, Dict[str, Any]] = self._snapshot()

    @property
    def lang(self) -> str:
        """The language shown, ``"en"`` or ``"zh"``; setting it sets :func:`core.i18n.set_language`."""
        return self._lang

    @lang.setter
    def lang(self, value: str) -> None:
        self._lang = set_language(value)

    # ------------------------------------------------------------------ saved or not (the dirty flag)
    def _snapshot(self) -> Dict[str, Dict[str, Any]]:
        """The values as the settings file would hold them (validated: a value typed differently but
        equal is no edit); the values themselves while something is invalid."""
        try:
            return validate(copy.deepcopy(self.values), backend_offers=False).model_dump()
        except QatError:
            return copy.deepcopy(self.values)

    def mark_saved(self, settings: Optional[Settings] = None) -> None:
        """The settings were written to a file (review's ``s``, export, a run's ``settings.toml``):
        the current values count as saved. With ``settings`` (what was written) only when they are
        the values being edited (a debug fix runs other settings: the edits stay unsaved)."""
        now = self._snapshot()
        if settings is None or settings.model_dump() == now:
            self._saved = now

    def unsaved_keys(self) -> List[str]:
        """``["float.epochs", ...]``: the keys whose value differs from the last loaded or saved
        settings (empty: nothing to lose by quitting)."""
        now, saved = self._snapshot(), self._saved
        out = []
        for section in sorted(set(now) | set(saved)):
            a, b = now.get(section) or {}, saved.get(section) or {}
            out += ["%s.%s" % (section, k) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        return out

    @property
    def unsaved(self) -> bool:
        """Settings were edited since they were last loaded or saved."""
        return bool(self.unsaved_keys())

    def current_settings(self) -> Settings:
        """The edited values as validated settings.

        Raises:
            SettingsError: a value is invalid (names the key and what is allowed).
        """
        return validate(copy.deepcopy(self.values))

    def attach_settings(self, run_dir: str) -> Settings:
        """The settings to show an attached run with: the run folder's own settings.toml (what the run
        ran with; a moved folder runs where it is), else the given ones with its run folder."""
        from core.runs import load_run_settings

        if os.path.exists(os.path.join(run_dir, "settings.toml")):
            try:
                return load_run_settings(os.path.abspath(run_dir))[0]
            except QatError:
                pass
        values = copy.deepcopy(self.values)
        values["run"]["run_dir"] = os.path.abspath(run_dir)
        try:
            return validate(values)
        except QatError:
            return Settings.model_validate({"run": {"run_dir": os.path.abspath(run_dir)}})

    def apply_preset(self, name: str, keep: Dict[str, Dict[str, Any]]) -> None:
        """Replace the values with preset ``name``'s, keeping the location/device keys (and ``keep``)."""
        new = preset(name).model_dump()
        for section, keys in _PRESET_NEUTRAL.items():
            for k in keys:
                new[section][k] = self.values[section][k]
        for section, kv in keep.items():
            new[section].update(kv)
        self.values = new
        self.preset_name = name

    def choices(self) -> Dict[Tuple[str, str], Dict[str, str]]:
        """:func:`backend_choices` for the current values."""
        return backend_choices(self.values, self.detection)

    def offered(self, section: str, key: str) -> Optional[Dict[str, str]]:
        """:func:`offered` for the current values."""
        return offered(self.values, self.detection, section, key)


__all__ = ["STEPS", "STEP_NAMES", "Step", "step_heading", "step_index", "screen_class", "Detection", "WizardState",
           "backend_choices", "offered", "device_problem", "detect_preset", "preferred_available"]
