"""The next step's screen built ahead (qat_tui.screen_cache): shown at the step forward only where it
shows what a new one would; values edited persist, validation still blocks, F2 rebuilds it."""
from __future__ import annotations

import time
from typing import Any, Callable

from qat_tui.app import QatApp
import pytest

from qat_tui.screen_cache import TEXTUAL_PARTS, state_key, supported

from .test_app import SIZE, quick_settings, screen_name, text_of, type_into


needs_ahead = pytest.mark.skipif(
    not supported(QatApp(detect=False)),
    reason="this Textual lacks one of %s (Textual 6 on Python 3.8 has no screen_change_signal): the wizard "
    "builds every step at the key there (test_without_textual_support_every_step_is_built_at_the_key)" % (TEXTUAL_PARTS,))


async def wait_for(pilot: Any, cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out waiting for " + what
        await pilot.pause(0.05)


async def ready(pilot: Any, app: Any, name: str) -> Any:
    """The screen built ahead, once it is ``name``'s and mounted."""
    await wait_for(pilot, lambda: type(app.next_step.ready).__name__ == name and app.next_step.ready.is_mounted,
                   "%s built ahead" % name)
    await pilot.pause()
    return app.next_step.ready


@needs_ahead
async def test_next_step_is_built_ahead_and_shown(cifar_python_root: str, tmp_path: Any) -> None:
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        names = ["ModelScreen", "BackendScreen", "StagesScreen", "QconfigScreen", "CompileScreen", "ReviewScreen"]
        for i, name in enumerate(names):
            built = await ready(pilot, app, name)
            assert built not in app.screen_stack  # hidden until the step forward
            key = state_key(app.wizard)
            await pilot.press("ctrl+n")
            assert app.screen is built, "step %d: a new %s, not the one built ahead" % (i + 1, screen_name(app))
            assert state_key(app.wizard) == key  # building it ahead changed no value
        assert app.next_step.used == len(names)
        assert app.next_step.ready is None  # nothing after the review
        # the review built ahead shows the values
        assert "[float]" in app.screen.query_one("#toml").text
        # Back and forward again: the popped screen is removed as before, the one shown is built ahead again
        await pilot.press("escape")
        assert screen_name(app) == "CompileScreen"
        again = await ready(pilot, app, "ReviewScreen")
        assert not built.is_attached
        await pilot.press("ctrl+n")
        assert app.screen is again


@needs_ahead
async def test_a_value_changed_after_building_gives_a_new_screen_with_it(cifar_python_root: str, tmp_path: Any) -> None:
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n", "ctrl+n")
        assert screen_name(app) == "BackendScreen"
        built = await ready(pilot, app, "StagesScreen")
        assert built.get_field("float", "epochs").raw() == str(app.values["float"]["epochs"])
        app.values["float"]["epochs"] = 7  # e.g. a preset applied on this step
        await pilot.press("ctrl+n")
        assert screen_name(app) == "StagesScreen" and app.screen is not built
        assert app.screen.get_field("float", "epochs").raw() == "7"
        await pilot.pause()
        assert not built.is_attached  # the stale one is dropped


@needs_ahead
async def test_edits_persist_and_validation_still_blocks(cifar_python_root: str, tmp_path: Any) -> None:
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        assert screen_name(app) == "StagesScreen"
        built = await ready(pilot, app, "QconfigScreen")
        await type_into(pilot, app, "qat", "epochs", "two")
        await pilot.press("ctrl+n")
        assert screen_name(app) == "StagesScreen"  # refused although the next screen is ready
        assert "qat.epochs" in text_of(app.screen.query_one("#nav-status"))
        assert built.is_attached and built not in app.screen_stack
        await pilot.press("ctrl+u", *list("4"))
        await pilot.press("ctrl+n")
        assert screen_name(app) == "QconfigScreen"
        assert app.values["qat"]["epochs"] == 4
        # back to Stages: the value typed is there; forward, back, forward: still there
        await pilot.press("escape")
        assert screen_name(app) == "StagesScreen"
        assert app.screen.get_field("qat", "epochs").raw() == "4"
        await type_into(pilot, app, "float", "epochs", "9")
        await pilot.press("escape")  # Back stores the valid values too
        assert screen_name(app) == "BackendScreen"
        await ready(pilot, app, "StagesScreen")
        await pilot.press("ctrl+n")
        assert screen_name(app) == "StagesScreen"
        assert app.screen.get_field("float", "epochs").raw() == "9"
        assert app.screen.get_field("qat", "epochs").raw() == "4"
        s = app.current_settings()
        assert (s.float.epochs, s.qat.epochs) == (9, 4)


@needs_ahead
async def test_a_help_page_in_between_keeps_the_screen_built_ahead(cifar_python_root: str, tmp_path: Any) -> None:
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        built = await ready(pilot, app, "ModelScreen")
        await pilot.press("f1")
        assert screen_name(app) == "HelpScreen"
        await pilot.press("escape")
        assert screen_name(app) == "DataScreen"
        await pilot.press("ctrl+n")
        assert app.screen is built


@needs_ahead
async def test_language_switch_rebuilds_the_screen_built_ahead(cifar_python_root: str, tmp_path: Any) -> None:
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False, lang="en")
    async with app.run_test(size=SIZE) as pilot:
        english = await ready(pilot, app, "ModelScreen")
        assert "help" in text_of(english.query_one(".step-heading"))
        await pilot.press("f2")
        assert app.wizard.lang == "zh"
        chinese = await ready(pilot, app, "ModelScreen")
        assert chinese is not english and not english.is_attached
        await pilot.press("ctrl+n")
        assert app.screen is chinese
        assert "帮助" in text_of(app.screen.query_one(".step-heading"))


