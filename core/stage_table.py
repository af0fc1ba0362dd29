"""The five stages of Horizon's toolchain, defined once.

Each :class:`Stage` says what it is called, the function that runs it, what it loads (as a function of
the settings), which settings make its result stale, the checkpoint it writes for the next stage, its
one-line summary and its label in result tables. The pipeline, the stage functions, the CLI, the
headless runner and the wizard all read this table; a backend adds the keys of its own settings section
that make a stage stale (:attr:`core.backends.spec.BackendSpec.stale_keys`).

This module imports nothing heavy (the stage functions are named, and imported when a stage runs), so
``qat-tui --help`` and the wizard can read it at once.

=========  ==========================================  =================================================
stage      loads                                       writes
=========  ==========================================  =================================================
float      (optional pretrained state_dict)            float-checkpoint.ckpt (best test top-1 epoch)
calib      float-checkpoint.ckpt                       calib-checkpoint.ckpt
qat        calib-checkpoint.ckpt, or the float one     qat-checkpoint.ckpt (best test top-1 epoch)
           when calib is disabled
int_infer  qat-checkpoint.ckpt, or calib's when QAT    the integer model (its file name is the
           is disabled                                 backend's: int_model.pt2, int_model.pt, .bc)
compile    int_infer's integer model                   the deployable model and its reports
=========  ==========================================  =================================================
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

ALL = "*"
"""In :attr:`Stage.settings_keys`: every key of the section."""

INT_MODEL = "int_model"
"""The name int_infer's output goes by in the table: its file name depends on the backend, and is read
from the run's state (the artifact whose name starts with it)."""
from .i18n import N_, _

Keys = Union[str, Tuple[str, ...]]


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline.

    Attributes:
        name: the stage's name, as in Horizon's toolchain (``--stage`` values, state keys).
        run: ``"module:function"`` of the stage function (takes a StageContext, returns its metrics).
        upstream: ``upstream(settings)``: the stage whose output this one loads (None: loads none).
        settings_keys: section -> keys (or :data:`ALL`) of the core settings its result depends on.
        output: the file it writes for the next stage (a checkpoint name, or :data:`INT_MODEL`).
        output_help: what that file is, for the results screen.
        summary: what the stage does, in one sentence (run screen, headless output).
        label: the stage in accuracy tables (what its top-1 measures).
        wizard_keys: keys of its section that the Stages step shows under its switch.
        trains: trains for epochs (per-epoch resume point, divergence check).
    """

    name: str
    run: str
    upstream: Callable[[Any], Optional[str]]
    settings_keys: Dict[str, Keys]
    output: Optional[str]
    output_help: str
    summary: str
    label: str
    wizard_keys: Tuple[str, ...] = ()
    trains: bool = False

    def function(self) -> Callable[[Any], Dict[str, Any]]:
        """The stage function (imports its module: torch is imported when a stage runs)."""
        module, _sep, name = self.run.partition(":")
        return getattr(importlib.import_module(module), name)


def _int_infer_source(s: Any) -> Optional[str]:
    if s.qat.enabled:
        return "qat"
    if s.calib.enabled:
        return "calib"
    return None


_INPUT = ("image_size", "mean", "std", "skip_bad_images")
_DATA = ("root", "layout", "train_images", "eval_images") + _INPUT
_TRAINING = ("epochs", "optimizer", "lr", "weight_decay", "momentum", "lr_schedule")

TABLE: Tuple[Stage, ...] = (
    Stage(
        "float", "core.stages:run_float", lambda s: None,
        {"run": ("backend", "seed"), "data": _DATA + ("batch_size", "max_batches", "augment"), "model": ALL,
         "float": _TRAINING},
        "float-checkpoint.ckpt",
        N_("Best float model (state_dict + metadata); input of calib, or of qat when calib is off."),
        N_("Train the float model; keep the best top-1 epoch as float-checkpoint.ckpt."),
        N_("float"), wizard_keys=("epochs", "lr"), trains=True,
    ),
    Stage(
        "calib", "core.stages:run_calib", lambda s: "float",
        {"run": ("backend", "seed"), "data": _DATA + ("eval_batch_size",), "calib": ("num_images",), "qconfig": ALL},
        "calib-checkpoint.ckpt",
        N_("Calibrated fake-quant model: weights + initial scales; input of qat."),
        N_("Fresh float copy + calibration qconfig; eval mode, observers on, fake quant off over N images; "
        "then evaluate with fake quant on; save calib-checkpoint.ckpt."),
        N_("calib (fake quant)"), wizard_keys=("num_images",),
    ),
    Stage(
        "qat", "core.stages:run_qat", lambda s: "calib" if s.calib.enabled else "float",
        {"run": ("backend", "seed"), "data": _DATA + ("batch_size", "max_batches", "augment"), "calib": ("enabled",),
         "qat": _TRAINING + ("bn_stats",), "qconfig": ALL},
        "qat-checkpoint.ckpt",
        N_("Best QAT model: weights + trained scales; input of int_infer and compile."),
        N_("Fresh float copy + QAT qconfig, load the calib state; train with fake quant, validate each epoch "
        "with observers frozen; keep the best as qat-checkpoint.ckpt."),
        N_("qat (fake quant)"), wizard_keys=("epochs", "lr", "bn_stats"), trains=True,
    ),
    Stage(
        "int_infer", "core.stages:run_int_infer", _int_infer_source,
        {"data": ("root", "layout", "eval_images") + _INPUT, "calib": ("enabled",), "qat": ("enabled",)},
        INT_MODEL,
        N_("The integer model; input of compile."),
        N_("Convert to the integer model and evaluate it on the test set."),
        N_("int_infer (integer model)"),
    ),
    Stage(
        "compile", "core.stages:run_compile", lambda s: "int_infer",
        {"data": ("root", "layout", "eval_images") + _INPUT,
         "compile": ("package", "perf_batch_sizes", "perf_iterations", "graph_format")},
        None,
        "",
        N_("Build the deployable model and its check, perf and graph reports (CPU)."),
        N_("compile (deployable model)"),
    ),
)
"""The stages in pipeline order."""

STAGES: Tuple[str, ...] = tuple(s.name for s in TABLE)
"""The five stage names in pipeline order, named as in Horizon's toolchain."""

