"""Every choice the wizard offers, as one typed, validated settings object.

The settings are a pydantic model with one section per TOML table: ``[run]``, ``[data]``, ``[model]``,
``[float]``, ``[calib]``, ``[qat]``, ``[qconfig]``, ``[int_infer]``, ``[compile]``, ``[debug]``, ``[ui]`` (the
wizard's keys, read by no stage), and one more per registered backend that declares options (its spec's
``options`` model, a table named after it). Each field's
``description`` is its one line of plain help: the wizard shows it under the input, :func:`dumps` writes
it as the comment above the key, and the exported script reuses it.

Defaults follow Horizon's MobileNetV2 / CIFAR-10 sample (``quick_start.md`` of HorizonRDK/rdk_x3_doc and
the first-slice issue): float 20 epochs, Adam lr 1e-3, weight decay 2e-4, batch 256; QAT 2 epochs,
SGD lr 1e-4, weight decay 2e-4; calibration on all training images.

Errors: :func:`load` and :func:`validate` raise :class:`core.errors.SettingsError` naming the key, the
value and the allowed values (an unknown key lists the keys its table allows).

This module must stay importable on Python 3.8 (Horizon's XJ3/J5 dockers): ``typing`` generics only.
"""
import os
import re
from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SettingsError
from .i18n import N_, _, get_language

from .stage_table import STAGES  # noqa: E402  (the stage names, defined once in the stage table)

SETTINGS_FILENAME = "settings.toml"

ADDED = {"added": True}
"""``json_schema_extra`` of a key added after runs were first recorded: it counts in a stage's
fingerprint only when set away from its default, so that those runs stay done (core.pipeline)."""


def snake_name(v: str, what: str) -> str:
    """``v`` stripped; a ValueError "must be <what>" unless it is a lower-case name (``[a-z][a-z0-9_]*``)."""
    v = v.strip()
    if not re.fullmatch(r"[a-z][a-z0-9_]*", v):
        raise ValueError(_("must be {what}").format(what=_(what)))
    return v


