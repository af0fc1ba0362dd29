"""One error type for everything a user can get wrong or that can fail in a run.

Modelled on Harlequin's ``HarlequinError``: each error carries a short ``title`` (what area failed),
the ``msg`` (what was wrong) and a ``hint`` (what to do about it). The wizard shows all of them in the
same error panel, the headless runner prints them in one format and exits non-zero.
"""
from __future__ import annotations

import os
from typing import Optional

from .i18n import N_, _


class QatError(Exception):
    """Base error: what went wrong and what to do.

    Args:
        msg: what was wrong, naming the file/key/value involved.
        hint: what the user should do next (one sentence), or None.
        title: the area that failed, shown as the heading of the message.
    """

    title = N_("Error")

    def __init__(self, msg: str, hint: Optional[str] = None, title: Optional[str] = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.hint = hint
        # the class's title is an N_() constant: translated now, into the language of the message
        self.title = _(title if title is not None else type(self).title)

    def __str__(self) -> str:
        return self.msg if not self.hint else "%s\n  -> %s" % (self.msg, self.hint)

    def to_dict(self) -> dict:
        return {"title": self.title, "message": self.msg, "hint": self.hint}


class SettingsError(QatError):
    """A settings file or value is invalid (unknown key, bad value, unreadable TOML)."""

    title = N_("Settings")


class ModelError(SettingsError):
    """The ``[model]`` settings do not give a usable model: unknown arch, a builder that cannot be
    imported, raises or returns no nn.Module, an output that is not ``(N, num_classes)``, weights that
    are not on this machine. A settings error (exit code 2): the fix is in the settings or the model file."""

    title = N_("Model")


class DataError(QatError):
    """The data set is missing, in an unknown layout, or unreadable; its classes do not match between
    train and val or with ``[model] num_classes``. A bad-input error (exit code 2): the fix is in the
    data or the settings that point at it."""

    title = N_("Data")


def is_input_error(error: BaseException) -> bool:
    """True for a problem with what the user handed over (settings, model, data): the headless runner
    exits with code 2 for it, 1 for a failure while running (a toolchain error, a full disk)."""
    return isinstance(error, (SettingsError, DataError))


class DeviceError(QatError):
    """The requested device does not exist on this machine."""

    title = N_("Device")


class CheckpointError(QatError):
    """A checkpoint a stage needs is missing, damaged, or from another model/backend."""

    title = N_("Checkpoint")


class DiskFullError(QatError):
    """A write failed because the disk is full. Nothing is lost: every file is written to a temp file
    and renamed, so the target (a checkpoint, the state) keeps its last complete content.

    Args:
        path: the file being written.
        device: the device or file system (from /proc/mounts) holding it.
        folder: the folder of ``path``.
        free: bytes free there after the failure (-1 when unknown).
    """

    title = N_("Disk full")

    def __init__(self, path: str, device: str = "", folder: str = "", free: int = -1) -> None:
        where = "%s (%s)" % (device, folder) if device and device != folder else (folder or path)
        mb = _("{mb:.1f} MB free").format(mb=free / 1e6) if free >= 0 else _("free space unknown")
        super().__init__(
            _("no space left on {where}, {free}: writing {file} failed; the last good checkpoint is kept").format(
                where=where, free=mb, file=os.path.basename(path)),
            hint=_("free some space there (or choose a run folder on another disk), then run the same command "
                   "again: finished stages and epochs are kept"),
        )
        self.path, self.device, self.folder, self.free = path, device, folder, free


class BackendError(QatError):
    """The quantization backend is not installed or failed."""

    title = N_("Backend")


class StageError(QatError):
    """A stage failed for a reason the user can act on."""

    title = N_("Stage")


class RunLockedError(QatError):
    """Another process is already writing this run directory."""

    title = N_("Run directory")


class Cancelled(Exception):
    """Raised inside a stage when the user asked to stop; the stage is recorded as cancelled."""