_BY_NAME = {s.name: s for s in TABLE}


def stage(name: str) -> Stage:
    """The table entry of ``name``.

    Raises:
        KeyError: not a stage name.
    """
    return _BY_NAME[name]


def checkpoint_help() -> Dict[str, str]:
    """``{checkpoint file: what it is}`` of the stages that write a checkpoint."""
    return {s.output: s.output_help for s in TABLE if s.output and s.output != INT_MODEL}


def inputs(settings: Any, name: str) -> List[Tuple[str, str]]:
    """``[(file, stage that writes it)]`` that stage ``name`` loads with these settings (the integer
    model as :data:`INT_MODEL`).

    Raises:
        StageError: int_infer/compile with both calib and qat disabled (nothing to convert).
    """
    from .errors import StageError

    up = stage(name).upstream(settings)
    if up is None and name == "int_infer":
        raise StageError(
            _("int_infer needs a calibrated or QAT-trained model, but both calib and qat are disabled"),
            hint=_("enable calib (fast) or qat in the settings"),
        )
    return [] if up is None else [(stage(up).output or "", up)]


def seed_offset(name: str) -> int:
    """The stage's index: each stage seeds torch with ``seed * 100 + index``."""
    return STAGES.index(name)


def settings_keys(settings: Any, name: str, backend_keys: Optional[Dict[str, Keys]] = None) -> Dict[str, Sequence[str]]:
    """Section -> key names that stage ``name``'s result depends on: the table's core keys plus
    ``backend_keys`` (the selected backend's section, from its spec), with :data:`ALL` expanded."""
    out: Dict[str, Sequence[str]] = {}
    merged: Dict[str, Keys] = dict(stage(name).settings_keys)
    merged.update(backend_keys or {})
    for section, keys in merged.items():
        values = getattr(settings, section).model_dump()
        out[section] = sorted(values) if keys == ALL else list(keys)
    return out


__all__ = ["ALL", "INT_MODEL", "Stage", "TABLE", "STAGES", "stage", "inputs", "checkpoint_help", "seed_offset", "settings_keys"]
