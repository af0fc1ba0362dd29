"""The qat-tui wizard: the settings steps, then the run and its results.

    Data -> Backend -> Stages -> Qconfig -> Compile -> Review -> Run -> Results

The steps are listed once, in :data:`qat_tui.state.STEPS` (one screen per file in
:mod:`qat_tui.screens`). The app owns the shared :class:`~qat_tui.state.WizardState` (``wizard``: the
values being edited, as a plain dict of valid values) and hands it down; screens never import this
module: they send requests up as messages (:mod:`qat_tui.messages`) and watch the reactive
``detection``.

Start-up cost matters (users open it over SSH): nothing here imports torch. Backends and devices are
detected in a worker thread shortly after the first screen is drawn; the pipeline runs in its own
process (``core.worker``), which the run screen follows through the run's event log.
"""
from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive

from core.errors import QatError
from core.settings import Settings

from . import messages as M
from core.i18n import N_, _

from .i18n import resolve_lang
from .screen_cache import NextStep
from .state import STEPS, Detection, WizardState, preferred_available, screen_class


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
        lang: ``"en"`` or ``"zh"`` (``--lang``); None: from the locale (:func:`qat_tui.i18n.resolve_lang`).
            Kept in ``wizard.lang``; the help pages (``?``/F1) are shown in it.
    """

    CSS_PATH = "app.tcss"
    TITLE = "qat-tui"
    SUB_TITLE = "quantization-aware training wizard"

    BINDINGS = [  # every binding of the app and the screens has an id: [ui] keymap rebinds it (qat_tui.keymap)
        Binding("ctrl+q", "quit", N_("Quit"), priority=True, id="app.quit"),
        Binding("q", "quit", N_("Quit"), show=False, id="app.quit"),
        Binding("f2", "language", N_("Language"), show=False, id="app.language"),
    ]

    detection: reactive[Optional[Detection]] = reactive(None)
    """What the detection worker found (None until it finishes); screens watch it."""

    def __init__(
        self,
        settings: Optional[Settings] = None,
        *,
        detect: bool = True,
        attach: Optional[str] = None,
        resume: Optional[str] = None,
        lang: Optional[str] = None,
    ) -> None:
        super().__init__()
        self._attach = attach
        self._resume = resume
        self.wizard = WizardState(settings, lang=resolve_lang(lang, settings.ui.lang if settings is not None else None))
        self._detect_enabled = detect
        self._detect_started = False
        self.run_screen: Any = None  # the RunScreen of the current/last run
        self.closing = False  # set when the app exits: the pipeline thread stops delivering events
        self.next_step = NextStep(self)  # the next step's screen, built while the user reads this one

    # -------------------------------------------------------------- the shared state, for callers
    @property
    def values(self) -> Dict[str, Dict[str, Any]]:
        return self.wizard.values

    @property
    def preset_name(self) -> str:
        return self.wizard.preset_name

    def current_settings(self) -> Settings:
        """The edited values as validated settings (see :meth:`WizardState.current_settings`)."""
        return self.wizard.current_settings()

    # ------------------------------------------------------------------------------------ start
    def on_mount(self) -> None:
        self.next_step.watch()
        self.push_screen(screen_class(0)())
        self.apply_ui_keymap(self.values.get("ui", {}).get("keymap") or {})
        if self._attach or self._resume:
            from .screens.run_screen import RunScreen

            if self.wizard.have_settings:
                self.push_screen(screen_class(len(STEPS) - 1)())  # the review: where Escape leads after the run
            if self._attach:
                self.push_screen(RunScreen(self.wizard.attach_settings(self._attach), attach=self._attach))
            else:
                self.start_run(self.current_settings())
        if self._detect_enabled:
            # After the first screen is drawn: the worker imports torch (a second or more).
            self.set_timer(0.5, self.start_detection)

    # ----------------------------------------------------------------------------- navigation
    async def on_go_next(self, message: M.GoNext) -> None:
        if message.step + 1 < len(STEPS):
            self.push_screen(await self.next_step.take(message.step + 1))

    def on_go_back(self, message: M.GoBack) -> None:
        if message.step > 0:
            self.pop_screen()
        else:
            self.notify(_("This is the first step."), timeout=2)

    def on_start_run(self, message: M.StartRun) -> None:
        self.start_run(message.settings)

    def on_attach_run(self, message: M.AttachRun) -> None:
        from .screens.run_screen import RunScreen

        self.push_screen(RunScreen(self.wizard.attach_settings(message.run_dir), attach=message.run_dir))

    def on_run_screen_shown(self, message: M.RunScreenShown) -> None:
        self.run_screen = message.screen

    # ------------------------------------------------------------------------------- errors
    def on_show_error(self, message: M.ShowError) -> None:
        self.show_error(message.title, message.message, message.hint)

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

    @work(thread=True, exclusive=True, group="detect")
    def _detect_worker(self) -> None:
        det = Detection()
        try:
            from core.backends import detect_backends, load_errors

            det.backends = detect_backends()
            det.errors += load_errors()
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
        self.wizard.detection = det
        # Where a preferred backend's toolchain imports (e.g. inside its vendor's docker), it is the
        # default - unless a settings file chose one.
        best = preferred_available(det)
        if not self.wizard.have_settings and best and best != self.values["run"]["backend"]:
            from core.backends import get_spec

            if get_spec(best).preferred > get_spec(self.values["run"]["backend"]).preferred:
                clean = not self.wizard.unsaved
                self.values["run"]["backend"] = best
                if clean:  # the wizard's default, not an edit: quitting does not ask about it
                    self.wizard.mark_saved()
                self.notify(_("{summary} found: the {backend} backend is selected (Backend step).").format(
                    summary=_(get_spec(best).summary), backend=best), timeout=6)
        self.detection = det

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
                _("{run_dir} is being written by another run (pid {pid})").format(
                    run_dir=run_dir, pid=(lock_holder(run_dir) or {}).get("pid", "?")),
                hint=_("follow it with qat-tui attach {run_dir}, or choose another run folder (Data step)").format(run_dir=run_dir),
            ))
            return False
        try:
            save(settings, os.path.join(run_dir, SETTINGS_FILENAME))
            self.wizard.mark_saved(settings)
            pid, offset = start_detached(run_dir)
        except QatError as e:  # e.g. the disk is full
            self.show_qat_error(e)
            return False
        except OSError as e:
            self.show_error(_("Run directory"), _("cannot start the run in {run_dir}: {error}").format(run_dir=run_dir, error=e),
                            _("choose another run folder (Data step)"))
            return False
        self.notify(_("Run started in process {pid} (it survives closing the wizard).").format(pid=pid), timeout=5)
        self.push_screen(RunScreen(settings, attach=run_dir, offset=offset, started_here=True))
        return True

    # ----------------------------------------------------------------------------- quitting
    def action_quit(self) -> None:  # type: ignore[override]
        """``q``/``ctrl+q`` (and the palette's Quit): during a run asks whether to leave it running or
        stop it; with settings edited since they were last loaded or saved asks first; else quits."""
        rs = self.run_screen
        if rs is not None and rs.running:
            from .screens.quit_modal import QuitModal

            def chosen(choice: Optional[str]) -> None:
                if choice == "stop":
                    rs.request_cancel()
                    self.exit(message=_("Asked the run to stop at its next batch; qat-tui resume {run_dir} continues it.").format(
                        run_dir=rs.attach_dir))
                elif choice == "leave":
                    self.exit(message=_("The run goes on; follow it with: qat-tui attach {run_dir}").format(run_dir=rs.attach_dir))

            self.push_screen(QuitModal(rs.attach_dir), chosen)
            return
        commit = getattr(self.screen, "commit", None)  # a wizard step: its fields' valid values count too
        if commit is not None:
            commit(strict=False)
        unsaved = self.wizard.unsaved_keys()
        if unsaved:
            from .screens.confirm_modal import ConfirmModal

            def answered(yes: Optional[bool]) -> None:
                if yes:
                    self._quit_now()

            shown = ", ".join(unsaved[:6]) + (_(" and {n} more").format(n=len(unsaved) - 6) if len(unsaved) > 6 else "")
            self.push_screen(ConfirmModal(
                _("Quit with unsaved settings?"),
                _("Changed since the settings were last loaded or saved: {keys}.\n"
                  "Quit now and these edits are lost. To keep them, stay and press s on the Review step "
                  "(it writes settings.toml into the run folder).").format(keys=shown),
                yes=_("Quit without saving"), no=_("Stay"),
            ), answered)
            return
        self._quit_now()

    async def _shutdown(self) -> None:  # Textual's, in every way out (run_test's too)
        await self.next_step.settle()  # a screen built ahead that still composes finishes first
        await super()._shutdown()

    def _quit_now(self) -> None:
        self.closing = True
        self.exit()

    # ----------------------------------------------------------------------------- language
    async def action_language(self, lang: Optional[str] = None) -> None:
        """Show the wizard in ``lang`` (default: the next of :data:`~qat_tui.i18n.LANGS`); every screen
        on the stack that shows the language redraws it (``lang_changed``, awaited when a coroutine:
        the wizard steps compose themselves again, keeping the values being edited), the help pages
        above all; the footers show the bindings in the new language."""
        from .i18n import LANGS

        new = lang if lang in LANGS else self._next_lang()
        self.wizard.lang = new
        for screen in list(self.screen_stack):
            changed = getattr(screen, "lang_changed", None)
            if changed is not None:
                result = changed(new)
                if inspect.isawaitable(result):
                    await result
        self.refresh_bindings()
        self.next_step.rebuild()  # the one built ahead shows the old language
        self.notify(_("Language: English (F2 or the palette's Language switches)"), timeout=3)

    def _next_lang(self) -> str:
        from .i18n import LANGS

        langs = list(LANGS)
        current = self.wizard.lang if self.wizard.lang in langs else langs[0]
        return langs[(langs.index(current) + 1) % len(langs)]

    # -------------------------------------------------------------------------------- keys
    def apply_ui_keymap(self, keymap: Dict[str, str]) -> List[str]:
        """Rebind keys by binding id (``[ui] keymap``, Textual's :meth:`set_keymap`); the ids no binding
        has are left out and named, with the valid ids, in the error modal. Returns those ids."""
        if not keymap:
            return []
        from .keymap import binding_ids, split_keymap, unknown_ids_message

        known = binding_ids([QatApp])
        good, unknown = split_keymap(keymap, known)
        self.set_keymap(good)
        if unknown:
            self.show_error(_("Keymap"), unknown_ids_message(unknown, known),
                            _("fix [ui] keymap in the settings file (README, Keys, lists every id and its keys); "
                              "the other entries are applied"))
        return unknown

    def handle_bindings_clash(self, clashed_bindings: Any, node: Any) -> None:
        """A [ui] keymap gave a key that another binding of the same screen has: said once per key."""
        seen = self.__dict__.setdefault("_clashes_told", set())
        for b in clashed_bindings:
            if (b.key, b.id) not in seen:
                seen.add((b.key, b.id))
                self.notify(_("[ui] keymap: {key} is also the key of {id}, which loses it here").format(key=b.key, id=b.id or b.action),
                            severity="warning", timeout=6)

    # ------------------------------------------------------------------------ command palette
    PALETTE = (
        (N_("Next step"), "next", N_("Go to the next wizard step")),
        (N_("Back"), "back", N_("Go back one step")),
        (N_("Run"), "run", N_("Start the run (its own process: survives closing the wizard)")),
        (N_("Save settings"), "save", N_("Write settings.toml into the run directory without running")),
        (N_("Export script"), "export", N_("Write the settings as a standalone Python script")),
        (N_("Cancel run"), "cancel", N_("Stop the running stage at the next batch (asks first)")),
        (N_("Attach to a run"), "attach_running", N_("Follow the first run in progress")),
        (N_("Show results"), "results", N_("Open the results of the run")),
        (N_("Help"), "help", N_("Explain the concepts of this screen")),
    )
    """The palette's commands on the current screen: (name, the screen's action, help), English, marked
    with ``N_`` and shown translated. Each calls the very action its key calls; it is listed where the
    screen has that action and allows it now."""

    TEXTUAL_COMMANDS = (
        N_("Keys"), N_("Hide the keys and widget help panel"),
        N_("Show help for the focused widget and a summary of available keys"),
        N_("Minimize"), N_("Minimize the widget and restore to normal size"),
        N_("Maximize"), N_("Maximize the focused widget"),
        N_("Screenshot"), N_("Save an SVG 'screenshot' of the current screen"),
        N_("Bell"), N_("Ring the bell"),
        N_("palette"), N_("Open the command palette"),  # the footer's key of the palette
    )
    """The titles and help of Textual's own palette commands, marked here so that they are shown
    translated (:meth:`get_system_commands`)."""

    def keys_of(self, screen: Any, action: str) -> List[str]:
        """The keys (as shown) that run ``action`` of ``screen`` (or of the app) now, keymap applied."""
        out: List[str] = []
        try:
            active = screen.active_bindings
        except Exception:
            return out
        for key, ab in active.items():
            binding = ab.binding
            if binding.action == action and (ab.node is screen or ab.node is self):
                shown = self.get_key_display(binding)
                if shown not in out:
                    out.append(shown)
        return out

    def get_system_commands(self, screen: Any) -> Any:
        # Textual's own (Theme, Quit, Keys, Screenshot...), Theme and Quit named alike on every version
        # (Textual 6.2 says "Change theme", "Quit the application"); Quit calls this app's action_quit
        for command in super().get_system_commands(screen):
            if command.callback == self.action_change_theme:
                command = command._replace(title=_("Theme"), help=_("Change the colours of the wizard"))
            elif command.callback == self.action_quit:
                command = command._replace(title=_("Quit"), help=_("Quit the wizard (asks first with unsaved edits or a run)"))
            else:
                command = command._replace(title=_(command.title), help=_(command.help))
            yield command
        for name, action, help_text in self.PALETTE:
            method = getattr(screen, "action_" + action, None)
            if method is None or screen.check_action(action, ()) is False:
                continue
            keys = self.keys_of(screen, action)
            yield SystemCommand(_(name), _(help_text) + (" (%s)" % ", ".join(keys) if keys else ""), method)
        names = {"en": "English", "zh": "中文"}  # each language's own name, never translated
        other, keys = self._next_lang(), self.keys_of(screen, "language")
        title = _("Language")
        yield SystemCommand(title if title == "Language" else title + " / Language", _("Switch the wizard to {other} (now {now})").format(
            other=names.get(other, other), now=names.get(self.wizard.lang, self.wizard.lang))
            + (" (%s)" % ", ".join(keys) if keys else ""), self.action_language)


__all__ = ["QatApp"]