class Section(BaseModel):
    """Base of every settings section (backends' own sections included): unknown keys are refused,
    assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


_Section = Section


class RunSettings(_Section):
    run_dir: str = Field(
        "runs/mobilenetv2",
        description=N_("Folder for checkpoints, artifacts, state and logs of this run (relative to the current folder)."),
    )
    backend: str = Field(
        default_factory=lambda: default_backend(),
        description=N_("Quantization toolchain (a registered backend; the wizard's Backend step shows what each "
        "one is and whether it can run here)."),
    )
    device: str = Field(
        "auto",
        description=N_("Where to train: auto (first GPU, else CPU), cpu, cuda or cuda:N. Only devices that exist are accepted."),
    )
    seed: int = Field(0, ge=0, description=N_("Random seed for weight init, data order and subsets: same seed, same run."))
    threads: Optional[int] = Field(
        None, ge=1, description=N_("CPU threads for torch (unset: chosen from the cores and the other runs in progress, "
        "re-planned while training).")
    )
    nice: int = Field(
        10, ge=0, le=19,
        description=N_("CPU priority of the training process the wizard (or run --detach) starts, as a Unix niceness: "
        "0 = the wizard's own, up to 19 = lowest; above 0 the wizard keeps answering keys while a stage trains on "
        "every core. A foreground qat-tui run keeps its priority unless given --nice."),
    )

    @field_validator("backend")
    @classmethod
    def _registered(cls, v: str) -> str:
        from .backends import names

        known = names()
        if v not in known:
            raise ValueError(_("must be one of: %s (the registered backends)") % ", ".join(repr(n) for n in known))
        return v

    @field_validator("device")
    @classmethod
    def _device_form(cls, v: str) -> str:
        v = v.strip().lower()
        if not re.fullmatch(r"auto|cpu|cuda|cuda:\d+|mps", v):
            raise ValueError(_("must be one of 'auto', 'cpu', 'cuda', 'cuda:N' (N = GPU index), 'mps'"))
        return v


class DataSettings(_Section):
    root: str = Field(
        "data",
        description=N_("Image folder: train/ + val/ (or test/) with one sub-folder per class (any image size), or "
        "CIFAR-10's cifar-10-batches-py/ (torchvision)."),
    )
    layout: Literal["auto", "cifar-python", "imagefolder"] = Field(
        "auto", description=N_("Data layout: auto detects cifar-python (pickled batches) or imagefolder (one folder per class).")
    )
    download: bool = Field(
        False, description=N_("Download CIFAR-10 with torchvision when it is missing (needs internet).")
    )
    train_images: Optional[int] = Field(
        None, ge=1, description=N_("Use a random subset of this many training images (unset: all 50,000).")
    )
    eval_images: Optional[int] = Field(
        None, ge=1, description=N_("Evaluate on this many test images (unset: all 10,000).")
    )
    batch_size: int = Field(256, ge=1, description=N_("Training batch size (the sample uses 256)."))
    eval_batch_size: int = Field(256, ge=1, description=N_("Batch size for evaluation and calibration."))
    max_batches: Optional[int] = Field(
        None, ge=1, description=N_("Stop each training epoch after this many batches (quick trials; unset: no limit).")
    )
    augment: Literal["crop_flip", "resized_crop_flip", "none"] = Field(
        "crop_flip", description=N_("Training augmentation: crop_flip = random crop (zero padding 1/8 of the side, 4 px "
        "at 32) + horizontal flip (CIFAR recipe); resized_crop_flip = RandomResizedCrop + flip (ImageNet recipe); none.")
    )
    image_size: int = Field(
        32, ge=8, le=2048, json_schema_extra=ADDED,
        description=N_("Model input side in pixels: images are resized (shorter side) and center-cropped to it "
        "(32 = CIFAR-10 as it is; 224 = ImageNet models' usual size)."),
    )
    mean: Optional[List[float]] = Field(
        None, json_schema_extra=ADDED, min_length=3, max_length=3,
        description=N_("Per-channel mean (R, G, B, of values in [0, 1]) subtracted from the images (unset: ImageNet's "
        "for torchvision's pretrained weights, CIFAR-10's for CIFAR-10's classes, else ImageNet's)."),
    )
    std: Optional[List[float]] = Field(
        None, json_schema_extra=ADDED, min_length=3, max_length=3,
        description=N_("Per-channel standard deviation the images are divided by (unset: chosen as mean is)."),
    )
    skip_bad_images: bool = Field(
        False, json_schema_extra=ADDED,
        description=N_("Leave out images that cannot be decoded (checked when the data is opened, with a count) "
        "instead of stopping with the file's name."),
    )
    @field_validator("std")
    @classmethod
    def _positive_std(cls, v: Optional[List[float]]) -> Optional[List[float]]:
        if v is not None and any(x <= 0 for x in v):
            raise ValueError(_("every std value must be > 0"))
        return v

    num_workers: Union[Literal["auto"], int] = Field(
        "auto",
        description=N_("Data loader worker processes: auto = what the data and the cores call for (0 for in-memory "
        "CIFAR batches, small images or 2 cores; measured faster there), 0 = load in the training thread, N."),
    )

    @field_validator("num_workers", mode="before")
    @classmethod
    def _workers(cls, v: Any) -> Any:
        if v == "auto":
            return v
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
        raise ValueError(_("must be 'auto' or a number of worker processes >= 0"))


class ModelSettings(_Section):
    arch: str = Field(
        "mobilenet_v2",
        description=N_("A classifier of the installed torchvision by name (mobilenet_v2, resnet18, mobilenet_v3_small, "
        "...; qat-tui models lists them); QuantStub/DeQuantStub are added at input/output."),
    )
    builder: Optional[str] = Field(
        None, json_schema_extra=ADDED,
        description=N_("Your own model instead of arch: 'path/to/file.py:function' or 'package.module:function', "
        "called as function(num_classes=N, **kwargs), returning an nn.Module."),
    )
    kwargs: Dict[str, Any] = Field(
        default_factory=dict, json_schema_extra=ADDED,
        description=N_("Keyword arguments for the model's builder (a TOML table, e.g. {dropout = 0.1})."),
    )
    num_classes: Optional[int] = Field(
        None, ge=2, description=N_("Number of classes (unset: the number of class folders in the data; CIFAR-10: 10).")
    )
    width_mult: float = Field(
        1.0, gt=0.0, le=2.0, description=N_("MobileNetV2 width multiplier: channels x this (the sample uses 1.0).")
    )
    pretrained: Optional[str] = Field(
        None, description=N_("Weights to start from: a float state_dict file (.pt/.pth/.ckpt), or torchvision's named "
        "weights (DEFAULT, IMAGENET1K_V1) from the local torch hub cache; unset: train from scratch."),
    )

    @field_validator("arch")
    @classmethod
    def _arch_form(cls, v: str) -> str:
        return snake_name(v, N_("a torchvision model name such as 'resnet18' (qat-tui models lists them)"))

    @field_validator("builder")
    @classmethod
    def _builder_form(cls, v: Optional[str]) -> Optional[str]:
        if v is None or not v.strip():
            return None
        target, sep, fn = v.strip().rpartition(":")
        if not sep or not target or not fn.isidentifier():
            raise ValueError(_("must be 'path/to/file.py:function' or 'package.module:function'"))
        return v.strip()

    @field_validator("kwargs")
    @classmethod
    def _plain_kwargs(cls, v: Dict[str, Any]) -> Dict[str, Any]:
        for k, x in v.items():
            if not str(k).isidentifier():
                raise ValueError(_("%r is not a keyword argument name") % k)
            if not isinstance(x, (bool, int, float, str, list)):
                raise ValueError(_("%s = %r: only numbers, booleans, strings and lists can be passed") % (k, x))
        return dict(v)


class FloatStageSettings(_Section):
    enabled: bool = Field(True, description=N_("Train the float model (needed unless float-checkpoint.ckpt exists)."))
    epochs: int = Field(20, ge=1, description=N_("Float training epochs; the best top-1 epoch is kept."))
    optimizer: Literal["adam", "sgd"] = Field("adam", description=N_("Optimizer (the sample uses Adam)."))
    lr: float = Field(1e-3, gt=0.0, description=N_("Learning rate at the start of training."))
    weight_decay: float = Field(2e-4, ge=0.0, description=N_("L2 weight decay."))
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description=N_("SGD momentum (ignored by Adam)."))
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description=N_("cosine: decay the lr to 0 over all steps; constant: keep it (the sample).")
    )


class CalibStageSettings(_Section):
    enabled: bool = Field(True, description=N_("Calibrate: observers set the initial scales before QAT."))
    num_images: Optional[int] = Field(
        None, ge=1, description=N_("Training images to calibrate on (unset: all of them, as the sample).")
    )


class QatStageSettings(_Section):
    enabled: bool = Field(True, description=N_("Quantization-aware training from the calibrated (or float) model."))
    epochs: int = Field(2, ge=1, description=N_("QAT epochs, about 1/10 of the float epochs; the best top-1 epoch is kept."))
    optimizer: Literal["sgd", "adam"] = Field("sgd", description=N_("Optimizer for QAT fine-tuning."))
    lr: float = Field(1e-4, gt=0.0, description=N_("QAT learning rate: small, it is a fine-tune."))
    weight_decay: float = Field(2e-4, ge=0.0, description=N_("L2 weight decay."))
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description=N_("SGD momentum (ignored by Adam)."))
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description=N_("cosine: decay the lr to 0 over all steps; constant: keep it.")
    )
    bn_stats: Literal["frozen", "batch"] = Field(
        "frozen",
        description=N_("BatchNorm during QAT: frozen = use the float model's running statistics, as calibration "
        "did (stable; the whitepaper's freeze-BN recipe); batch = normalise with each batch's statistics and "
        "update them (diverges when fake quant rounds a channel to one value: its zero batch variance scales "
        "its gradient by 1/sqrt(eps))."),
    )


class QconfigSettings(_Section):
    calib_observer: str = Field(
        "mse",
        description=N_("How calibration picks activation ranges: min_max = the full range; mse = clip to minimise the "
        "quantization error; each backend offers its own list (the Qconfig step shows it, with help)."),
    )

    @field_validator("calib_observer")
    @classmethod
    def _observer_form(cls, v: str) -> str:
        return snake_name(v, N_("an observer name such as 'min_max' or 'mse'"))
    high_precision_output: bool = Field(
        True,
        description=N_("Keep the output layer (the model's last conv/linear, found by tracing) unquantized: 8-bit weights "
        "and inputs, float/int32 output - Horizon's '32bit_out'."),
    )


    float_layers: List[str] = Field(
        default_factory=list, json_schema_extra=ADDED,
        description=N_("Layers kept in float (not quantized): their output and weights; names as `qat-tui debug "
        "RUN_DIR` shows them (module paths such as 'layer1.0.conv2'). Reruns calib and qat."),
    )

    int16_layers: List[str] = Field(
        default_factory=list, json_schema_extra=ADDED,
        description=N_("Layers whose output is quantized to 16 bits instead of 8 (weights stay 8-bit): Horizon's fix "
        "for a layer whose range a few large values set (its guide: int16 on march bayes, RDK Ultra; qint16 on nash-* "
        "marches). Names as `qat-tui debug RUN_DIR` shows them. Other backends and marches refuse it. Reruns calib and qat."),
    )

    @field_validator("float_layers", "int16_layers")
    @classmethod
    def _layer_names(cls, v: List[str]) -> List[str]:
        names = [n.strip() for n in v]
        if any(not n for n in names):
            raise ValueError(_("layer names must not be empty"))
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _one_precision_each(self) -> "QconfigSettings":
        both = [n for n in self.int16_layers if n in self.float_layers]
        if both:
            raise ValueError(_("%s in both float_layers and int16_layers: keep each layer in one") % ", ".join(both))
        return self


class DebugSettings(_Section):
    after_run: bool = Field(
        False,
        description=N_("Run the per-layer debug at the end of every run in which int_infer ran (its report opens with "
        "d on the results screen; qat-tui debug RUN_DIR runs it any time)."),
    )
    images: int = Field(
        32, ge=1, le=10000,
        description=N_("Test images the per-layer comparison of `qat-tui debug` runs on (float vs quantized model)."),
    )
    sensitivity_layers: int = Field(
        8, ge=0, le=200,
        description=N_("The worst layers (by their own, same-input error) whose top-1 gain in float is measured."),
    )
    eval_images: int = Field(
        500, ge=10,
        description=N_("Test images of the sensitivity and per-class accuracy measures (a seeded subset)."),
    )


class UiSettings(_Section):
    """The wizard's own preferences: no stage reads them (core.stage_table names no ``[ui]`` key), so
    changing them reruns nothing."""

    lang: Literal["auto", "en", "zh"] = Field(
        "auto", json_schema_extra=ADDED,
        description=N_("Language of the wizard and the command line: auto (from the locale: LANGUAGE, LC_ALL, LANG; "
        "zh* gives Chinese), en or zh. --lang overrides it; F2 switches while the wizard runs."),
    )
    keymap: Dict[str, str] = Field(
        default_factory=dict, json_schema_extra=ADDED,
        description=N_("The wizard's keys: {binding id = \"keys\"}, keys comma-separated, e.g. "
        "{\"wizard.next\" = \"f5,ctrl+n\"} (README, Keys, lists the ids); replaces the keys of that binding."),
    )

    @field_validator("keymap")
    @classmethod
    def _keymap_form(cls, v: Dict[str, Any]) -> Dict[str, str]:
        out = {}
        for binding_id, keys in v.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+", str(binding_id)):
                raise ValueError(_("%r is not a binding id (such as 'wizard.next')") % binding_id)
            parts = [k.strip() for k in str(keys).split(",")] if isinstance(keys, str) else []
            if not parts or not all(parts) or any(" " in k for k in parts):
                raise ValueError(_("%s = %r: give the keys as a string of comma-separated key names, e.g. \"f5,ctrl+n\"")
                                 % (binding_id, keys))
            out[str(binding_id)] = ",".join(parts)
        return out


class IntInferStageSettings(_Section):
    enabled: bool = Field(True, description=N_("Convert to the integer model and evaluate it on the test set."))


class CompileStageSettings(_Section):
    enabled: bool = Field(True, description=N_("Build the deployable artifact and its check, perf and graph reports."))
    package: bool = Field(
        True, description=N_("Build the packaged deployable model where the backend makes one (an AOTInductor "
        "model.pt2: a C++ build of about a minute); off = reports only.")
    )
    perf_batch_sizes: List[int] = Field(
        [1, 64], min_length=1, description=N_("Batch sizes at which the perf report measures latency.")
    )
    perf_iterations: int = Field(20, ge=1, description=N_("Timed runs per measurement (after warm-up runs)."))
    graph_format: Literal["auto", "svg", "text"] = Field(
        "auto", description=N_("Picture of the quantized graph: svg needs graphviz 'dot'; auto falls back to text.")
    )

    @field_validator("perf_batch_sizes")
    @classmethod
    def _positive_batches(cls, v: List[int]) -> List[int]:
        if any(b < 1 for b in v):
            raise ValueError(_("every batch size must be >= 1"))
        return v


class Settings(_Section):
    """All settings of one run; one section per stage plus run/data/model/qconfig."""

    run: RunSettings = Field(default_factory=RunSettings, description=N_("Run directory, backend, device, seed."))
    data: DataSettings = Field(default_factory=DataSettings, description=N_("Data set location and loading."))
    model: ModelSettings = Field(default_factory=ModelSettings, description=N_("The float model."))
    float: FloatStageSettings = Field(default_factory=FloatStageSettings, description=N_("Stage 1: float training."))
    calib: CalibStageSettings = Field(default_factory=CalibStageSettings, description=N_("Stage 2: calibration."))
    qat: QatStageSettings = Field(default_factory=QatStageSettings, description=N_("Stage 3: quantization-aware training."))
    qconfig: QconfigSettings = Field(default_factory=QconfigSettings, description=N_("Quantization choices."))
    int_infer: IntInferStageSettings = Field(
        default_factory=IntInferStageSettings, description=N_("Stage 4: integer model inference.")
    )
    compile: CompileStageSettings = Field(
        default_factory=CompileStageSettings, description=N_("Stage 5: deployable artifact and reports.")
    )
    debug: DebugSettings = Field(
        default_factory=DebugSettings, description=N_("Per-layer debug (qat-tui debug RUN_DIR): why int8 lost accuracy.")
    )
    ui: UiSettings = Field(
        default_factory=UiSettings, description=N_("The wizard's keys; no stage reads this section (changing it reruns nothing)."),
    )

    model_config = ConfigDict(extra="allow", validate_assignment=True)  # the backends' sections

    @model_validator(mode="before")
    @classmethod
    def _backend_sections(cls, data: Any) -> Any:
        """Every registered backend's section, validated by its own model (defaults where absent);
        any other unknown table is refused."""
        data = dict(data or {})
        sections = backend_sections()
        for key in list(data):
            if key not in cls.model_fields and key not in sections:
                raise ValueError(_("unknown key %r in the top level; allowed keys: %s") % (key, ", ".join(sorted(all_sections()))))
        for name, model in sections.items():
            value = data.get(name, {})
            data[name] = value if isinstance(value, model) else model.model_validate(value)
        return data

    def enabled_stages(self) -> List[str]:
        """The stages this run executes, in pipeline order."""
        return [s for s in STAGES if getattr(self, s).enabled]

    def run_path(self) -> str:
        return os.path.abspath(os.path.expanduser(self.run.run_dir))


# ------------------------------------------------------------------------------- backends' sections

_BACKEND_SECTIONS: Optional[Dict[str, type]] = None


def backend_sections() -> Dict[str, type]:
    """``{section name: pydantic model}`` of the registered backends that declare options."""
    global _BACKEND_SECTIONS
    if _BACKEND_SECTIONS is None:
        from .backends import specs

        _BACKEND_SECTIONS = {name: spec.options for name, spec in specs().items() if spec.options is not None}
    return _BACKEND_SECTIONS


def forget_backend_sections() -> None:
    """Called by :func:`core.backends.refresh` when the registered backends change."""
    global _BACKEND_SECTIONS
    _BACKEND_SECTIONS = None


def all_sections() -> List[str]:
    """The TOML tables a settings file may hold: the core ones, then each backend's."""
    return list(Settings.model_fields) + [n for n in backend_sections() if n not in Settings.model_fields]


