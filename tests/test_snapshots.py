"""Snapshot tests (pytest-textual-snapshot) of every screen at 80x24, in English and Chinese, driven by
real key presses, beside the Pilot behaviour tests of test_app.py.

Each scenario starts a fresh ``QatApp(lang=...)`` and gets to its screen the way a user does: the wizard
steps by pressing Next (ctrl+n) from the first step, as the step list (:data:`qat_tui.state.STEPS`)
orders them; the run, results and debug screens by attaching to a recorded run
(``tests/assets/recorded_run/run``: a real run made once by ``record.py`` there, copied here; nothing
trains in this module). The SVGs live in ``tests/__snapshots__/test_snapshots/``; after a change that
alters a screen on purpose, look at the failure report and accept with::

    .venv/bin/python -m pytest tests/test_snapshots.py --snapshot-update

What makes the pictures the same on every machine and every run:

- paths: the data, the recorded run and the wizard's run folder live in one fixed folder,
  ``/tmp/qat-tui-snap`` (made afresh for the module, under a lock so that two sessions do not share it;
  the tests chdir into it), so every path shown reads the same;
- detection: no worker detects anything (``detect=False``); every app gets what detection finds, found
  by the same code in its language, on a pinned machine (:func:`pinned_detection`: 4 CPU cores, no
  GPU, fixed toolchain versions; the torch backend available, Horizon's not);
- time: the recorded run's clock is fixed (see its README) and the tests run in UTC, so "ran at"
  columns read the same; no screen shown is waiting on a spinner or an indeterminate progress bar;
- the text cursor does not blink (``cursor_blink`` is turned off before each picture).

The pictures do depend on the installed Textual (how its widgets look) and torchvision (the model step
counts its classifiers and quotes the chosen one's docstring): after upgrading either, look at the
report and regenerate them.

Two checks run on the screen's text (the compositor's lines, what the SVG shows): nothing is cut (no
ellipsis; every label, button and text is shown whole in its widget, every footer key fits), on every
picture; and on the zh pictures no English is left (no run of three or more English words, apart from
the kept terms of :data:`KEPT_TERMS`): the test that fails when a shown string was never marked for
translation.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import pytest

pytest.importorskip(
    "pytest_textual_snapshot",
    reason="pytest-textual-snapshot needs Python >= 3.9 (the test extra installs it there); "
    "the Pilot tests of test_app.py cover the screens' behaviour on 3.8",
)

from core.settings import preset  # noqa: E402
from qat_tui.app import QatApp  # noqa: E402
from qat_tui.state import STEPS, Detection  # noqa: E402

from .conftest import write_cifar_python  # noqa: E402

SIZE = (80, 24)
HERE = os.path.dirname(os.path.abspath(__file__))
RECORDED_RUN = os.path.join(HERE, "assets", "recorded_run", "run")
FIXED = "/tmp/qat-tui-snap"
"""The one folder every path shown lives in (record.py normalises the recorded run's paths to it)."""
RUN_DIR = os.path.join(FIXED, "run")
RUNNING_DIR = os.path.join(FIXED, "running")
DATA_DIR = os.path.join(FIXED, "data")
WIZARD_RUN_DIR = "runs/first"
"""The wizard's run folder, relative to FIXED (the tests' working directory); not made."""


PINNED_VERSIONS = {"torch": "2.5.1", "torchao": "0.8.0"}
"""The versions the backend step shows, whatever is installed."""


def pinned_detection() -> Detection:
    """What the detection worker finds, found by the same code in the wizard's language, with what
    differs between machines pinned (:func:`pinned_machine`: 4 CPU cores, no GPU; the toolchains'
    versions: :data:`PINNED_VERSIONS`). The pictures are of a machine where the torch backend runs and
    Horizon's toolchain is not installed (the module is skipped elsewhere)."""
    from core.backends import detect_backends, load_errors
    from core.devices import available_devices

    backends = detect_backends()
    for b in backends:
        b.versions = {k: PINNED_VERSIONS.get(k, "1.0") for k in b.versions}
    return Detection(backends=backends, devices=available_devices(), errors=list(load_errors()))


def pinned_machine(monkeypatch: Any) -> None:
    """4 CPU cores, torch on 4 threads, no CUDA GPU, no Apple GPU."""
    import torch

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)


