"""``qat-tui serve``: the wizard in a browser, through textual-serve.

Each browser tab that opens the page gets its own wizard process (``python -m qat_tui``, started by
textual-serve with Textual's web driver and pipes instead of a terminal). The wizard can start
training and read any file its user can, so the server listens on 127.0.0.1 unless asked otherwise:
another host needs ``--allow-remote`` and gets a warning. On a loopback host, a request must name a
loopback host (a web page that rebinds its DNS name to 127.0.0.1 is refused), and in every case the
browser's websocket must come from the page's own origin (another site's page cannot drive it).

Nothing here imports textual-serve or aiohttp at module level (``qat-tui --help`` stays fast).
"""
from __future__ import annotations

import ipaddress
import os
import shlex
import sys
from typing import List, Optional
from urllib.parse import urlsplit

from core.i18n import _

WEB_DRIVER = "textual.drivers.web_driver:WebDriver"
"""The ``TEXTUAL_DRIVER`` textual-serve sets for the app it starts (textual_serve/app_service.py)."""


def under_web_driver() -> bool:
    """True in a wizard that textual-serve started: it talks to the browser over pipes, not a TTY."""
    return os.environ.get("TEXTUAL_DRIVER") == WEB_DRIVER


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (with or without brackets) and ``localhost``; any other name or address is not."""
    host = host.strip().lower()
    if host.rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_problem(host: str, allow_remote: bool) -> Optional[str]:
    """The one-line refusal for a host that is not loopback without ``--allow-remote``, else None."""
    if is_loopback(host) or allow_remote:
        return None
    return _("qat-tui serve: refusing to listen on {host}: anyone who can reach it could drive the wizard "
             "(start training, read and write files as you); serve on 127.0.0.1 and forward the port over "
             "SSH, or pass --allow-remote to listen there anyway").format(host=host)


def remote_warning(host: str, port: int) -> str:
    return _("warning: serving on {host}:{port} without a password: anyone who can reach this port can drive "
             "the wizard and read and write your files; stop it with Ctrl+C when done").format(host=host, port=port)


def wizard_command(config: Optional[str], preset: Optional[str], lang: Optional[str] = None) -> str:
    """The shell command textual-serve runs for each browser session."""
    argv: List[str] = [sys.executable, "-m", "qat_tui"]
    if lang:
        argv += ["--lang", lang]
    if config:
        argv += ["--config", os.path.abspath(config)]
    elif preset:
        argv += ["--preset", preset]
    return " ".join(shlex.quote(a) for a in argv)


def _url_host(host: str, port: int) -> str:
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def _make_server(command: str, host: str, port: int, loopback_only: bool):
    from aiohttp import web
    from textual_serve.server import Server

    def allowed_host(netloc: str) -> bool:
        name = urlsplit("//" + netloc).hostname or ""
        return is_loopback(name) or not loopback_only

    @web.middleware
    async def same_origin(request, handler):
        if not allowed_host(request.host):
            raise web.HTTPForbidden(text="qat-tui serve answers only to a loopback host name, not %r\n" % request.host)
        origin = request.headers.get("Origin")
        if request.path == "/ws" and origin is not None and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="the wizard's websocket is for the page served here, not %r\n" % origin)
        return await handler(request)

    class WizardServer(Server):
        async def _make_app(self):
            app = await super()._make_app()
            app.middlewares.append(same_origin)
            return app

        async def handle_index(self, request):
            # the page's websocket URL follows the address the browser used (e.g. a forwarded SSH port);
            # the index handler reads public_url without awaiting, so no other request sees this one's
            self.public_url = "%s://%s" % (request.scheme, request.host)
            return await super().handle_index(request)

    return WizardServer(command, host=host, port=port, title="qat-tui",
                        public_url="http://%s" % _url_host(host, port))


def serve(host: str, port: int, allow_remote: bool, config: Optional[str], preset: Optional[str],
          lang: Optional[str] = None) -> int:
    """Serve the wizard until Ctrl+C; 2 for a refused host, missing package, bad settings or a busy port."""
    problem = host_problem(host, allow_remote)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if not 1 <= port <= 65535:
        print(_("qat-tui serve: --port must be 1-65535, not {port}").format(port=port), file=sys.stderr)
        return 2
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        print(_("qat-tui serve needs the textual-serve package (Python >= 3.8): pip install textual-serve"),
              file=sys.stderr)
        return 2
    if not is_loopback(host):
        print(remote_warning(host, port), file=sys.stderr)
    server = _make_server(wizard_command(config, preset, lang), host, port, loopback_only=is_loopback(host))
    try:
        server.serve()
    except OSError as e:  # the port is taken, or the address is not this machine's
        print(_("qat-tui serve: cannot listen on {address}: {error}").format(address=_url_host(host, port),
                                                                           error=e.strerror or e), file=sys.stderr)
        return 2
    return 0