def section_model(section: str) -> type:
    """The pydantic model of ``[section]`` (core or a backend's).

    Raises:
        KeyError: no such section.
    """
    if section in Settings.model_fields:
        return Settings.model_fields[section].annotation  # type: ignore[return-value]
    return backend_sections()[section]


def section_help(section: str) -> str:
    """The one-line description of a section (the TOML comment above it), in the current language."""
    if section in Settings.model_fields:
        description = Settings.model_fields[section].description
        return _(description) if description else ""
    from .backends import get_spec

    return _(get_spec(section).summary)


def default_backend() -> str:
    """The ``[run] backend`` of new settings: the registered backend whose spec says ``default``
    (the embedded one, that runs anywhere), else the first registered."""
    from .backends import specs

    found = specs()
    for name, spec in found.items():
        if getattr(spec, "default", False):
            return name
    return next(iter(found), "")


# --------------------------------------------------------------------------------------------- presets

PRESETS: Dict[str, Dict[str, Any]] = {
    "sample": {},
    "quick": {
        "data": {"train_images": 10000, "batch_size": 64, "augment": "none"},
        "float": {"epochs": 1, "lr": 3e-3},
        "calib": {"num_images": 2000},
        "qat": {"epochs": 1},
    },
}
"""Named starting points. ``sample``: Horizon's MobileNetV2 sample defaults (float 20 epochs, QAT 2,
calibration on all training images). ``quick``: a few-minute trial on CPU - float 1 epoch and QAT 1 epoch
on 10,000 training images, calibration on 2,000, evaluation on the full 10,000 test images; batch 64 and
no augmentation so that one short epoch still learns (measured: about 27% top-1 float, int8 within one
point of it)."""

