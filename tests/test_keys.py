"""The habits Textual users expect: every action in the command palette, bindings with ids and the
``[ui] keymap`` that rebinds them, and quitting with unsaved settings edits asking first (``c`` on the
run screen asking first is in tests/test_app.py's cancel test, which already has a run to cancel).

Pilot at 80x24, no torch: these run on Python 3.8 too.
"""
from __future__ import annotations

import os
from typing import Any, List

from qat_tui.app import QatApp
from qat_tui.keymap import binding_ids, wizard_classes

from .test_app import SIZE, _write_synthetic_run, quick_settings, screen_name, text_of, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def palette_names(app: Any) -> List[str]:
    """The names of the commands the palette offers on the current screen."""
    return [c[0] for c in app.get_system_commands(app.screen)]


def palette_options(app: Any) -> List[str]:
    """The text of each option the open command palette lists."""
    from textual.command import CommandList

    options = app.screen.query_one(CommandList)
    return [str(getattr(o.prompt, "plain", o.prompt)) for o in options._options]


async def run_from_palette(pilot: Any, app: Any, name: str) -> None:
    """ctrl+p, type ``name``, wait for it to be the first hit, Enter."""
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: screen_name(app) == "CommandPalette", 10, "the command palette")
    await pilot.press(*list(name))
    await wait_for(pilot, lambda: palette_options(app)[:1] and palette_options(app)[0].startswith(name), 10,
                   "%r first in the palette (it lists %s)" % (name, palette_options(app)))
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen_name(app) != "CommandPalette", 10, "the palette to close")


# --------------------------------------------------------------------------------- binding ids

def test_every_binding_has_an_id_and_the_readme_lists_it() -> None:
    from textual.binding import Binding

    for cls in [QatApp] + wizard_classes():
        for b in cls.__dict__.get("BINDINGS", ()):
            assert isinstance(b, Binding) and b.id, "%s: the binding %r has no id" % (cls.__name__, b)
            assert b.id.split(".")[0] in ("app", "help", "wizard", "data", "review", "run", "results", "debug", "fix",
                                          "error", "text", "quit", "confirm"), b.id
    ids = binding_ids([QatApp])
    for name in ("wizard.next", "wizard.back", "run.cancel", "app.quit", "help.open", "app.language"):
        assert name in ids, name
    assert ids["wizard.next"].keys == ["ctrl+n", "n"] and ids["help.open"].keys == ["f1", "question_mark"]
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    missing = [i for i in ids if "`%s`" % i not in readme]
    assert not missing, "README.md (Keys) does not list %s" % missing


# ---------------------------------------------------------------------------------- the palette

async def test_palette_lists_the_commands_and_runs_the_actions(cifar_python_root: str, tmp_path: Any) -> None:
    """Each screen's commands, where they apply; Next step from the palette advances like ctrl+n; the
    Review step offers Run, Save settings and Export script; Language redraws the help page open."""
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "run")), detect=False, lang="en")
    async with app.run_test(size=SIZE) as pilot:
        names = palette_names(app)
        for name in ("Next step", "Back", "Attach to a run", "Help", "Language", "Theme", "Quit"):
            assert name in names, (name, names)
        for name in ("Run", "Save settings", "Export script", "Cancel run", "Show results"):
            assert name not in names, name  # not on the Data step
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: screen_name(app) == "CommandPalette" and len(palette_options(app)) >= 8, 10,
                       "the palette's commands")
        shown = palette_options(app)
        for name in ("Next step", "Back", "Attach to a run", "Help", "Language", "Theme"):
            assert any(o.startswith(name) for o in shown), (name, shown)
        assert any("(ctrl+n, n)" in o or "(^n" in o for o in shown if o.startswith("Next step")), shown
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "DataScreen", 5, "the palette to close")

        await run_from_palette(pilot, app, "Next step")
        await wait_for(pilot, lambda: screen_name(app) == "ModelScreen", 10, "the Model step from the palette")
        for _ in range(5):
            await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: screen_name(app) == "ReviewScreen", 10, "the Review step")
        names = palette_names(app)
        for name in ("Run", "Save settings", "Export script", "Next step", "Back"):
            assert name in names, (name, names)
        await run_from_palette(pilot, app, "Save settings")
        settings_file = os.path.join(str(tmp_path / "run"), "settings.toml")
        await wait_for(pilot, lambda: os.path.exists(settings_file), 10, "settings.toml from the palette's Save")

        # Language on an open help page: the same page in the other language
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: screen_name(app) == "HelpScreen", 10, "the help page")
        assert "Language" in palette_names(app)
        await run_from_palette(pilot, app, "Language")
        await wait_for(pilot, lambda: app.wizard.lang == "zh" and app.screen.lang == "zh", 10, "the switch to zh")
        await wait_for(pilot, lambda: "关闭" in text_of(app.screen.query_one("#help-title")), 10, "the zh title")
        from qat_tui.i18n import first_heading, read_help

        want = first_heading(read_help("review", "zh"))
        await wait_for(pilot, lambda: any(text_of(h).strip() == want for h in app.screen.query("MarkdownH1")), 10,
                       "the zh page's heading %r" % want)
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "ReviewScreen", 5, "back on the Review step")
        assert "? 或 F1：帮助" in text_of(app.screen.query_one(".step-heading"))
        await pilot.press("f2")  # the language's key
        await wait_for(pilot, lambda: app.wizard.lang == "en", 5, "back to English")
        assert "? or F1: help" in text_of(app.screen.query_one(".step-heading"))


