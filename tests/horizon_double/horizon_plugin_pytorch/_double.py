"""TEST DOUBLE bookkeeping for the horizon_plugin_pytorch / hbdk stand-ins (no real counterpart).

This module belongs to the test double of Horizon Robotics' ``horizon_plugin_pytorch`` and ``hbdk``
packages (see ``tests/horizon_double/README.md``); the real packages have nothing like it. It holds:

* ``CALLS`` - the call log: one dict per call of a public API of the double, appended in call order,
  so that tests can assert the documented flow (march set before prepare, prepare got a fresh float
  copy, the calibration state loaded into the QAT model, compile/check/perf on CPU, visualize with
  ``show=False``). ``reset()`` empties it. Every entry has ``"api"`` (the function name, e.g.
  ``"prepare_qat_fx"``) and ``"march"`` (``get_march()`` at the time of the call); the other keys are
  listed in the README and in the docstring of each API.
* the emulated plugin version (``QAT_TUI_DOUBLE_PLUGIN_VERSION``, read at import of the package),
* ``DoubleRefusal`` - raised where the real package would do something a test must never do
  (launch firefox),
* ``make_fake_dot(directory)`` - writes a stand-in ``dot`` (graphviz) executable for tests, because
  ``visualize_model`` runs ``dot`` exactly as the real one does and CI machines may not have graphviz.
"""
import hashlib
import os
import stat
import sys
import weakref
from typing import Any, Dict, Iterable, List, Optional, Tuple

CALLS = []  # type: List[Dict[str, Any]]

DEFAULT_PLUGIN_VERSION = "1.9.0"
VERSION_ENV = "QAT_TUI_DOUBLE_PLUGIN_VERSION"


class DoubleRefusal(RuntimeError):
    """The double refuses an action the real package would take (e.g. launching a browser)."""


def reset() -> None:
    """Empty the call log (``CALLS``) in place."""
    del CALLS[:]


def _current_march() -> Optional[str]:
    from horizon_plugin_pytorch import march as _march

    return _march.get_march()


def record(api: str, **fields: Any) -> Dict[str, Any]:
    """Append ``{"api": api, "march": get_march(), **fields}`` to ``CALLS`` and return it (callers may
    add keys to the returned dict later, e.g. the result of the call)."""
    entry = {"api": api, "march": _current_march()}  # type: Dict[str, Any]
    entry.update(fields)
    CALLS.append(entry)
    return entry


def calls(api: Optional[str] = None) -> List[Dict[str, Any]]:
    """The log entries, optionally only those of one API."""
    return [c for c in CALLS if api is None or c["api"] == api]


# --------------------------------------------------------------------------------------------- version


def version_tuple(v: str) -> Tuple[int, ...]:
    out = []
    for part in str(v).split("+")[0].split("."):
        digits = ""
        for ch in part:
            if ch.isdigit():
                digits += ch
            else:
                break
        out.append(int(digits) if digits else 0)
    while len(out) < 3:
        out.append(0)
    return tuple(out)


def plugin_version() -> str:
    import horizon_plugin_pytorch

    return horizon_plugin_pytorch.__version__


def version_at_least(v: str) -> bool:
    """True when the emulated plugin version is >= ``v``."""
    return version_tuple(plugin_version()) >= version_tuple(v)


# ------------------------------------------------------------------------------------ model helpers


def module_devices(module: Any) -> List[str]:
    """Sorted device strings of a module's parameters and buffers (works for ScriptModules)."""
    devs = set()
    try:
        for p in module.parameters():
            devs.add(str(p.device))
        for b in module.buffers():
            devs.add(str(b.device))
    except Exception:  # pragma: no cover - exotic modules
        pass
    return sorted(devs)


