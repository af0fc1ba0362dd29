"""TEST DOUBLE of ``horizon_plugin_pytorch.quantization.quantize_fx`` (Horizon Robotics' QAT plugin):
``prepare_qat_fx``, ``convert_fx`` and ``fuse_fx``, delegated to PyTorch's FX graph-mode quantization.

Signatures follow the X3 api_reference / user guide (HorizonRDK/rdk_x3_doc
``docs/toolchain_development/expert/api_reference.md``, and the hybrid section of
``docs/quant_toolchain_development/horizon_expert.md``):

* ``prepare_qat_fx(model, qconfig_dict=None, prepare_custom_config_dict=None, optimize_graph=False,
  hybrid=False, hybrid_dict=None)`` -> observed GraphModule. No ``example_inputs`` (torch 2.x's
  prepare gets an empty tuple). ``qconfig_dict``: ``{"": qc, "module_type": [(type, qc)],
  "module_name": [("foo.bar", qc)] or {"foo.bar": qc}}``; priority global < module_type <
  module_name < ``module.qconfig``; children inherit their parent's qconfig; ``None`` = not quantized.
  Like the real one it **does not copy the model**: the result shares submodules and parameters with
  the model passed in (the docs: "prepare_qat_fx 会对 float 模型做 inplace 修改"; the sample passes
  ``copy.deepcopy(float_model)``). The model's train/eval mode is kept.
* ``convert_fx(graph_module, inplace=False, convert_custom_config_dict=None, _remove_qconfig=True,
  fast_mode=False)`` -> the integer model (torch's quantized kernels, fbgemm/x86). ``fast_mode=True``
  gives a model hbdk refuses to compile (the docs: fast_mode models are not compilable).
  torch's quantized kernels are CPU-only, so the double's integer model always lives on the CPU: a
  model on a GPU is moved to the CPU before converting, ``.to(device)``/``.cuda()`` of the result are
  no-ops, and calling it with GPU tensors runs on the CPU and returns the outputs on the inputs'
  device (the sample's ``convert_fx(base_model).to(device)`` then evaluating on the GPU keeps working).

How the double maps Horizon's semantics (its own choices):

* Each Horizon qconfig becomes a torch QConfig whose fake quantizers are the double's
  ``FakeQuantize`` (observes only in training mode). Activations: symmetric int8 held as torch quint8
  (zero point 128); weights: qint8 per channel, symmetric.
* ``QuantStub`` stays a leaf of the FX graph; the fake quantizer torch puts after it is replaced by a
  fixed-scale one (observer off) when the stub has ``scale``, or by one from the stub's qconfig.
* A weight-only qconfig (``activation`` None, e.g. ``default_qat_8bit_weight_32bit_out_fake_quant_qconfig``)
  on an ``nn.Linear``/``nn.Conv2d`` keeps torch from quantizing that op and the double fake-quantizes
  its weight itself; ``convert_fx`` turns it into an int8-weight op with a **float output** (Horizon:
  int32 "high precision" output). Other module types with such a qconfig raise NotImplementedError.
* A 16-bit activation (``*_8bit_weight_16bit_act_*`` qconfigs, ``activation_qkwargs={"dtype": qint16}``)
  has no torch kernel: a prepared model holding one converts to itself with every observer off and
  fake quant on (the integer arithmetic emulated in float, as the plugin's own QAT numerics are), the
  call logged with ``"emulated_int16": True``; hbdk's tools trace it like any converted model.
* ``hybrid=True`` (BPU/CPU heterogeneous mode) is not emulated (NotImplementedError); ``optimize_graph``
  is accepted and ignored (it only matters on Bernoulli in the plugin). ``prepare_custom_config_dict``
  keys torch knows are passed on, others are ignored (listed in the call log).

Prepared and converted models are GraphModules whose class is named after the float model's class (as
in the quick_start perf output, where the traced model's name is ``FxQATReadyMobileNetV2``); their
``load_state_dict`` and ``state_dict`` are instrumented for the call log.

Call log entries (``horizon_plugin_pytorch._double.CALLS``):

* ``{"api": "prepare_qat_fx", "march", "model_id", "model_class", "model_fingerprint", "fresh",
  "previously_prepared", "shares_params_with_prepared", "has_fake_quant", "was_training",
  "qconfig_names", "optimize_graph", "hybrid", "ignored_custom_config_keys", "result_id"}`` -
  ``fresh`` is True when the model passed in was never handed to prepare before (the double tags it),
  shares no parameter storage with a model that was, and has no fake quantizers.
* ``{"api": "convert_fx", "march", "model_id", "model_role", "inplace", "fast_mode", "result_id"}``
* ``{"api": "load_state_dict", "march", "model_id", "model_role", "strict", "n_keys",
  "n_quant_keys", "source_model_id", "source_role", "source_modes", "missing_keys",
  "unexpected_keys"}`` - ``source_*`` come from metadata the double adds to ``state_dict()`` of its
  models (they survive ``torch.save``/``torch.load``); ``source_modes`` lists the
  ``set_fake_quantize`` modes the source model went through.
"""
import copy
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import _double
from . import _torch_compat as tc
from .fake_quantize import FakeQuantize, FakeQuantizeBase, default_weight_8bit_fake_quant
from .observer_v2 import FixedScaleObserver
from .stubs import QuantStub

