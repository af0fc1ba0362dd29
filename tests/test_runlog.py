"""The command line, the headless runner and the run screen in zh and en, and the run screen's log that
explains (notes under the lines that matter, qat_tui/log_notes.py) with the raw log one key away."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from typing import Any, List

import pytest

from core import settings as S
from core.i18n import get_language, in_lang, set_language
from qat_tui import log_notes
from qat_tui.app import QatApp
from qat_tui.cli import _lang_of_argv, _parser, main
from qat_tui.screens.run_screen import NOTE_INDENT

from .conftest import requires_torch_backend, tiny_settings_dict
from .test_app import SIZE, screen_name, wait_for

LOCALE_VARS = ("LANGUAGE", "LC_ALL", "LANG", "QAT_TUI_LANG")


def cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.fixture
def zh_locale(monkeypatch: Any) -> None:
    for var in LOCALE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")


@pytest.fixture
def c_locale(monkeypatch: Any) -> None:
    for var in LOCALE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "C")


# ----------------------------------------------------------------------------------- the command line

def test_lang_is_read_from_argv_before_the_parser(c_locale: None) -> None:
    assert _lang_of_argv(["run", "--config", "x.toml", "--lang", "zh"]) == "zh"
    assert _lang_of_argv(["--lang=en", "status"]) == "en"
    assert _lang_of_argv(["status", "--lang", "fr"]) is None  # argparse says what is wrong
    assert _lang_of_argv(["export", "--", "--lang"]) is None
    for argv in (["--lang", "zh", "status"], ["status", "--lang", "zh"], ["run", "--config", "x", "--lang", "zh"],
                 ["serve", "--lang", "zh"], ["models", "--lang", "zh"], ["debug", "r", "--lang", "zh"]):
        assert _parser().parse_args(argv).lang == "zh", argv
    assert _parser().parse_args(["status"]).lang is None


def test_help_is_translated_and_fits_80_columns() -> None:
    env = {k: v for k, v in os.environ.items() if k not in LOCALE_VARS}
    for args in ([], ["run"], ["debug"], ["serve"], ["preset"]):
        zh = subprocess.run([sys.executable, "-m", "qat_tui"] + args + ["--help"], capture_output=True, text=True,
                            check=True, env=dict(env, LANG="zh_CN.UTF-8", COLUMNS="80")).stdout
        en = subprocess.run([sys.executable, "-m", "qat_tui"] + args + ["--help"], capture_output=True, text=True,
                            check=True, env=dict(env, LANG="C", COLUMNS="80")).stdout
        assert zh.startswith("用法：qat-tui") and "显示此帮助信息并退出" in zh, zh
        assert en.startswith("usage: qat-tui") and "show this help message and exit" in en and not has_chinese(en)
        # the examples were wider than 80 columns in English already; the rest wraps by cells
        wide_zh = [line for line in zh.splitlines() if cells(line) > 80 and not line.startswith("  qat-tui ")
                   and not line.startswith(" " * 40)]
        assert not wide_zh, wide_zh
    assert "--lang" in subprocess.run([sys.executable, "-m", "qat_tui", "--lang", "zh", "status", "--help"],
                                      capture_output=True, text=True, check=True, env=env).stdout


def test_serve_refuses_another_host_in_zh_and_en() -> None:
    env = {k: v for k, v in os.environ.items() if k not in LOCALE_VARS}
    for lang, needles in (("zh_CN.UTF-8", ("拒绝监听 0.0.0.0", "--allow-remote", "SSH")),
                          ("C", ("refusing to listen on 0.0.0.0", "--allow-remote", "SSH"))):
        proc = subprocess.run([sys.executable, "-m", "qat_tui", "serve", "--host", "0.0.0.0"], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL, env=dict(env, LANG=lang))
        assert proc.returncode == 2 and proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1
        for needle in needles:
            assert needle in proc.stderr, (needle, proc.stderr)
    proc = subprocess.run([sys.executable, "-m", "qat_tui", "serve", "--host", "0.0.0.0", "--lang", "zh"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=dict(env, LANG="C"))
    assert "拒绝监听" in proc.stderr


def test_status_in_zh_fits_80_columns(tmp_path: Any, capsys: Any, monkeypatch: Any, zh_locale: None) -> None:
    from core.state import RunState

    run_dir = tmp_path / "a-run-folder-with-a-rather-long-name-to-fold"
    state = RunState(str(run_dir))
    state.data["stages"] = {
        "float": {"status": "finished", "metrics": {"top1": 91.25}, "finished_at": "2026-12-02T10:18:07"},
        "qat": {"status": "cancelled", "finished_at": "2026-12-02T10:20:00"},
    }
    state.save()
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "qat-tui 运行" in out and "运行目录" in out and "已取消" in out and "91.2" in out, out
    assert max(cells(line) for line in out.splitlines()) <= 80, out
    assert main(["status", str(tmp_path / "none")]) == 1
    assert "没有找到运行" in capsys.readouterr().out
    assert main(["--lang", "en", "status", str(tmp_path / "none")]) == 1
    assert "no runs found in" in capsys.readouterr().out


def test_settings_ui_lang_when_no_lang_is_given(tmp_path: Any, capsys: Any, c_locale: None) -> None:
    """[ui] lang of the settings file the command loads; --lang wins over it."""
    path = str(tmp_path / "s.toml")
    S.save(S.preset("quick", ui={"lang": "zh"}, run={"run_dir": str(tmp_path / "run")}), path)
    assert main(["export", path, "-o", str(tmp_path / "qat_x.py")]) == 0
    assert "逐阶段运行" in capsys.readouterr().out
    assert main(["export", path, "-o", str(tmp_path / "qat_y.py"), "--lang", "en"]) == 0
    assert "run it stage by stage" in capsys.readouterr().out


@requires_torch_backend
def test_headless_run_in_zh(cifar_python_root: str, tmp_path: Any, capsys: Any, zh_locale: None) -> None:
    """LANG=zh_CN.UTF-8: the stage lines, the summary table and the last line are Chinese; the event log
    stays English (for machines)."""
    data = tiny_settings_dict(cifar_python_root, str(tmp_path / "run"), float={"epochs": 1},
                              data={"train_images": 256, "eval_images": 128})
    settings = S.validate(data)
    path = str(tmp_path / "settings.toml")
    S.save(settings, path)
    assert main(["run", "--config", path, "--stage", "float"]) == 0
    assert get_language() == "zh"
    out = capsys.readouterr().out
    for needle in ("运行于", "后端 torch", "float 完成，用时", "测试集精度", "相对浮点（点）", "产物", "完成，用时"):
        assert needle in out, (needle, out)
    with open(os.path.join(settings.run_path(), "events.jsonl"), encoding="utf-8") as f:
        types = [json.loads(line)["type"] for line in f]
    assert "StageFinished" in types and "RunFinished" in types
    # again: the skip line is Chinese too
    assert main(["run", "--config", path, "--stage", "float"]) == 0
    assert "跳过：" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ the notes

def test_every_note_is_marked_and_translated() -> None:
    for key, note in log_notes.NOTES.items():
        zh = in_lang("zh", note)
        assert zh != note and has_chinese(zh), key


def test_notes_for_events_and_the_drop() -> None:
    from core.events import ArtifactWritten, CheckAdvice, LogLine, StageFailed, StageFinished, StageStarted

    note = log_notes.note_for(StageStarted(stage="qat", inputs=["calib-checkpoint.ckpt"]))
    assert note is not None and "fresh copy of the float model" in note and "calib-checkpoint.ckpt" in note
    assert "fake quant on" in (log_notes.note_for(StageFinished(stage="calib")) or "")
    assert "what the chip computes" in (log_notes.note_for(StageFinished(stage="int_infer")) or "")
    assert "hbm" in (log_notes.note_for(ArtifactWritten(stage="compile", name="model.hbm")) or "")
    assert log_notes.note_for(ArtifactWritten(stage="compile", name="perf.html")) is None
    assert "advice" in (log_notes.note_for(CheckAdvice(passed=False)) or "")
    assert "passed" in (log_notes.note_for(CheckAdvice(passed=True)) or "")
    assert "arrow" in (log_notes.note_for(StageFailed(stage="float")) or "")
    assert "resumes" in (log_notes.note_for(StageFailed(stage="float", cancelled=True)) or "")
    assert log_notes.note_for(LogLine(text="hello")) is None
    assert log_notes.drop_note("calib", 70.0, [("float", 80.0)]) is not None
    assert log_notes.drop_note("calib", 79.0, [("float", 80.0)]) is None  # within DROP_POINTS
    assert "from qat" in (log_notes.drop_note("int_infer", 60.0, [("float", 80.0), ("calib", None), ("qat", 79.0)]) or "")
    assert log_notes.drop_note("float", 60.0, []) is None
    set_language("zh")
    assert "伪量化" in (log_notes.note_for(StageFinished(stage="calib")) or "")
    assert "下降 10.0 个点" in (log_notes.drop_note("calib", 70.0, [("float", 80.0)]) or "")


def _write_run(run_dir: str, fail: bool = False) -> None:
    """An events.jsonl and a worker.log as a finished (or failed) detached run leaves them."""
    from core.events import (ArtifactWritten, CheckAdvice, EpochEnd, RunFinished, RunStarted, StageFailed,
                             StageFinished, StageStarted)

    os.makedirs(run_dir)
    events: List[Any] = [RunStarted(run_dir=run_dir, stages=["float", "calib", "qat", "int_infer", "compile"],
                                    backend="torch", device="cpu")]
    top1 = {"float": 80.0, "calib": 70.0, "qat": 79.0, "int_infer": 78.9, "compile": 78.9}
    inputs = {"float": [], "calib": ["float-checkpoint.ckpt"], "qat": ["calib-checkpoint.ckpt"],
              "int_infer": ["qat-checkpoint.ckpt"], "compile": ["int_model.pt2"]}
    for stage, acc in top1.items():
        events.append(StageStarted(stage=stage, inputs=inputs[stage], summary="the %s stage" % stage))
        if fail and stage == "qat":
            events.append(StageFailed(stage="qat", title="Data", message="no images in /nowhere",
                                      hint="set [data] root to the folder that holds the images"))
            events.append(RunFinished(ok=False, failed_stage="qat", seconds=3.0))
            break
        events.append(EpochEnd(stage=stage, epoch=1, epochs=1, train_loss=0.5, top1=acc, top5=99.0, best=True))
        if stage == "compile":
            events.append(ArtifactWritten(stage="compile", name="model.hbm", path=os.path.join(run_dir, "model.hbm"),
                                          size=4096, description="the deployable model"))
            events.append(CheckAdvice(stage="compile", passed=True, summary="PASS: 53 of 53 ops run on the BPU"))
        events.append(StageFinished(stage=stage, metrics={"top1": acc, "top5": 99.0}, seconds=1.0))
    else:
        events.append(RunFinished(ok=True, seconds=12.0))
    with open(os.path.join(run_dir, "events.jsonl"), "w", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e.to_dict()) + "\n")
    with open(os.path.join(run_dir, "worker.log"), "w", encoding="utf-8") as f:
        f.write("worker: torch imported\nhbdk: compile says hello\n")


def _log_view_text(run: Any) -> str:
    """What the log widget shows, without its spaces and line ends (it wraps long lines at 80 columns)."""
    view = run.query_one("#log-view")
    return "".join("".join(seg.text for seg in strip) for strip in view.lines).replace(" ", "")


def _shown(needle: str, run: Any) -> bool:
    return needle.replace(" ", "") in _log_view_text(run)


async def test_run_screen_notes_in_zh_then_en_and_the_raw_log(tmp_path: Any) -> None:
    from textual.widgets import TextArea

    run_dir = str(tmp_path / "explained")
    _write_run(run_dir)
    app = QatApp(settings=None, detect=False, attach=run_dir, lang="zh")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "ResultsScreen", 10, "the results screen")
        await pilot.press("escape")
        assert screen_name(app) == "RunScreen"
        run = app.run_screen
        await pilot.press("3")
        await pilot.pause()
        lines = run.log_lines()
        text = "\n".join(lines)
        for needle in ("校准设定初始 scale（观测器）；其 top-1 是在开启伪量化时测得的",
                       "QAT 训练浮点模型的一个新副本（已插入伪量化）；它加载 calib-checkpoint.ckpt",
                       "定点模型（convert）：这里的 top-1 就是芯片的计算结果",
                       "hbm 已写出", "模型检查通过",
                       "top-1 比 float 下降 10.0 个点：请看逐层 debug（结果界面按 d）",
                       "运行完成，用时 12 秒"):
            assert needle in text, (needle, text)
        # each note follows its line: calib's note is right under "calib finished"
        i = next(n for n, line in enumerate(lines) if line.startswith("calib 完成"))
        assert lines[i + 1].startswith(NOTE_INDENT)
        assert "校准设定初始 scale" in lines[i + 1]
        assert _shown("校准设定初始 scale", run)
        footer = [k.description for k in app.screen.query("FooterKey")]
        assert "原始日志" in footer and "返回" in footer, footer
        assert str(run.query_one("#run-tabs").get_tab("log").label) == "3 日志"
        # F2: English, the log drawn again
        await pilot.press("f2")
        await pilot.pause()
        assert _shown("calibration sets the initial scales (observers); its top-1 is measured with fake quant on", run)
        assert _shown("see the per-layer debug (d on results)", run) and not has_chinese(_log_view_text(run))
        assert "QAT trains a fresh copy of the float model prepared with fake quant; it loads calib-checkpoint.ckpt" \
            in run.log_lines()[run.log_lines().index("== qat: the qat stage (loads calib-checkpoint.ckpt)") + 1]
        assert "Raw log" in [k.description for k in app.screen.query("FooterKey")]
        # l: the raw lines, as written
        await pilot.press("l")
        await wait_for(pilot, lambda: screen_name(app) == "TextModal", 10, "the raw log")
        raw = app.screen.query_one("#text-body", TextArea).text
        assert '"type": "RunStarted"' in raw and '"type": "StageFinished"' in raw
        assert "hbdk: compile says hello" in raw and "==> %s <==" % os.path.join(run_dir, "worker.log") in raw
        with open(os.path.join(run_dir, "events.jsonl"), encoding="utf-8") as f:
            for line in f:
                assert line.rstrip("\n") in raw
        await pilot.press("escape")
        assert screen_name(app) == "RunScreen"


async def test_a_failed_stage_logs_its_error_hint_and_note_in_en(tmp_path: Any) -> None:
    run_dir = str(tmp_path / "failed")
    _write_run(run_dir, fail=True)
    app = QatApp(settings=None, detect=False, attach=run_dir, lang="en")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.run_screen is not None and not app.run_screen.running, 10, "the replay")
        await pilot.pause()
        lines = app.run_screen.log_lines()
        i = next(n for n, line in enumerate(lines) if line.startswith("qat failed: Data: no images in /nowhere"))
        assert lines[i + 1] == "-> set [data] root to the folder that holds the images"
        assert "the arrow says what to do" in lines[i + 2]
        assert any("QAT trains a fresh copy of the float model" in line for line in lines)
        assert "run failed at qat" in "\n".join(lines)