async def test_palette_on_a_finished_run(tmp_path: Any) -> None:
    """A finished (attached) run: Show results and Back, no Cancel run."""
    run_dir = str(tmp_path / "detached")
    _write_synthetic_run(run_dir)
    app = QatApp(settings=None, detect=False, attach=run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "ResultsScreen", 10, "the results screen")
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "RunScreen", 5, "the run screen")
        names = palette_names(app)
        assert "Show results" in names and "Back" in names and "Help" in names
        assert "Cancel run" not in names and "Next step" not in names
        await run_from_palette(pilot, app, "Show results")
        await wait_for(pilot, lambda: screen_name(app) == "ResultsScreen", 10, "the results from the palette")


# ------------------------------------------------------------------------------------ [ui] keymap

async def test_keymap_rebinds_next(cifar_python_root: str, tmp_path: Any) -> None:
    """``[ui] keymap = {"wizard.next" = "f5"}``: f5 goes on, ctrl+n no longer does, the palette says f5."""
    settings = quick_settings(cifar_python_root, str(tmp_path / "run"), ui={"keymap": {"wizard.next": "f5"}})
    app = QatApp(settings=settings, detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert screen_name(app) == "DataScreen"  # no error modal
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen_name(app) == "DataScreen"
        await pilot.press("f5")
        await wait_for(pilot, lambda: screen_name(app) == "ModelScreen", 10, "the Model step after f5")
        help_next = [c[1] for c in app.get_system_commands(app.screen) if c[0] == "Next step"]
        assert help_next and help_next[0].endswith("(f5)"), help_next
        await pilot.press("escape")  # wizard.back keeps its keys
        await wait_for(pilot, lambda: screen_name(app) == "DataScreen", 10, "the Data step after escape")


async def test_unknown_keymap_id_is_refused_with_the_valid_ids(cifar_python_root: str, tmp_path: Any) -> None:
    settings = quick_settings(cifar_python_root, str(tmp_path / "run"),
                              ui={"keymap": {"wizard.nxt": "f5", "wizard.back": "f6"}})
    app = QatApp(settings=settings, detect=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "ErrorModal", 10, "the keymap error")
        assert "Keymap error" in text_of(app.screen.query_one("#error-title"))
        msg = text_of(app.screen.query_one("#error-message"))
        assert "unknown binding id 'wizard.nxt' (did you mean wizard.next?)" in msg
        assert "the valid ids:" in msg and "wizard.next" in msg and "run.cancel" in msg and "app.quit" in msg
        assert "[ui] keymap" in text_of(app.screen.query_one("#error-hint"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen_name(app) == "DataScreen", 5, "the Data step")
        await pilot.press("ctrl+n")  # the unknown entry is left out: next keeps its keys
        await wait_for(pilot, lambda: screen_name(app) == "ModelScreen", 10, "the Model step")
        await pilot.press("f6")  # the valid entry is applied
        await wait_for(pilot, lambda: screen_name(app) == "DataScreen", 10, "the Data step after f6")


# ------------------------------------------------------------------------------ quitting, unsaved

def _exits(app: Any) -> List[Any]:
    """Record the app's exits instead of exiting (the Pilot session goes on)."""
    calls: List[Any] = []
    app.exit = lambda *a, **k: calls.append((a, k))
    return calls


async def test_quit_asks_only_with_unsaved_edits(cifar_python_root: str, tmp_path: Any) -> None:
    run_dir = str(tmp_path / "run")
    app = QatApp(settings=quick_settings(cifar_python_root, run_dir), detect=False)
    async with app.run_test(size=SIZE) as pilot:
        exits = _exits(app)
        # every step walked through without an edit: nothing to lose, q quits at once
        for _ in range(6):
            await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: screen_name(app) == "ReviewScreen", 10, "the Review step")
        assert app.wizard.unsaved_keys() == []
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert len(exits) == 1 and screen_name(app) == "ReviewScreen"
        # an edit on a step (not yet stored by leaving it) counts
        for _ in range(3):
            await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "StagesScreen", 10, "the Stages step")
        app.screen.get_field("float", "epochs").control.focus()
        await pilot.press("end", "ctrl+u", "7")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: screen_name(app) == "ConfirmModal", 5, "the unsaved-edits question")
        assert "Quit with unsaved settings?" in text_of(app.screen.query_one("#confirm-title"))
        assert "float.epochs" in text_of(app.screen.query_one("#confirm-message"))
        assert "s on the Review step" in text_of(app.screen.query_one("#confirm-message"))
        await pilot.press("n")  # stay
        await wait_for(pilot, lambda: screen_name(app) == "StagesScreen", 5, "back on the step")
        assert len(exits) == 1 and app.screen.get_field("float", "epochs").raw() == "7"
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: screen_name(app) == "ConfirmModal", 5, "the question again")
        await pilot.press("y")
        await pilot.pause()
        assert len(exits) == 2
        # saved on the Review step: quitting does not ask
        app.screen.get_field("float", "epochs").control.focus()
        await pilot.press("end", "ctrl+u", "7")
        for _ in range(3):
            await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: screen_name(app) == "ReviewScreen", 10, "the Review step")
        assert app.wizard.unsaved_keys() == ["float.epochs"]
        await pilot.press("s")
        await wait_for(pilot, lambda: app.wizard.unsaved_keys() == [], 5, "the settings saved")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert len(exits) == 3 and screen_name(app) == "ReviewScreen"