def tensor_devices(obj: Any) -> List[str]:
    import torch

    devs = set()

    def walk(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            devs.add(str(x.device))
        elif isinstance(x, (list, tuple)):
            for i in x:
                walk(i)
        elif isinstance(x, dict):
            for i in x.values():
                walk(i)

    walk(obj)
    return sorted(devs)


def tensor_shapes(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return list(obj.shape)
    if isinstance(obj, (list, tuple)):
        return [tensor_shapes(i) for i in obj]
    if isinstance(obj, dict):
        return {k: tensor_shapes(v) for k, v in obj.items()}
    return repr(obj)


def fingerprint(module: Any) -> str:
    """A short digest of a module's parameters (names, shapes, sums): equal for deep copies, different
    after training steps."""
    h = hashlib.sha1()
    try:
        for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
            t = p.detach()
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            if t.numel():
                h.update(("%.6e/%.6e" % (float(t.double().sum()), float(t.double().abs().sum()))).encode())
    except Exception:  # pragma: no cover
        h.update(repr(type(module)).encode())
    return h.hexdigest()[:16]


# Parameters of every model handed to prepare_qat_fx (weak references): a later prepare whose model
# shares a parameter storage with one of them did not get a fresh copy.
_PREPARED_PARAMS = []  # type: List[Any]
PREPARED_TAG = "_horizon_double_prepared"  # attribute set on every model passed to prepare_qat_fx


def remember_prepared_params(params: Iterable[Any]) -> None:
    for p in params:
        try:
            _PREPARED_PARAMS.append(weakref.ref(p))
        except TypeError:  # pragma: no cover
            pass
    # drop dead references now and then
    if len(_PREPARED_PARAMS) > 20000:
        _PREPARED_PARAMS[:] = [r for r in _PREPARED_PARAMS if r() is not None]


def shares_params_with_prepared(params: Iterable[Any]) -> bool:
    live = set()
    for r in _PREPARED_PARAMS:
        p = r()
        if p is not None:
            try:
                live.add(p.data_ptr())
            except Exception:  # pragma: no cover
                pass
    for p in params:
        try:
            if p.data_ptr() in live and p.numel() > 0:
                return True
        except Exception:  # pragma: no cover
            pass
    return False


# ------------------------------------------------------------------------------------ fake graphviz

_FAKE_DOT = r'''#!{python}
"""Stand-in for graphviz `dot` written by the horizon test double (make_fake_dot): it accepts
`dot -T <fmt> <input.dot> -o <output>` and writes a small placeholder image that names the graph."""
import sys
args = sys.argv[1:]
fmt, out, src = "svg", None, None
i = 0
while i < len(args):
    a = args[i]
    if a == "-T":
        fmt = args[i + 1]; i += 2; continue
    if a.startswith("-T"):
        fmt = a[2:]; i += 1; continue
    if a == "-o":
        out = args[i + 1]; i += 2; continue
    if a.startswith("-o"):
        out = a[2:]; i += 1; continue
    src = a; i += 1
text = open(src).read() if src else sys.stdin.read()
if not text.lstrip().startswith(("digraph", "graph", "strict")):
    sys.stderr.write("Error: syntax error in line 1\n"); sys.exit(1)
n = text.count("->")
if fmt == "svg":
    data = ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><!-- fake dot: %d edges -->'
            '<text x="4" y="24">test double graph (%d edges)</text></svg>\n' % (n, n)).encode()
elif fmt == "png":
    import struct, zlib
    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"\x00\xff\xff\xff"
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
elif fmt in ("dot", "gv", "canon", "plain", "txt"):
    data = text.encode()
else:
    sys.stderr.write('Format: "%s" not recognized. Use one of: png svg dot\n' % fmt); sys.exit(1)
if out:
    open(out, "wb").write(data)
else:
    sys.stdout.buffer.write(data)
'''


def make_fake_dot(directory: str) -> str:
    """Write an executable ``dot`` stand-in into ``directory`` and return the directory (prepend it to
    ``PATH`` in a test). Formats: svg, png, dot; anything else fails like graphviz does."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "dot")
    with open(path, "w") as f:
        f.write(_FAKE_DOT.replace("{python}", sys.executable))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return directory
