"""The engine's messages in Chinese (issue 11): errors, their hints and titles, the reasons and log lines
of a run follow core.i18n's language when they are made; a failed headless run with ``LANG=zh_CN.UTF-8``
says what was wrong and what to do in Chinese (exit code 2), with ``LANG=C`` in English. The modules the
exported scripts embed verbatim (safe_load, model_build) stay English there and import nothing of qat-tui.
"""
import os
import subprocess
import sys
from typing import Any, Dict

import pytest

from core import i18n
from core.errors import DataError, DiskFullError, ModelError, QatError, SettingsError
from core.settings import save, validate

from .conftest import TORCH_BACKEND, USER_NET

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_error_titles_and_messages_follow_the_language_when_raised() -> None:
    assert SettingsError("x").title == "Settings" and DataError("x").title == "Data"
    i18n.set_language("zh")
    assert SettingsError("x").title == "设置" and ModelError("x").title == "模型" and QatError("x").title == "错误"
    assert QatError("x", title="Run directory").title == "运行目录"
    full = DiskFullError("/runs/a/float-checkpoint.ckpt", "/dev/sdb1", "/runs/a", 2_500_000)
    assert full.title == "磁盘已满"
    assert "/dev/sdb1 (/runs/a) 上没有剩余空间（剩余 2.5 MB）：写入 float-checkpoint.ckpt 失败" in full.msg
    assert "已完成的阶段和 epoch 会保留" in full.hint
    i18n.set_language("en")
    assert SettingsError("x").title == "Settings"  # made again in English: each error in the language of its time


def test_a_missing_data_folder_in_zh_names_both_layouts_and_what_to_do(tmp_path: Any) -> None:
    from core.data import detect_layout

    i18n.set_language("zh")
    with pytest.raises(DataError) as e:
        detect_layout(str(tmp_path / "nothing-here"))
    assert "数据文件夹 %s 不存在。" % (tmp_path / "nothing-here") in e.value.msg
    assert "数据文件夹下应是以下两种布局之一" in e.value.msg and "cifar-10-batches-py" in e.value.msg
    assert e.value.hint.startswith("请把图片按 train/<class>/ 和 val/<class>/ 文件夹放在那里")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.txt").write_text("x")
    with pytest.raises(DataError) as e:
        detect_layout(str(tmp_path / "other"), "imagefolder")
    assert "中没有找到 imagefolder 布局的数据（其中有：readme.txt）。" in e.value.msg


def test_a_builder_that_is_not_there_in_zh(tmp_path: Any) -> None:
    from core import model_build as MB

    i18n.set_language("zh")
    with pytest.raises(MB.ModelBuildError) as e:
        MB.load_builder("missing_dir/net.py:build", str(tmp_path))
    assert "[model] builder：文件 %s 不存在" % (tmp_path / "missing_dir" / "net.py") in str(e.value)
    assert "然后是 ':' 和函数名" in e.value.hint
    with pytest.raises(MB.ModelBuildError) as e:
        MB.load_builder(USER_NET + ":nope", REPO)
    assert "中没有函数 'nope'" in str(e.value) and e.value.hint.startswith("那里定义的函数和类：")


@pytest.mark.parametrize("name", ["safe_load.py", "model_build.py"])
def test_embedded_modules_speak_english_outside_qat_tui(name: str) -> None:
    """An exported script embeds these files verbatim: there they import nothing of qat-tui and say what
    they say in English, whatever language qat-tui runs in."""
    with open(os.path.join(REPO, "core", name), encoding="utf-8") as f:
        source = f.read()
    assert "from core" not in source and "from ." not in source and "import core" not in source
    i18n.set_language("zh")
    script: Dict[str, Any] = {"__name__": "exported_script"}
    exec(compile(source, "<exported %s>" % name, "exec"), script)
    assert script["_"]("{path} does not exist") == "{path} does not exist"
    if name == "model_build.py":
        with pytest.raises(script["ModelBuildError"]) as e:
            script["load_builder"]("nope")
        assert "is not 'package.module:function'" in str(e.value)
    # and inside qat-tui (package "core") the same function translates
    from core import model_build

    assert model_build._("{path} does not exist") == "{path} 不存在"


