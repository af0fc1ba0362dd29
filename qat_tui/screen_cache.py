"""The next wizard step's screen, built ahead of time (issue 11: a step forward paints in <= 100 ms).

Building a step's screen (compose, mounting its widgets, matching ``app.tcss`` against each of them) is
most of what a step forward costs: about 100 ms of the wizard's CPU, which no ``[run] nice`` can
shorten. So while the user reads a step, the app builds the next one, hidden: :class:`NextStep`
creates the screen and registers it with the app, which composes and styles it then, in the idle
time after the current step is painted; once mounted it is laid out at the app's size and rendered,
still hidden. ``ctrl+n`` then only shows it, as ``escape`` does with the previous step, and skips
Textual's restyling of every widget on showing a screen (:attr:`WizardStep.styled_ahead
<qat_tui.screens.base.WizardStep.styled_ahead>`) where the theme, the app's focus and its size are
those it was styled with (:func:`style_key`): its widgets restyle themselves as their classes change.

A screen built ahead shows what the wizard held when it was built, so it is used only where that is
still what a fresh one would show: the same step, the same values, preset, language and detection
(:func:`state_key`). Otherwise (a value was edited on the current step, the language switched, the
detection finished) it is dropped and the step is built as before, at the key press. A screen built
ahead is never shown twice: once popped (Back), Textual removes it as any other; the next step
forward takes the one built ahead again.

Nothing here imports torch; the step screens are imported when built, as before.
"""
from __future__ import annotations

import copy
from typing import Any, Optional, Tuple

from .state import STEPS, WizardState, screen_class, step_index


TEXTUAL_PARTS = ("screen_change_signal", "_register", "_load_screen_css", "_screen_stacks")
"""What building ahead uses of the App (``screen_change_signal`` is public; the rest are the private
steps of ``App.push_screen``). Textual 6 (Horizon's Python 3.8 dockers) has no ``screen_change_signal``:
there, and with any Textual that lacks one of these, nothing is built ahead and every step is built at
the key, as before (slower, never wrong)."""


def supported(app: Any) -> bool:
    """Whether this Textual has what building ahead needs (:data:`TEXTUAL_PARTS`)."""
    return all(hasattr(app, part) for part in TEXTUAL_PARTS)


def style_key(app: Any) -> Tuple[Any, ...]:
    """What the styles of a screen built ahead depend on beyond its own widgets."""
    return (app.theme, app.app_focus, app.size)


def state_key(wizard: WizardState) -> Tuple[Any, ...]:
    """What a step's screen shows depends on: the values, the preset, the language, the detection
    (the object: a new one arrives when detection finishes) and whether settings were given."""
    return (copy.deepcopy(wizard.values), wizard.preset_name, wizard.lang, id(wizard.detection), wizard.have_settings)


def step_of(screen: Any) -> Optional[int]:
    """The 0-based step whose screen ``screen`` is, or None (a modal, the run screen...)."""
    try:
        return step_index("%s:%s" % (type(screen).__module__, type(screen).__name__))
    except ValueError:
        return None


