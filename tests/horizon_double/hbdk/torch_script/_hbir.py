"""TEST DOUBLE internals of ``hbdk.torch_script`` (Horizon Robotics' hbdk3): what the double writes as
"HBIR".

The real ``export_hbir`` builds Horizon's HBIR protobuf with ``hbdk.torch_script.parser.HBIRBuilder``
(read_file id 20265692608). The double instead walks the TorchScript graph of the traced module and
writes a JSON description - **the double's invented format** - that its CLI stand-ins
(``hbdk/_cli.py``) read: inputs (``arg0``, ``arg1``... as in the quick_start perf output, with NCHW
shapes), outputs, the layers (convolutions, linears, element-wise ops, pooling, quantize/dequantize)
with operation counts, shapes and data-flow edges, the input quantization scales when they are
constants, and what the double considers unsupported by the BPU:

* a convolution or linear whose weight is a float parameter (the model was not converted), or
* any fake-quantize op (a QAT/calibration model was passed instead of the converted one), or
* no quantize op at all, or
* a model converted with ``convert_fx(..., fast_mode=True)``.

A conv/linear whose weight comes from ``aten::dequantize`` of an int8 buffer is the double's
high-precision (32-bit) output op and is supported. Layer names follow the quick_start's perf layer
names: ``_<module path with dots as underscores>_hz_<op>`` (e.g. ``_features_0_0_hz_conv2d``).
"""
import json
from typing import Any, Dict, List, Optional

import torch

FORMAT = "hbdk3-test-double-hbir"

_CONV = ("quantized::conv1d", "quantized::conv2d", "quantized::conv3d", "quantized::conv2d_relu",
         "quantized::conv1d_relu", "quantized::conv3d_relu", "quantized::conv_transpose2d",
         "aten::_convolution", "aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::conv_transpose2d")
_LINEAR = ("quantized::linear", "quantized::linear_relu", "aten::linear")
_ELTWISE = {
    "quantized::add": "add", "quantized::add_relu": "add", "quantized::add_scalar": "add", "quantized::mul": "mul",
    "quantized::mul_relu": "mul", "quantized::mul_scalar": "mul", "quantized::cat": "cat", "aten::cat": "cat",
    "aten::add": "add", "aten::add_": "add", "aten::mul": "mul", "aten::hardtanh": "relu6", "aten::hardtanh_": "relu6",
    "aten::relu": "relu", "aten::relu_": "relu", "quantized::relu6": "relu6", "aten::sigmoid": "sigmoid",
    "aten::adaptive_avg_pool2d": "avgpool", "aten::avg_pool2d": "avgpool", "aten::max_pool2d": "maxpool",
    "quantized::max_pool2d": "maxpool", "aten::upsample_nearest2d": "resize", "aten::upsample_bilinear2d": "resize",
    "aten::quantize_per_tensor": "quantize", "aten::dequantize": "dequantize", "quantized::hardswish": "hardswish",
    "aten::hardswish": "hardswish", "aten::flatten": "reshape", "aten::reshape": "reshape", "aten::view": "reshape",
}
_FAKE_QUANT = ("aten::fake_quantize_per_tensor_affine", "aten::fake_quantize_per_channel_affine",
               "aten::fused_moving_avg_obs_fake_quant", "aten::_fake_quantize_per_tensor_affine_cachemask_tensor_qparams")


