"""A headless Chromium (Debian's package) driven over the Chrome DevTools Protocol, standard library only.

The protocol goes through ``--remote-debugging-pipe`` (JSON messages ended by NUL: Chromium reads fd 3
and writes fd 4), so no port is opened and no websocket client is needed. Chromium resolves no host
name and reaches no address but 127.0.0.1 (``--host-resolver-rules``), and its background services are
off: the served page's web font link fails at once instead of leaving the machine.
"""
from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from typing import Any, Dict, Optional

FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--no-first-run", "--no-default-browser-check", "--metrics-recording-only", "--mute-audio",
]


def find_chromium() -> Optional[str]:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """``with Chromium(binary, profile_dir, log_path) as c: c.call("Page.navigate", {...}, session=...)``."""

    def __init__(self, binary: str, profile_dir: str, log_path: str) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def child_fds() -> None:  # fds 3 and 4 of the child; via fds >= 10, so neither overwrites the other
            a, b = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [binary] + FLAGS + ["--user-data-dir=" + profile_dir, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=child_fds, pass_fds=(3, 4), start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0

    def call(self, method: str, params: Optional[Dict[str, Any]] = None, session: Optional[str] = None,
             timeout: float = 60.0) -> Dict[str, Any]:
        """Send one command and return its result (events in between are dropped)."""
        self._id += 1
        msg: Dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError("%s: %s" % (method, reply["error"]))
                    return reply.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer %s within %.0f s" % (method, timeout))
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe (exit code %s)" % self.proc.poll())
                self._buf += chunk

    def open_page(self, width: int, height: int) -> str:
        """A new tab of ``width`` x ``height`` CSS pixels; returns its session id for :meth:`call`."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        return session

    def evaluate(self, expression: str, session: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
        if "exceptionDetails" in result:
            raise RuntimeError("page script failed: %s" % result["exceptionDetails"])
        return result["result"].get("value")

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("Browser.close", timeout=10)
                self.proc.wait(timeout=10)
        except Exception:
            pass
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its renderers and zygotes too
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            for fd in (self._r, self._w):
                os.close(fd)
            self._log.close()

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