PRESET_HELP = {
    "sample": N_("Horizon's sample: float 20 epochs, QAT 2 epochs, all 50,000 images (hours on CPU)."),
    "quick": N_("Minutes on CPU: float 1 + QAT 1 epoch on 10,000 images, calib on 2,000, full test set."),
}


def preset_help(name: str) -> str:
    """The one-line help of preset ``name`` in the current language ("" for an unknown name)."""
    return _(PRESET_HELP[name]) if name in PRESET_HELP else ""


def _merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def preset(name: str, **overrides: Dict[str, Any]) -> Settings:
    """Settings of a named preset, with optional per-section overrides.

    Raises:
        SettingsError: unknown preset name or an invalid override.
    """
    if name not in PRESETS:
        raise SettingsError(
            _("unknown preset %r") % name, hint=_("choose one of: %s") % ", ".join(sorted(PRESETS))
        )
    return validate(_merge(PRESETS[name], dict(overrides)), source=_("preset %r") % name)


# ----------------------------------------------------------------------------------------- validation

def _section_model(loc: tuple) -> Optional[type]:
    if not loc:
        return Settings
    try:
        model: Any = section_model(str(loc[0]))
    except KeyError:
        return None
    for part in loc[1:]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return None
    return model


def _describe_error(err: Dict[str, Any]) -> str:
    loc = tuple(err.get("loc", ()))
    key = ".".join(str(p) for p in loc) or _("(top level)")
    etype = err.get("type", "")
    if etype == "extra_forbidden":
        parent = _section_model(loc[:-1])
        allowed = sorted(parent.model_fields) if parent is not None else []
        where = "[%s]" % ".".join(str(p) for p in loc[:-1]) if loc[:-1] else _("the top level")
        return _("unknown key %r in %s; allowed keys: %s") % (str(loc[-1]), where, ", ".join(allowed))
    value = err.get("input")
    msg = _pydantic_msg(err)
    return "%s = %r: %s" % (key, value, msg[0].lower() + msg[1:] if msg else msg)


