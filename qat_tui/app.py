"""The qat-tui wizard: six settings screens, then the run and its results.

    Data -> Backend -> Stages -> Qconfig -> Compile -> Review -> Run -> Results

Each step is a screen in :mod:`qat_tui.screens` (one per file). The app holds the settings being edited
as a plain dict of valid values (``values``, the shape of ``Settings.model_dump()``); a step writes its
fields back when the user leaves it (``ctrl+n``/``n`` next, ``escape``/``ctrl+b``/``b`` back).

Start-up cost matters (users open it over SSH): nothing here imports torch. Backends and devices are
detected in a worker thread shortly after the first screen is drawn; the pipeline runs in its own
process (``core.worker``), which the run screen follows through the run's event log.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding

from core.errors import QatError
from core.settings import PRESETS, Settings, preset, validate

STEP_NAMES = ["Data", "Backend", "Stages", "Qconfig", "Compile", "Review"]
"""Breadcrumb names of the wizard steps, in order."""

_PRESET_NEUTRAL = {
    "run": ("run_dir", "device", "backend", "seed", "threads"),
    "data": ("root", "layout", "download", "num_workers"),
}
"""Keys a preset does not set (where the data and run live, which machine): kept when switching."""


def detect_preset(settings: Optional[Settings]) -> str:
    """The preset ``settings`` equal (ignoring locations and device), or ``custom``."""
    if settings is None:
        return "sample"
    mine = _strip_neutral(settings.model_dump())
    for name in PRESETS:
        if _strip_neutral(preset(name).model_dump()) == mine:
            return name
    return "custom"


def _strip_neutral(values: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(values)
    for section, keys in _PRESET_NEUTRAL.items():
        for k in keys:
            out[section].pop(k, None)
    return out


@dataclass
class Detection:
    """What the detection worker found (backends, devices, calibration observers)."""

    backends: List[Any] = field(default_factory=list)  # core.backends.base.BackendInfo
    devices: List[Any] = field(default_factory=list)  # core.devices.DeviceInfo
    observers_by_backend: Dict[str, Dict[str, str]] = field(default_factory=dict)
    marches: List[str] = field(default_factory=list)  # what the installed horizon plugin defines
    errors: List[str] = field(default_factory=list)

    def device_names(self) -> List[str]:
        return [d.name for d in self.devices]

    def available(self, backend: str) -> bool:
        return any(b.name == backend and b.available for b in self.backends)

    def observers(self, backend: str, march: Optional[str] = None) -> Dict[str, str]:
        """Calibration observers ``backend`` offers here (empty when it cannot run here); for horizon,
        those of the march's generation (nash-* marches use hbdk4's ``get_qconfig`` observers)."""
        if backend == "horizon" and march and march.lower().startswith("nash") and "horizon:hbdk4" in self.observers_by_backend:
            return dict(self.observers_by_backend["horizon:hbdk4"])
        return dict(self.observers_by_backend.get(backend, {}))


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
    return "device %r does not exist on this machine -> use one of: %s (or 'auto')" % (spec, ", ".join(names))


class QatApp(App):
    """The wizard. ``QatApp(settings=None).run()``; ``settings`` (validated) pre-fills every step.

    Args:
        settings: starting settings (None: the ``sample`` preset's defaults).
        detect: detect backends and devices in a worker after start-up (tests may turn it off).
        attach: a run directory to follow (``qat-tui attach``): opens its run screen on the run's
            ``events.jsonl``, running or finished, without starting anything.
        resume: a run directory to continue (``qat-tui resume``): starts the run at once with
            ``settings`` in its own process; finished stages are skipped, float/QAT continue from their
            last finished epoch, calib restarts.
    """

    CSS_PATH = "app.tcss"
    TITLE = "qat-tui"
    SUB_TITLE = "quantization-aware training wizard"

    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("q", "quit", "Quit", show=False),
    ]

    def __init__(
        self,
        settings: Optional[Settings] = None,
        *,
        detect: bool = True,
        attach: Optional[str] = None,
        resume: Optional[str] = None,
    ) -> None:
        super().__init__()
        self._attach = attach
        self._resume = resume
        self._have_settings = settings is not None
        start = settings if settings is not None else Settings()
        self.values: Dict[str, Dict[str, Any]] = start.model_dump()
        self.preset_name = detect_preset(settings)
        self.detection: Optional[Detection] = None
        self._detect_enabled = detect
        self._detect_started = False
        self._detect_waiters: List[Callable[[Detection], None]] = []
        self.run_screen: Any = None  # the RunScreen of the current/last run
        self._quit_armed = False
        self.closing = False  # set when the app exits: the pipeline thread stops delivering events

    # ------------------------------------------------------------------------------------ start
    def on_mount(self) -> None:
        from .screens.data_screen import DataScreen

        self.push_screen(DataScreen())
        if self._attach or self._resume:
            from .screens.review_screen import ReviewScreen
            from .screens.run_screen import RunScreen

            if self._have_settings:
                self.push_screen(ReviewScreen())  # where Escape leads after the run
            if self._attach:
                self.push_screen(RunScreen(self.attach_settings(self._attach), attach=self._attach))
            else:
                self.start_run(self.current_settings())
        if self._detect_enabled:
            # After the first screen is drawn: the worker imports torch (a second or more).
            self.set_timer(0.5, self.start_detection)

    # ----------------------------------------------------------------------------- navigation
    def step_screens(self) -> List[type]:
        from .screens.backend_screen import BackendScreen
        from .screens.compile_screen import CompileScreen
        from .screens.data_screen import DataScreen
        from .screens.qconfig_screen import QconfigScreen
        from .screens.review_screen import ReviewScreen
        from .screens.stages_screen import StagesScreen

        return [DataScreen, BackendScreen, StagesScreen, QconfigScreen, CompileScreen, ReviewScreen]

    def goto_next(self, step: int) -> None:
        steps = self.step_screens()
        if step + 1 < len(steps):
            self.push_screen(steps[step + 1]())

    def goto_back(self, step: int) -> None:
        if step > 0:
            self.pop_screen()
        else:
            self.notify("This is the first step.", timeout=2)

    def current_settings(self) -> Settings:
        """The edited values as validated settings.

        Raises:
            SettingsError: a value is invalid (names the key and what is allowed).
        """
        return validate(copy.deepcopy(self.values), source="settings")

    def attach_settings(self, run_dir: str) -> Settings:
        """The settings to show an attached run with: the given ones, with its run folder."""
        import os

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

    # ------------------------------------------------------------------------------- errors
    def show_error(self, title: str, message: str, hint: Optional[str] = None) -> None:
        """The one error modal: title, what went wrong, what to do."""
        from .screens.error_modal import ErrorModal

        self.push_screen(ErrorModal(title, message, hint))

    def show_qat_error(self, err: QatError) -> None:
        self.show_error(err.title, err.msg, err.hint)

    # ---------------------------------------------------------------------------- detection
    def start_detection(self) -> None:
        if not self._detect_started:
            self._detect_started = True
            self._detect_worker()

    def when_detected(self, callback: Callable[[Detection], None]) -> None:
        """Call ``callback(detection)`` now when done, else when the worker finishes (starts it)."""
        if self.detection is not None:
            # After the caller's mount handler has finished (widgets are then fully mounted).
            self.call_later(callback, self.detection)
            return
        self._detect_waiters.append(callback)
        if self._detect_enabled:
            self.start_detection()

    @work(thread=True, exclusive=True, group="detect")
    def _detect_worker(self) -> None:
        det = Detection()
        try:
            from core.backends import backend_class, detect_backends

            det.backends = detect_backends()
            for info in det.backends:
                if info.available:
                    det.observers_by_backend[info.name] = backend_class(info.name)().calib_observers()
                    if info.name == "horizon":
                        from core.backends.horizon import HBDK4_CALIB_OBSERVERS, plugin_marches

                        det.marches = plugin_marches()
                        det.observers_by_backend["horizon:hbdk4"] = dict(HBDK4_CALIB_OBSERVERS)
        except Exception as e:  # reported on the backend screen, never fatal
            det.errors.append("backend detection failed: %s: %s" % (type(e).__name__, e))
        try:
            from core.devices import available_devices

            det.devices = available_devices()
        except Exception as e:
            det.errors.append("device detection failed: %s: %s" % (type(e).__name__, e))
        try:
            self.call_from_thread(self._detected, det)
        except Exception:  # the app is closing
            pass

    def _detected(self, det: Detection) -> None:
        self.detection = det
        # Inside Horizon's docker the horizon backend is the default (unless a settings file chose).
        if not self._have_settings and det.available("horizon") and self.values["run"]["backend"] == "torch":
            self.values["run"]["backend"] = "horizon"
            self.notify("horizon_plugin_pytorch found: the horizon backend is selected (Backend step).", timeout=6)
        waiters, self._detect_waiters = self._detect_waiters, []
        for cb in waiters:
            try:
                cb(det)
            except Exception:  # a screen that has gone away: never fatal, but visible in textual's log
                import traceback

                self.log.error(traceback.format_exc())

    # --------------------------------------------------------------------------------- runs
    def start_run(self, settings: Settings) -> bool:
        """Write the settings into the run directory, start the pipeline in its own process (a new
        session: it survives the wizard and the terminal) and open its run screen. False (and the error
        modal) when the run directory cannot be written or another process owns it."""
        import os

        from core.errors import RunLockedError
        from core.runs import is_running, lock_holder
        from core.settings import SETTINGS_FILENAME, save
        from core.worker import start_detached

        from .screens.run_screen import RunScreen

        run_dir = settings.run_path()
        if is_running(run_dir):
            self.show_qat_error(RunLockedError(
                "%s is being written by another run (pid %s)" % (run_dir, (lock_holder(run_dir) or {}).get("pid", "?")),
                hint="follow it with qat-tui attach %s, or choose another run folder (Data step)" % run_dir,
            ))
            return False
        try:
            save(settings, os.path.join(run_dir, SETTINGS_FILENAME))
            pid, offset = start_detached(run_dir)
        except QatError as e:  # e.g. the disk is full
            self.show_qat_error(e)
            return False
        except OSError as e:
            self.show_error("Run directory", "cannot start the run in %s: %s" % (run_dir, e), "choose another run folder (Data step)")
            return False
        self.notify("Run started in process %d (it survives closing the wizard)." % pid, timeout=5)
        self.push_screen(RunScreen(settings, attach=run_dir, offset=offset, started_here=True))
        return True

    # ----------------------------------------------------------------------------- quitting
    def action_quit(self) -> None:  # type: ignore[override]
        rs = self.run_screen
        if rs is not None and rs.running:
            from .screens.quit_modal import QuitModal

            def chosen(choice: Optional[str]) -> None:
                if choice == "stop":
                    rs.request_cancel()
                    self.exit(message="Asked the run to stop at its next batch; qat-tui resume %s continues it." % rs.attach_dir)
                elif choice == "leave":
                    self.exit(message="The run goes on; follow it with: qat-tui attach %s" % rs.attach_dir)

            self.push_screen(QuitModal(rs.attach_dir), chosen)
            return
        self.closing = True
        self.exit()

    # ------------------------------------------------------------------------ command palette
    def get_system_commands(self, screen: Any) -> Any:
        yield from super().get_system_commands(screen)
        for name, action, help_text in (
            ("Next step", "next", "Go to the next wizard step (ctrl+n)"),
            ("Previous step", "back", "Go back one step (escape)"),
            ("Run", "run", "Start the run (its own process: survives closing the wizard) from the review screen (ctrl+r)"),
            ("Export as script", "export", "Write the settings as a standalone Python script (x, review screen)"),
            ("Save settings", "save", "Write settings.toml into the run directory without running"),
            ("Cancel run", "cancel", "Stop the running stage at the next batch (c)"),
            ("Show results", "results", "Open the results of the run (r)"),
        ):
            method = getattr(screen, "action_" + action, None)
            if method is not None:
                yield SystemCommand(name, help_text, method)


__all__ = ["QatApp", "Detection", "STEP_NAMES", "detect_preset", "device_problem"]