__all__ = ["prepare_qat_fx", "convert_fx", "fuse_fx"]

ROLE_ATTR = "_horizon_double_role"
_TORCH_CUSTOM_KEYS = (
    "preserved_attributes",
    "non_traceable_module_name",
    "non_traceable_module_class",
    "standalone_module_name",
    "standalone_module_class",
    "float_to_observed_custom_module_class",
    "input_quantized_idxs",
    "output_quantized_idxs",
)
_MODES = {}  # type: Dict[int, List[str]]  model id -> set_fake_quantize modes seen


def note_mode(model: Any, mode: str) -> None:
    _MODES.setdefault(id(model), []).append(mode)


# ----------------------------------------------------------------------------------- qconfig mapping


def _is_weight_only(qc: Any) -> bool:
    return qc is not None and getattr(qc, "activation", None) is None and getattr(qc, "weight", None) is not None


_TRANSLATED = {}  # type: Dict[int, Tuple[Any, Any]]


def _to_torch(qc: Any) -> Any:
    """Torch QConfig for a Horizon qconfig (None for None and for weight-only qconfigs)."""
    if qc is None or _is_weight_only(qc) or getattr(qc, "activation", None) is None:
        return None
    hit = _TRANSLATED.get(id(qc))
    if hit is not None and hit[0] is qc:
        return hit[1]
    weight = qc.weight if qc.weight is not None else default_weight_8bit_fake_quant
    tq = tc.TorchQConfig(activation=qc.activation, weight=weight)
    _TRANSLATED[id(qc)] = (qc, tq)
    return tq


def _qc_name(qc: Any) -> Optional[str]:
    if qc is None:
        return None
    from . import qconfig as _qmod

    for name, value in sorted(vars(_qmod._MODULE).items()):
        if name.startswith("default_") and name.endswith("qconfig") and value is qc:
            return name
    return "weight_only_qconfig" if _is_weight_only(qc) else "custom_qconfig"


def _normalize_qconfig_dict(qconfig_dict: Optional[Dict[str, Any]]) -> Tuple[Any, List[Tuple[Any, Any]], List[Tuple[str, Any]]]:
    d = dict(qconfig_dict or {})
    unknown = set(d) - {"", "module_type", "module_name", "object_type"}
    if unknown:
        raise ValueError(
            "test double: unsupported qconfig_dict keys %s (Horizon documents \"\", \"module_type\" and "
            "\"module_name\")" % sorted(unknown)
        )

    def pairs(v: Any) -> List[Tuple[Any, Any]]:
        if v is None:
            return []
        if isinstance(v, dict):
            return list(v.items())
        return [tuple(p) for p in v]

    return d.get(""), pairs(d.get("module_type")) + pairs(d.get("object_type")), pairs(d.get("module_name"))


