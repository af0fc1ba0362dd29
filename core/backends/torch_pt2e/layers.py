"""The quantized layers of a prepared (pt2e) model, named as the user's model names them, and the
``[qconfig] float_layers`` fix that keeps some of them in float.

``prepare_qat_pt2e`` puts one fake-quant module (``activation_post_process_N``) on each quantized tensor:
the model input, every weight (the folded conv-bn weight in QAT), and the activation between two
quantized ops (X86InductorQuantizer quantizes at the consumer's input: the fake quant after
``conv -> bn -> relu`` is the next conv's input quantizer). A *layer* here is one activation fake quant
together with the op that produced its tensor: walking back from the fake quant's input over the
epilogue a conv/linear fuses with (batch_norm, its QAT rescaling ``div``, the residual ``add``,
activations), the nearest conv/linear names it by its module (``layer1.0.conv2``); a tensor produced by
another op is named by that op's module (``pool``) or, outside any module, by the graph node (``cat``).
The model input's fake quant is the layer ``input``.

Self-contained (no imports of qat-tui, no ``from __future__``): the exported script embeds this file
verbatim (the FILE marker of export_torch.py.txt) to apply the same ``float_layers``.
"""
import difflib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

INPUT_LAYER = "input"
LABEL = "_qat_tui_layers"
_WEIGHTED = {"conv1d", "conv2d", "conv3d", "linear"}
_EPILOGUE = {"batch_norm", "div", "add", "add_", "relu", "relu_", "hardtanh", "hardtanh_", "relu6", "hardswish",
             "hardswish_", "silu", "gelu", "clamp"}


def op_name(node: Any) -> str:
    """The aten op of a graph node without its overload (``conv2d.default`` -> ``conv2d``)."""
    target = getattr(node, "target", None)
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


