"""Per-layer comparison of a prepared (pt2e) model with the float model, both modes in one pass.

torchao's numeric debugger (``prepare_for_propagation_comparison`` + ``compare_results``) logs every
node of two graphs that share an ancestor and gives the *accumulated* error only; here we also need the
*same input* error (each layer fed the float model's input), and the statistics that explain a layer
(range, clipping, levels used). So the float reference is prepared exactly like the quantized model
(same export, same node names, fake quant off) and the graph is interpreted node by node three times
per batch: float (reference), quantized (each layer fed its own previous output) and same-input (at each
activation fake quant the quantized run is fed the float value instead). Statistics are accumulated
per layer, so memory stays at about three forward passes of one batch.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Dict, Iterable, Iterator, List

from ..base import FakeQuantState, LayerComparison
from .layers import QuantLayer, input_dependent, is_fake_quant, quant_layers

SQNR_CAP_DB = 100.0


class _Stats:
    """Sums for one layer over the batches (see :class:`LayerComparison` for the figures)."""

    def __init__(self) -> None:
        self.x2: Any = None
        self.e2 = {"accumulated": None, "same_input": None}
        self.xy = {"accumulated": None, "same_input": None}
        self.y2 = {"accumulated": None, "same_input": None}
        self.max_abs = {"accumulated": 0.0, "same_input": 0.0}
        self.lo = math.inf
        self.hi = -math.inf
        self.clipped = 0
        self.count = 0
        self.hist: Any = None

    def add(self, x: Any, ys: Dict[str, Any], fq: Any) -> None:
        import torch

        x = x.detach().float()
        dims = [d for d in range(x.dim()) if d != (1 if x.dim() > 1 else 0)]

        def per_channel(t: Any) -> Any:
            return t.sum(dim=dims) if dims else t

        self.x2 = _plus(self.x2, per_channel(x * x))
        for mode, y in ys.items():
            y = y.detach().float()
            e = x - y
            self.e2[mode] = _plus(self.e2[mode], per_channel(e * e))
            self.xy[mode] = _plus(self.xy[mode], per_channel(x * y))
            self.y2[mode] = _plus(self.y2[mode], per_channel(y * y))
            self.max_abs[mode] = max(self.max_abs[mode], float(e.abs().max()) if e.numel() else 0.0)
        self.lo = min(self.lo, float(x.min()))
        self.hi = max(self.hi, float(x.max()))
        self.count += x.numel()
        if fq is not None:
            scale = float(fq.scale.reshape(-1)[0])
            zp = int(fq.zero_point.reshape(-1)[0])
            qmin, qmax = int(fq.quant_min), int(fq.quant_max)
            q = torch.round(x / scale) + zp
            self.clipped += int(((q < qmin - 0.5) | (q > qmax + 0.5)).sum())
            q = q.clamp(qmin, qmax).long() - qmin
            h = torch.bincount(q.reshape(-1), minlength=qmax - qmin + 1)
            self.hist = h if self.hist is None else self.hist + h

    def figures(self, mode: str) -> Dict[str, float]:
        import torch

        x2, e2, xy, y2 = self.x2, self.e2[mode], self.xy[mode], self.y2[mode]
        live = x2 > 0
        if not bool(live.any()):
            return {"cosine": 1.0, "sqnr_db": SQNR_CAP_DB, "max_abs": self.max_abs[mode]}
        x2, e2, xy, y2 = x2[live], e2[live], xy[live], y2[live]
        sqnr = torch.where(e2 > 0, 10 * torch.log10(x2 / e2.clamp_min(1e-30)), torch.full_like(x2, SQNR_CAP_DB))
        cos = xy / (x2.sqrt() * y2.sqrt()).clamp_min(1e-30)
        return {"cosine": float(cos.mean()), "sqnr_db": float(sqnr.clamp(max=SQNR_CAP_DB).mean()),
                "max_abs": self.max_abs[mode]}

    def levels_used(self) -> Any:
        if self.hist is None:
            return None
        counts = sorted(self.hist.tolist(), reverse=True)
        need, total = 0.999 * sum(counts), 0
        for i, c in enumerate(counts):
            total += c
            if total >= need:
                return i + 1
        return len(counts)


def _plus(a: Any, b: Any) -> Any:
    return b.double() if a is None else a + b.double()


def _fetch(gm: Any, target: str) -> Any:
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _run_node(gm: Any, node: Any, args: Any, kwargs: Any) -> Any:
    if node.op == "get_attr":
        return _fetch(gm, str(node.target))
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_module":
        return gm.get_submodule(str(node.target))(*args, **kwargs)
    if node.op == "call_method":
        self_obj, *rest = args
        return getattr(self_obj, str(node.target))(*rest, **kwargs)
    raise RuntimeError("unexpected node %s (%s)" % (node.name, node.op))


def _mutates(node: Any) -> bool:
    schema = getattr(node.target, "_schema", None)
    if schema is not None and schema.is_mutable:
        return True
    return str(getattr(node.target, "__name__", "")).split(".")[0].endswith("_")


def compare(float_ref: Any, prepared: Any, batches: Iterable[Any]) -> List[LayerComparison]:
    """The per-layer comparison (see the module docstring); both models in validation state, fake quant
    off in ``float_ref``. Raises RuntimeError when the two graphs differ (they are prepared alike)."""
    import torch
    from torch.fx.node import map_arg

    nodes = list(prepared.graph.nodes)
    ref_nodes = list(float_ref.graph.nodes)
    if [n.name for n in nodes] != [n.name for n in ref_nodes]:
        raise RuntimeError("the float reference graph differs from the prepared model's")
    layers = quant_layers(prepared)
    dep = input_dependent(prepared)
    act_fq = {n.name for n in nodes if n.name in dep and is_fake_quant(prepared, n)}
    watch: Dict[str, QuantLayer] = {(layer.act_fq[0] if layer.act_fq else layer.producer): layer for layer in layers}
    stats = {layer.name: _Stats() for layer in layers}
    last_use: Dict[str, int] = {}
    for i, n in enumerate(nodes):
        for a in n.all_input_nodes:
            last_use[a.name] = i
    weights: Dict[str, float] = {}
    weight_of = {layer.weight_fq: layer.name for layer in layers if layer.weight_fq}

    with torch.no_grad():
        for x in batches:
            env_f: Dict[str, Any] = {}
            env_q: Dict[str, Any] = {}
            env_s: Dict[str, Any] = {}
            for i, (n, nf) in enumerate(zip(nodes, ref_nodes)):
                if n.op == "output":
                    break
                if n.op == "placeholder":
                    env_f[n.name] = env_q[n.name] = env_s[n.name] = x
                else:
                    args_f = map_arg(nf.args, lambda a: env_f[a.name])
                    kw_f = map_arg(nf.kwargs, lambda a: env_f[a.name])
                    env_f[n.name] = _run_node(float_ref, nf, args_f, kw_f)
                    env_q[n.name] = _run_node(prepared, n, map_arg(n.args, lambda a: env_q[a.name]),
                                              map_arg(n.kwargs, lambda a: env_q[a.name]))
                    if n.name in dep:
                        def same(a: Any) -> Any:
                            if a.name in act_fq:
                                v = env_f[a.name]  # this layer's input, as the float model has it
                                return v.clone() if _mutates(n) and isinstance(v, torch.Tensor) else v
                            return env_s[a.name] if a.name in dep else env_q[a.name]

                        env_s[n.name] = _run_node(prepared, n, map_arg(n.args, same), map_arg(n.kwargs, same))
                    else:
                        env_s[n.name] = env_q[n.name]
                layer = watch.get(n.name)
                if layer is not None and isinstance(env_f[n.name], torch.Tensor):
                    fq = prepared.get_submodule(str(n.target)) if layer.act_fq else None
                    stats[layer.name].add(env_f[n.name], {"accumulated": env_q[n.name], "same_input": env_s[n.name]}, fq)
                owner = weight_of.get(n.name)
                if owner is not None and owner not in weights:
                    w = env_f[n.name].detach().float().abs()  # fake quant is off in the reference
                    w = w.reshape(w.shape[0], -1)
                    weights[owner] = float((w.max(dim=1).values / w.mean(dim=1).clamp_min(1e-12)).max())
                for env in (env_f, env_q, env_s):
                    for a in n.all_input_nodes:
                        if last_use.get(a.name) == i:
                            env.pop(a.name, None)
    out = []
    for layer in layers:
        st = stats[layer.name]
        if st.x2 is None:
            continue
        fq = prepared.get_submodule(str(next(n.target for n in nodes if n.name == layer.act_fq[0]))) if layer.act_fq else None
        out.append(LayerComparison(
            name=layer.name,
            op=layer.op,
            accumulated=st.figures("accumulated"),
            same_input=st.figures("same_input"),
            float_min=st.lo,
            float_max=st.hi,
            scale=float(fq.scale.reshape(-1)[0]) if fq is not None else None,
            zero_point=int(fq.zero_point.reshape(-1)[0]) if fq is not None else None,
            clipped=st.clipped / max(st.count, 1),
            levels_used=st.levels_used(),
            levels=(int(fq.quant_max) - int(fq.quant_min) + 1) if fq is not None else None,
            weight_outliers=weights.get(layer.name),
        ))
    return out


def float_reference(backend: Any, float_model: Any, example: Any, stage: str, qconfig: Any) -> Any:
    """``float_model`` prepared as the quantized model was, in validation state with fake quant off."""
    from torchao.quantization.pt2e import disable_fake_quant

    ref = backend.prepare(float_model, (example,), stage, qconfig)
    backend.set_fake_quant_state(ref, FakeQuantState.VALIDATION)
    ref.apply(disable_fake_quant)
    return ref


@contextlib.contextmanager
def layers_in_float(prepared: Any, names: List[str]) -> Iterator[None]:
    """Fake quant off on the named layers' output and weight fake quants, restored on exit."""
    layers = {layer.name: layer for layer in quant_layers(prepared)}
    unknown = [n for n in names if n not in layers]
    if unknown:
        raise ValueError("not a quantized layer: %s" % ", ".join(unknown))
    mods = []
    for n in names:
        layer = layers[n]
        for fq_name in layer.act_fq + ([layer.weight_fq] if layer.weight_fq else []):
            node = next(m for m in prepared.graph.nodes if m.name == fq_name)
            mods.append(prepared.get_submodule(str(node.target)))
    before = [bool(m.fake_quant_enabled[0]) for m in mods]
    try:
        for m in mods:
            m.disable_fake_quant()
        yield
    finally:
        for m, on in zip(mods, before):
            if on:
                m.enable_fake_quant()


__all__ = ["compare", "float_reference", "layers_in_float", "SQNR_CAP_DB"]
