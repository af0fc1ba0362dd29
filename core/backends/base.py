"""The backend seam: the small protocol every quantization toolchain implements for the stages.

A stage never calls a toolchain directly; it asks the backend to

* give the model its quant stubs and input normalisation,
* ``prepare`` a *fresh copy of the float model* for calibration or QAT (never a calibrated model:
  Horizon's sample always prepares ``copy.deepcopy(float_model)``),
* switch a prepared model between the three fake-quant states (:class:`FakeQuantState`),
* move a calibration state into a freshly prepared QAT model,
* ``convert`` a prepared model to the integer model, and
* ``compile`` the integer model into the deployable artifact with its check/perf/graph reports.

Model states, named as torchao's pt2e docs name them: *float* (an ``nn.Module`` with stubs),
*prepared* (fake-quant modules inserted; what calib and qat train/evaluate), *converted* (the integer
model). Shapes: example inputs are float32 ``(N, 3, H, W)``.
"""
from __future__ import annotations

import contextlib
import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Tuple, Union
from ..i18n import _


class FakeQuantState(str, enum.Enum):
    """The three states of a prepared model, as Horizon's ``FakeQuantState``.

    * ``QAT``: model in train mode, fake quant on, observers updating.
    * ``CALIBRATION``: model in eval mode (BatchNorm uses running stats), observers on, fake quant off.
    * ``VALIDATION``: model in eval mode, fake quant on, observers frozen.
    """

    QAT = "qat"
    CALIBRATION = "calibration"
    VALIDATION = "validation"


@dataclass
class BackendInfo:
    """What :meth:`QuantBackend.detect` found: whether it can run here, why not, and versions."""

    name: str
    available: bool
    reason: str = ""
    versions: Dict[str, str] = field(default_factory=dict)
    description: str = ""
    extras: Dict[str, Any] = field(default_factory=dict)  # what the backend's spec needs for its choices


@dataclass
class Artifact:
    """A file a stage wrote: ``name`` is the file name shown to users, ``description`` what it is for."""

    name: str
    path: str
    description: str


@dataclass
class CheckItem:
    """One line of model-check advice about an op of the integer model."""

    op: str
    node: str
    module: str
    status: str  # "int8", "int8-in/float-out", "float", "no-op"
    reason: str
    suggestion: str

    def to_dict(self) -> Dict[str, str]:
        return dict(self.__dict__)


@dataclass
class CheckReport:
    """The model check: verdict, one-line summary, per-op advice, and the raw text as printed."""

    passed: bool
    summary: str
    items: List[CheckItem] = field(default_factory=list)
    text: str = ""


@dataclass
class CompileResult:
    """What ``compile`` produced: artifacts (in the order written), check report and perf figures."""

    artifacts: List[Artifact] = field(default_factory=list)
    check: Optional[CheckReport] = None
    perf: Dict[str, Any] = field(default_factory=dict)
    deployable: Optional[str] = None  # path of the file that runs without the training code
    metrics: Dict[str, Any] = field(default_factory=dict)  # headline figures for the results screen


@dataclass
class LayerComparison:
    """One quantized layer of a prepared model compared with the float model (:meth:`QuantBackend.compare_layers`).

    The three error figures compare the layer's output tensor ``y`` (fake-quantized) with the float
    model's ``x`` over all images: ``cosine`` and ``sqnr_db`` = 10·log10(Σx² / Σ(x−y)²) are computed per
    output channel (dim 1) and averaged over the channels where x is not all zero, so that a few large
    channels cannot hide the crushed rest (a whole-tensor figure is dominated by them); ``max_abs`` is
    max |x − y| over the tensor. SQNR as torch.ao.ns.fx.utils.compute_sqnr (there 20·log10 of the norm
    ratio, the same number), capped at 100 dB when y == x.

    Attributes:
        name: the layer (the ``[qconfig] float_layers`` name). ``op``: what computes it.
        accumulated: {"cosine", "sqnr_db", "max_abs"}: each model fed its own previous layer's output.
        same_input: the same figures with this layer fed the float model's input: its error alone.
        float_min, float_max: range of the float output; ``scale``/``zero_point``: its fake quant's (None
            for a float output).
        clipped: fraction of float outputs outside the fake quant's range (0..1).
        levels_used: quantization levels that hold 99.9 % of the outputs (of ``levels``).
        weight_outliers: max over output channels of max|w| / mean|w| of its weights (None: no weights).
    """

    name: str
    op: str
    accumulated: Dict[str, float]
    same_input: Dict[str, float]
    float_min: float = 0.0
    float_max: float = 0.0
    scale: Optional[float] = None
    zero_point: Optional[int] = None
    clipped: float = 0.0
    levels_used: Optional[int] = None
    levels: Optional[int] = None
    weight_outliers: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


