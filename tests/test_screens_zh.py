"""The wizard's screens in Chinese: started in zh, switched at runtime (F2) with the values being edited
kept, the footer's keys translated, and each field's "more" link opening its step's help page at the
section about it. Driven by Pilot at 80x24 (tests/test_app.py's helpers)."""
from __future__ import annotations

from typing import Any, Optional, Tuple

from core.i18n import in_lang
from qat_tui.app import QatApp
from qat_tui.i18n import read_help
from qat_tui.screens.help_screen import topic_heading
from qat_tui.state import STEPS, step_heading

from .test_app import SIZE, footer_keys, quick_settings, screen_name, text_of, type_into, wait_for


def test_step_heading_in_both_languages() -> None:
    from core.i18n import set_language

    assert step_heading(2) == "Step 3 of 7 - Backend and device"
    set_language("zh")
    assert step_heading(2) == "第 3/7 步 - 后端与设备"
    assert [s.title for s in STEPS][:3] == ["数据", "模型", "后端"]


def test_topic_heading_finds_the_section_of_a_key() -> None:
    page = read_help("data", "en")
    assert topic_heading(page, "root") == "The data set"  # first mentioned as **root** under it
    assert topic_heading(page, "preset") == "Presets"  # named by a heading
    assert topic_heading(page, "no_such_key") is None
    assert topic_heading(read_help("data", "zh"), "preset") == "预设（preset）"


async def test_started_in_chinese(cifar_python_root: str, tmp_path: Any) -> None:
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "run")), detect=False, lang="zh")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "DataScreen", 10, "the data step")
        heading = text_of(app.screen.query_one(".step-heading"))
        assert "第 1/7 步 - 数据与运行目录" in heading and "? 或 F1：帮助" in heading
        crumb = text_of(app.screen.query_one("#breadcrumb"))
        assert "1 数据" in crumb and "7 确认" in crumb
        assert str(app.screen.query_one("#nav-next").label) == "下一步 >"
        await wait_for(pilot, lambda: {"下一步", "返回", "退出"} <= set(footer_keys(app)), 10, "the footer in zh")


def _more_link(app: Any, widget: Any) -> Optional[Tuple[int, int]]:
    """Screen coordinates of the first cell of ``widget`` whose style has an ``@click`` action."""
    region = widget.region
    for y in range(region.y, region.bottom):
        for x in range(region.x, region.right):
            style = app.screen.get_style_at(x, y)
            if style.meta.get("@click"):
                return x, y
    return None


async def test_f2_switches_the_step_and_keeps_the_values(cifar_python_root: str, tmp_path: Any) -> None:
    """On the Stages step: a value typed (and an invalid one) survive F2; the heading, the fields' help,
    the intro and the footer become Chinese, and F2 again brings English back."""
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "run")), detect=False, lang="en")
    async with app.run_test(size=SIZE) as pilot:
        for _i in range(3):
            await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: screen_name(app) == "StagesScreen", 10, "the stages step")
        await wait_for(pilot, lambda: "Next" in footer_keys(app), 10, "the English footer")
        await type_into(pilot, app, "float", "epochs", "3")
        await type_into(pilot, app, "qat", "epochs", "x")  # invalid: stays typed, not stored
        await pilot.pause()
        assert app.screen.get_field("qat", "epochs").field_error_text
        stored_qat = app.values["qat"]["epochs"]
        await pilot.press("f2")
        await wait_for(pilot, lambda: "第 4/7 步" in text_of(app.screen.query_one(".step-heading")), 10, "the zh heading")
        screen = app.screen
        assert app.wizard.lang == "zh"
        assert in_lang("zh", "Each stage loads the checkpoint of the one before it (shown under it, updated as you "
                             "switch stages).") == text_of(screen.query_one(".step-intro"))
        assert screen.get_field("float", "epochs").control.value == "3"
        assert app.values["float"]["epochs"] == 3
        assert screen.get_field("qat", "epochs").control.value == "x"
        assert screen.get_field("qat", "epochs").field_error_text  # still marked
        assert app.values["qat"]["epochs"] == stored_qat
        help_line = text_of(screen.query_one("#field-float-enabled .field-help"))
        assert help_line.endswith("更多")
        assert "加载" in text_of(screen.query_one("#loads-calib"))  # the stage flow, recomputed in zh
        await wait_for(pilot, lambda: {"下一步", "返回", "退出"} <= set(footer_keys(app)), 10, "the zh footer")
        assert str(screen.query_one("#nav-back").label) == "< 上一步"
        await pilot.press("f2")
        await wait_for(pilot, lambda: "Step 4 of 7" in text_of(app.screen.query_one(".step-heading")), 10, "English again")
        await wait_for(pilot, lambda: {"Next", "Back", "Quit"} <= set(footer_keys(app)), 10, "the English footer")
        assert app.screen.get_field("float", "epochs").control.value == "3"