def _effective_qconfigs(model: nn.Module, glob: Any, types: List[Tuple[Any, Any]], names: List[Tuple[str, Any]],
                        attrs: Dict[str, Any]) -> Dict[str, Any]:
    """Horizon's qconfig of every module: parent's < module_type < module_name < module.qconfig."""
    by_name = dict(names)
    eff = {}  # type: Dict[str, Any]

    def visit(mod: nn.Module, prefix: str, parent_qc: Any) -> None:
        qc = parent_qc
        for t, q in types:
            if type(mod) is t:
                qc = q
        if prefix in by_name:
            qc = by_name[prefix]
        if prefix in attrs:
            qc = attrs[prefix]
        eff[prefix] = qc
        for cname, child in mod.named_children():
            visit(child, prefix + "." + cname if prefix else cname, qc)

    visit(model, "", glob)
    return eff


# ----------------------------------------------------------------------------- weight-only modules


class _WeightFakeQuantLinear(nn.Linear):
    """nn.Linear with fake-quantized weight and float output (the 32-bit-output qconfig)."""

    @classmethod
    def from_float(cls, mod: nn.Linear, weight_fake_quant: nn.Module) -> "_WeightFakeQuantLinear":
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = mod.in_features, mod.out_features
        new.weight = mod.weight  # shared, as torch's QAT modules share the float parameters
        new.bias = mod.bias
        new.weight_fake_quant = weight_fake_quant.to(mod.weight.device)
        new.train(mod.training)
        return new

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.linear(input, self.weight_fake_quant(self.weight), self.bias)


class _WeightFakeQuantConv2d(nn.Conv2d):
    """nn.Conv2d with fake-quantized weight and float output (the 32-bit-output qconfig)."""

    @classmethod
    def from_float(cls, mod: nn.Conv2d, weight_fake_quant: nn.Module) -> "_WeightFakeQuantConv2d":
        if mod.padding_mode != "zeros":
            raise NotImplementedError("test double: 32-bit-output conv with padding_mode=%r" % mod.padding_mode)
        new = copy.copy(mod)
        new.__class__ = cls
        new._modules = dict(mod._modules)
        new._parameters = dict(mod._parameters)  # same Parameter objects
        new._buffers = dict(mod._buffers)
        new.weight_fake_quant = weight_fake_quant.to(mod.weight.device)
        return new

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.conv2d(input, self.weight_fake_quant(self.weight), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


def _quantized_weight(weight: torch.Tensor, fq: Any) -> torch.Tensor:
    with torch.no_grad(), tc.quiet_torch_quantization():
        w = weight.detach()
        obs = fq.activation_post_process
        if getattr(obs, "min_val", torch.tensor([])).numel() == 0 or not torch.isfinite(obs.min_val).all():
            obs(w)  # never observed: take the range from the weight itself
        scale, zp = fq.calculate_qparams()
        scale = scale.to(w.device).reshape(-1).float()
        zp = zp.to(w.device).reshape(-1).long()
        if scale.numel() != w.shape[0]:
            scale = scale.expand(w.shape[0]).contiguous()
            zp = zp.expand(w.shape[0]).contiguous()
        return torch.quantize_per_channel(w.float(), scale, zp, 0, torch.qint8)


class _Int8WeightFloatOutLinear(nn.Module):
    """Converted 32-bit-output Linear: int8 per-channel weight, float output."""

    def __init__(self, mod: _WeightFakeQuantLinear) -> None:
        super().__init__()
        self.in_features, self.out_features = mod.in_features, mod.out_features
        self.register_buffer("qweight", _quantized_weight(mod.weight, mod.weight_fake_quant))
        self.bias = None if mod.bias is None else nn.Parameter(mod.bias.detach().clone(), requires_grad=False)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.is_quantized:
            input = input.dequantize()
        return F.linear(input, self.qweight.dequantize(), self.bias)

    def extra_repr(self) -> str:
        return "in_features=%d, out_features=%d, int8 weight, float (int32-like) output [test double]" % (
            self.in_features, self.out_features)


class _Int8WeightFloatOutConv2d(nn.Module):
    """Converted 32-bit-output Conv2d: int8 per-channel weight, float output."""

    def __init__(self, mod: _WeightFakeQuantConv2d) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = mod.stride, mod.padding, mod.dilation, mod.groups
        self.register_buffer("qweight", _quantized_weight(mod.weight, mod.weight_fake_quant))
        self.bias = None if mod.bias is None else nn.Parameter(mod.bias.detach().clone(), requires_grad=False)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.is_quantized:
            input = input.dequantize()
        return F.conv2d(input, self.qweight.dequantize(), self.bias, self.stride, self.padding, self.dilation, self.groups)


# --------------------------------------------------------------------------------- class wrapping


def _set_submodule(root: nn.Module, target: str, new: nn.Module) -> None:
    parent_name, _, leaf = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, new)


