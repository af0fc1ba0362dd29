"""qat-tui serve: the wizard in a browser (textual-serve), on loopback unless told otherwise.

The browser test opens the served page in a real headless Chromium (Debian's ``chromium``; skipped with
the reason without it), reads the text that xterm.js drew, saves a screenshot to
``test-artifacts/serve_first_screen.png``, and presses ctrl+n in the page to see the wizard answer.
"""
import base64
import http.client
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from qat_tui.cli import _no_terminal, _parser
from qat_tui.serve import WEB_DRIVER, host_problem, is_loopback
from qat_tui.state import step_heading

from .conftest import REPO
from .headless_chromium import Chromium, find_chromium

ARTIFACTS = os.path.join(REPO, "test-artifacts")
DEADLINE = 120.0  # seconds for the server to listen and the first screen to show (2 busy cores)

# Run in the page before textual.js: textual.js keeps its xterm.js Terminal in ``this.terminal`` of an
# object it does not expose; a setter on Object.prototype catches the assignment and keeps the terminal.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  get() { return undefined; },
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, enumerable: true, configurable: true});
    (window.__qatTerminals = window.__qatTerminals || []).push(value);
  },
});
"""
# The rows on screen, as xterm.js holds them (its public buffer API): the text the canvas shows.
READ_SCREEN = """
(() => {
  const t = (window.__qatTerminals || []).find(t => t && t.buffer && t.buffer.active);
  if (!t) return null;
  const b = t.buffer.active, rows = [];
  for (let y = 0; y < t.rows; y++) {
    const line = b.getLine(b.viewportY + y);
    rows.push(line ? line.translateToString(true) : "");
  }
  const el = document.querySelector(".textual-terminal");
  return {cols: t.cols, rows: t.rows, text: rows.join("\\n"),
          shown: !!el && getComputedStyle(el).opacity === "1"};
})()
"""


def test_a_host_that_is_not_loopback_is_refused_without_the_flag():
    proc = subprocess.run([sys.executable, "-m", "qat_tui", "serve", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and proc.stdout == "", (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in ("0.0.0.0", "drive the wizard", "read and write files", "--allow-remote", "SSH"):
        assert needle in lines[0], (needle, lines[0])
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host) and host_problem(host, False) is None, host
    for host in ("0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "example.com", "localhost.example.com"):
        assert not is_loopback(host) and host_problem(host, False), host
        assert host_problem(host, True) is None, host


def test_allow_remote_warns_before_listening():
    """192.0.2.1 (TEST-NET-1) is no address of this machine: the warning, then the bind fails (no traffic)."""
    proc = subprocess.run([sys.executable, "-m", "qat_tui", "serve", "--host", "192.0.2.1", "--allow-remote",
                           "--port", str(_free_port())], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    warning, refusal = proc.stderr.strip().splitlines()[:2]
    assert warning.startswith("warning: serving on 192.0.2.1:") and "anyone who can reach" in warning, warning
    assert "cannot listen on 192.0.2.1:" in refusal, refusal


def test_the_wizard_under_the_web_driver_needs_no_terminal(monkeypatch):
    """textual-serve starts the wizard with pipes and TEXTUAL_DRIVER set to Textual's web driver: that
    passes the terminal check, and no other driver does (pytest's stdin is not a terminal)."""
    args = _parser().parse_args([])
    monkeypatch.setenv("TEXTUAL_DRIVER", "textual.drivers.linux_driver:LinuxDriver")
    assert "needs a terminal" in _no_terminal(args)
    monkeypatch.setenv("TEXTUAL_DRIVER", WEB_DRIVER)
    assert _no_terminal(args) is None
    args = _parser().parse_args(["--preset", "quick", "serve", "--port", "8123"])
    assert (args.command, args.preset, args.port, args.host) == ("serve", "quick", 8123, "127.0.0.1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``qat-tui serve --preset quick`` on a free loopback port, in its own process group (its wizards
    too), killed at the end; yields its URL once the port accepts connections."""
    pytest.importorskip("textual_serve", reason="textual-serve is not installed")
    port = _free_port()
    log_path = str(tmp_path_factory.mktemp("serve") / "serve.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "qat_tui", "serve", "--port", str(port), "--preset", "quick"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=str(tmp_path_factory.mktemp("cwd")))
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            if proc.poll() is not None:
                pytest.fail("qat-tui serve exited with %s: %s" % (proc.returncode, open(log_path).read()[-2000:]))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("qat-tui serve did not listen within %.0f s: %s" % (DEADLINE, open(log_path).read()[-2000:]))
                time.sleep(0.2)
        yield "http://127.0.0.1:%d/" % port
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        try:  # a wizard that outlived the server (it shares the process group)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()


def _get(url: str, path: str, headers: dict) -> int:
    host, port = url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_served_page_refuses_other_sites_and_rebound_names(served):
    netloc = served.split("//")[1].rstrip("/")
    assert _get(served, "/", {}) == 200
    assert _get(served, "/", {"Host": "localhost:%s" % netloc.split(":")[1]}) == 200
    # DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1
    assert _get(served, "/", {"Host": "evil.example:%s" % netloc.split(":")[1]}) == 403
    ws = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    # another site's page opening the wizard's websocket
    assert _get(served, "/ws", dict(ws, Origin="http://evil.example")) == 403


def test_the_wizard_opens_in_headless_chromium(served, tmp_path):
    chromium = find_chromium()
    if not chromium:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium; .ci/run does)")
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "serve_first_screen.png")
    if os.path.exists(shot):
        os.remove(shot)
    # the heading, the breadcrumbs, the preset served and the keys: the screen is drawn (values fill in
    # after the heading: poll for all of it)
    wanted = [step_heading(0), "1 Data", "7 Review", "preset", "quick", "Next"]
    started = time.monotonic()
    screen = None
    with Chromium(chromium, str(tmp_path / "profile"), str(tmp_path / "chromium.log")) as browser:
        page = browser.open_page(1000, 620)
        browser.call("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_TERMINAL}, session=page)
        browser.call("Page.navigate", {"url": served}, session=page)
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            screen = browser.evaluate(READ_SCREEN, page)
            if screen and screen["shown"] and all(w in screen["text"] for w in wanted):
                break
            time.sleep(0.25)
        png = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"}, session=page)["data"])
        took = time.monotonic() - started
        # keys go back: ctrl+n (Next) on a folder without data (the server runs in an empty folder)
        answer = None
        if screen and not [w for w in wanted if w not in screen["text"]]:
            browser.evaluate("document.querySelector('.xterm-helper-textarea').focus()", page)
            for kind in ("keyDown", "keyUp"):
                browser.call("Input.dispatchKeyEvent", {"type": kind, "key": "n", "code": "KeyN", "modifiers": 2,
                                                        "windowsVirtualKeyCode": 78}, session=page)
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                answer = browser.evaluate(READ_SCREEN, page)
                if answer and "No data in" in answer["text"]:
                    break
                time.sleep(0.25)
    with open(shot, "wb") as f:
        f.write(png)
    assert screen is not None, "no xterm.js terminal in the page (did textual.js stop assigning this.terminal?)"
    missing = [w for w in wanted if w not in screen["text"]]
    assert not missing, "%s not on the page within %.0f s; it shows:\n%s" % (missing, DEADLINE, screen["text"])
    assert screen["shown"], "the terminal is still hidden (textual-serve shows it at the first bytes)"
    assert "needs a terminal" not in screen["text"]
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert answer and "No data in" in answer["text"], "ctrl+n in the page got no answer:\n%s" % (answer or {}).get("text")
    print("first screen in %.1f s, %dx%d cells; screenshot %s" % (took, screen["cols"], screen["rows"], shot))


def test_each_browser_session_gets_the_language_and_settings():
    from qat_tui.serve import wizard_command

    cmd = wizard_command(None, "quick", "zh")
    assert cmd.endswith("-m qat_tui --lang zh --preset quick"), cmd
    assert "--lang" not in wizard_command("a b.toml", None)
    assert "'" in wizard_command("a b.toml", None)  # a path with a space stays one argument
