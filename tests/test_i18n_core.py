"""The engine's texts in Chinese (core/i18n.py): the settings' help and errors, the commented settings
TOML, the exported scripts' comments, the stage table, the backends' choices and check advice.

Each test switches to zh; the conftest fixture puts English back. The code an exported script runs
must not depend on the language: only comments and docstrings change.
"""
from __future__ import annotations

import ast
import re

import pytest

from core import i18n
from core import settings as S
from core import stage_table as T
from core.errors import SettingsError

CJK = re.compile(r"[\u4e00-\u9fff]")


def _comments(text: str):
    return [line for line in text.splitlines() if line.lstrip().startswith("#")]


def test_field_help_follows_the_language() -> None:
    en = S.field_help("qat", "lr")
    assert en == "QAT learning rate: small, it is a fine-tune."
    i18n.set_language("zh")
    zh = S.field_help("qat", "lr")
    assert CJK.search(zh) and zh != en
    assert CJK.search(S.section_help("qat"))
    i18n.set_language("en")
    assert S.field_help("qat", "lr") == en


def test_every_settings_description_is_marked_and_translated() -> None:
    """Every key of every section (the backends' too) has zh help: a description that is not in the
    catalog (added without N_ + make po) would come back in English."""
    untranslated = []
    for section in S.all_sections():
        for key, field in S.section_model(section).model_fields.items():
            if field.description and i18n.in_lang("zh", field.description) == field.description:
                untranslated.append("[%s] %s" % (section, key))
    assert not untranslated, untranslated


def test_dumps_in_zh_has_chinese_comments_and_loads_back_equal() -> None:
    settings = S.preset("quick", model={"builder": "net.py:build"}, data={"train_images": None})
    english = S.dumps(settings)
    i18n.set_language("zh")
    text = S.dumps(settings)
    comments = _comments(text)
    assert sum(1 for c in comments if CJK.search(c)) > 40, comments[:10]
    assert "# qat-tui 设置" in text
    assert "（未设置）" in text  # train_images = ... (unset), in Chinese
    assert "# arch = \"mobilenet_v2\"  （未使用：已设置 builder）" in text
    # the keys and values are the same as in English: only the comments differ
    assert [line for line in text.splitlines() if not line.lstrip().startswith("#")] == \
        [line for line in english.splitlines() if not line.lstrip().startswith("#")]
    assert S.loads(text) == settings
    i18n.set_language("en")
    assert S.loads(text) == settings  # a file written in zh reads the same in English


def test_settings_errors_in_zh_keep_key_value_and_allowed_values() -> None:
    i18n.set_language("zh")
    with pytest.raises(SettingsError) as e:
        S.validate({"qat": {"epochs": 0}, "data": {"layout": "folders"}})
    msg = str(e.value)
    assert "qat.epochs = 0" in msg and "输入应大于或等于 1" in msg
    assert "data.layout = 'folders'" in msg and "'cifar-python'" in msg
    assert CJK.search(e.value.hint or "")
    with pytest.raises(SettingsError) as e:
        S.validate({"qat": {"epoch": 3}})
    assert "'epoch'" in str(e.value) and "[qat]" in str(e.value) and "允许的键" in str(e.value)
    assert "epochs" in str(e.value)  # the allowed keys stay as they are
    with pytest.raises(SettingsError) as e:
        S.validate({"run": {"device": "gpu"}})
    assert "run.device = 'gpu'" in str(e.value) and "必须是" in str(e.value) and "'cuda:N'" in str(e.value)
    with pytest.raises(SettingsError) as e:
        S.loads("")
    assert CJK.search(str(e.value)) and "qat-tui preset quick -o FILE" in (e.value.hint or "")


def test_english_errors_are_pydantics_own() -> None:
    with pytest.raises(SettingsError) as e:
        S.validate({"qat": {"epochs": 0}})
    assert "qat.epochs = 0: input should be greater than or equal to 1" in str(e.value)


def test_stage_table_and_backend_choices_in_zh() -> None:
    from core.backends import get_spec

    i18n.set_language("zh")
    for stage in T.TABLE:
        assert CJK.search(i18n._(stage.summary)), stage.name
        assert i18n._(stage.label) != stage.label or stage.label == stage.name, stage.name
    values = S.Settings().model_dump()
    torch_help = get_spec("torch").choices(values, None)[("qconfig", "calib_observer")]
    assert all(CJK.search(text) for text in torch_help.values()), torch_help
    horizon = get_spec("horizon").choices(dict(values, horizon={"march": "bayes"}), None)
    assert "示例" in horizon[("horizon", "march")]["bayes"]
    assert all(CJK.search(text) for text in horizon[("horizon", "opt")].values())
    assert CJK.search(S.section_help("horizon"))


def _code_only(source: str) -> str:
    """The script's syntax tree without docstrings (comments are not in it)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@pytest.mark.parametrize("backend,extra", [("torch", {}), ("horizon", {"horizon": {"march": "bayes"}})])
def test_exported_script_comments_follow_the_language(backend, extra, tmp_path) -> None:
    from core.export import render_script

    settings = S.preset("quick", run={"backend": backend, "run_dir": str(tmp_path / "run")}, **extra)
    english = render_script(settings)
    assert "{{#" not in english
    assert "# Written by qat-tui from the wizard's choices." in english
    i18n.set_language("zh")
    chinese = render_script(settings)
    compile(chinese, "<zh script>", "exec")
    assert "{{#" not in chinese
    assert "# 由 qat-tui 根据向导中的选择写入。" in chinese
    assert CJK.search(ast.get_docstring(ast.parse(chinese)) or "")
    assert sum(1 for c in _comments(chinese) if CJK.search(c)) >= 5
    assert _code_only(chinese) == _code_only(english)  # the same code, only the words differ
    # wrapped to the line width in terminal cells (a CJK character takes two)
    from core.export import COMMENT_WIDTH, _cells
    own = set(chinese.splitlines()) - set(english.splitlines())
    wrapped = [line for line in own if CJK.search(line) and "THIS_FILE" not in line]  # not the command listing
    assert wrapped and max(_cells(line) for line in wrapped) <= COMMENT_WIDTH


def test_render_comments_wraps_and_refuses_unknown_keys() -> None:
    from core.errors import QatError
    from core.export import render_comments

    text = render_comments('def f():\n    """{{#k}}"""\n    # {{#c}}\n    return 1\n',
                           {"k": "word " * 30 + "\n\n    kept  as is", "c": "short"}, width=40)
    lines = text.splitlines()
    assert lines[1].startswith('    """word') and all(len(line) <= 40 for line in lines)
    assert '        kept  as is"""' in lines and "    # short" in lines  # a listing keeps its own indentation
    compile(text, "<t>", "exec")
    with pytest.raises(QatError):
        render_comments("# {{#missing}}\n", {})


def test_check_advice_in_zh() -> None:
    from core.backends.horizon.common import parse_check_output

    i18n.set_language("zh")
    report = parse_check_output("layer conv1: advice: slow\nHBDK model check PASS\n", 0)
    assert report.passed and report.summary == "HBDK model check PASS (1 行建议)"


def test_preset_help_in_zh() -> None:
    assert S.preset_help("quick") == S.PRESET_HELP["quick"]
    i18n.set_language("zh")
    assert CJK.search(S.preset_help("quick")) and S.preset_help("nope") == ""