def _to_device(x: Any, device: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(i, device) for i in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


def _first_device(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.device
    if isinstance(x, (list, tuple)):
        for i in x:
            d = _first_device(i)
            if d is not None:
                return d
    if isinstance(x, dict):
        return _first_device(list(x.values()))
    return None


def _converted_call(self, *args, **kwargs):
    """torch's quantized kernels are CPU-only: run on the CPU, give outputs back on the input's device
    (Horizon's integer model runs on the GPU too)."""
    dev = _first_device((args, kwargs))
    if dev is None or dev.type == "cpu":
        return nn.Module.__call__(self, *args, **kwargs)
    out = nn.Module.__call__(self, *_to_device(args, "cpu"), **_to_device(kwargs, "cpu"))
    return _to_device(out, dev)


def _converted_to(self, *args, **kwargs):
    """Device moves are ignored (the integer model stays on the CPU, see _converted_call)."""
    return self


_CPU_ONLY_METHODS = {"__call__": _converted_call, "to": _converted_to, "cuda": _converted_to}


def _wrap(gm: nn.Module, role: str, name: str) -> nn.Module:
    """Give ``gm`` a per-instance class named ``name`` whose load_state_dict/state_dict/deepcopy are
    instrumented; ``role`` is "prepared" or "converted"."""
    base = type(gm)

    def load_state_dict(self, state_dict, *args, **kwargs):
        strict = kwargs.get("strict", args[0] if args else True)
        meta = getattr(state_dict, "_metadata", None) or {}
        src = dict(meta.get("", {}) or {}).get("horizon_double", {}) if hasattr(meta, "get") else {}
        entry = _double.record(
            "load_state_dict", model_id=id(self), model_role=getattr(self, ROLE_ATTR, None), strict=bool(strict),
            n_keys=len(state_dict),
            n_quant_keys=sum(1 for k in state_dict if "activation_post_process" in k or "weight_fake_quant" in k),
            source_model_id=src.get("model_id"), source_role=src.get("role"), source_modes=list(src.get("modes", [])),
        )
        result = super(cls, self).load_state_dict(state_dict, *args, **kwargs)
        entry["missing_keys"] = list(getattr(result, "missing_keys", []))
        entry["unexpected_keys"] = list(getattr(result, "unexpected_keys", []))
        return result

    def state_dict(self, *args, **kwargs):
        sd = super(cls, self).state_dict(*args, **kwargs)
        meta = getattr(sd, "_metadata", None)
        if meta is not None and "" in meta and not args and "prefix" not in kwargs:
            root = dict(meta[""])
            root["horizon_double"] = {"role": getattr(self, ROLE_ATTR, None), "model_id": id(self),
                                      "modes": list(_MODES.get(id(self), []))}
            meta[""] = root
        return sd

    def __deepcopy__(self, memo):
        res = super(cls, self).__deepcopy__(memo)
        return _wrap(res, getattr(self, ROLE_ATTR, role), name)

    attrs = {
        "load_state_dict": load_state_dict,
        "state_dict": state_dict,
        "__deepcopy__": __deepcopy__,
        # torch 1.10's GraphModule.__call__ does super(type(self), self).__call__ - with a subclass that
        # recurses forever; call nn.Module's directly
        "__call__": nn.Module.__call__,
        "_horizon_double_wrapper": True,
        "__module__": __name__,
    }
    if role == "converted":
        attrs.update(_CPU_ONLY_METHODS)
    cls = type(name, (base,), attrs)
    gm.__class__ = cls
    object.__setattr__(gm, ROLE_ATTR, role)
    return gm


# ------------------------------------------------------------------------------------------ prepare


def prepare_qat_fx(
    model: nn.Module,
    qconfig_dict: Dict[str, Any] = None,
    prepare_custom_config_dict: Dict[str, Any] = None,
    optimize_graph: bool = False,
    hybrid: bool = False,
    hybrid_dict: Dict[str, List] = None,
):
    """Prepare a QAT (or calibration) model - see the module docstring."""
    params = list(model.parameters())
    previously = bool(getattr(model, _double.PREPARED_TAG, False))
    is_double_gm = getattr(model, ROLE_ATTR, None) is not None
    has_fq = any(isinstance(m, FakeQuantizeBase) for m in model.modules())
    shares = _double.shares_params_with_prepared(params)
    entry = _double.record(
        "prepare_qat_fx", model_id=id(model), model_class=type(model).__name__,
        model_fingerprint=_double.fingerprint(model),
        fresh=not (previously or is_double_gm or has_fq or shares),
        previously_prepared=previously or is_double_gm, shares_params_with_prepared=shares, has_fake_quant=has_fq,
        was_training=bool(model.training), optimize_graph=optimize_graph, hybrid=hybrid,
        devices=_double.module_devices(model),
    )
    if hybrid:
        raise NotImplementedError("test double: prepare_qat_fx(hybrid=True) (BPU/CPU heterogeneous mode) is not emulated")
    if is_double_gm or has_fq:
        raise NotImplementedError(
            "test double: prepare_qat_fx of an already prepared model is not emulated; pass a deep copy of the float model"
        )
    if _double._current_march() is None:
        import warnings

        warnings.warn("test double: prepare_qat_fx called before set_march (march is None); the real plugin "
                      "documents that the march must be set before prepare", UserWarning, stacklevel=2)

    glob, types, names = _normalize_qconfig_dict(qconfig_dict)
    # module.qconfig attributes: highest priority; hidden from torch (it would read them as torch qconfigs)
    attrs = {}  # type: Dict[str, Any]
    for mname, mod in model.named_modules():
        if "qconfig" in mod.__dict__:
            attrs[mname] = mod.__dict__.pop("qconfig")
            object.__setattr__(mod, "_horizon_qconfig", attrs[mname])
    if "" in attrs:  # model.qconfig on the root: the global qconfig with the highest priority
        glob = attrs.pop("")
    eff = _effective_qconfigs(model, glob, types, names, attrs)
    entry["qconfig_names"] = {
        "": _qc_name(glob),
        "module_type": [(getattr(t, "__name__", str(t)), _qc_name(q)) for t, q in types],
        "module_name": [(n, _qc_name(q)) for n, q in names],
        "module.qconfig": [(n, _qc_name(q)) for n, q in attrs.items()],
    }

    torch_dict = {"": _to_torch(glob)}  # type: Dict[str, Any]
    if types:
        torch_dict["object_type"] = [(t, _to_torch(q)) for t, q in types]
    mn = [(n, _to_torch(q)) for n, q in names] + [(n, _to_torch(q)) for n, q in attrs.items()]
    if mn:
        torch_dict["module_name"] = mn

    custom = dict(prepare_custom_config_dict or {})
    entry["ignored_custom_config_keys"] = sorted(k for k in custom if k not in _TORCH_CUSTOM_KEYS)
    torch_custom = {k: v for k, v in custom.items() if k in _TORCH_CUSTOM_KEYS}
    torch_custom["non_traceable_module_class"] = list(torch_custom.get("non_traceable_module_class", [])) + [QuantStub]

    try:
        object.__setattr__(model, _double.PREPARED_TAG, True)
    except Exception:  # pragma: no cover
        pass
    _double.remember_prepared_params(params)

    was_training = model.training
    model.train()  # torch 1.10's prepare_qat_fx asserts train mode; Horizon's accepts eval models
    with tc.quiet_torch_quantization():
        if tc.PREPARE_TAKES_EXAMPLE_INPUTS:
            gm = tc.quantize_fx.prepare_qat_fx(model, torch_dict, example_inputs=(), prepare_custom_config=torch_custom)
        else:
            gm = tc.quantize_fx.prepare_qat_fx(model, torch_dict, torch_custom)
    model.train(was_training)

    _replace_stub_fake_quants(gm)
    _replace_weight_only(gm, eff)
    gm.train(was_training)
    _wrap(gm, "prepared", type(model).__name__)
    entry["result_id"] = id(gm)
    return gm


def _replace_stub_fake_quants(gm: nn.Module) -> None:
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        stub = gm.get_submodule(node.target)
        if not isinstance(stub, QuantStub):
            continue
        hz_qc = getattr(stub, "_horizon_qconfig", None)
        for user in list(node.users):
            if user.op != "call_module":
                continue
            old = gm.get_submodule(user.target)
            if not isinstance(old, FakeQuantizeBase):
                continue
            if stub.scale is not None:
                new = FakeQuantize(observer=FixedScaleObserver, scale=stub.scale, zero_point=stub.zero_point or 0, dtype="qint8")
                new.disable_observer()
            elif hz_qc is not None and getattr(hz_qc, "activation", None) is not None:
                new = hz_qc.activation()
            else:
                continue
            dev = old.scale.device
            new.to(dev)
            new.train(old.training)
            _set_submodule(gm, user.target, new)


def _replace_weight_only(gm: nn.Module, eff: Dict[str, Any]) -> None:
    for mname, mod in list(gm.named_modules()):
        qc = eff.get(mname)
        if not _is_weight_only(qc) or not mname:
            continue
        if type(mod) is nn.Linear:
            _set_submodule(gm, mname, _WeightFakeQuantLinear.from_float(mod, qc.weight()))
        elif type(mod) is nn.Conv2d:
            _set_submodule(gm, mname, _WeightFakeQuantConv2d.from_float(mod, qc.weight()))
        elif any(True for _ in mod.parameters(recurse=False)):
            raise NotImplementedError(
                "test double: a weight-only (32-bit output) qconfig is emulated for nn.Linear and nn.Conv2d, "
                "not for %s (%s)" % (mname, type(mod).__name__)
            )


# ------------------------------------------------------------------------------------------ convert


class _FrozenFakeQuant(nn.Module):
    """A fake quantizer of a converted model with 16-bit activations (see the module docstring): the
    scale, zero point and range of the one it replaces, fixed; plain torch ops, so torch.jit.trace
    (hbdk's tools) sees through it."""

    def __init__(self, fq: Any) -> None:
        super().__init__()
        self.register_buffer("scale", fq.scale.detach().clone().float())
        self.register_buffer("zero_point", fq.zero_point.detach().clone().to(torch.int32))
        self.quant_min, self.quant_max = int(fq.quant_min), int(fq.quant_max)
        self.ch_axis = int(fq.ch_axis) if getattr(fq, "is_per_channel", False) else -1
        self.enabled = bool(fq.fake_quant_enabled[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self.ch_axis >= 0:
            return torch.fake_quantize_per_channel_affine(x, self.scale, self.zero_point, self.ch_axis,
                                                          self.quant_min, self.quant_max)
        return torch.fake_quantize_per_tensor_affine(x, float(self.scale.reshape(-1)[0]), int(self.zero_point.reshape(-1)[0]),
                                                     self.quant_min, self.quant_max)


def convert_fx(
    graph_module: nn.Module,
    inplace: bool = False,
    convert_custom_config_dict: Dict[str, Any] = None,
    _remove_qconfig: bool = True,
    fast_mode: bool = False,
):
    """Convert a prepared (calibrated or QAT) model to the integer model - see the module docstring."""
    role = getattr(graph_module, ROLE_ATTR, None)
    entry = _double.record(
        "convert_fx", model_id=id(graph_module), model_role=role, inplace=inplace, fast_mode=fast_mode,
        devices=_double.module_devices(graph_module),
    )
    if role != "prepared":
        raise TypeError("test double: convert_fx expects a model returned by prepare_qat_fx, got %s" % type(graph_module).__name__)
    sixteen = False
    for mname, m in graph_module.named_modules():
        if isinstance(m, FakeQuantize) and m._hz_info["hz_dtype"] != "qint8" and not m._hz_info["fixed"]:
            if m._hz_info["hz_dtype"] != "qint16":
                raise NotImplementedError(
                    "test double: %s is %s; only int8 and int16 activations can be converted"
                    % (mname or "<root>", m._hz_info["hz_dtype"])
                )
            sixteen = True
    name = type(graph_module).__name__
    gm = graph_module if inplace else copy.deepcopy(graph_module)
    if sixteen:  # no torch kernel for int16: the frozen fake-quant model stands in for the integer one
        base = type(gm)
        while base.__dict__.get("_horizon_double_wrapper", False):
            base = base.__mro__[1]
        gm.__class__ = base
        gm.cpu().eval()
        frozen: Dict[int, nn.Module] = {}  # a fake quantizer registered under two names stays one
        for parent in list(gm.modules()):
            for leaf, child in list(parent._modules.items()):
                if isinstance(child, FakeQuantizeBase):
                    parent._modules[leaf] = frozen.setdefault(id(child), _FrozenFakeQuant(child))
        entry["emulated_int16"] = True
        _wrap(gm, "converted", name)
        entry["result_id"] = id(gm)
        return gm
    # hand torch its own class (the wrapper's base), keep our weight-only modules out of its way
    base = type(gm)
    while base.__dict__.get("_horizon_double_wrapper", False):
        base = base.__mro__[1]
    gm.__class__ = base
    if any(d != "cpu" for d in _double.module_devices(gm)):
        gm.cpu()  # torch's quantized modules are built (and run) on the CPU
        entry["moved_to_cpu"] = True
    # the weight-only (32-bit output) modules become int8-weight float-output ops before torch converts
    # (torch's convert strips "activation_post_process" children from every module)
    for mname, mod in list(gm.named_modules()):
        if isinstance(mod, _WeightFakeQuantLinear):
            _set_submodule(gm, mname, _Int8WeightFloatOutLinear(mod))
        elif isinstance(mod, _WeightFakeQuantConv2d):
            _set_submodule(gm, mname, _Int8WeightFloatOutConv2d(mod))
    custom = {k: v for k, v in dict(convert_custom_config_dict or {}).items() if k == "preserved_attributes"}
    with tc.quiet_torch_quantization():
        if "is_reference" in tc.quantize_fx.convert_fx.__code__.co_varnames:
            out = tc.quantize_fx.convert_fx(gm, convert_custom_config_dict=custom or None, _remove_qconfig=_remove_qconfig)
        else:
            out = tc.quantize_fx.convert_fx(gm, convert_custom_config=custom or None, _remove_qconfig=_remove_qconfig)
    if fast_mode:
        out.register_buffer("horizon_double_fast_mode", torch.ones(1, dtype=torch.uint8))
    _wrap(out, "converted", name)
    entry["result_id"] = id(out)
    return out


def fuse_fx(model: nn.Module, fuse_custom_config_dict: Dict[str, Any] = None):
    """Return the model unchanged: the double lets torch fuse inside prepare_qat_fx."""
    return model
