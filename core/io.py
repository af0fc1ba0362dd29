"""Crash-safe files: every state file, settings file and checkpoint is written to a temporary file in
the same folder, flushed to disk, then renamed over the target (``os.replace`` is atomic on POSIX and
Windows). A crash at any point leaves either the old complete file or the new complete file.

Checkpoints are loaded with ``torch.load(..., weights_only=True)`` where the installed torch supports
it (torch >= 1.13); torch 1.10 (Horizon's XJ3/J5 dockers) has no such argument.
"""
from __future__ import annotations

import inspect
import json
import os
import tempfile
from typing import Any, Callable, Dict, Optional

from .errors import CheckpointError

CHECKPOINT_FORMAT = "qat-tui-checkpoint"
CHECKPOINT_VERSION = 1


def _atomic_write(path: str, write: Callable[[Any], None], mode: str = "wb") -> None:
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def save_checkpoint(path: str, state_dict: Dict[str, Any], meta: Dict[str, Any]) -> None:
    """Save ``{"format", "version", "meta", "state_dict"}`` with ``torch.save``, atomically.

    Args:
        path: target file, e.g. ``<run_dir>/float-checkpoint.ckpt``.
        state_dict: the model's ``state_dict()`` (tensors are saved as they are, on their device).
        meta: plain data (str/int/float/bool/None, lists and dicts of them) describing the checkpoint:
            stage, backend, model architecture, epoch, metrics. Must be loadable with weights_only.
    """
    import torch

    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "meta": meta,
        "state_dict": state_dict,
    }
    _atomic_write(path, lambda f: torch.save(payload, f))


def torch_load(path: str, map_location: Any = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True`` where supported."""
    import torch

    kwargs: Dict[str, Any] = {"map_location": map_location}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = True
    return torch.load(path, **kwargs)


def _first_sentence(text: str) -> str:
    """The first line of an exception message, cut after its first sentence (torch's zip errors go on
    for several sentences)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    cut = line.find(". ")
    return line[: cut + 1] if cut > 0 else line


def load_checkpoint(
    path: str,
    made_by: str,
    expect: Optional[Dict[str, Any]] = None,
    map_location: Any = "cpu",
) -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` and check it fits this run.

    Args:
        path: checkpoint file.
        made_by: the stage that writes this file (named in the error when it is missing).
        expect: meta keys that must match (e.g. ``{"backend": "torch", "model": {...}}``).
        map_location: passed to ``torch.load``.

    Returns:
        ``{"meta": dict, "state_dict": dict}``. A plain state_dict (as Horizon's sample saves) is
        accepted too, with empty meta.

    Raises:
        CheckpointError: missing file, damaged/truncated file, or meta that does not match ``expect``.
    """
    if not os.path.exists(path):
        raise CheckpointError(
            "%s is missing" % path,
            hint="run the %s stage first (it writes this file)" % made_by,
        )
    try:
        obj = torch_load(path, map_location=map_location)
    except Exception as e:  # truncated zip, pickle errors, unsafe content under weights_only
        raise CheckpointError(
            "%s is damaged or not a checkpoint (%s: %s)" % (path, type(e).__name__, _first_sentence(str(e))),
            hint="delete it and run the %s stage again" % made_by,
        ) from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        meta = obj.get("meta") or {}
        state_dict = obj.get("state_dict")
    elif isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        meta, state_dict = {}, obj
    else:
        raise CheckpointError(
            "%s does not hold a state_dict (found %s)" % (path, type(obj).__name__),
            hint="point to a file saved with torch.save(model.state_dict(), path)",
        )
    for key, want in (expect or {}).items():
        have = meta.get(key)
        if have is not None and have != want:
            raise CheckpointError(
                "%s was made with %s=%r, but this run uses %s=%r" % (path, key, have, key, want),
                hint="use a run directory made with the same %s, or rerun the %s stage" % (key, made_by),
            )
    return {"meta": meta, "state_dict": state_dict}


def file_size(path: str) -> int:
    """Size in bytes, 0 when the path does not exist; folders count all files under them."""
    if os.path.isdir(path):
        total = 0
        for root, _dirs, files in os.walk(path):
            for name in files:
                try:
                    total += os.path.getsize(os.path.join(root, name))
                except OSError:
                    pass
        return total
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def human_size(n: int) -> str:
    """Bytes as '1.2 MB' (powers of 1000; the SI units of `ls -h --si`)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1000.0
    return "%d B" % n