@needs_ahead
async def test_a_screen_dropped_while_it_composes_is_removed_cleanly(cifar_python_root: str, tmp_path: Any) -> None:
    """A screen built ahead can go stale before it has composed (a key pressed at once under load):
    dropping it then must not leave its on_mount without its widgets (NoMatches, the app exits)."""
    import asyncio

    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "ModelScreen")
        dropped = []
        for delay in (0, 0, 0.001, 0.003, 0.01, 0.03):
            app.next_step.discard()
            app.next_step.prepare(1)
            dropped.append(app.next_step.ready)
            if delay:
                await asyncio.sleep(delay)
            app.next_step.discard()
            await pilot.pause(0.1)
        await wait_for(pilot, lambda: not any(s.is_attached for s in dropped), "the dropped screens removed")
        await pilot.press("ctrl+n")
        assert screen_name(app) == "ModelScreen"
    assert app.return_code in (None, 0)  # no exception ended it


@needs_ahead
async def test_model_step_being_removed_ignores_what_its_workers_send(cifar_python_root: str, tmp_path: Any) -> None:
    """The model step's arch list and model report come from threads: arriving while the screen is
    being removed (dropped, or left), they are dropped instead of querying widgets already gone."""
    from rich.text import Text

    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        built = await ready(pilot, app, "ModelScreen")
        app.next_step.discard()  # removal starts now; its widgets go in the next ticks
        assert built.leaving
        built._show_archs({"resnet18": "ResNet-18"})
        built._show_report(Text("report"), None, {})
        await pilot.pause(0.2)
        await pilot.press("ctrl+n")
        assert screen_name(app) == "ModelScreen" and not app.screen.leaving
    assert app.return_code in (None, 0)


def _looks(app: Any) -> list:
    """What each widget of the screen shown looks like: where it is, its colours and text style, and
    which one has the focus."""
    return [(type(w).__name__, w.id, tuple(w.region), str(w.rich_style), w.has_focus, w.display)
            for w in app.screen.walk_children(with_self=True)]


@needs_ahead
async def test_a_screen_built_ahead_looks_like_one_built_at_the_key(cifar_python_root: str, tmp_path: Any) -> None:
    """Built ahead, styled then and shown without Textual's restyling: the same regions, colours and
    focus as the screen built at the key press."""
    looks = {}
    for ahead in (True, False):
        app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
        app.next_step.enabled = ahead
        looks[ahead] = []
        async with app.run_test(size=SIZE) as pilot:
            for name in ["ModelScreen", "BackendScreen", "StagesScreen", "QconfigScreen", "CompileScreen", "ReviewScreen"]:
                if ahead:
                    built = await ready(pilot, app, name)
                    await pilot.pause(0.3)  # laid out too
                await pilot.press("ctrl+n")
                await pilot.pause(0.3)
                if ahead:
                    assert app.screen is built
                looks[ahead].append(_looks(app))
        assert app.next_step.used == (6 if ahead else 0)
    for built_ahead, built_at_key in zip(looks[True], looks[False]):
        assert built_ahead == built_at_key


@needs_ahead
async def test_a_step_forward_while_the_next_screen_composes_waits_for_it(cifar_python_root: str, tmp_path: Any) -> None:
    """ctrl+n at once, while the screen built ahead still composes: it is used (awaited until
    mounted), and escape at once goes back. (The benchmark once popped such a screen half-built, whose
    on_mount then found no widgets; this test passes without the wait too: Pilot's keys leave it time.)"""
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "ModelScreen")
        for _ in range(3):
            app.next_step.discard()
            app.next_step.prepare(1)
            built = app.next_step.ready
            assert not built.is_mounted
            await pilot.press("ctrl+n", "escape")
            await wait_for(pilot, lambda: screen_name(app) == "DataScreen" and not built.is_attached, "back on Data")
            assert app.next_step.used >= 1
    assert app.return_code in (None, 0)


@needs_ahead
async def test_closing_while_a_screen_built_ahead_composes(cifar_python_root: str, tmp_path: Any) -> None:
    """The app closes while the next screen is still being built (or dropped): no error at exit (the
    benchmark's apps closed so, and the model step's on_mount found its widgets gone)."""
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "ModelScreen")
        app.next_step.discard()
        app.next_step.prepare(1)
        app.next_step.discard()  # dropped while composing
        app.next_step.prepare(1)  # and one composing
        assert not app.next_step.ready.is_mounted
    assert app.return_code in (None, 0)


async def test_without_textual_support_every_step_is_built_at_the_key(cifar_python_root: str, tmp_path: Any,
                                                                      monkeypatch: Any) -> None:
    """A Textual without what building ahead needs (Textual 6, Python 3.8): nothing is built ahead and
    the wizard still walks every step, keeping the values (runs on every Textual)."""
    import qat_tui.screen_cache as C

    monkeypatch.setattr(C, "TEXTUAL_PARTS", C.TEXTUAL_PARTS + ("no_such_textual_part",))
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "r")), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        await wait_for(pilot, lambda: screen_name(app) == "StagesScreen", "the Stages step")
        await type_into(pilot, app, "qat", "epochs", "3")
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: screen_name(app) == "QconfigScreen", "the Qconfig step")
        assert not app.next_step.enabled and app.next_step.built == 0 and app.next_step.used == 0
        assert app.values["qat"]["epochs"] == 3