_PYDANTIC_MSGS = {
    "greater_than": N_("input should be greater than {gt}"),
    "greater_than_equal": N_("input should be greater than or equal to {ge}"),
    "less_than": N_("input should be less than {lt}"),
    "less_than_equal": N_("input should be less than or equal to {le}"),
    "int_parsing": N_("input should be a valid integer"),
    "int_type": N_("input should be a valid integer"),
    "int_from_float": N_("input should be a valid integer, got a number with a fractional part"),
    "float_parsing": N_("input should be a valid number"),
    "float_type": N_("input should be a valid number"),
    "bool_parsing": N_("input should be a valid boolean"),
    "bool_type": N_("input should be a valid boolean"),
    "string_type": N_("input should be a valid string"),
    "list_type": N_("input should be a valid list"),
    "dict_type": N_("input should be a valid dictionary"),
    "literal_error": N_("input should be {expected}"),
    "too_short": N_("list should have at least {min_length} items"),
    "too_long": N_("list should have at most {max_length} items"),
}
"""pydantic's messages of the errors a settings value usually makes, for languages other than English
(pydantic writes English; the English text is pydantic's own)."""


def _pydantic_msg(err: Dict[str, Any]) -> str:
    """pydantic's message of ``err``: in English as pydantic wrote it; in another language our own
    validators' message (``ValueError``, already translated) or the translated message of its type."""
    msg = err.get("msg") or _("invalid value")
    if get_language() == "en":
        return msg
    ctx = err.get("ctx") or {}
    if err.get("type") == "value_error" and ctx.get("error") is not None:
        return str(ctx["error"])
    template = _PYDANTIC_MSGS.get(str(err.get("type", "")))
    if template is None:
        return msg
    try:
        return _(template).format(**{k: v for k, v in ctx.items()})
    except (KeyError, IndexError, ValueError):
        return msg


