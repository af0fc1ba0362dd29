"""Crash-safe files: every state file, settings file and checkpoint is written to a temporary file in
the same folder, flushed to disk, then renamed over the target (``os.replace`` is atomic on POSIX and
Windows). A crash at any point leaves either the old complete file or the new complete file.

Checkpoints are loaded without running code from them (:mod:`core.safe_load`): ``torch.load(...,
weights_only=True)`` where the installed torch has it (>= 1.13), a restricted unpickler (tensors,
storages, OrderedDict, plain types) on torch 1.10 (Horizon's XJ3/J5 dockers). A file that references
any other Python object is refused with the reason before anything in it runs.

A write that fails because the disk is full raises :class:`core.errors.DiskFullError` naming the
device, the folder and the space left; the target keeps its previous complete content.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from typing import Any, Callable, Dict, List, Optional

from .errors import CheckpointError, DiskFullError
from .i18n import _
from .safe_load import UnsafeFileError, load_tensors

CHECKPOINT_FORMAT = "qat-tui-checkpoint"
CHECKPOINT_VERSION = 1


_DISK_FULL_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
# torch.save's C++ writer reports a short write as a RuntimeError: "[enforce fail at
# inline_container.cc:...] . unexpected pos 64 vs 0" or "PytorchStreamWriter failed writing file".
_TORCH_SHORT_WRITE = ("unexpected pos", "PytorchStreamWriter failed writing", "file write failed")


def _mount_of(folder: str) -> str:
    """The device (or file system) holding ``folder``, from /proc/mounts (longest mount point that
    contains it); the mount point itself where /proc/mounts is unreadable."""
    folder = os.path.realpath(folder)
    best, device = "", ""
    try:
        with open("/proc/mounts", "r", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 2:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (folder == mnt or folder.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, device = mnt, parts[0]
    except OSError:
        pass
    return device or best or folder


def disk_full_error(path: str, error: BaseException) -> Optional[DiskFullError]:
    """A :class:`DiskFullError` when ``error`` (raised while writing ``path``) means the disk is full:
    ``OSError`` ENOSPC/EDQUOT, or torch's short-write ``RuntimeError`` on a disk with (almost) no
    space left. None for any other error."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = -1
    full = isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS
    if not full and isinstance(error, RuntimeError) and any(s in str(error) for s in _TORCH_SHORT_WRITE):
        full = 0 <= free < 64 * 1024 * 1024
    if not full:
        return None
    return DiskFullError(path, _mount_of(folder), folder, free)


def _atomic_write(path: str, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through ``write(file)`` into a temp file beside ``path``, fsync, rename over ``path``.

    Raises:
        DiskFullError: no space left (``path`` keeps its previous content, the temp file is removed).
    """
    folder = os.path.dirname(os.path.abspath(path)) or "."
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except (OSError, RuntimeError) as e:
        _remove(tmp)
        full = disk_full_error(path, e)
        if full is not None:
            raise full from None
        raise
    except BaseException:
        _remove(tmp)
        raise


TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
"""The name of the temp file :func:`_atomic_write` writes beside ``path`` (``.<name>.<8 random>.tmp``,
tempfile.mkstemp's pattern)."""


def remove_stale_temp_files(folder: str) -> List[str]:
    """Remove the temp files of atomic writes that a killed process (SIGKILL, power loss) left in
    ``folder`` and below; the real files beside them are whole (a temp file is only ever renamed over
    one). Call it only while holding the folder's run lock: then no live writer owns one. Returns the
    paths removed."""
    removed = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if TEMP_FILE.match(name):
                path = os.path.join(root, name)
                _remove(path)
                removed.append(path)
    return removed


def _remove(path: Optional[str]) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


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
    """``torch.load`` that never runs code from the file (see :func:`core.safe_load.load_tensors`).

    Raises:
        UnsafeFileError: the file references Python objects other than tensors and plain containers.
    """
    return load_tensors(path, map_location=map_location)


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _first_sentence(text: str) -> str:
    """The first line of an exception message, cut after its first sentence (torch's zip errors go on
    for several sentences)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    cut = line.find(". ")
    return line[: cut + 1] if cut > 0 else line


def load_checkpoint(
    path: str,
    made_by: Optional[str],
    expect: Optional[Dict[str, Any]] = None,
    map_location: Any = "cpu",
    setting: Optional[str] = None,
) -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (or a plain state_dict) and check it fits.

    Args:
        path: checkpoint file.
        made_by: the stage that writes this file (named in the error when it is missing or damaged);
            None for a file the user handed over.
        expect: meta keys that must match (e.g. ``{"backend": "torch", "model": {...}}``).
        map_location: passed to ``torch.load``.
        setting: for a user's file, the settings key that names it (e.g. ``[model] pretrained``), so
            that the hints speak of that file instead of rerunning a stage.

    Returns:
        ``{"meta": dict, "state_dict": dict}``. A plain state_dict (as Horizon's sample saves) is
        accepted too, with empty meta.

    Raises:
        CheckpointError: missing file, damaged/truncated file, pickled Python objects (refused before
            they run), or meta that does not match ``expect``.
    """
    own = made_by is not None
    if own:
        fix = _("delete it and run the {stage} stage again").format(stage=made_by)
    else:
        fix = _("point {setting} to a state_dict saved with torch.save(model.state_dict(), path)").format(
            setting=setting or _("the setting"))
    if not os.path.exists(path):
        raise CheckpointError(
            _("{path} is missing").format(path=path),
            hint=_("run the {stage} stage first (it writes this file)").format(stage=made_by) if own
            else _("check {setting}").format(setting=setting or _("the path")),
        )
    try:
        obj = torch_load(path, map_location=map_location)
    except UnsafeFileError as e:
        raise CheckpointError(
            _("{path} was refused without loading it: {reason}. Loading it would run that code").format(path=path, reason=e),
            hint=_("qat-tui never writes such a file: {fix}").format(fix=fix) if own else
            _("load it in your own code and save only the weights: torch.save(model.state_dict(), path)"),
        ) from None
    except Exception as e:  # truncated zip, pickle errors
        raise CheckpointError(
            _("{path} is damaged or not a checkpoint ({error}: {detail})").format(
                path=path, error=type(e).__name__, detail=_first_sentence(str(e))),
            hint=fix,
        ) from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        meta = obj.get("meta") or {}
        state_dict = obj.get("state_dict")
    elif isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        meta, state_dict = {}, obj
    else:
        raise CheckpointError(
            _("{path} does not hold a state_dict (found {type})").format(path=path, type=type(obj).__name__),
            hint=_("point to a file saved with torch.save(model.state_dict(), path)"),
        )
    for key, want in (expect or {}).items():
        have = meta.get(key)
        if have is not None and have != want:
            raise CheckpointError(
                _("{path} was made with {key}={have}, but this run uses {key}={want}").format(
                    path=path, key=key, have=repr(have), want=repr(want)),
                hint=_("use a run directory made with the same {key}, or rerun the {stage} stage").format(key=key, stage=made_by),
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