Log = Callable[[str], None]
Phase = Callable[[str], ContextManager[None]]
"""``phase(name)``: a context manager around a long step without batch progress (the pipeline sends
PhaseStarted/PhaseFinished and heartbeats naming it; see :meth:`core.stages.StageContext.phase`)."""


@contextlib.contextmanager
def no_phase(_name: str) -> Iterator[None]:
    """The :data:`Phase` used when a caller passes none."""
    yield


def damaged_int_model(path: str, kind: str, error: BaseException) -> Exception:
    """The CheckpointError for an integer model file that does not load (``kind``: what it should be,
    e.g. "an exported program"), naming the file, the first line of the loader's error and the fix."""
    from ..errors import CheckpointError

    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return CheckpointError(
        _("%s is damaged or not %s (%s)") % (path, kind, first),
        hint=_("delete it and run the int_infer stage again"),
    )


class QuantBackend(ABC):
    """A quantization toolchain as the stages see it. Subclasses document the API calls they make."""

    name: str = ""

    @classmethod
    @abstractmethod
    def detect(cls) -> BackendInfo:
        """Whether this backend's packages import here, with versions or the reason they do not."""

    @abstractmethod
    def quant_stubs(self) -> Tuple[Any, Any]:
        """``(QuantStub(), DeQuantStub())`` instances for the float model's input and output."""

    def normalize_transform(self) -> Optional[Callable]:
        """The backend's own input transform after ``ToTensor`` (float32 in [0, 1], CHW), replacing
        ``[data] mean``/``std`` (e.g. Horizon's centred YUV for pyramid input); None (the default): the
        data's ``Normalize(mean, std)``."""
        return None

    @abstractmethod
    def calib_observers(self) -> Dict[str, str]:
        """Calibration observer choices this backend offers: ``{name: one-line help}``."""

    @abstractmethod
    def prepare(self, float_model: Any, example_inputs: Tuple[Any, ...], stage: str, qconfig: Any) -> Any:
        """Insert fake quant into a deep copy of ``float_model`` (never modified).

        Args:
            float_model: the float model (weights loaded), any device.
            example_inputs: ``(x,)`` with x float32 (N, 3, H, W) on CPU.
            stage: ``"calib"`` (calibration qconfig) or ``"qat"`` (QAT qconfig).
            qconfig: the ``[qconfig]`` settings.

        Returns:
            The prepared model on CPU.

        Raises:
            ModelError: the backend's tracer cannot capture the model (names the op or line).
            SettingsError: a ``[qconfig] float_layers`` name the model does not have.
        """

    def check_capture(self, float_model: Any, example_inputs: Tuple[Any, ...], qconfig: Any) -> None:
        """Trace ``float_model`` as :meth:`prepare` will, before the float stage trains it, so that a
        model the toolchain cannot capture stops in seconds and not after training (and after the
        float checkpoint was written over). The default prepares a throwaway copy for calibration.

        Raises:
            ModelError, SettingsError: as :meth:`prepare`.
        """
        self.prepare(float_model, example_inputs, "calib", qconfig)

    @abstractmethod
    def set_fake_quant_state(self, model: Any, state: FakeQuantState) -> None:
        """Put a prepared model in ``state`` (train/eval mode included, see :class:`FakeQuantState`)."""

    def freeze_bn_stats(self, model: Any) -> int:
        """Make the BatchNorm layers of a prepared model in QAT state normalise with their running
        statistics and stop updating them (``[qat] bn_stats = "frozen"``); fake quant and observers stay
        as :meth:`set_fake_quant_state` left them. Call it after ``set_fake_quant_state(QAT)``.

        Default, for models whose BatchNorm layers are modules (eager and FX prepare, fused conv-bn QAT
        modules included: they normalise by ``self.bn.training``): ``.eval()`` on every
        ``torch.nn.modules.batchnorm._BatchNorm``. Their ``freeze_bn`` flag is left alone: with it set,
        ``model.eval()`` no longer reaches the module's children, which the plugin's
        ``set_fake_quantize(VALIDATION)`` requires. The next ``model.train()`` undoes this. Returns the
        number of layers frozen.
        """
        from torch.nn.modules.batchnorm import _BatchNorm

        frozen = 0
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.eval()
                frozen += 1
        return frozen

    def qconfig_lines(self) -> List[str]:
        """What the last :meth:`prepare` applied, in plain words (which qconfig where, e.g. the output
        layer's 32-bit output); the stage log shows them. Default: nothing to add."""
        return []

    @abstractmethod
    def load_calib_state(self, qat_model: Any, calib_state: Dict[str, Any]) -> List[str]:
        """Load a calibrated model's ``state_dict`` into a freshly prepared QAT model.

        Returns messages about what was carried over. Raises on weights that do not fit.
        """

    @abstractmethod
    def convert(self, prepared: Any, example_inputs: Tuple[Any, ...]) -> Any:
        """The integer model of a prepared (calibrated or QAT-trained) model; ``prepared`` is unchanged."""

    @abstractmethod
    def save_int_model(self, int_model: Any, example_inputs: Tuple[Any, ...], out_dir: str) -> Union[Artifact, List[Artifact]]:
        """Serialise the integer model into ``out_dir`` (atomically) so that compile can load it.

        Returns the artifact (its ``name`` is the file name, e.g. ``int_model.pt2``), or a list of
        artifacts whose first is the integer model (e.g. hbdk4's ``int_model.bc`` and ``qat.bc``).
        """

    @abstractmethod
    def load_int_model(self, path: str) -> Any:
        """Load what :meth:`save_int_model` wrote; a callable model on CPU."""

    @abstractmethod
    def compile(
        self,
        int_model: Any,
        float_model: Any,
        example_inputs: Tuple[Any, ...],
        out_dir: str,
        options: Any,
        log: Log,
        phase: Optional[Phase] = None,
    ) -> CompileResult:
        """Write the deployable artifact and reports into ``out_dir``; CPU only.

        Args:
            int_model: the converted model (CPU).
            float_model: the float model (CPU, eval) as the perf baseline.
            example_inputs: ``(x,)`` float32 (N, 3, H, W), CPU.
            options: the ``[compile]`` settings.
            log: callback for progress lines.
            phase: wraps each long step (a compiler run, a perf measurement) so that the run shows
                what is running; :func:`no_phase` when None.
        """

    def validate_settings(self, settings: Any) -> None:
        """Refuse settings this backend cannot run, before any stage starts.

        Raises:
            BackendError: e.g. a calibration observer the backend does not offer.
        """
        from ..errors import BackendError

        observers = self.calib_observers()
        if settings.calib.enabled and settings.qconfig.calib_observer not in observers and "default" not in observers:
            raise BackendError(
                _("[qconfig] calib_observer = %r is not offered by the %s backend") % (settings.qconfig.calib_observer, self.name),
                hint=_("choose one of: %s") % ", ".join(observers),
            )
        if settings.qconfig.int16_layers and self.precision_fix() != "int16_layers":
            from ..errors import SettingsError

            raise SettingsError(_("[qconfig] int16_layers is not offered by the %s backend") % self.name,
                                hint=_("move the layers to [qconfig] float_layers (kept in float), or clear int16_layers"))

    def precision_fix(self) -> str:
        """The settings key that keeps a layer in higher precision here, the debug's one-key fix:
        ``"float_layers"`` (the default: fake quant removed) or ``"int16_layers"`` (16-bit output, where
        the toolchain deploys that and not float layers)."""
        return "float_layers"

    def load_deployable(self, path: str) -> Optional[Callable]:
        """A callable running the deployable artifact on CPU tensors, if it can run here (else None)."""
        return None

    # ---------------------------------------------------------------------------- per-layer debug
    def compare_layers(self, float_model: Any, prepared: Any, stage: str, qconfig: Any, batches: Any) -> List[LayerComparison]:
        """Compare each quantized layer of ``prepared`` (validation state) with ``float_model`` over
        ``batches`` (an iterable of float32 (N, 3, H, W) CPU tensors), in graph order.

        Args:
            stage: the stage ``prepared`` comes from (``"calib"``/``"qat"``): the float reference is
                prepared the same way, fake quant off.

        Raises:
            BackendError: this backend has no per-layer debug (the default).
        """
        from ..errors import BackendError

        raise BackendError(_("the %s backend has no per-layer debug yet") % self.name,
                           hint=_("run the debug on a run of the torch backend"))

    def layers_in_float(self, prepared: Any, names: List[str]) -> ContextManager[None]:
        """A context in which the named layers of ``prepared`` run in float (fake quant off on their
        output and weights), for the sensitivity measure; restored on exit.

        Raises:
            BackendError: no per-layer debug (the default); ValueError: a name is no layer.
        """
        from ..errors import BackendError

        raise BackendError(_("the %s backend has no per-layer debug yet") % self.name)

    def signature(self) -> Dict[str, Any]:
        """What checkpoints record about the backend, to refuse ones made by another backend."""
        return {"backend": self.name}