def module_path(node: Any) -> str:
    """The module a graph node belongs to (``layer1.0.conv2``; the ``@k`` of a second call dropped,
    see module_calls.py), or "" outside any module."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return str(path).replace("L['self'].", "").replace("L__self___", "").split("@")[0]


@dataclass
class QuantLayer:
    """One quantized tensor of a prepared model and the op that made it.

    Attributes:
        name: the layer's name (module path, graph node, or ``input``), unique in the model.
        op: what produced the tensor, e.g. ``conv2d+batch_norm+relu``.
        act_fq: graph node names of the activation fake quant(s) on the tensor (usually one; none for
            a conv/linear with a float output, the high-precision output layer).
        weight_fq: graph node name of the producing conv/linear's weight fake quant, or None.
        producer: graph node name of the op the tensor comes from (after its epilogue).
        weighted: graph node name of the conv/linear, or None.
    """

    name: str
    op: str
    act_fq: List[str] = field(default_factory=list)
    weight_fq: Optional[str] = None
    producer: str = ""
    weighted: Optional[str] = None


def _fake_quant_types() -> tuple:  # noqa: D103
    from torchao.quantization.pt2e import FakeQuantizeBase

    return (FakeQuantizeBase,)


def is_fake_quant(gm: Any, node: Any) -> bool:
    if node.op != "call_module":
        return False
    return isinstance(getattr(gm, str(node.target), None), _fake_quant_types())


def input_dependent(gm: Any) -> set:
    """Names of the nodes whose value depends on the model input (the rest are weights and constants)."""
    dep = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder" or any(a.name in dep for a in node.all_input_nodes):
            dep.add(node.name)
    return dep


def quant_layers(gm: Any) -> List[QuantLayer]:
    """The layers of prepared model ``gm`` in graph order (see the module docstring)."""
    dep = input_dependent(gm)
    by_producer: Dict[str, QuantLayer] = {}
    order: List[QuantLayer] = []
    used_names: Dict[str, int] = {}
    for node in gm.graph.nodes:
        if not is_fake_quant(gm, node) or node.name not in dep:
            continue
        src = node.args[0]
        if src.name in by_producer:
            by_producer[src.name].act_fq.append(node.name)
            continue
        layer = _describe(gm, src, dep)
        layer.act_fq.append(node.name)
        n = used_names.get(layer.name, 0)
        used_names[layer.name] = n + 1
        if n:
            layer.name = "%s@%d" % (layer.name, n + 1)
        label = getattr(gm, LABEL, {}).get(node.name)
        if label:  # named when prepared: later graph rewrites (torchao's eval mode) keep the name
            layer.name = label
        by_producer[src.name] = layer
        order.append(layer)
    # a conv/linear whose output is not quantized (the high-precision output layer): its weights are
    covered = {layer.weighted for layer in order}
    index = {node.name: i for i, node in enumerate(gm.graph.nodes)}
    for node in gm.graph.nodes:
        if node.name in dep and op_name(node) in _WEIGHTED and node.name not in covered:
            weight = node.args[1] if len(node.args) > 1 and hasattr(node.args[1], "op") else None
            if weight is not None and is_fake_quant(gm, weight):
                order.append(QuantLayer(module_path(node) or node.name, op_name(node) + " (float output)",
                                        weight_fq=weight.name, producer=node.name, weighted=node.name))
    order.sort(key=lambda layer: index[layer.act_fq[0] if layer.act_fq else layer.producer])
    for layer in order:
        if not layer.act_fq and layer.weight_fq:
            layer.name = getattr(gm, LABEL, {}).get(layer.weight_fq) or layer.name
    return order


def nodes_by_name(gm: Any) -> Dict[str, Any]:
    return {n.name: n for n in gm.graph.nodes}


def label_layers(gm: Any) -> List[QuantLayer]:
    """Record each layer's name by its fake-quant nodes (``gm._qat_tui_layers``: node name -> layer),
    right after prepare: ``move_exported_model_to_eval`` rewrites dropout nodes without their module
    names, which would rename the layers after them; the record keeps the names in every state. (Not
    on the fake-quant modules: a shared qspec, e.g. of ``cat``, makes several nodes call one module.)"""
    layers = quant_layers(gm)
    labels = {}
    for layer in layers:
        for fq_name in layer.act_fq + ([layer.weight_fq] if layer.weight_fq else []):
            labels[fq_name] = layer.name
    setattr(gm, LABEL, labels)
    return layers


def _describe(gm: Any, src: Any, dep: set) -> QuantLayer:
    if src.op == "placeholder":
        return QuantLayer(INPUT_LAYER, "model input (QuantStub)", producer=src.name)
    ops = [op_name(src)]
    node = src
    while op_name(node) in _EPILOGUE:
        inputs = [a for a in node.all_input_nodes if a.name in dep and not is_fake_quant(gm, a)]
        if not inputs:
            break
        node = inputs[0]
        ops.append(op_name(node))
    if op_name(node) in _WEIGHTED:
        weight = node.args[1] if len(node.args) > 1 and hasattr(node.args[1], "op") else None
        wfq = weight.name if weight is not None and is_fake_quant(gm, weight) else None
        name = module_path(node) or node.name
        ops = [o for o in reversed(ops) if o not in ("div",)]  # the QAT conv-bn rescaling is not a layer op
        return QuantLayer(name, "+".join(dict.fromkeys(ops)), weight_fq=wfq, producer=src.name, weighted=node.name)
    return QuantLayer(module_path(src) or src.name, op_name(src), producer=src.name)


def unknown_layer_error(names: Sequence[str], layers: Sequence[QuantLayer]) -> Optional[str]:
    """The message for names in ``[qconfig] float_layers`` that are no layer of this model (each with
    its nearest valid names, difflib's ratio >= 0.5), or None when all are known."""
    valid = [layer.name for layer in layers]
    bad = [n for n in names if n not in valid]
    if not bad:
        return None
    parts = []
    for n in bad:
        near = difflib.get_close_matches(n, valid, n=3, cutoff=0.5)
        parts.append("%r (nearest: %s)" % (n, ", ".join(near)) if near else repr(n))
    return "[qconfig] float_layers names %s, not a quantized layer of this model; its layers are %s" % (
        ", ".join(parts), ", ".join(valid[:12]) + (", ..." if len(valid) > 12 else ""))


def keep_float(gm: Any, names: Sequence[str]) -> List[QuantLayer]:
    """Remove the fake quants of the named layers from prepared model ``gm`` (changed in place): their
    output tensor stays float and so do the weights of their conv/linear. ``convert_pt2e`` then leaves
    them float (the consumer reads a float tensor: its int8 weights are dequantized and it computes in
    float too, which the model check names). Apply it to every prepare of a run (calib and qat alike),
    so that their state dicts keep matching.

    Returns the layers kept float. Raises ValueError with :func:`unknown_layer_error`'s message.
    """
    if not names:
        return []
    layers = quant_layers(gm)
    problem = unknown_layer_error(names, layers)
    if problem:
        raise ValueError(problem)
    chosen = [layer for layer in layers if layer.name in names]
    nodes = nodes_by_name(gm)
    for layer in chosen:
        for fq_name in layer.act_fq + ([layer.weight_fq] if layer.weight_fq else []):
            node = nodes[fq_name]
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
            if not any(n.op == "call_module" and n.target == node.target for n in gm.graph.nodes):
                delattr(gm, str(node.target))
    gm.graph.lint()
    gm.recompile()
    return chosen