async def test_f2_redraws_the_steps_below(cifar_python_root: str, tmp_path: Any) -> None:
    """The steps under the current one are redrawn too: Escape after F2 shows the previous step in zh."""
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "run")), detect=False, lang="en")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: screen_name(app) == "ModelScreen", 10, "the model step")
        await pilot.press("f2")
        await wait_for(pilot, lambda: "第 2/7 步" in text_of(app.screen.query_one(".step-heading")), 10, "zh")
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "DataScreen", 10, "back on the data step")
        assert "第 1/7 步" in text_of(app.screen.query_one(".step-heading"))
        assert app.screen.get_field("data", "root").control.value == cifar_python_root


async def test_more_link_opens_the_help_at_the_field(cifar_python_root: str, tmp_path: Any) -> None:
    """Clicking "more" after [data] root's help opens the Data page scrolled to the data set section."""
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "run")), detect=False, lang="en")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "DataScreen", 10, "the data step")
        help_line = app.screen.query_one("#field-data-root .field-help")
        assert text_of(help_line).endswith(" more")
        await pilot.pause()
        where = _more_link(app, help_line)
        assert where is not None, "no clickable 'more' in %r" % text_of(help_line)
        await pilot.click(offset=where)
        await wait_for(pilot, lambda: screen_name(app) == "HelpScreen", 10, "the help page")
        help_screen = app.screen
        assert (help_screen.page, help_screen.topic) == ("data", "root")
        viewer = help_screen.query_one("#help-viewer")
        await wait_for(pilot, lambda: viewer.scroll_y > 0, 10, "the page scrolled to the section")
        target = [h for h in help_screen.query("MarkdownH2") if "the-data-set" in (h.id or "")]
        assert target, "no heading 'The data set' (its id names its slug)"
        assert 0 <= target[0].region.y - viewer.region.y <= 2  # the section's heading at the top of the page
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "DataScreen", 10, "back")


async def test_more_link_action_on_every_step(cifar_python_root: str, tmp_path: Any) -> None:
    """The link's action (the screen's help with a topic) opens each step's own page, in zh too."""
    app = QatApp(settings=quick_settings(cifar_python_root, str(tmp_path / "run")), detect=False, lang="zh")
    async with app.run_test(size=SIZE) as pilot:
        for i, step in enumerate(STEPS[:-1]):
            await wait_for(pilot, lambda: getattr(app.screen, "help_page", lambda: "")() == step.id, 10, step.name)
            step_screen = app.screen
            field = step_screen.fields()[0]
            assert text_of(field.query_one(".field-help")).endswith("更多") or not field.query_one(".field-help").display
            step_screen.action_help(field.key)
            await wait_for(pilot, lambda: screen_name(app) == "HelpScreen", 10, "help of %s" % step.id)
            assert (app.screen.page, app.screen.lang, app.screen.topic) == (step.id, "zh", field.key)
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is step_screen, 10, "back on %s" % step.id)
            await pilot.press("ctrl+n")