def _backend_offers(settings: Settings) -> List[str]:
    """Core keys whose allowed values are the chosen backend's (its spec's ``choices`` for them, e.g.
    ``[qconfig] calib_observer``): one message per value it does not offer."""
    from .backends import get_spec

    spec = get_spec(settings.run.backend)
    values = settings.model_dump()
    out = []
    for (section, key), offered in spec.choices(values, None).items():
        if section not in Settings.model_fields or not offered or "default" in offered:
            continue
        value = values[section][key]
        if value not in offered:
            out.append(_("%s.%s = %r: the %s backend offers %s") % (section, key, value, spec.name, ", ".join(offered)))
    return out


def validate(data: Dict[str, Any], source: Optional[str] = None, backend_offers: bool = True) -> Settings:
    """Build :class:`Settings` from a plain dict (e.g. parsed TOML).

    ``backend_offers=False`` skips the checks across sections (a value the chosen backend does not
    offer), for validating one field on its own.

    Raises:
        SettingsError: one message listing every invalid key/value with what is allowed.
    """
    source = _("settings") if source is None else source
    data = dict(data or {})
    lines: List[str] = []
    sections = backend_sections()
    for key in list(data):
        if key not in Settings.model_fields and key not in sections:
            lines.append(_("unknown key %r in the top level; allowed keys: %s") % (key, ", ".join(sorted(all_sections()))))
            data.pop(key)
    for name, model in sections.items():  # each backend's section by its own model: errors keep the section
        if name in data and not isinstance(data[name], model):
            try:
                data[name] = model.model_validate(data[name])
            except ValidationError as e:
                lines += [_describe_error(dict(err, loc=(name,) + tuple(err.get("loc", ())))) for err in e.errors()]
                data.pop(name)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        lines += [_describe_error(err) for err in e.errors()]
    if not lines and backend_offers:
        lines = _backend_offers(settings)
    if not lines:
        return settings
    raise SettingsError(
        "%s: %s" % (source, "; ".join(lines)),
        hint=_("fix the value(s) named above (see the comments in a settings file written by qat-tui) and try again"),
    )


