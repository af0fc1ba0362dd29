"""The stage functions, with the semantics of Horizon's MobileNetV2 sample; what each loads and
writes, which settings make it stale, its summary and labels are in :mod:`core.stage_table`.

calib and qat both prepare a *fresh copy of the float model* (never the calibrated model), as the
sample does; qat then loads the calibration state into it. Every stage function takes a
:class:`StageContext` and returns its metrics; artifacts are recorded through the context.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .backends.base import FakeQuantState, QuantBackend
from .engine import LoopContext, calibrate, evaluate, train_one_epoch
from .errors import CheckpointError, StageError
from .i18n import _
from .events import ArtifactWritten, CheckAdvice, EpochEnd, Emit, LogLine, PhaseFinished, PhaseStarted
from .io import load_checkpoint, save_checkpoint
from . import stage_table as T
from .settings import Settings
from .state import RunState, artifact_problem, artifact_record

CHECKPOINTS = {t.name: t.output for t in T.TABLE if t.output and t.output != T.INT_MODEL}
"""``{stage: checkpoint file}`` of the stages that write one (from the stage table)."""

def diverged_hint(stage: str, cfg: Any) -> str:
    """What to do when ``stage``'s training loss became NaN/inf (``cfg``: its settings section).

    QAT with ``bn_stats = "batch"``: a channel that fake quant rounds to a single value reaches
    BatchNorm with zero batch variance, and train-mode BatchNorm scales its gradient by 1/sqrt(eps)
    (316 at eps 1e-5); three such layers in a row gave gradients of 1e9 on the first batch of a barely
    trained MobileNetV2 (issue 7), the weights and then the BatchNorm statistics became inf/NaN. Frozen
    BatchNorm statistics remove that factor whatever the learning rate.
    """
    if stage == "qat" and getattr(cfg, "bn_stats", "frozen") == "batch":
        return _('set [qat] bn_stats = "frozen" (the default): with batch statistics, channels that fake quant '
                 "rounds to one value have zero variance and BatchNorm multiplies their gradient by 1/sqrt(eps); "
                 "the last good checkpoint is kept")
    return _("lower [{stage}] lr (e.g. by 10x); the last good checkpoint is kept").format(stage=stage)




class StageContext:
    """Everything a stage needs: settings, run folder, backend, device, data, and event output.

    Args:
        settings: the run's settings.
        backend: the quantization backend instance.
        device: an existing torch device name (``cpu``, ``cuda:0``); see :func:`core.devices.resolve_device`.
        emit: event consumer.
        cancel: set to stop at the next batch.
        data_factory: builds the :class:`core.data.DataBundle` on first use.
    """

    def __init__(
        self,
        settings: Settings,
        backend: QuantBackend,
        device: str,
        emit: Emit,
        cancel: threading.Event,
        data_factory: Callable[[], Any],
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.device = device
        self.emit = emit
        self.cancel = cancel
        self.run_dir = settings.run_path()
        self._data_factory = data_factory
        self._data: Any = None
        self.stage = ""
        self.fingerprint = ""
        self.artifacts: Dict[str, Dict[str, Any]] = {}
        self.governor: Any = None  # core.threads.ThreadGovernor, set by the pipeline
        self.stage_started = 0.0
        self.current_phase: Optional[Tuple[str, float]] = None  # (name, time.time() it started)

    @property
    def data(self) -> Any:
        if self._data is None:
            self._data = self._data_factory()
            self.log(self._data.describe())
        return self._data

    @property
    def num_classes(self) -> int:
        """``[model] num_classes``, or the number of classes in the data when it is unset."""
        return int(self.settings.model.num_classes or self.data.num_classes)

    def begin(self, stage: str, fingerprint: str = "") -> None:
        if stage != self.stage or not self.stage_started:
            self.stage_started = time.time()
        self.stage = stage
        self.fingerprint = fingerprint
        self.artifacts = {}
        self.current_phase = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Mark a long step without batch progress (export, convert, a compiler): emits
        :class:`PhaseStarted`, and :class:`PhaseFinished` with its duration when it ends well; while it
        runs, the pipeline's heartbeat names it."""
        self.emit(PhaseStarted(stage=self.stage, name=name))
        outer, t0 = self.current_phase, time.time()
        self.current_phase = (name, t0)
        try:
            yield
        finally:
            self.current_phase = outer
        self.emit(PhaseFinished(stage=self.stage, name=name, seconds=time.time() - t0))

    def check_cancel(self) -> None:
        """Raise Cancelled when the user asked to stop (checked between the long steps of a stage)."""
        self.loop().check_cancel()

    def loop(self) -> LoopContext:
        return LoopContext(self.stage, self.emit, self.cancel, self.device, self.governor)

    def log(self, text: str, level: str = "info") -> None:
        self.emit(LogLine(stage=self.stage or None, level=level, text=text))

    def path(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    def record_artifact(self, name: str, path: str, description: str) -> None:
        """Record a file this stage wrote (path relative to the run folder, size, SHA-256)."""
        rec = artifact_record(self.run_dir, name, path, description)
        self.artifacts[name] = rec
        self.emit(ArtifactWritten(stage=self.stage, name=name, path=rec["path"], size=rec["size"], description=description))

    def model_meta(self) -> Dict[str, Any]:
        """What a checkpoint must agree on to load into this run's model (the builder and kwargs only
        when set, so that checkpoints written before those settings existed still load)."""
        m = self.settings.model
        meta: Dict[str, Any] = {"arch": m.arch, "num_classes": self.num_classes, "width_mult": float(m.width_mult)}
        if m.builder:
            meta["builder"] = m.builder
        if m.kwargs:
            meta["kwargs"] = dict(m.kwargs)
        return meta

    def checkpoint_meta(self, **extra: Any) -> Dict[str, Any]:
        meta = {"stage": self.stage, "model": self.model_meta(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        meta.update(self.backend.signature())
        meta.update(extra)
        return meta

    def expect(self) -> Dict[str, Any]:
        exp = {"model": self.model_meta()}
        exp.update(self.backend.signature())
        return exp


# ------------------------------------------------------------------------------------ stage inputs

def stage_inputs(settings: Settings, stage: str) -> List[Tuple[str, str]]:
    """``[(file, stage that writes it)]`` that ``stage`` loads with these settings (see
    :func:`core.stage_table.inputs`).

    Raises:
        StageError: int_infer with both calib and qat disabled (nothing to convert).
    """
    return T.inputs(settings, stage)


CODE_INPUTS = ("int_model",)
"""Inputs that hold code by design (a TorchScript or AOTInductor/.so model, a compiled graph): loaded
only when the state records that this run folder's own producer stage wrote exactly that file."""


def input_path(ctx_or_settings: Any, name: str, state: Optional[RunState] = None) -> str:
    """Absolute path of an input named by :func:`stage_inputs` in this run folder (``int_model``
    resolves through the int_infer stage's recorded artifact, whose file name depends on the backend)."""
    settings = ctx_or_settings if isinstance(ctx_or_settings, Settings) else ctx_or_settings.settings
    run_dir = settings.run_path()
    if name == "int_model":
        state = state or RunState.load(run_dir)
        for art_name, art in state.stage("int_infer").get("artifacts", {}).items():
            if art_name.startswith("int_model"):
                return os.path.join(run_dir, str(art.get("path") or art_name))
        return os.path.join(run_dir, "int_model (written by int_infer)")
    return os.path.join(run_dir, name)


def check_inputs(settings: Settings, stage: str, state: Optional[RunState] = None) -> None:
    """Check that every input of ``stage`` is there and is still the file its producer wrote.

    Raises:
        CheckpointError: an input is missing, changed since its producer stage wrote it, or (for a
            model that holds code) was not written by this run folder's own producer stage; the hint
            names the stage to run.
    """
    run_dir = settings.run_path()
    state = state or RunState.load(run_dir)
    for name, producer in stage_inputs(settings, stage):
        path = input_path(settings, name, state)
        rerun = "qat-tui run --config FILE --stage %s" % producer
        if not os.path.exists(path):
            raise CheckpointError(
                _("{stage} needs {file}, which is not in {folder}").format(stage=stage, file=name, folder=run_dir),
                hint=_("run the {stage} stage first ({command})").format(stage=producer, command=rerun),
            )
        file_name = os.path.relpath(path, run_dir)
        art = state.stage(producer).get("artifacts", {}).get(file_name)
        if art is not None:
            problem = artifact_problem(run_dir, file_name, art)
            if problem:
                raise CheckpointError(
                    _("{stage} needs {file}, but {problem}: it is no longer what the {producer} stage wrote").format(
                        stage=stage, file=file_name, problem=problem, producer=producer),
                    hint=_("run the {stage} stage again ({command}); to start from weights of your own, set [model] pretrained").format(
                        stage=producer, command=rerun),
                )
        elif name in CODE_INPUTS:
            raise CheckpointError(
                _("{file} in {folder} was not written by this folder's {stage} stage (state.json has no record of it); "
                  "qat-tui loads a model file, which holds code, only when this run wrote it").format(
                    file=file_name, folder=run_dir, stage=producer),
                hint=_("run the {stage} stage ({command})").format(stage=producer, command=rerun),
            )


# ----------------------------------------------------------------------------------------- helpers

def _seed(settings: Settings, stage: str) -> None:
    import torch

    torch.manual_seed(settings.run.seed * 100 + T.seed_offset(stage))


def _cpu_state(model: Any) -> Dict[str, Any]:
    """``model.state_dict()`` on the CPU, keeping its ``_metadata`` (module versions that
    ``_load_from_state_dict`` reads; Horizon's FakeQuantize picks its rounding mode from it)."""
    from collections import OrderedDict

    sd = model.state_dict()
    out: Dict[str, Any] = OrderedDict((k, v.detach().cpu()) for k, v in sd.items())
    meta = getattr(sd, "_metadata", None)
    if meta is not None:
        out._metadata = meta  # type: ignore[attr-defined]
    return out


def _new_float_model(ctx: StageContext) -> Any:
    from .models import model_from_settings

    return model_from_settings(ctx.settings.model, ctx.num_classes, ctx.backend.quant_stubs())


def load_float_model(ctx: StageContext) -> Any:
    """A fresh float model with ``float-checkpoint.ckpt`` loaded (CPU, eval mode)."""
    model = _new_float_model(ctx)
    ckpt = load_checkpoint(ctx.path(CHECKPOINTS["float"]), made_by="float", expect=ctx.expect())
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(
            _("float-checkpoint.ckpt does not fit the model in the settings: {reason}").format(reason=str(e).splitlines()[0]),
            hint=_("rerun the float stage, or set [model] to what the checkpoint was trained with"),
        ) from None
    return model.eval()


def restore_prepared(ctx: StageContext) -> Tuple[Any, str]:
    """Rebuild the prepared model of the last quantization stage (qat, else calib) from its checkpoint.

    Returns:
        ``(prepared model on CPU, source stage name)``.
    """
    (name, producer), = stage_inputs(ctx.settings, "int_infer")
    ckpt = load_checkpoint(ctx.path(name), made_by=producer, expect=ctx.expect())
    example = ctx.data.example_batch(8)
    prepared = _prepare(ctx, _new_float_model(ctx).eval(), example, producer)
    try:
        prepared.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(
            _("{file} does not fit a model prepared with the current settings: {reason}").format(
                file=name, reason=str(e).splitlines()[0]),
            hint=_("rerun the {stage} stage with these settings").format(stage=producer),
        ) from None
    ctx.log(_("loaded {file} (from the {stage} stage)").format(file=name, stage=producer))
    return prepared, producer


def _prepare(ctx: StageContext, float_model: Any, example: Any, stage: str) -> Any:
    """``backend.prepare`` for ``stage`` as a named phase (it traces the model: seconds to a minute)."""
    with ctx.phase(_("prepare for {stage}: trace the float model and insert fake quant").format(stage=stage)):
        prepared = ctx.backend.prepare(float_model, (example,), stage, ctx.settings.qconfig)
    for line in ctx.backend.qconfig_lines():
        ctx.log("qconfig: " + line)
    return prepared


def _optimizer(params: Any, cfg: Any) -> Any:
    import torch

    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _scheduler(optimizer: Any, cfg: Any, total_steps: int) -> Optional[Any]:
    import torch

    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return None


RESUME_FILE = "%s-last.ckpt"
"""Per-epoch resume point of a training stage (float-last.ckpt, qat-last.ckpt): model, optimizer,
scheduler, RNG state, best-so-far and history after the last finished epoch. Deleted when the stage
finishes."""


def _rng_state() -> Dict[str, Any]:
    import random

    import torch

    state: Dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict[str, Any]) -> None:
    import random

    import torch

    torch.set_rng_state(state["torch"])
    py = random.getstate()
    random.setstate((py[0], tuple(int(v) for v in state["python"]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_resume_point(ctx: "StageContext", path: str, model: Any, optimizer: Any, scheduler: Any,
                       epoch: int, best: Dict[str, Any], history: List[Dict[str, Any]]) -> None:
    payload = {
        "model": _cpu_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "rng": _rng_state(),
    }
    save_checkpoint(path, payload, ctx.checkpoint_meta(fingerprint=ctx.fingerprint, epoch=epoch, best=best, history=history))


def _load_resume_point(ctx: "StageContext", path: str, model: Any, optimizer: Any, scheduler: Any,
                       epochs: int) -> Optional[Dict[str, Any]]:
    """Restore the state after the last finished epoch when ``path`` belongs to this very stage run
    (same fingerprint: settings and input unchanged); None to start from epoch 1."""
    if not os.path.exists(path):
        return None
    try:
        ck = load_checkpoint(path, made_by=ctx.stage, expect=ctx.expect(), map_location=ctx.device)
    except CheckpointError as e:
        ctx.log(_("cannot resume from {file} ({reason}): starting {stage} from epoch 1").format(
            file=os.path.basename(path), reason=e.msg, stage=ctx.stage), "warning")
        return None
    meta = ck["meta"]
    if meta.get("fingerprint") != ctx.fingerprint or not 1 <= int(meta.get("epoch", 0)) < epochs:
        ctx.log(_("{file} is from other settings or inputs: starting {stage} from epoch 1").format(
            file=os.path.basename(path), stage=ctx.stage))
        return None
    sd = ck["state_dict"]
    model.load_state_dict(sd["model"])
    optimizer.load_state_dict(sd["optimizer"])
    if scheduler is not None and sd.get("scheduler"):
        scheduler.load_state_dict(sd["scheduler"])
    _set_rng_state(sd["rng"])
    return {"epoch": int(meta["epoch"]), "best": meta["best"], "history": meta["history"]}


def _train_epochs(
    ctx: StageContext,
    model: Any,
    cfg: Any,
    set_train: Callable[[], None],
    set_eval: Callable[[], None],
    ckpt_name: str,
) -> Dict[str, Any]:
    """The float/QAT training loop: train, evaluate each epoch, keep the best top-1 checkpoint."""
    data = ctx.data
    s = ctx.settings
    steps = len(data.train_loader(0))
    if s.data.max_batches is not None:
        steps = min(steps, s.data.max_batches)
    optimizer = _optimizer(model.parameters(), cfg)
    scheduler = _scheduler(optimizer, cfg, steps * cfg.epochs)
    best: Dict[str, Any] = {"top1": -1.0}
    history: List[Dict[str, Any]] = []
    last_path = ctx.path(RESUME_FILE % ctx.stage)
    first_epoch = 1
    resumed = _load_resume_point(ctx, last_path, model, optimizer, scheduler, cfg.epochs)
    if resumed is not None:
        best, history = resumed["best"], resumed["history"]
        first_epoch = resumed["epoch"] + 1
        ctx.log(_("resuming {stage} at epoch {epoch} of {epochs} (epochs 1-{done} were finished before the interruption)").format(
            stage=ctx.stage, epoch=first_epoch, epochs=cfg.epochs, done=resumed["epoch"]))
        for h in history:
            ctx.emit(EpochEnd(stage=ctx.stage, epoch=h["epoch"], epochs=cfg.epochs, train_loss=h["train_loss"],
                              top1=h["top1"], top5=h["top5"], lr=h["lr"], best=h["epoch"] == best.get("epoch")))
    for epoch in range(first_epoch, cfg.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        set_train()
        try:
            tr = train_one_epoch(
                model, data.train_loader(epoch, pin=ctx.device.startswith("cuda")), optimizer, scheduler,
                ctx.loop(), epoch, cfg.epochs, s.data.max_batches,
            )
        except FloatingPointError as e:
            raise StageError(
                _("{stage} training diverged: {reason}").format(stage=ctx.stage, reason=e),
                hint=diverged_hint(ctx.stage, cfg),
            ) from None
        set_eval()
        ev = evaluate(model, data.eval_loader(), ctx.loop(), epoch, cfg.epochs)
        is_best = ev["top1"] > best["top1"]
        if is_best:
            best = {"top1": ev["top1"], "top5": ev["top5"], "epoch": epoch, "train_loss": tr["loss"]}
            save_checkpoint(
                ctx.path(ckpt_name),
                _cpu_state(model),
                ctx.checkpoint_meta(epoch=epoch, top1=ev["top1"], top5=ev["top5"]),
            )
        history.append({"epoch": epoch, "train_loss": tr["loss"], "top1": ev["top1"], "top5": ev["top5"], "lr": lr})
        if epoch < cfg.epochs:
            _save_resume_point(ctx, last_path, model, optimizer, scheduler, epoch, best, history)
        ctx.emit(
            EpochEnd(
                stage=ctx.stage, epoch=epoch, epochs=cfg.epochs, train_loss=tr["loss"], top1=ev["top1"],
                top5=ev["top5"], lr=lr, best=is_best, seconds=tr["seconds"] + ev["seconds"],
            )
        )
        ctx.log(
            _("epoch {epoch}/{epochs}: loss {loss:.3f}, top-1 {top1:.2f}%, top-5 {top5:.2f}%, {speed:.0f} images/s{best}").format(
                epoch=epoch, epochs=cfg.epochs, loss=tr["loss"], top1=ev["top1"], top5=ev["top5"],
                speed=tr["images"] / max(tr["seconds"], 1e-9), best=_(" (best, saved)") if is_best else "")
        )
    if os.path.exists(last_path):
        os.unlink(last_path)
    ctx.record_artifact(ckpt_name, ctx.path(ckpt_name), T.checkpoint_help()[ckpt_name])
    return {
        "top1": best["top1"],
        "top5": best["top5"],
        "best_epoch": best["epoch"],
        "epochs": cfg.epochs,
        "train_loss": best["train_loss"],
        "history": history,
    }


# ------------------------------------------------------------------------------------------ stages

def run_float(ctx: StageContext) -> Dict[str, Any]:
    """Stage 1: train the float model; the best top-1 epoch is saved as float-checkpoint.ckpt."""
    from .models import check_model, describe_source, load_pretrained, output_layer, pretrained_path

    _seed(ctx.settings, "float")
    m = ctx.settings.model
    model = _new_float_model(ctx)
    example = ctx.data.example_batch(2)
    check_model(model, example, ctx.num_classes, describe_source(m))
    ctx.log(_("model: {model}; QuantStub at the input, DeQuantStub after the output layer {layer}").format(
        model=describe_source(m), layer=output_layer(model, example) or _("(no conv/linear found)")))
    if {"calib", "qat"} & set(ctx.settings.enabled_stages()):
        rng = _rng_state()  # the trial must not change what the training draws (runs stay reproducible)
        with ctx.phase(_("trial capture: can the {backend} backend trace this model?").format(backend=ctx.backend.name)):
            ctx.backend.check_capture(model.eval(), (example,), ctx.settings.qconfig)
        _set_rng_state(rng)
    if m.pretrained:
        for msg in load_pretrained(model, pretrained_path(m)):
            ctx.log(msg)
    else:
        ctx.log(_("no pretrained weights given: training {model} from scratch").format(model=describe_source(m)), "warning")
    model.to(ctx.device)
    return _train_epochs(ctx, model, ctx.settings.float, model.train, model.eval, CHECKPOINTS["float"])


def run_calib(ctx: StageContext) -> Dict[str, Any]:
    """Stage 2: calibrate a fresh prepared copy of the float model; save calib-checkpoint.ckpt."""
    _seed(ctx.settings, "calib")
    s = ctx.settings
    float_model = load_float_model(ctx)
    example = ctx.data.example_batch(8)
    prepared = _prepare(ctx, float_model, example, "calib").to(ctx.device)
    ctx.backend.set_fake_quant_state(prepared, FakeQuantState.CALIBRATION)
    loader = ctx.data.calib_loader(s.calib.num_images)
    ctx.log(_("calibrating on {n} images with the {observer} observer").format(n=len(loader.dataset), observer=s.qconfig.calib_observer))
    cal = calibrate(prepared, loader, ctx.loop())
    ctx.backend.set_fake_quant_state(prepared, FakeQuantState.VALIDATION)
    ev = evaluate(prepared, ctx.data.eval_loader(), ctx.loop())
    save_checkpoint(
        ctx.path(CHECKPOINTS["calib"]),
        _cpu_state(prepared),
        ctx.checkpoint_meta(top1=ev["top1"], top5=ev["top5"], observer=s.qconfig.calib_observer),
    )
    ctx.emit(EpochEnd(stage="calib", epoch=1, epochs=1, top1=ev["top1"], top5=ev["top5"], best=True, seconds=ev["seconds"] + cal["seconds"]))
    ctx.log(_("calibrated fake-quant model: top-1 {top1:.2f}%, top-5 {top5:.2f}%").format(top1=ev["top1"], top5=ev["top5"]))
    ctx.record_artifact(CHECKPOINTS["calib"], ctx.path(CHECKPOINTS["calib"]), T.checkpoint_help()[CHECKPOINTS["calib"]])
    return {"top1": ev["top1"], "top5": ev["top5"], "calib_images": cal["images"], "observer": s.qconfig.calib_observer}


def run_qat(ctx: StageContext) -> Dict[str, Any]:
    """Stage 3: QAT from the calibration state (or the float weights when calib is off)."""
    _seed(ctx.settings, "qat")
    s = ctx.settings
    float_model = load_float_model(ctx)
    example = ctx.data.example_batch(8)
    prepared = _prepare(ctx, float_model, example, "qat")
    if s.calib.enabled:
        ckpt = load_checkpoint(ctx.path(CHECKPOINTS["calib"]), made_by="calib", expect=ctx.expect())
        for msg in ctx.backend.load_calib_state(prepared, ckpt["state_dict"]):
            ctx.log(msg)
    else:
        ctx.log(_("calib is off: QAT starts from the float weights and the first batches set the scales"), "warning")
    prepared.to(ctx.device)

    frozen_bn = s.qat.bn_stats == "frozen"
    if frozen_bn:
        ctx.log(_("BatchNorm statistics frozen during QAT ([qat] bn_stats = frozen): the float model's running "
                  "statistics, the ones calibration used"))

    def set_train() -> None:
        ctx.backend.set_fake_quant_state(prepared, FakeQuantState.QAT)
        if frozen_bn:
            ctx.backend.freeze_bn_stats(prepared)

    def set_eval() -> None:
        ctx.backend.set_fake_quant_state(prepared, FakeQuantState.VALIDATION)

    return _train_epochs(ctx, prepared, s.qat, set_train, set_eval, CHECKPOINTS["qat"])


def run_int_infer(ctx: StageContext) -> Dict[str, Any]:
    """Stage 4: convert the last quantization stage's model to the integer model and evaluate it."""
    _seed(ctx.settings, "int_infer")
    prepared, source = restore_prepared(ctx)
    example = ctx.data.example_batch(8)
    ctx.check_cancel()
    with ctx.phase(_("convert: the integer model from the {stage} model").format(stage=source)):
        int_model = ctx.backend.convert(prepared, (example,))
    ctx.check_cancel()
    with ctx.phase(_("save the integer model")):
        saved = ctx.backend.save_int_model(int_model, (example,), ctx.run_dir)
    for art in saved if isinstance(saved, list) else [saved]:
        ctx.record_artifact(art.name, art.path, art.description)
    int_model.to(ctx.device)
    ev = evaluate(int_model, ctx.data.eval_loader(), ctx.loop())
    ctx.emit(EpochEnd(stage="int_infer", epoch=1, epochs=1, top1=ev["top1"], top5=ev["top5"], best=True, seconds=ev["seconds"]))
    ctx.log(_("integer model (converted from {stage}): top-1 {top1:.2f}%, top-5 {top5:.2f}%").format(
        stage=source, top1=ev["top1"], top5=ev["top5"]))
    return {"top1": ev["top1"], "top5": ev["top5"], "source": source}


def run_compile(ctx: StageContext) -> Dict[str, Any]:
    """Stage 5: the deployable artifact and its check, perf and graph reports, on CPU."""
    import torch

    _seed(ctx.settings, "compile")
    path = input_path(ctx, "int_model")
    with ctx.phase(_("load the integer model")):
        int_model = ctx.backend.load_int_model(path)
    ctx.log(_("loaded the integer model {file}").format(file=os.path.basename(path)))
    example = ctx.data.example_batch(8).cpu()
    # The fp32 baseline of the perf report: the float model (its weights do not change its latency).
    if os.path.exists(ctx.path(CHECKPOINTS["float"])):
        float_model = load_float_model(ctx)
    else:
        float_model = _new_float_model(ctx).eval()
        ctx.log(_("float-checkpoint.ckpt is missing: the perf baseline uses freshly initialised weights"), "warning")
    source = T.stage("int_infer").upstream(ctx.settings)
    ctx.check_cancel()
    result = ctx.backend.compile(int_model, float_model, (example,), ctx.run_dir, ctx.settings.compile, ctx.log,
                                 phase=ctx.phase)
    for a in result.artifacts:
        ctx.record_artifact(a.name, a.path, a.description)
    metrics: Dict[str, Any] = {"source": source}
    if result.check is not None:
        ctx.emit(
            CheckAdvice(
                stage="compile",
                passed=result.check.passed,
                summary=result.check.summary,
                items=[i.to_dict() for i in result.check.items],
            )
        )
        metrics["check_passed"] = result.check.passed
        metrics["check_summary"] = result.check.summary
        # kept with the metrics so that a later start that skips this stage can show the advice again
        metrics["check_items"] = [i.to_dict() for i in result.check.items if i.status != "int8"]
    metrics.update(result.metrics)
    ctx.check_cancel()
    if result.deployable:
        runner = ctx.backend.load_deployable(result.deployable)
        if runner is not None:
            ctx.log(_("evaluating the deployable model on the test set (CPU)"))
            ev = evaluate(runner, ctx.data.eval_loader(), ctx.loop(), device=torch.device("cpu"))
            metrics["top1"] = ev["top1"]
            metrics["top5"] = ev["top5"]
            ctx.emit(EpochEnd(stage="compile", epoch=1, epochs=1, top1=ev["top1"], top5=ev["top5"], best=True, seconds=ev["seconds"]))
            ctx.log(_("deployable model: top-1 {top1:.2f}%, top-5 {top5:.2f}%").format(top1=ev["top1"], top5=ev["top5"]))
    return metrics