# ------------------------------------------------------------------------------------- the fixed folder

@pytest.fixture(scope="module")
def fixed_folder() -> Any:
    """``/tmp/qat-tui-snap`` made afresh: synthetic CIFAR-10 in ``data/``, the recorded run in ``run/``,
    and ``running/``: the same run cut off in the middle of QAT (its worker "still running"). Held
    under a lock for the module (another session waits)."""
    from core.backends import specs

    found = {name: spec.detect().available for name, spec in specs().items()}
    if found != {"horizon": False, "torch": True}:
        pytest.skip("the pictures are of a machine where the torch backend runs and Horizon's toolchain is not "
                    "installed; here: %s" % found)
    lock_file = None
    try:
        import fcntl

        lock_file = open(FIXED + ".lock", "w")
        fcntl.flock(lock_file, fcntl.LOCK_EX)
    except ImportError:  # not POSIX: no other session to keep out
        pass
    shutil.rmtree(FIXED, ignore_errors=True)
    os.makedirs(FIXED)
    write_cifar_python(DATA_DIR, n_train=50, n_test=20)
    shutil.copytree(RECORDED_RUN, RUN_DIR)
    _cut_running_copy(RECORDED_RUN, RUNNING_DIR)
    yield FIXED
    shutil.rmtree(FIXED, ignore_errors=True)
    if lock_file is not None:
        lock_file.close()