# ---------------------------------------------------------------------------------------------- TOML

def parse_assignment(text: str) -> "tuple":
    """``"section.key=value"`` (a command line's ``--set``) as ``(section, key, value)``: the value as a
    TOML value (``64``, ``0.5``, ``true``, ``[1, 8]``, ``{width = 16}``, ``"text"``), else the text itself.

    Raises:
        SettingsError: no ``=`` or no ``section.`` before the key.
    """
    import tomlkit

    name, sep, raw = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise SettingsError(_("--set %r is not SECTION.KEY=VALUE") % text, hint=_("e.g. --set data.image_size=64"))
    try:
        value: Any = tomlkit.parse("v = " + raw.strip())["v"]
        value = value.unwrap() if hasattr(value, "unwrap") else value
    except Exception:
        value = raw.strip()
    return section, key, value


def _comment_lines(text: str, width: int = 98) -> List[str]:
    import textwrap

    return textwrap.wrap(text, width=width) or [""]


def dumps(settings: Settings, width: int = 98) -> str:
    """Render settings as TOML with each field's help as a comment above it, wrapped at ``width``
    characters after the ``# `` (the wizard's review shows them at its own width).

    Unset optional values (None) are written as commented-out keys, since TOML has no null.
    """
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment(_("qat-tui settings. Run headless: qat-tui run --config <this file>")))
    doc.add(tomlkit.comment(_("Relative paths are relative to the folder qat-tui is started from.")))
    for section_name in all_sections():
        section = getattr(settings, section_name)
        table = tomlkit.table()
        if section_help(section_name):
            table.add(tomlkit.comment(section_help(section_name)))
        for key, field in type(section).model_fields.items():
            value = getattr(section, key)
            for line in _comment_lines(_(field.description) if field.description else "", width):
                table.add(tomlkit.comment(line))
            if value is None:
                table.add(tomlkit.comment(_("%s = ...  (unset)") % key))
            elif section_name == "model" and settings.model.builder and key in ("arch", "width_mult") \
                    and value == field.default:
                table.add(tomlkit.comment(_("%s = %s  (not used: builder is set)") % (key, tomlkit.item(value).as_string())))
            elif isinstance(value, dict):  # an inline table on the key's line, not a [section.key] table
                inline = tomlkit.inline_table()
                inline.update(value)
                table.add(key, inline)
            else:
                table.add(key, value)
        doc.add(tomlkit.nl())
        doc.add(section_name, table)
    return tomlkit.dumps(doc)