def test_reasons_and_moved_aside_outputs_in_zh(tmp_path: Any) -> None:
    """What the pipeline decides never depends on the words of a message: a changed output is moved aside
    and a disabled stage shows no stale result in zh as in en."""
    from core import events as E
    from core.pipeline import Pipeline
    from core.state import RunState, artifact_check, artifact_record

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    s = validate({"run": {"run_dir": str(run_dir)}, "data": {"root": str(tmp_path / "data")}, "model": {"num_classes": 10}})
    ckpt = run_dir / "float-checkpoint.ckpt"
    ckpt.write_bytes(b"what float wrote")
    state = RunState(str(run_dir))
    state.start("float", "f", {})
    state.finish("float", {"top1": 50.0}, {"float-checkpoint.ckpt": artifact_record(str(run_dir), "float-checkpoint.ckpt",
                                                                                   str(ckpt), "float weights")}, 1.0)
    ckpt.write_bytes(b"something else, written later")
    i18n.set_language("zh")
    kind, why = artifact_check(str(run_dir), "float-checkpoint.ckpt", state.stage("float")["artifacts"]["float-checkpoint.ckpt"])
    assert kind == "changed" and why.startswith("float-checkpoint.ckpt 在写出后被改动过")
    events: list = []
    p = Pipeline(s, emit=events.append)
    plan = {item.stage: item.reason for item in p.plan()}
    assert plan["float"].startswith("它的输出变了：float-checkpoint.ckpt 在写出后被改动过") and plan["calib"] == "还没运行过"
    p._move_aside_changed_outputs(state, "float")
    assert not ckpt.exists() and [f for f in os.listdir(run_dir) if f.startswith("float-checkpoint.ckpt.changed-")]
    assert "；已另存为 float-checkpoint.ckpt.changed-" in events[-1].text
    skipped = p._not_run(state, "float", i18n._("disabled in the settings"), set(), disabled=True)
    assert isinstance(skipped, E.StageSkipped) and skipped.reason == "在设置中已关闭" and skipped.status == ""


# ------------------------------------------------------------------------- a failed run, headless

def _headless(settings_path: str, lang: str) -> "subprocess.CompletedProcess[str]":
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", i18n.ENV_VAR)}
    env["LANG"] = lang
    env["COLUMNS"] = "1000"  # one line per message: no wrap inside a needle
    return subprocess.run([sys.executable, "-m", "qat_tui", "run", "--config", settings_path], capture_output=True,
                          text=True, timeout=600, env=env, cwd=REPO)


CASES = {
    "no data": ({}, {
        "zh_CN.UTF-8": ["数据文件夹 {data} 不存在。", "数据文件夹下应是以下两种布局之一",
                        "-> 请把图片按 train/<class>/ 和 val/<class>/ 文件夹放在那里"],
        "C": ["data folder {data} does not exist.", "Expected one of two layouts under the data folder",
              "-> put your images there as train/<class>/ and val/<class>/ folders"],
    }),
    "no builder file": ({"model": {"builder": "missing_dir/net.py:build", "num_classes": 3}}, {
        "zh_CN.UTF-8": ["[model] builder：文件 %s 不存在" % os.path.join(REPO, "missing_dir", "net.py"),
                        "-> 请给出 .py 文件的路径（相对于启动 qat-tui 的文件夹），然后是 ':' 和函数名"],
    }),
}


@pytest.mark.parametrize("case,lang", [("no data", "zh_CN.UTF-8"), ("no data", "C"), ("no builder file", "zh_CN.UTF-8")])
def test_a_failed_headless_run_says_why_in_the_locale_and_exits_2(case: str, lang: str, tmp_path: Any, request: Any) -> None:
    sections, needles = CASES[case]
    data = str(tmp_path / "no-such-data")
    settings: Dict[str, Any] = {"run": {"run_dir": str(tmp_path / "run")}, "data": {"root": data}, "float": {"epochs": 1}}
    if not TORCH_BACKEND:  # Horizon's Python 3.8 environment: the same through the horizon backend (its double)
        request.getfixturevalue("horizon_double")
        settings["run"]["backend"] = "horizon"
        settings["qconfig"] = {"calib_observer": "min_max"}
    for name, values in sections.items():
        settings.setdefault(name, {}).update(values)
    path = str(tmp_path / "s.toml")
    save(validate(settings), path)
    proc = _headless(path, lang)
    out = " ".join((proc.stdout + proc.stderr).split())  # the console wraps long lines
    assert proc.returncode == 2, out[-3000:]
    for needle in needles[lang]:
        assert " ".join(needle.format(data=data).split()) in out, out[-3000:]
    assert "Traceback" not in out