def _flatten(x: Any) -> List[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        out = []  # type: List[torch.Tensor]
        for i in x:
            out.extend(_flatten(i))
        return out
    if isinstance(x, dict):
        out = []
        for k in sorted(x.keys()):
            out.extend(_flatten(x[k]))
        return out
    return []


def _sizes(v: Any) -> Optional[List[int]]:
    try:
        s = v.type().sizes()
        return [int(i) for i in s] if s is not None else None
    except Exception:
        return None


def _numel(shape: Optional[List[int]]) -> int:
    n = 1
    for s in shape or []:
        n *= int(s)
    return n if shape else 0


def _scope(node: Any) -> str:
    try:
        s = node.scopeName()
    except Exception:
        return ""
    s = s.split("/")[-1]
    return s[len("__module."):] if s.startswith("__module.") else ("" if s == "__module" else s)


def _attr_path(value: Any) -> Optional[List[str]]:
    """Attribute names from the module root to ``value`` when it is a prim::GetAttr chain."""
    path = []  # type: List[str]
    node = value.node()
    while node.kind() == "prim::GetAttr":
        path.append(node.s("name"))
        node = next(node.inputs()).node()
    if node.kind() == "prim::Param":
        return list(reversed(path))
    return None


def _resolve(traced: Any, value: Any) -> Any:
    node = value.node()
    if node.kind() == "prim::Constant":
        try:
            return value.toIValue()
        except Exception:
            return None
    path = _attr_path(value)
    if path is None:
        return None
    obj = traced
    try:
        for name in path:
            obj = getattr(obj, name)
    except Exception:
        return None
    return obj


def _unpack_weight_shape(obj: Any, kind: str) -> Optional[List[int]]:
    """Weight shape of a quantized conv/linear packed-params object. The unpack op must match the
    object's class: a wrong one can crash torch 1.10 (segfault), so pick it by class name and op kind."""
    try:
        cls_name = obj._type().qualified_name()
    except Exception:
        cls_name = ""
    if "Linear" in cls_name or (not cls_name and "linear" in kind):
        fn = "linear_unpack"
    elif "Conv3d" in cls_name or (not cls_name and "conv3d" in kind):
        fn = "conv3d_unpack"
    elif "Conv1d" in cls_name or (not cls_name and "conv1d" in kind):
        fn = "conv1d_unpack"
    elif "transpose" in kind:
        fn = "conv_transpose2d_unpack"
    elif "Conv2d" in cls_name or "conv2d" in kind:
        fn = "conv2d_unpack"
    else:
        return None
    try:
        return list(getattr(torch.ops.quantized, fn)(obj)[0].shape)
    except Exception:
        return None


def describe(traced: Any, example_inputs: Any, march: str, name: str) -> Dict[str, Any]:
    """The double's HBIR description of a traced module (see the module docstring)."""
    tensors = _flatten(example_inputs)
    arg_names = ["arg%d" % i for i in range(len(tensors))]
    graph = traced.inlined_graph
    g_inputs = list(graph.inputs())[1:]
    src = {}  # type: Dict[Any, set]
    flat_i = 0
    for v in g_inputs:  # tensors map to arg names in order (tuples/lists of tensors are flattened)
        n_t = max(1, len(_flatten_type(v)))
        src[v] = set(arg_names[flat_i:flat_i + n_t]) if arg_names else set()
        flat_i += n_t
    layers = []  # type: List[Dict[str, Any]]
    unsupported = []  # type: List[str]
    used_names = {}  # type: Dict[str, int]
    input_scales = {}  # type: Dict[str, float]
    n_quantize = n_quantized_ops = 0
    for node in graph.nodes():
        kind = node.kind()
        ins = list(node.inputs())
        srcs = set()
        for v in ins:
            srcs |= src.get(v, set())
        if kind in _FAKE_QUANT:
            unsupported.append("%s at %s: a fake-quantize op (pass the model returned by convert_fx, not the "
                               "QAT/calibration model)" % (kind, _scope(node) or "<root>"))
        if kind.startswith("quantized::"):
            n_quantized_ops += 1
        op = None  # type: Optional[str]
        ops = 0
        weight_shape = None  # type: Optional[List[int]]
        float_weight = False
        out_shape = _sizes(node.outputsAt(0)) if node.outputsSize() else None
        if kind in _CONV or kind in _LINEAR:
            is_conv = kind in _CONV
            op = "conv2d" if is_conv else "linear"
            if kind.startswith("quantized::"):
                weight_shape = _unpack_weight_shape(_resolve(traced, ins[1]), kind)
            else:
                w = ins[1]
                weight_shape = _sizes(w)
                if w.node().kind() != "aten::dequantize":
                    float_weight = True
                    unsupported.append("%s at %s: float weights (the model is not quantized; pass the model "
                                       "returned by convert_fx)" % (kind, _scope(node) or "<root>"))
                else:
                    op = op + "_torch_native"  # the double's int8-weight float-output op
                    if weight_shape is None:
                        obj = _resolve(traced, w.node().inputsAt(0))
                        weight_shape = list(obj.shape) if isinstance(obj, torch.Tensor) else None
            if weight_shape:
                per_out = _numel(weight_shape[1:])
                ops = 2 * _numel(out_shape) * per_out if out_shape else 2 * _numel(weight_shape)
        elif kind in _ELTWISE:
            op = _ELTWISE[kind]
            ops = _numel(out_shape)
            if kind == "aten::quantize_per_tensor":
                n_quantize += 1
                for a in srcs:
                    if a in arg_names and len(srcs) == 1:
                        scale = _resolve(traced, ins[1])
                        if isinstance(scale, torch.Tensor) and scale.numel() == 1:
                            input_scales[a] = float(scale.reshape(-1)[0])
                        elif isinstance(scale, (int, float)):
                            input_scales[a] = float(scale)
        if op is None:
            for o in node.outputs():
                src[o] = set(srcs)
            continue
        scope = _scope(node)
        base = "_" + (scope.replace(".", "_") + "_" if scope else "") + "hz_" + op
        k = used_names.get(base, 0)
        used_names[base] = k + 1
        lname = base if k == 0 else "%s_%d" % (base, k)
        in_shape = None
        for v in ins:
            in_shape = _sizes(v)
            if in_shape:
                break
        elem = 4 if (op.endswith("_torch_native") or op == "dequantize") else 1
        layers.append({
            "name": lname, "kind": kind, "op": op, "scope": scope, "ops": int(ops),
            "in_shape": in_shape, "out_shape": out_shape, "weight_shape": weight_shape,
            "in_bytes": _numel(in_shape), "out_bytes": _numel(out_shape) * elem,
            "weight_bytes": _numel(weight_shape), "inputs": sorted(srcs), "float_weight": float_weight,
        })
        for o in node.outputs():
            src[o] = {lname}
    ret_names = []  # type: List[str]
    outputs = []  # type: List[Dict[str, Any]]
    for i, v in enumerate(graph.outputs()):
        for j, leaf in enumerate(_flatten_type(v) or [v]):
            nm = "_output_%d" % len(ret_names)
            ret_names.append(nm)
            outputs.append({"name": nm, "producers": sorted(src.get(v, set()))})
    if n_quantize == 0 and n_quantized_ops == 0:
        unsupported.append("the model has no quantize op: it is a float model (pass the model returned by convert_fx)")
    if hasattr(traced, "horizon_double_fast_mode"):
        unsupported.append("the model was converted with convert_fx(fast_mode=True), which cannot be compiled")
    return {
        "format": FORMAT,
        "test double": True,
        "march": march,
        "model_name": name,
        "torch_version": torch.__version__,
        "inputs": [{"name": a, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""),
                    "scale": input_scales.get(a)} for a, t in zip(arg_names, tensors)],
        "outputs": outputs,
        "layers": layers,
        "unsupported": unsupported,
    }


def _flatten_type(v: Any) -> List[Any]:
    """Leaf tensor types of a graph value (tuples/lists flattened)."""
    try:
        t = v.type()
    except Exception:
        return []
    out = []  # type: List[Any]

    def walk(tt: Any) -> None:
        kind = tt.kind() if hasattr(tt, "kind") else ""
        if kind == "TupleType":
            for e in tt.elements():
                walk(e)
        elif kind == "TensorType":
            out.append(tt)
        elif kind == "ListType":
            out.append(tt)
    walk(t)
    return out


def write(path: str, desc: Dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(desc, f, indent=1)
        f.write("\n")