def loads(text: str, source: Optional[str] = None) -> Settings:
    """Parse TOML text into validated settings.

    Raises:
        SettingsError: invalid TOML syntax (with line/column), no settings at all (an empty file would
            silently run the sample's hours-long defaults), or invalid settings.
    """
    import tomlkit
    from tomlkit.exceptions import ParseError

    source = _("settings") if source is None else source
    try:
        data = tomlkit.parse(text).unwrap()
    except ParseError as e:
        raise SettingsError(
            _("%s is not valid TOML: %s") % (source, e), hint=_("fix the syntax at the line and column given")
        ) from None
    if not data:
        raise SettingsError(
            _("%s holds no settings (it is empty or only comments): every value would fall back to the sample's "
              "defaults - float 20 epochs on all 50,000 training images, hours on a CPU") % source,
            hint=_("write a complete file with qat-tui preset quick -o FILE (minutes on a CPU) or qat-tui preset "
                   "sample -o FILE, or the wizard's review screen"),
        )
    return validate(data, source=source)


def load(path: str) -> Settings:
    """Read a settings TOML file.

    Raises:
        SettingsError: the file is missing, unreadable, not TOML, or holds invalid settings.
    """
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise SettingsError(
            _("settings file %s does not exist") % path,
            hint=_("write one with the wizard (its review screen) or start from 'qat-tui preset quick'"),
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(_("cannot read settings file %s: %s") % (path, e)) from None
    return loads(text, source=path)


def with_absolute_paths(settings: Settings) -> Settings:
    """``settings`` with its relative file paths made absolute against the current folder:
    ``[run] run_dir``, ``[data] root``, the ``.py`` file of ``[model] builder`` and a ``[model] pretrained`` file (not
    torchvision's weight names, not ``package.module:function``). The pipeline runs with these, so the
    ``settings.toml`` it writes into the run folder works from any folder (``qat-tui debug``, ``attach``,
    ``resume``, the exported script), and a run started from another folder keeps its fingerprints.

    Returns:
        ``settings`` itself when nothing is relative, else a validated copy.
    """
    from .model_build import is_weights_name

    def absolute(path: str) -> str:
        path = os.path.expanduser(path)
        return path if os.path.isabs(path) else os.path.abspath(path)

    changes: Dict[str, Dict[str, Any]] = {}
    if settings.run.run_dir and absolute(settings.run.run_dir) != settings.run.run_dir:
        changes["run"] = {"run_dir": absolute(settings.run.run_dir)}
    if settings.data.root and absolute(settings.data.root) != settings.data.root:
        changes["data"] = {"root": absolute(settings.data.root)}
    m = settings.model
    model: Dict[str, Any] = {}
    if m.builder:
        target, _sep, fn = m.builder.rpartition(":")
        if target.endswith(".py") and absolute(target) != target:
            model["builder"] = "%s:%s" % (absolute(target), fn)
    if m.pretrained and not is_weights_name(m.pretrained) and absolute(m.pretrained) != m.pretrained:
        model["pretrained"] = absolute(m.pretrained)
    if model:
        changes["model"] = model
    if not changes:
        return settings
    return settings.model_copy(update={k: getattr(settings, k).model_copy(update=v) for k, v in changes.items()})


def save(settings: Settings, path: str) -> str:
    """Write settings as commented TOML, atomically (temp file + rename). Returns the path."""
    from .io import atomic_write_text

    atomic_write_text(path, dumps(settings))
    return path


def field_help(section: str, key: str) -> str:
    """The one-line help of ``[section] key``, as shown by the wizard, in the current language."""
    description = section_model(section).model_fields[key].description
    return _(description) if description else ""


def field_choices(section: str, key: str) -> Optional[List[str]]:
    """Allowed values of a Literal field, else None."""
    import typing

    ann = section_model(section).model_fields[key].annotation
    if typing.get_origin(ann) is Literal:
        return [str(a) for a in typing.get_args(ann)]
    return None


__all__ = [
    "with_absolute_paths",
    "parse_assignment",
    "STAGES",
    "SETTINGS_FILENAME",
    "Settings",
    "PRESETS",
    "PRESET_HELP",
    "preset_help",
    "preset",
    "validate",
    "dumps",
    "loads",
    "load",
    "save",
    "field_help",
    "field_choices",
    "Section",
    "section_model",
    "section_help",
    "all_sections",
    "backend_sections",
    "default_backend",
]