class NextStep:
    """Builds the screen of the step after the one shown, hidden, and hands it out at the step forward.

    ``app``: the :class:`~qat_tui.app.QatApp` (its ``wizard`` is read; its screen stack is watched
    through ``screen_change_signal``). :meth:`take` is what the app pushes on ``GoNext``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._ready: Optional[Tuple[int, Tuple[Any, ...], Any]] = None  # (step, state_key, screen)
        self._styled: Any = None  # style_key when it was laid out
        self._dropping: set = set()  # dropped while composing: removed once mounted
        self.enabled = True
        self.built = 0  # screens built ahead (tests, the benchmark)
        self.used = 0  # of them, shown

    def watch(self) -> None:
        """Follow the app's screen changes: whenever a step is shown, build the next one after the
        paint. Call once the app runs (``on_mount``). Without what it needs (:func:`supported`) it
        turns itself off."""
        if not supported(self.app):
            self.enabled = False
            return
        self.app.screen_change_signal.subscribe(self.app, self._screen_changed)

    # ------------------------------------------------------------------------------ building
    def _screen_changed(self, screen: Any) -> None:
        step = step_of(screen)
        if step is not None and step + 1 < len(STEPS):
            # after the new screen is painted: its key to paint goes first
            self.app.call_after_refresh(self.prepare, step + 1, screen)

    def prepare(self, step: int, shown: Any = None) -> None:
        """Build step ``step``'s screen now, hidden, unless the one built already fits, or the step
        shown is no longer ``shown`` (the user moved on meanwhile)."""
        app = self.app
        if not self.enabled or app.closing or not app.is_running:
            return
        if shown is not None and app.screen is not shown:
            return
        key = state_key(app.wizard)
        if self._ready is not None:
            if self._ready[0] == step and self._ready[1] == key and self._ready[2].is_attached:
                return
            self.discard()
        screen = screen_class(step)()
        app._load_screen_css(screen)
        app._register(app, screen)  # what push_screen does first: compose, mount and style it, now
        self._ready = (step, key, screen)
        self.built += 1
        self.app.set_timer(0.05, lambda: self._lay_out(screen))

    def _lay_out(self, screen: Any) -> None:
        """Once the screen built ahead has mounted, lay it out at the app's size and render it, hidden
        (what showing it would do first: its widgets' sizes, their first lines), so that the step
        forward only repaints it."""
        if self.ready is not screen or screen.is_current or not screen.is_attached:
            return
        if not screen.is_mounted:
            self.app.set_timer(0.05, lambda: self._lay_out(screen))
            return
        screen._refresh_layout(self.app.size)
        screen._compositor.render_full_update()
        self._styled = (screen, style_key(self.app))

    async def take(self, step: int) -> Any:
        """The screen to push for step ``step``: the one built ahead where it fits, else a new one.
        One still composing is awaited first (the rest of its building is less than a new one's, and
        pushed half-built it could be painted so, or popped and removed before its on_mount)."""
        ready = self._ready
        if ready is not None and ready[0] == step and ready[2].is_attached and not ready[2].is_mounted:
            await ready[2]._mounted_event.wait()
        ready, self._ready = self._ready, None
        if ready is not None:
            ready_step, key, screen = ready
            if ready_step == step and screen.is_attached and key == state_key(self.app.wizard):
                self.used += 1
                # laid out and styled as it is now: showing it needs no restyling of every widget
                screen.styled_ahead = screen.is_mounted and self._styled == (screen, style_key(self.app))
                return screen
            self._drop(screen)
        return screen_class(step)()

    def discard(self) -> None:
        """Drop the screen built ahead (the language switched, the app closes)."""
        ready, self._ready = self._ready, None
        if ready is not None:
            self._drop(ready[2])

    def rebuild(self) -> None:
        """The wizard changed outside a step change (the language): build the next step again."""
        self.discard()
        step = step_of(self.app.screen)
        if step is not None and step + 1 < len(STEPS):
            self.app.call_after_refresh(self.prepare, step + 1, self.app.screen)

    def _drop(self, screen: Any) -> None:
        self._dropping.discard(screen)
        if not screen.is_attached or any(screen in stack for stack in self.app._screen_stacks.values()):
            return
        if screen.is_mounted:
            screen.remove()
        else:  # still composing: removed mid-way, its on_mount would find its widgets gone; once mounted
            self._dropping.add(screen)
            self.app.set_timer(0.05, lambda: self._drop(screen))

    async def settle(self, timeout: float = 5.0) -> None:
        """The app is closing: build nothing more, and let the screens built ahead that still
        compose finish (Textual closes them with the app; closed mid-compose, their on_mount would
        find their widgets gone)."""
        import asyncio

        self.enabled = False
        composing = [s for s in list(self._dropping) + [self.ready] if s is not None and s.is_attached and not s.is_mounted]
        if composing:
            try:
                await asyncio.wait_for(asyncio.gather(*(s._mounted_event.wait() for s in composing)), timeout)
            except asyncio.TimeoutError:
                pass

    @property
    def ready(self) -> Optional[Any]:
        """The screen built ahead, if any (tests)."""
        return self._ready[2] if self._ready is not None else None


__all__ = ["NextStep", "TEXTUAL_PARTS", "supported", "state_key", "style_key", "step_of"]