def _cut_running_copy(src: str, dst: str) -> None:
    """The recorded run as it was in the middle of QAT's second epoch: its events up to a train batch
    of that epoch, its state with float and calib finished and qat running."""
    shutil.copytree(src, dst)
    for name in os.listdir(dst):
        if name not in ("events.jsonl", "state.json", "settings.toml"):
            os.remove(os.path.join(dst, name))
    with open(os.path.join(src, "events.jsonl"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    cut = None
    for i, line in enumerate(lines):
        e = json.loads(line)
        if (e["type"] == "BatchProgress" and e["stage"] == "qat" and e["phase"] == "train" and e["epoch"] == 2
                and e["batch"] >= e["batches"] // 2):
            cut = i + 1
            break
    assert cut is not None, "the recorded run has no second QAT epoch"
    text = "\n".join(lines[:cut]).replace(RUN_DIR, dst) + "\n"
    with open(os.path.join(dst, "events.jsonl"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(src, "state.json"), encoding="utf-8") as f:
        state = json.load(f)
    for stage in ("int_infer", "compile"):
        state["stages"].pop(stage, None)
    qat = state["stages"]["qat"]
    qat.update(status="running", metrics={}, artifacts={}, finished_at=None, seconds=None)
    with open(os.path.join(dst, "state.json"), "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)
    with open(os.path.join(dst, "settings.toml"), encoding="utf-8") as f:
        toml = f.read().replace(RUN_DIR, dst)
    with open(os.path.join(dst, "settings.toml"), "w", encoding="utf-8") as f:
        f.write(toml)


_MODEL_REPORTS: Dict[str, Any] = {}


@pytest.fixture
def snap_env(fixed_folder: str, monkeypatch: Any, tmp_path: Any) -> Any:
    """Per test: in the fixed folder, in UTC, with a run registry of its own; a followed run whose
    worker is gone is never declared lost (the running copy has no worker). The model step's report
    (the real one: it builds the model and counts its MACs, seconds on 2 busy cores) is made once per
    set of values for the module."""
    from qat_tui.screens import model_screen
    from qat_tui.screens.run_screen import RunScreen

    real_report = model_screen.model_report

    def model_report(values: Dict[str, Dict[str, Any]]) -> Any:
        key = json.dumps(values, sort_keys=True, default=str)
        if key not in _MODEL_REPORTS:
            _MODEL_REPORTS[key] = real_report(values)
        text, problem = _MODEL_REPORTS[key]
        return text.copy(), problem

    monkeypatch.setattr(model_screen, "model_report", model_report)
    pinned_machine(monkeypatch)
    monkeypatch.chdir(fixed_folder)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("QAT_TUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(RunScreen, "ATTACH_GRACE_S", 1e9)
    yield fixed_folder
    monkeypatch.undo()
    time.tzset()


# --------------------------------------------------------------------------------------- scenarios

Steps = Callable[[Any], Awaitable[None]]


def wizard_app(lang: str) -> QatApp:
    settings = preset("quick", data={"root": DATA_DIR}, run={"run_dir": WIZARD_RUN_DIR})
    return QatApp(settings=settings, detect=False, lang=lang)


def attached_app(lang: str, run_dir: str = RUN_DIR) -> QatApp:
    return QatApp(settings=None, detect=False, attach=run_dir, lang=lang)


async def settle(pilot: Any, until: Optional[Callable[[], bool]] = None, what: str = "", timeout: float = 30) -> None:
    """Wait until no worker runs and nothing is pending (and ``until()`` holds, when given)."""
    app = pilot.app
    deadline = time.time() + timeout
    while True:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        busy = any(w.is_running for w in app.workers)
        if not busy and (until is None or until()):
            break
        if time.time() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what or "the workers"))
        await pilot.pause(0.1)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def screen_name(app: Any) -> str:
    return type(app.screen).__name__


def plain(widget: Any) -> str:
    """The text a Static/Label/Button shows, as plain text (Textual 6.2 and 8.x)."""
    visual = widget.render()
    text = getattr(visual, "plain", None)
    return text if isinstance(text, str) else str(visual)


async def detected(pilot: Any) -> None:
    """What the detection worker would deliver, delivered: the same on every machine."""
    pilot.app._detected(pinned_detection())
    await pilot.pause()


async def next_step(pilot: Any, times: int = 1) -> None:
    """Next (ctrl+n), ``times`` times, each when the step is ready (the model step builds its model)."""
    for _ in range(times):
        await settle(pilot)
        await pilot.press("ctrl+n")
    await settle(pilot)


def walk_to(index: int) -> Tuple[Callable[[str], QatApp], Steps]:
    """From the first step, Next until step ``index`` of STEPS is shown."""

    async def steps(pilot: Any) -> None:
        await detected(pilot)
        await next_step(pilot, index)
        expected = STEPS[index].screen.rsplit(":", 1)[1]
        assert screen_name(pilot.app) == expected, "Next from the first step %d times: %s, not %s" % (
            index, screen_name(pilot.app), expected)
        if expected == "ModelScreen":  # the list of models and the report come from workers (settle waits)
            await settle(pilot, lambda: bool(pilot.app.screen.archs), "the list of models")

    return wizard_app, steps


async def _results(pilot: Any) -> None:
    await detected(pilot)
    await settle(pilot, lambda: screen_name(pilot.app) == "ResultsScreen", "the results screen")


async def _run(pilot: Any) -> None:
    await _results(pilot)
    await pilot.press("escape")
    await settle(pilot, lambda: screen_name(pilot.app) == "RunScreen", "the run screen")


async def _debug(pilot: Any) -> None:
    await _results(pilot)
    await pilot.press("d")
    await settle(pilot, lambda: screen_name(pilot.app) == "DebugScreen"
                 and pilot.app.screen.query_one("#layer-table").row_count > 0, "the debug report")


async def _help(pilot: Any) -> None:
    await detected(pilot)
    await next_step(pilot, 3)  # the stages step: its page has the pipeline's diagram
    await pilot.press("question_mark")
    await settle(pilot, lambda: screen_name(pilot.app) == "HelpScreen", "the help page")


async def _error(pilot: Any) -> None:
    """int_infer with calib and qat off has no input: Next on the stages step says so in the modal."""
    await detected(pilot)
    await next_step(pilot, 3)
    screen = pilot.app.screen
    for stage in ("calib", "qat"):
        screen.get_field(stage, "enabled").control.focus()
        await pilot.press("space")
    await pilot.press("ctrl+n")
    await settle(pilot, lambda: screen_name(pilot.app) == "ErrorModal", "the error modal")


async def _confirm_quit(pilot: Any) -> None:
    """Quitting with an edit not saved asks first."""
    await detected(pilot)
    await settle(pilot)
    pilot.app.screen.get_field("data", "train_images").control.focus()
    await pilot.press("end", "ctrl+u", "5", "0", "0", "ctrl+q")
    await settle(pilot, lambda: screen_name(pilot.app) == "ConfirmModal", "the quit question")


async def _quit_running(pilot: Any) -> None:
    """q while a followed run goes on: leave it running, stop it, or stay."""
    await detected(pilot)
    await settle(pilot, lambda: screen_name(pilot.app) == "RunScreen" and pilot.app.screen.running
                 and pilot.app.screen.query_one("#epoch-table").row_count >= 5, "the running run")
    await pilot.press("q")
    await settle(pilot, lambda: screen_name(pilot.app) == "QuitModal", "the quit modal")


SCENARIOS: Dict[str, Tuple[Callable[[str], QatApp], Steps]] = {}
for _i, _step in enumerate(STEPS):
    SCENARIOS["step%d_%s" % (_i + 1, _step.id)] = walk_to(_i)
SCENARIOS.update({
    "run": (attached_app, _run),
    "results": (attached_app, _results),
    "debug": (attached_app, _debug),
    "help": (wizard_app, _help),
    "error_modal": (wizard_app, _error),
    "confirm_quit": (wizard_app, _confirm_quit),
    "quit_running": (lambda lang: attached_app(lang, RUNNING_DIR), _quit_running),
})
"""Every screen: the wizard's steps (named by their place and id in STEPS, the review last), the run,
results and debug screens of the recorded run, a help page, the error modal, the question before
quitting with unsaved edits and the one before quitting while a run goes on."""


# ------------------------------------------------------------------------------- the screen's text

def no_blink(app: Any) -> None:
    """Every text cursor of every screen steady (shown when focused), for pictures that never differ."""
    for screen in app.screen_stack:
        for widget in screen.query("*"):
            if getattr(widget, "cursor_blink", None) is True:
                widget.cursor_blink = False


def screen_lines(app: Any) -> List[str]:
    """The screen as text, line by line: what ``App.export_screenshot`` draws (the SVG), as plain text."""
    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False).splitlines()


def cut_widgets(app: Any) -> List[str]:
    """The widgets of the current screen whose text is not shown whole: a Label/Static/Button whose
    own rendering (at its size) lacks part of its text, or a footer key past the screen's right edge
    (or under the command palette's key)."""
    from textual.geometry import Region
    from textual.widgets import Button, Static

    problems = []
    screen = app.screen
    for w in screen.query("*"):
        if not (isinstance(w, (Static, Button)) and w.display and w.visible and w.outer_size.area):
            continue
        text = plain(w)
        want = re.sub(r"\s+", "", text)
        if not want:
            continue
        rendered = w.render_lines(Region(0, 0, w.outer_size.width, w.outer_size.height))
        got = re.sub(r"\s+", "", "".join(strip.text for strip in rendered))
        if want not in got:
            problems.append("%s#%s %r shows %r" % (type(w).__name__, w.id or "", text[:120],
                                                     " / ".join(s.text.rstrip() for s in rendered)[:200]))
    keys = list(screen.query("FooterKey"))
    palette = [k.region.x for k in keys if k.has_class("-command-palette")]
    right = palette[0] if palette else app.size.width
    for k in keys:
        if not k.has_class("-command-palette") and k.display and (k.region.right > right or not k.region.width):
            problems.append("footer key %s %r does not fit (%d..%d of %d)" % (k.key, k.description, k.region.x,
                                                                              k.region.right, right))
    return problems


def capture(app: Any) -> Dict[str, Any]:
    return {"screen": screen_name(app), "lines": screen_lines(app), "cut": cut_widgets(app),
            "texts": [plain(w) for w in app.screen.query("Static, Button") if w.display]}


def ellipsis_lines(captured: Dict[str, Any]) -> List[str]:
    """Lines with an ellipsis (…) that no widget's own text has: text cut by its widget."""
    if any("\u2026" in t for t in captured["texts"]):
        return [line for line in captured["lines"] if line.rstrip().endswith("\u2026")]
    return [line for line in captured["lines"] if "\u2026" in line]


async def test_cut_check_finds_cut_text() -> None:
    """The "nothing cut" check itself: a label one line high that needs two, a text cut with an
    ellipsis and a button narrower than its label are found; text that fits or wraps whole is not."""
    from textual.app import App
    from textual.widgets import Button, Label, Static

    class Cut(App):
        CSS = """
        #low { width: 10; height: 1; }
        #ellipsis { width: 10; text-wrap: nowrap; text-overflow: ellipsis; }
        #narrow { width: 10; height: 1; }
        #wraps { width: 10; }
        """

        def compose(self) -> Any:
            yield Label("fits", id="fits")
            yield Static("wraps onto three lines whole", id="wraps")
            yield Label("one line is not enough", id="low")
            yield Static("cut with an ellipsis", id="ellipsis")
            yield Button("a button with a long label", id="narrow", compact=True)

    app = Cut()
    async with app.run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        captured = capture(app)
    cut = {line.split(" ", 1)[0] for line in captured["cut"]}
    assert cut == {"Label#low", "Static#ellipsis", "Button#narrow"}, captured["cut"]
    assert [line.strip() for line in ellipsis_lines(captured)] == ["cut with \u2026"]


# ------------------------------------------------------------------------------ English left in zh

KEPT_TERMS = {
    "qat", "qat-tui", "top-1", "top-5", "qconfig", "march", "hbm", "bpu", "quantstub", "dequantstub", "hbdk",
    "observer", "torch", "torchao", "torchvision", "pytorch", "cifar-10", "cifar-python", "imagefolder", "mobilenetv2",
    "mobilenet_v2", "cpu", "gpu", "cuda", "sqnr", "db", "ms", "mb", "kb", "gb", "int8", "int16", "int32", "fp32",
    "float", "calib", "int_infer", "compile", "horizon", "aotinductor", "pt2e", "x86inductorquantizer", "openexplorer",
    "batchnorm", "conv", "linear", "relu", "ssh", "tmux", "toml", "json", "markdown", "python", "pypi", "adam", "sgd",
    "cosine", "mse", "minmax", "percentile", "kl", "fake", "quant", "s", "x", "n", "y", "q", "l", "d", "r", "t", "c",
    "esc", "enter", "tab", "space", "ctrl", "shift", "pgup", "pgdn", "home", "end", "up", "down", "palette",
}
"""Words a Chinese screen keeps in English: the toolchain's terms Chinese engineers use as they are,
product and file-format names, units, stage names (they are also the file and key names), key names.
Everything that is a name in the code (file names, paths, settings keys, option values, flags) is
recognised by its shape instead (:func:`english_runs`)."""

KEPT_PHRASES = ("No module named",)
"""English that is not ours: Python's own exception text, quoted in a reason (a toolchain that does not
import)."""

_TOKEN = re.compile(r"\[[a-z_0-9]+\](?: [a-z_0-9]+)?|[^\s\u3000-\u303f\uff00-\uffef\u4e00-\u9fff]+|"
                    r"[\u3000-\u303f\uff00-\uffef\u4e00-\u9fff]+|\s+")
_WORD = re.compile(r"^[(\"'`]*([A-Za-z][a-z]*(?:[-'][a-z]+)*)[)\"'`.,:;!?]*$")


def english_runs(line: str, min_words: int = 3) -> List[str]:
    """The runs of ``min_words`` or more English words in ``line``, a run being words separated by
    spaces only (punctuation inside a run ends it only where a Chinese character or mark stands).

    Not words: settings keys (``[qat] epochs``), anything with a digit, ``/``, ``.`` inside, ``_``,
    ``+``, ``=``, ``<``/``>`` or ``~`` (paths, file names, option values, ``ctrl+n``, ``F1``), words in
    :data:`KEPT_TERMS`, words in upper case (ops, names such as ``PASS``), and the phrases of
    :data:`KEPT_PHRASES`."""
    for phrase in KEPT_PHRASES:
        line = line.replace(phrase, " ")
    runs: List[List[str]] = []
    current: List[str] = []
    for tok in _TOKEN.findall(line):
        if tok.isspace():
            continue
        m = _WORD.match(tok)
        word = m.group(1) if m else ""
        if word and word.lower() not in KEPT_TERMS and not (word.isupper() and len(word) > 1):
            current.append(word)
            if re.search(r"[.,:;!?)]$", tok):  # a sentence's punctuation: the run stops after this word
                runs.append(current)
                current = []
            continue
        if current:
            runs.append(current)
        current = []
    if current:
        runs.append(current)
    return [" ".join(r) for r in runs if len(r) >= min_words]


def test_english_runs_finds_untranslated_text_and_keeps_terms() -> None:
    """The "no English left" check itself: a sentence in English is found, a Chinese one that keeps
    the toolchain's terms, file names, settings keys and key names is not."""
    assert english_runs("Step 4 of 7 - Stages and epochs   ? or F1: help") == ["Stages and epochs"]
    assert english_runs(" run finished in 170 s - r: results, esc: review") == ["run finished in"]
    assert english_runs("  Quit without saving (y)  ") == ["Quit without saving"]
    assert english_runs(" A run is in progress ") == ["A run is in progress"]
    assert english_runs("第 4 步，共 7 步 - 阶段与轮数   ? 或 F1：帮助") == []
    assert english_runs("量化感知训练（QAT）读取 calib-checkpoint.ckpt，按 ctrl+n 继续；[qat] epochs = 2") == []
    assert english_runs("QAT 之后 int_infer 用 top-1 评估 fake quant 模型，见 /tmp/qat-tui-snap/run") == []
    assert english_runs("观测器 observer: mse, percentile; 设备 cuda:0 - NVIDIA H100 80GB HBM3") == []
    assert english_runs("状态 PASS  no-op flatten  int8-in/float-out linear in classifier.1") == []


# ----------------------------------------------------------------------------------------- the tests

CAPTURED: Dict[str, Dict[str, Any]] = {}
"""The zh screens' text, as the snapshot tests saw them (the English check reuses it)."""

CASES = [pytest.param(name, lang, id="%s-%s" % (name, lang)) for name in SCENARIOS for lang in ("en", "zh")]


async def _shoot(pilot: Any, steps: Steps, captured: Dict[str, Any]) -> None:
    await steps(pilot)
    await settle(pilot)
    no_blink(pilot.app)
    await settle(pilot)
    captured.update(capture(pilot.app))


@pytest.mark.parametrize("name, lang", CASES)
def test_snapshot(name: str, lang: str, snap_compare: Any, snap_env: Any) -> None:
    """The screen at 80x24 matches its picture, and nothing on it is cut (checked in both languages:
    the zh screens, whose words take two cells, are the ones at risk)."""
    make_app, steps = SCENARIOS[name]
    app = make_app(lang)
    captured: Dict[str, Any] = {}
    same = snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: _shoot(pilot, steps, captured))
    assert captured, "the %s scenario did not get to its screen" % name
    if lang == "zh":
        CAPTURED[name] = captured
    assert same, "the %s screen in %s differs from its picture (see snapshot_report.html)" % (name, lang)
    shown = "\n".join(captured["lines"])
    assert not ellipsis_lines(captured), "text cut with an ellipsis on %s (%s):\n%s" % (name, lang, shown)
    assert not captured["cut"], "text not shown whole on %s (%s):\n%s\n%s" % (
        name, lang, "\n".join(captured["cut"]), shown)


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_no_english_left_in_zh(name: str, snap_env: Any) -> None:
    """No run of three or more English words on a zh screen (a shown string never marked for
    translation, or not translated): the zh snapshot's text, or the scenario run again here."""
    captured = CAPTURED.get(name)
    if captured is None:
        make_app, steps = SCENARIOS[name]
        app = make_app("zh")
        captured = {}
        async with app.run_test(size=SIZE) as pilot:
            await _shoot(pilot, steps, captured)
    found = [(line, english_runs(line)) for line in captured["lines"] if english_runs(line)]
    assert not found, "English left on the zh %s screen:\n%s" % (
        name, "\n".join("%s   <- %s" % (line.rstrip(), "; ".join(runs)) for line, runs in found))
