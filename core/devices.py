"""Which devices exist here, and turning the ``run.device`` setting into one that does.

Horizon's sample hard-codes ``cuda:2``, which fails on most machines; the wizard offers only what
:func:`available_devices` finds, and :func:`resolve_device` refuses the rest with the list of what exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from .errors import DeviceError
from .i18n import _


@dataclass
class DeviceInfo:
    """One usable device. ``name`` is what torch accepts (``cpu``, ``cuda:0``); ``label`` is for people."""

    name: str
    label: str


def available_devices() -> List[DeviceInfo]:
    """CPU always, then every CUDA GPU torch can see, then Apple's MPS when built and available.

    Imports torch (about a second): call it from a worker, not while drawing the first screen.
    """
    import os

    import torch

    cores = os.cpu_count() or 1
    out = [DeviceInfo("cpu", _("CPU ({cores} cores, torch uses {threads} threads)").format(cores=cores, threads=torch.get_num_threads()))]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append(DeviceInfo("cuda:%d" % i, "GPU %d: %s, %.0f GiB" % (i, props.name, props.total_memory / 2**30)))
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    if mps is not None and mps.is_available():
        out.append(DeviceInfo("mps", _("Apple GPU (MPS)")))
    return out


def resolve_device(spec: str) -> str:
    """Map a ``run.device`` value to an existing torch device name.

    ``auto`` picks ``cuda:0`` when a GPU exists, else ``cpu``; ``cuda`` means ``cuda:0``.

    Raises:
        DeviceError: the device does not exist here; the message lists the devices that do.
    """
    devices = available_devices()
    names = [d.name for d in devices]
    spec = spec.strip().lower()
    if spec == "auto":
        return "cuda:0" if "cuda:0" in names else "cpu"
    if spec == "cuda":
        spec = "cuda:0"
    if spec in names:
        return spec
    raise DeviceError(
        _("device {device} does not exist on this machine").format(device=repr(spec)),
        hint=_("use one of: {devices} (or 'auto')").format(devices=", ".join(names)),
    )
