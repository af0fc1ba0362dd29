"""The float model of a run: any classification model the installed torchvision builds (``[model]
arch``), or the user's own ``nn.Module`` (``[model] builder = "file.py:function"``), made QAT-ready by
wrapping: the backend's QuantStub runs on the input and its DeQuantStub on the output
(:func:`core.model_build.make_qat_ready`), so user code needs no change. The state_dict keys stay the
network's own (``features.*``, ``classifier.1.*`` for MobileNetV2) plus the stubs', so torchvision's
and Horizon's sample weights load directly.

The conv/linear that computes the output (where the high-precision output qconfig applies) is found by
tracing the call order of one forward pass (:func:`output_layer`), not by a module name.

Input: float32 ``(N, 3, image_size, image_size)``. Output: float32 logits ``(N, num_classes)``.
The building itself lives in :mod:`core.model_build` (self-contained: the exported scripts embed it).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .i18n import _
from . import model_build as MB
from .errors import CheckpointError, ModelError

DEFAULT_ARCH = MB.DEFAULT_ARCH


def _model_error(e: MB.ModelBuildError) -> ModelError:
    return ModelError(str(e), hint=e.hint)


@functools.lru_cache(maxsize=1)
def arch_choices() -> Dict[str, str]:
    """``{arch: one line of help}``: the classification models of the installed torchvision (its
    registry where it has one, 0.14+; the builder functions of ``torchvision.models`` on 0.11)."""
    return MB.builtin_archs()


def builder_kwargs(model: Any) -> Dict[str, Any]:
    """The builder's keyword arguments besides ``num_classes`` (see :func:`core.model_build.builder_kwargs`).

    Raises:
        ModelError: ``width_mult`` set for a model other than torchvision's mobilenet_v2.
    """
    try:
        return MB.builder_kwargs(model.arch, model.builder, model.kwargs, model.width_mult)
    except MB.ModelBuildError as e:
        raise _model_error(e) from None


def describe_source(model: Any) -> str:
    """``"torchvision resnet18"`` or ``"your builder models/net.py:build"``."""
    return _("your builder %s") % model.builder if model.builder else "torchvision %s" % model.arch


def build_float_model(
    num_classes: int = 10,
    width_mult: float = 1.0,
    stubs: Optional[Tuple[Any, Any]] = None,
    arch: str = DEFAULT_ARCH,
    builder: Optional[str] = None,
    kwargs: Optional[Dict[str, Any]] = None,
) -> Any:
    """Build the QAT-ready float model, freshly initialised, in training mode.

    Args:
        num_classes: classifier outputs.
        width_mult: MobileNetV2's channel multiplier (the sample uses 1.0).
        stubs: ``(quant_stub, dequant_stub)`` from the backend (Horizon needs its own ``QuantStub``);
            ``torch.ao.quantization`` stubs when None.
        arch, builder, kwargs: as ``[model]``.

    Raises:
        ModelError: see :func:`core.model_build.build_net` and :func:`core.model_build.make_qat_ready`.
    """
    from types import SimpleNamespace

    spec = SimpleNamespace(arch=arch, builder=builder, kwargs=kwargs or {}, width_mult=width_mult)
    return model_from_settings(spec, num_classes, stubs)


def model_from_settings(model: Any, num_classes: int, stubs: Optional[Tuple[Any, Any]] = None) -> Any:
    """The QAT-ready float model of the ``[model]`` settings (see :func:`build_float_model`)."""
    if stubs is None:
        try:
            from torch.ao.quantization import DeQuantStub, QuantStub
        except ImportError:  # torch 1.10 (Horizon's Python 3.8 dockers)
            from torch.quantization import DeQuantStub, QuantStub

        stubs = (QuantStub(), DeQuantStub())
    kwargs = builder_kwargs(model)
    try:
        net = MB.build_net(model.arch, model.builder, kwargs, num_classes)
        return MB.make_qat_ready(net, stubs[0], stubs[1])
    except MB.ModelBuildError as e:
        raise _model_error(e) from None


def check_model(model: Any, example: Any, num_classes: int, where: str) -> Tuple[int, ...]:
    """One forward pass; the output must be ``(N, num_classes)``. Returns its shape.

    Raises:
        ModelError: the forward pass fails or gives another shape/type (the message names ``where``).
    """
    try:
        return MB.check_output(model, example, num_classes, where)
    except MB.ModelBuildError as e:
        raise _model_error(e) from None


def output_layer(model: Any, example: Any) -> Optional[str]:
    """Name of the conv/linear computing the output (the last one run by a forward pass), or None."""
    return MB.output_layer(model, example)


@dataclass
class ModelSummary:
    """What the wizard's Model step and the float stage's log show of a model.

    Attributes:
        source: where the model comes from (``"torchvision resnet18"``).
        parameters: number of parameter elements.
        macs: multiply-accumulates of its conv and linear layers for one image at ``image_size``
            (FLOPs = 2 x MACs; other layers are not counted).
        output_shape: of a forward pass of 2 images, ``(2, num_classes)``.
        output_layer: the conv/linear computing the output (high-precision output applies there).
        image_size: the input side in pixels.
    """

    source: str
    parameters: int
    macs: int
    output_shape: Tuple[int, ...]
    output_layer: Optional[str]
    image_size: int

    def lines(self) -> List[str]:
        return [
            _("{source}: {params} parameters, {macs} MACs per {size}x{size} image ({flops} FLOPs)").format(
                source=self.source, params=_si(self.parameters), macs=_si(self.macs), size=self.image_size,
                flops=_si(2 * self.macs)),
            _("one forward pass: (2, 3, {size}, {size}) -> {shape}").format(size=self.image_size, shape=self.output_shape),
            _("QuantStub before the first layer, DeQuantStub after the output layer {layer}").format(
                layer=self.output_layer or _("(none found)")),
        ]


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return "%.2f%s" % (n / scale, unit)
    return "%d" % n


def count_macs(model: Any, example: Any) -> int:
    """Multiply-accumulates of the conv/linear layers for one image of ``example`` (N, C, H, W)
    (conv: output elements x in_channels/groups x kernel area; linear: output elements x in_features)."""
    import torch

    total = [0]

    def conv(m: Any, _i: Any, out: Any) -> None:
        k = 1
        for d in m.kernel_size:
            k *= d
        total[0] += out.numel() * (m.in_channels // m.groups) * k

    def linear(m: Any, _i: Any, out: Any) -> None:
        total[0] += out.numel() * m.in_features

    hooks = [(m, conv) for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d))]
    hooks += [(m, linear) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    MB.forward_with_hooks(model, example, hooks)
    return total[0] // max(1, int(example.shape[0]))


def summarize(model_settings: Any, num_classes: int, image_size: int, stubs: Optional[Tuple[Any, Any]] = None) -> ModelSummary:
    """Build the model and measure it on two random images (CPU; seconds for large models).

    Raises:
        ModelError: the model cannot be built or its output is not ``(N, num_classes)``.
    """
    import torch

    model = model_from_settings(model_settings, num_classes, stubs).eval()
    x = torch.rand(2, 3, image_size, image_size)
    source = describe_source(model_settings)
    shape = check_model(model, x, num_classes, source)
    return ModelSummary(source, count_parameters(model), count_macs(model, x[:1]), shape, output_layer(model, x), image_size)


# ------------------------------------------------------------------------------------- pretrained

def pretrained_path(model_settings: Any) -> str:
    """The file ``[model] pretrained`` names: a state_dict path, or torchvision's named weights
    (``DEFAULT``, ``IMAGENET1K_V1``, ...) in the local torch hub cache (never downloaded).

    Raises:
        ModelError: named weights with a builder, or not in the cache (says where to put the file).
    """
    value = str(model_settings.pretrained)
    if not MB.is_weights_name(value):
        return os.path.expanduser(value)
    if model_settings.builder:
        raise ModelError(_("[model] pretrained = %r names torchvision weights, but the model is your builder %s")
                         % (value, model_settings.builder), hint=_("give the path of a state_dict file for your model"))
    try:
        return MB.cached_weights(model_settings.arch, value)
    except MB.ModelBuildError as e:
        raise _model_error(e) from None


def load_pretrained(model: Any, path: str) -> List[str]:
    """Load a float ``state_dict`` (torchvision's, Horizon's sample's, or ours) into ``model``.

    Keys may carry a ``module.`` (DataParallel) prefix. Tensors whose shape differs (e.g. ImageNet's
    1000-class classifier) are skipped, said so, and stay freshly initialised.

    Returns:
        Messages describing what was loaded and what was skipped.

    Raises:
        CheckpointError: the file is missing/damaged, or none of its tensors fit the model.
    """
    from .io import load_checkpoint

    ckpt = load_checkpoint(path, made_by=None, setting="[model] pretrained")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in ckpt["state_dict"].items()}
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    wrong_shape = sorted(k for k in state if k in own and k not in fit)
    if not fit:
        raise CheckpointError(
            _("%s has no tensor that fits this %s model (another architecture, or other kwargs?)") % (path, type(model).__name__),
            hint=_("use a state_dict of the same architecture with the same kwargs (width_mult, ...)"),
        )
    model.load_state_dict(fit, strict=False)
    msgs = [_("loaded %d of %d tensors from %s") % (len(fit), len(own), path)]
    if wrong_shape:
        msgs.append(_("skipped (shape differs, e.g. another number of classes; kept fresh): %s") % ", ".join(wrong_shape))
    missing = sorted(k for k in own if k not in fit and k not in wrong_shape)
    if missing:
        msgs.append(_("not in the file, kept fresh: %s") % ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else ""))
    return msgs


def user_code_line(exc: BaseException) -> Optional[str]:
    """``"net.py, line 12: if x.sum() > 0:"``: the line of the model's own code where a trace or export
    failed, from the error text (torch.export's "from user code:" section) or, failing that, the last
    traceback frame outside torch, torchvision and qat-tui; None when there is none."""
    import re
    import traceback

    def ours(path: str) -> bool:
        p = os.path.abspath(path)
        return not any(part in p for part in (os.sep + "torch" + os.sep, os.sep + "torchvision" + os.sep,
                                              os.sep + "torchao" + os.sep, os.sep + "horizon_plugin_pytorch" + os.sep,
                                              os.path.dirname(os.path.abspath(__file__)) + os.sep, "<"))

    text = str(exc)
    found = [(f, int(n), c) for f, n, c in re.findall(r'File "([^"]+)", line (\d+), in \S+\n\s*(.*)', text) if ours(f)]
    if not found:
        found = [(f.filename, f.lineno or 0, f.line or "") for f in traceback.extract_tb(exc.__traceback__) if ours(f.filename)]
    if not found:
        return None
    f, n, code = found[-1]
    return "%s, line %d: %s" % (f, n, code.strip())


def capture_problem(exc: BaseException, tool: str) -> Tuple[str, str]:
    """``(message, hint)`` for a model that ``tool`` (torch.export, Horizon's prepare_qat_fx) cannot
    capture: the first line of its error, the line of the model's code, and the usual fix."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    where = user_code_line(exc)
    msg = _("%s could not capture the model: %s: %s%s") % (tool, type(exc).__name__, first[:300],
                                                             _(" (at %s)") % where if where else "")
    low = str(exc).lower()
    if "control flow" in low or "data-dependent" in low or "data dependent" in low or "guard" in low:
        hint = _("the model branches on tensor values in forward (if/while on a tensor): compute both branches and "
                 "pick with torch.where, or move the decision out of forward")
    elif "not supported" in low or "unsupported" in low:
        hint = _("that operation cannot be traced: replace it with standard torch ops in the model's forward")
    else:
        hint = _("the model's forward must be traceable (torch ops on tensors, no Python decisions on their values)")
    return msg, hint


def count_parameters(model: Any) -> int:
    """Number of parameter elements."""
    return int(sum(p.numel() for p in model.parameters()))


__all__ = ["DEFAULT_ARCH", "ModelSummary", "arch_choices", "build_float_model", "builder_kwargs", "check_model",
           "count_macs", "count_parameters", "describe_source", "load_pretrained", "model_from_settings",
           "output_layer", "pretrained_path", "summarize", "capture_problem", "user_code_line"]
