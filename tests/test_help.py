"""The help pages (``?``/F1) and the language choice: ``resolve_lang``'s precedence, a page in en and
zh for every step of :data:`qat_tui.state.STEPS` and for the run and results screens (fitting 80
columns), their packaging, and a Pilot walk that opens the help on every step at 80x24."""
from __future__ import annotations

import fnmatch
import os
from typing import Any, List

import pytest

from qat_tui.app import QatApp
from qat_tui.i18n import HELP_DIR, LANGS, first_heading, help_path, read_help, resolve_lang
from qat_tui.state import STEPS

from .test_app import SIZE, _write_synthetic_run, quick_settings, screen_name, text_of, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def screen_pages() -> List[str]:
    """The help pages of the screens that are not steps (run, results), as the screens name them."""
    from qat_tui.screens.results_screen import ResultsScreen
    from qat_tui.screens.run_screen import RunScreen

    return [RunScreen.HELP_PAGE, ResultsScreen.HELP_PAGE]


def all_pages() -> List[str]:
    return [s.id for s in STEPS] + screen_pages()


# ------------------------------------------------------------------------------------- language

@pytest.mark.parametrize("cli, env, want", [
    (None, {}, "en"),
    (None, {"LANG": "zh_CN.UTF-8"}, "zh"),
    (None, {"LANG": "zh_TW.UTF-8"}, "zh"),
    (None, {"LANG": "en_US.UTF-8"}, "en"),
    (None, {"LANG": "C"}, "en"),
    (None, {"LANG": "C.UTF-8"}, "en"),
    (None, {"LANG": "de_DE.UTF-8"}, "en"),
    (None, {"LC_ALL": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),  # LC_ALL before LANG
    (None, {"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),
    (None, {"LANGUAGE": "zh_CN:en_US", "LC_ALL": "C", "LANG": "C"}, "zh"),  # LANGUAGE first
    (None, {"LANGUAGE": "en_US:zh_CN", "LANG": "zh_CN.UTF-8"}, "en"),  # its first entry counts
    (None, {"LANGUAGE": "", "LC_ALL": "", "LANG": "zh_CN.UTF-8"}, "zh"),  # empty = unset
    (None, {"LANGUAGE": ":zh_CN", "LANG": "en_US.UTF-8"}, "en"),  # an empty first entry: the next variable
    ("en", {"LANG": "zh_CN.UTF-8"}, "en"),  # --lang beats the locale
    ("zh", {"LANG": "C"}, "zh"),
    ("zh_CN", {}, "zh"),
    ("", {"LANG": "zh_CN.UTF-8"}, "zh"),  # an empty --lang: the locale
])
def test_resolve_lang(cli: Any, env: Any, want: str) -> None:
    assert resolve_lang(cli, environ=env) == want


def test_resolve_lang_reads_os_environ(monkeypatch: Any) -> None:
    for var in ("LANGUAGE", "LC_ALL", "LANG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert resolve_lang() == "zh"
    assert QatApp(detect=False).wizard.lang == "zh"  # the app's shared state holds it
    assert QatApp(detect=False, lang="en").wizard.lang == "en"
    monkeypatch.setenv("LC_ALL", "C")
    assert resolve_lang() == "en"


def test_cli_lang_option() -> None:
    from qat_tui.cli import _parser

    p = _parser()
    assert p.parse_args([]).lang is None
    assert p.parse_args(["--lang", "zh", "--preset", "quick"]).lang == "zh"
    assert p.parse_args(["--lang", "zh", "attach", "runs/x"]).lang == "zh"
    assert p.parse_args(["attach", "runs/x", "--lang", "en"]).lang == "en"
    assert p.parse_args(["resume", "runs/x", "--lang", "zh"]).lang == "zh"
    with pytest.raises(SystemExit):
        p.parse_args(["--lang", "fr"])


# ---------------------------------------------------------------------------------------- pages

@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", all_pages())
def test_every_step_and_screen_has_a_page(page: str, lang: str) -> None:
    path = help_path(page, lang)
    assert os.path.exists(path), "no %s help page for %r: write %s" % (lang, page, os.path.relpath(path, ROOT))
    text = read_help(page, lang)
    heading = first_heading(text)
    assert text.startswith("# ") and heading, "%s must start with a '# ' heading" % path
    has_cjk = any("\u4e00" <= ch <= "\u9fff" for ch in heading)
    assert has_cjk == (lang == "zh"), "%s: the heading %r is not in %s" % (path, heading, lang)


def test_no_page_without_a_screen() -> None:
    """Every page file belongs to a step or a screen (a renamed step leaves no orphan behind)."""
    pages = set(all_pages())
    for lang in LANGS:
        for name in os.listdir(os.path.join(HELP_DIR, lang)):
            assert name.endswith(".md") and name[:-3] in pages, "qat_tui/help/%s/%s belongs to no step or screen" % (lang, name)


@pytest.mark.parametrize("lang", LANGS)
def test_diagrams_fit_80_columns(lang: str) -> None:
    """Code blocks do not wrap: at 80 columns the viewer shows 68 cells of them (Chinese characters
    take two); longer lines would be cut."""
    from rich.cells import cell_len

    for page in all_pages():
        fenced = False
        for n, line in enumerate(read_help(page, lang).splitlines(), 1):
            if line.startswith("```"):
                fenced = not fenced
            elif fenced:
                assert cell_len(line) <= 66, "%s line %d is %d cells wide: %r" % (help_path(page, lang), n, cell_len(line), line)


def test_missing_page_falls_back() -> None:
    assert read_help("no-such-page", "zh").startswith("# no-such-page")


def test_pages_are_package_data() -> None:
    """pyproject installs every help page: each language's folder is a listed package whose package
    data takes its pages (a wheel without them shows none; a new language needs both lines)."""
    import tomlkit

    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        tool = tomlkit.parse(f.read())["tool"]["setuptools"]
    for lang in LANGS:
        package = "qat_tui.help." + lang
        assert package in tool["packages"], "%s is not in [tool.setuptools] packages" % package
        patterns = tool["package-data"].get(package, [])
        for page in all_pages():
            assert any(fnmatch.fnmatch(page + ".md", pat) for pat in patterns), \
                "%s.md is not in [tool.setuptools.package-data] %s" % (page, package)


# ---------------------------------------------------------------------------------- the wizard

async def open_help(pilot: Any, app: Any, key: str, page: str, lang: str) -> None:
    """Press ``key`` on the current screen: the help screen shows ``page``'s first heading in
    ``lang`` (the Markdown's H1); Escape returns to the same screen."""
    from qat_tui.screens.help_screen import close_hint

    before = app.screen
    want = first_heading(read_help(page, lang))
    await pilot.press(key)
    await wait_for(pilot, lambda: screen_name(app) == "HelpScreen" and app.screen.query("MarkdownH1"), 10,
                   "the help page %s (%s) after %s on %s" % (page, lang, key, type(before).__name__))
    help_screen = app.screen
    assert (help_screen.page, help_screen.lang) == (page, lang)
    h1 = help_screen.query_one("MarkdownH1")
    await wait_for(pilot, lambda: text_of(h1).strip() == want, 5, "the heading %r" % want)
    assert 0 <= h1.region.y < SIZE[1] and h1.region.height > 0  # on screen, at the top
    title = text_of(help_screen.query_one("#help-title"))
    assert want in title and close_hint(lang) in title  # the key hint in the page's language
    await pilot.press("escape")
    await wait_for(pilot, lambda: app.screen is before, 5, "back on %s" % type(before).__name__)


async def test_help_on_every_step(cifar_python_root: str, tmp_path: Any) -> None:
    """One session walks all steps and presses ? on each (F1 on one; on the Data step while its text
    box has the focus); Escape comes back to the step."""
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "run")), detect=False, lang="en")
    async with app.run_test(size=SIZE) as pilot:
        for i, step in enumerate(STEPS):
            await wait_for(pilot, lambda: getattr(app.screen, "help_page", lambda: "")() == step.id, 10,
                           "step %s" % step.name)
            assert "? or F1: help" in text_of(app.screen.query_one(".step-heading"))
            if i == 0:
                assert type(app.focused).__name__ == "SettingInput"  # ? is not typed into the text box
                value = app.focused.value
            await open_help(pilot, app, "f1" if i == 1 else "question_mark", step.id, "en")
            if i == 0:
                assert app.focused is not None and app.focused.value == value
            if i + 1 < len(STEPS):  # on the last step (Review) ctrl+n would start the run
                await pilot.press("ctrl+n")
        assert screen_name(app) == "ReviewScreen"


async def test_help_in_chinese_on_the_run_and_results_screens(tmp_path: Any) -> None:
    """With lang zh the pages are the Chinese ones: on the results screen, the run screen and the first
    step."""
    run_dir = str(tmp_path / "detached")
    _write_synthetic_run(run_dir)
    app = QatApp(settings=None, detect=False, attach=run_dir, lang="zh")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "ResultsScreen", 10, "the results screen")
        await open_help(pilot, app, "question_mark", "results", "zh")
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "RunScreen", 5, "the run screen")
        await open_help(pilot, app, "f1", "run", "zh")
        await pilot.press("escape")  # the run has finished: back to the first step
        await wait_for(pilot, lambda: screen_name(app) == "DataScreen", 5, "the data step")
        assert "? 或 F1：帮助" in text_of(app.screen.query_one(".step-heading"))
        await open_help(pilot, app, "question_mark", "data", "zh")
