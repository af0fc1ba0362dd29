"""Training, evaluation and calibration loops shared by the stages.

Each loop checks the cancel flag before every batch (so a cancel lands at the next batch), and emits
:class:`~core.events.BatchProgress` at most every ``PROGRESS_INTERVAL`` seconds plus once at the end,
so a fast GPU does not flood the UI and a slow CPU still shows life.

Accuracy is top-k over the whole loader: percent of images whose label is among the k largest logits.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from .errors import Cancelled
from .i18n import _
from .events import BatchProgress, Emit

PROGRESS_INTERVAL = 0.25
"""Seconds between two BatchProgress events of the same loop."""


@dataclass
class LoopContext:
    """What a loop needs besides the model and data: where to report, how to stop, and (optionally) a
    :class:`core.threads.ThreadGovernor` that adapts torch's thread count between batches when other
    runs start or stop on the machine."""

    stage: str
    emit: Emit
    cancel: threading.Event
    device: Any
    governor: Any = None

    def check_cancel(self) -> None:
        """Raise Cancelled when asked to stop; called before every batch (also re-plans CPU threads)."""
        if self.cancel.is_set():
            raise Cancelled(self.stage)
        if self.governor is not None:
            self.governor.maybe_adjust()


class _Throttle:
    def __init__(self) -> None:
        self.last = 0.0

    def due(self, final: bool) -> bool:
        now = time.monotonic()
        if final or now - self.last >= PROGRESS_INTERVAL:
            self.last = now
            return True
        return False


def topk_correct(logits: Any, target: Any, ks: Tuple[int, ...] = (1, 5)) -> Dict[int, int]:
    """Number of samples whose target is within the top-k logits, per k.

    Args:
        logits: float tensor (N, C). target: int64 tensor (N,).
    """
    maxk = min(max(ks), logits.shape[1])
    _, pred = logits.topk(maxk, dim=1)
    hit = pred.eq(target.view(-1, 1))
    return {k: int(hit[:, : min(k, maxk)].any(dim=1).sum().item()) for k in ks}


def train_one_epoch(
    model: Any,
    loader: Any,
    optimizer: Any,
    scheduler: Optional[Any],
    ctx: LoopContext,
    epoch: int,
    epochs: int,
    max_batches: Optional[int] = None,
) -> Dict[str, float]:
    """One pass of cross-entropy training. The caller sets the model's train/fake-quant state.

    Args:
        scheduler: stepped after every batch (per-iteration schedules), or None.
        max_batches: stop after this many batches (None: the whole loader).

    Returns:
        ``{"loss": mean loss, "top1": train top-1 (percent), "images": n, "seconds": s}``.

    Raises:
        Cancelled: the cancel flag was set; FloatingPointError: the loss became NaN/inf.
    """
    import torch
    import torch.nn.functional as F

    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    throttle = _Throttle()
    loss_sum, correct, seen = 0.0, 0, 0
    t0 = time.time()
    for i, (images, target) in enumerate(loader):
        if i >= total:
            break
        ctx.check_cancel()
        images = images.to(ctx.device, non_blocking=True)
        target = target.to(ctx.device, non_blocking=True)
        logits = model(images)
        loss = F.cross_entropy(logits, target)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                _("{stage} epoch {epoch} batch {batch}: the loss is {loss}").format(
                    stage=ctx.stage, epoch=epoch, batch=i + 1, loss=loss_value)
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = images.shape[0]
        seen += n
        loss_sum += loss_value * n
        with torch.no_grad():
            correct += int((logits.argmax(1) == target).sum())
        if throttle.due(i + 1 == total):
            elapsed = max(time.time() - t0, 1e-9)
            ctx.emit(
                BatchProgress(
                    stage=ctx.stage,
                    phase="train",
                    epoch=epoch,
                    epochs=epochs,
                    batch=i + 1,
                    batches=total,
                    images_per_s=seen / elapsed,
                    loss=loss_sum / seen,
                )
            )
    return {
        "loss": loss_sum / max(seen, 1),
        "top1": 100.0 * correct / max(seen, 1),
        "images": seen,
        "seconds": time.time() - t0,
    }


def evaluate(
    model: Callable,
    loader: Any,
    ctx: LoopContext,
    epoch: int = 1,
    epochs: int = 1,
    phase: str = "eval",
    device: Any = None,
) -> Dict[str, float]:
    """Top-1/top-5 and mean loss of ``model`` over ``loader`` under ``torch.no_grad()``.

    The caller puts the model in eval/validation state. ``device`` overrides ``ctx.device`` (e.g. CPU
    for a compiled package).

    Returns:
        ``{"top1": %, "top5": %, "loss": mean, "images": n, "seconds": s}``.
    """
    import torch
    import torch.nn.functional as F

    dev = ctx.device if device is None else device
    throttle = _Throttle()
    total = len(loader)
    c1 = c5 = seen = 0
    loss_sum = 0.0
    t0 = time.time()
    with torch.no_grad():
        for i, (images, target) in enumerate(loader):
            ctx.check_cancel()
            images = images.to(dev, non_blocking=True)
            target = target.to(dev, non_blocking=True)
            logits = model(images)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
            hits = topk_correct(logits, target)
            c1 += hits[1]
            c5 += hits[5]
            seen += images.shape[0]
            if throttle.due(i + 1 == total):
                ctx.emit(
                    BatchProgress(
                        stage=ctx.stage,
                        phase=phase,
                        epoch=epoch,
                        epochs=epochs,
                        batch=i + 1,
                        batches=total,
                        images_per_s=seen / max(time.time() - t0, 1e-9),
                    )
                )
    return {
        "top1": 100.0 * c1 / max(seen, 1),
        "top5": 100.0 * c5 / max(seen, 1),
        "loss": loss_sum / max(seen, 1),
        "images": seen,
        "seconds": time.time() - t0,
    }


def calibrate(model: Any, loader: Any, ctx: LoopContext) -> Dict[str, float]:
    """Forward passes only (``torch.no_grad()``), for observers to collect statistics.

    The caller puts the model in calibration state (eval mode, observers on, fake quant off).

    Returns:
        ``{"images": n, "seconds": s}``.
    """
    import torch

    throttle = _Throttle()
    total = len(loader)
    seen = 0
    t0 = time.time()
    with torch.no_grad():
        for i, (images, _target) in enumerate(loader):
            ctx.check_cancel()
            model(images.to(ctx.device, non_blocking=True))
            seen += images.shape[0]
            if throttle.due(i + 1 == total):
                ctx.emit(
                    BatchProgress(
                        stage=ctx.stage,
                        phase="calib",
                        batch=i + 1,
                        batches=total,
                        images_per_s=seen / max(time.time() - t0, 1e-9),
                    )
                )
    return {"images": seen, "seconds": time.time() - t0}
