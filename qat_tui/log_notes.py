"""Logs that explain: the short note the run screen writes under a log line that matters.

One table (:data:`NOTES`), keyed by ``(event type, what)``: ``what`` is the stage for stage events, or a
word this module picks (``passed``/``failed`` for the model check, ``hbm`` for the deployable model,
``*`` for any). Adding a note touches only the table; :func:`note_for` picks the entry for an event and
fills its placeholders. Notes are marked with ``N_`` and translated when shown (the language can change
while the run screen is open). The raw lines (``events.jsonl``, the worker's and the toolchain's logs)
are not changed: this only adds text on the screen.

Nothing here imports torch or Textual.
"""
from __future__ import annotations

import glob
import os
from typing import Any, Dict, List, Optional, Tuple

from core.i18n import N_, _

ANY = "*"

DROP_POINTS = 2.0
"""A stage whose top-1 is this many points (or more) below the previous stage's gets the debug note."""

NOTES: Dict[Tuple[str, str], str] = {
    ("StageStarted", "float"): N_("float training: the plain model, no quantization yet; its best epoch is the "
                                  "reference and the input of every later stage"),
    ("StageFinished", "float"): N_("this float top-1 is the reference: every later stage is compared with it"),
    ("StageStarted", "calib"): N_("calibration: a fresh copy of the float model in eval mode; the observers "
                                  "watch {images} images, no training"),
    ("StageFinished", "calib"): N_("calibration sets the initial scales (observers); its top-1 is measured "
                                   "with fake quant on"),
    ("StageStarted", "qat"): N_("QAT trains a fresh copy of the float model prepared with fake quant; "
                                "it loads {inputs}"),
    ("StageFinished", "qat"): N_("QAT trained weights and scales together; its top-1 is still fake quant "
                                 "(float arithmetic)"),
    ("StageStarted", "int_infer"): N_("convert: the fake-quant model becomes the integer model"),
    ("StageFinished", "int_infer"): N_("the integer model (convert): top-1 here is what the chip computes"),
    ("StageStarted", "compile"): N_("compile: the integer model becomes the deployable model; the check says "
                                    "which ops run on the BPU"),
    ("StageFinished", "compile"): N_("the deployable model and its reports are in the run folder (results: "
                                     "Artifacts)"),
    ("StageSkipped", ANY): N_("done earlier with these settings: its result and checkpoint are reused"),
    ("CheckAdvice", "passed"): N_("model check passed: every op is supported for this march"),
    ("CheckAdvice", "failed"): N_("model check: follow the advice for each op listed (results: Check)"),
    ("ArtifactWritten", "hbm"): N_("the hbm is written: the model file the chip loads"),
    ("StageFailed", ANY): N_("the stage stopped; the arrow says what to do, then run again (finished stages "
                             "are kept)"),
    ("StageFailed", "cancelled"): N_("cancelled: the stage stops at a batch; running again resumes it"),
    ("AccuracyDrop", ANY): N_("top-1 fell {drop:.1f} points from {previous}: see the per-layer debug "
                              "(d on results)"),
}
"""``(event type, stage or word)`` -> the note (English, marked; translate it where shown)."""


def _key(event: Any) -> Tuple[str, str]:
    kind = type(event).__name__
    if kind == "CheckAdvice":
        return kind, "passed" if getattr(event, "passed", True) else "failed"
    if kind == "ArtifactWritten":
        return kind, "hbm" if str(getattr(event, "name", "")).endswith(".hbm") else ""
    if kind == "StageFailed" and getattr(event, "cancelled", False):
        return kind, "cancelled"
    return kind, str(getattr(event, "stage", "") or "")


def note_for(event: Any, settings: Any = None) -> Optional[str]:
    """The note for ``event`` in the current language, or None when its line needs none.

    ``settings`` (optional) fills details such as the number of calibration images."""
    kind, what = _key(event)
    template = NOTES.get((kind, what)) or NOTES.get((kind, ANY))
    if template is None:
        return None
    inputs = list(getattr(event, "inputs", None) or [])
    images = getattr(getattr(settings, "calib", None), "num_images", None)
    values = {
        "inputs": ", ".join(inputs) if inputs else _("no checkpoint"),
        "images": images if images is not None else "N",
    }
    return _(template).format(**values)


def drop_note(stage: str, top1: Optional[float], earlier: List[Tuple[str, Optional[float]]]) -> Optional[str]:
    """The debug note when ``stage``'s ``top1`` is at least :data:`DROP_POINTS` below the nearest earlier
    stage with a top-1 (``earlier``: ``(stage, top1)`` in pipeline order); else None."""
    if top1 is None:
        return None
    previous = [(s, v) for s, v in earlier if v is not None and s != stage]
    if not previous:
        return None
    name, value = previous[-1]
    drop = float(value) - float(top1)
    if drop < DROP_POINTS:
        return None
    return _(NOTES[("AccuracyDrop", ANY)]).format(drop=drop, previous=name)


RAW_LOG_LINES = 20000
"""Lines of each raw log file shown (its last ones); the file itself stays complete."""


def raw_log_files(run_dir: str) -> List[str]:
    """The run's raw logs, as written: ``events.jsonl``, the worker's ``worker.log``, then every other
    ``*.log`` of the run folder and its subfolders (a toolchain's own output, e.g. ``compile.log``)."""
    first = [os.path.join(run_dir, name) for name in ("events.jsonl", "worker.log")]
    others = sorted(set(glob.glob(os.path.join(run_dir, "*.log")) + glob.glob(os.path.join(run_dir, "*", "*.log"))))
    return [p for p in first if os.path.isfile(p)] + [p for p in others if p not in first and os.path.isfile(p)]


def _tail(path: str, limit: int) -> Tuple[List[str], int]:
    """The last ``limit`` lines of ``path`` and how many lines came before them."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    return lines[-limit:], max(0, len(lines) - limit)


def raw_log(run_dir: str, limit: int = RAW_LOG_LINES) -> str:
    """The raw logs of ``run_dir`` as one text, each file under a ``==> path <==`` line (as ``tail``
    prints several files): the lines as written, for the run screen's ``l``."""
    parts: List[str] = []
    for path in raw_log_files(run_dir):
        parts.append("==> %s <==" % path)
        try:
            lines, cut = _tail(path, limit)
        except OSError as e:
            parts.append(_("(cannot read it: {error})").format(error=e))
            continue
        if cut:
            parts.append(_("({n} earlier lines not shown here; the file has them all)").format(n=cut))
        parts.extend(lines)
        parts.append("")
    if not parts:
        return _("{run_dir} has no log yet (events.jsonl, worker.log)").format(run_dir=run_dir)
    return "\n".join(parts)


__all__ = ["ANY", "DROP_POINTS", "NOTES", "RAW_LOG_LINES", "note_for", "drop_note", "raw_log_files", "raw_log"]
