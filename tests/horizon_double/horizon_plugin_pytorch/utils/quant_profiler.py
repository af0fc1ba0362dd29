"""TEST DOUBLE of ``horizon_plugin_pytorch.utils.quant_profiler.featuremap_similarity`` (Horizon
Robotics' QAT plugin, hbdk3 generation: XJ3/J5/Ultra).

Follows the expert user guide (D-Robotics/rdk_doc ``.../expert/user_guide.md``, "相似度对比", code index
id 475334391) and the profiler's wrapper (id 31540711353)::

    featuremap_similarity(model1, model2, inputs, similarity_func="Cosine", threshold=None,
                          devices=None, out_dir=None) -> List[List]

* ``similarity_func``: "Cosine", "MSE", "L1", "KL", "SQNR", or a callable ``f(out1, out2)`` returning a
  scalar (a number or a one-element tensor).
* Returns one row per op in model2's forward order: ``[index, module name, module type, similarity,
  qscale, acc error (float atol), acc error (N out_qscale), op error with same input (N out_qscale)]``;
  ``qscale`` is None for an output without a per-tensor scale (then the two "N out_qscale" columns
  hold the float error), like the guide's table.
* Writes into ``out_dir`` (default: the current folder) ``similarity.txt`` (the rows in forward order,
  after the guide's "Note:" header on suffixes), ``ordered_op_error_similarity.txt`` (the same rows
  sorted by the same-input error, largest first) and ``similarity.html`` (the similarity along the
  index). The tables are in tabulate's "psql" format with the guide's headers.
* ``devices``: None, a torch.device, or a tuple of two; printed as the plugin does.
* ``threshold``: rows past it (below for Cosine/SQNR, above for MSE/L1/KL) are printed under "This
  layers similarity maybe unusual..." (defaults are the double's: Cosine 0.9, SQNR 20, else none).

How the double computes the rows (its own choices, **unconfirmed** in detail): both models are run on
``inputs`` with forward hooks on their modules. An op of model2 is a module its graph calls that is not
a fake quantizer; its output is the output of the fake quantizer that follows it in the graph (what a
QTensor of the plugin's QAT modules holds), else the module's own output; modules called inside
another (the BatchNorm of a fused conv) are no rows. Model1's counterpart is its
module of the same name; a name model2 does not call is left out (the plugin marks such layers "(I)",
an Identity in one model: compare a fused float model, ``fuse_fx``, to have none). The same-input
error feeds model2's op model1's input of that op, fake-quantized by the quantizer that feeds the op
in model2. Functional ops without a module (``x + y``) are no rows: the plugin needs FloatFunctional
for them.
"""
import html
import math
import os
from numbers import Real
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from ..quantization.fake_quantize import _is_fake_quant

HEADERS = ["Index", "Module Name", "Module Type", "Similarity", "qscale", "Acc Error\n(float atol)",
           "Acc Error\n(N out_qscale)", "Op Error with Same\nInput (N out_qscale)"]
NOTE = ("{:-^63}\n".format("-") + "Note:\n* Suffix '(I)' means this layer is Identity in one model\n"
        "* Suffix '(I vs I)' means this layer is Identity in both models\n"
        "* Suffix '(i)'(i >= 1) means this op is shared i times\n" + "{:-^63}\n".format("-"))
_DEFAULT_THRESHOLD = {"Cosine": 0.9, "SQNR": 20.0}


def _flat(t: Any) -> torch.Tensor:
    return t.detach().double().reshape(-1)


def _builtin(name: str) -> Callable[[Any, Any], float]:
    def cosine(a: Any, b: Any) -> float:
        return float(F.cosine_similarity(_flat(a), _flat(b), dim=0))

    def sqnr(a: Any, b: Any) -> float:
        noise = float((_flat(a) - _flat(b)).norm())
        return math.inf if noise == 0 else 20 * math.log10(float(_flat(a).norm()) / noise)

    def mse(a: Any, b: Any) -> float:
        return float(F.mse_loss(_flat(a), _flat(b)))

    def l1(a: Any, b: Any) -> float:
        return float(F.l1_loss(_flat(a), _flat(b)))

    def kl(a: Any, b: Any) -> float:
        return float(F.kl_div(F.log_softmax(_flat(b), 0), F.softmax(_flat(a), 0), reduction="sum"))

    funcs = {"Cosine": cosine, "SQNR": sqnr, "MSE": mse, "L1": l1, "KL": kl}
    if name not in funcs:
        raise ValueError("similarity_func should be one of %s or a Callable, got %r" % (list(funcs), name))
    return funcs[name]


def _record(model: Any, inputs: Tuple[Any, ...]) -> List[Dict[str, Any]]:
    """Run ``model`` once; per module call in call order ``{"name", "module", "args", "out", "fq_out",
    "fq", "fq_in"}``: ``fq``/``fq_out`` the fake quantizer its output goes through and that one's
    output, ``fq_in`` per argument the fake quantizer that produced it (GraphModules: from the graph;
    other models: forward hooks, no fake quantizers)."""
    calls: List[Dict[str, Any]] = []
    graph = getattr(model, "graph", None)
    if graph is None:
        hooks = []
        for name, mod in model.named_modules():
            if name:
                hooks.append(mod.register_forward_hook(
                    lambda m, a, o, name=name: calls.append({"name": name, "module": m, "args": a, "out": o})))
        try:
            with torch.no_grad():
                model(*inputs)
        finally:
            for h in hooks:
                h.remove()
        return calls

    def is_fq_node(n: Any) -> bool:
        return getattr(n, "op", None) == "call_module" and _is_fake_quant(model.get_submodule(str(n.target)))

    by_node: Dict[str, Dict[str, Any]] = {}

    class _Recorder(torch.fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            out = getattr(self, n.op)(n.target, args, kwargs)
            if n.op == "call_module" and not is_fq_node(n):
                rec = {"name": str(n.target), "module": model.get_submodule(str(n.target)), "args": args, "out": out,
                       "fq_in": [model.get_submodule(str(a.target)) if is_fq_node(a) else None for a in n.args]}
                users = [u for u in n.users if is_fq_node(u)]
                if len(users) == 1:
                    rec["fq"] = model.get_submodule(str(users[0].target))
                    rec["fq_node"] = users[0].name
                by_node[n.name] = rec
                calls.append(rec)
            for rec in calls:
                if rec.get("fq_node") == n.name:
                    rec["fq_out"] = out
            return out

    with torch.no_grad():
        _Recorder(model).run(*inputs)
    return calls


def _pairs(calls1: List[Dict[str, Any]], calls2: List[Dict[str, Any]]) -> Iterator[Tuple[Dict[str, Any], Dict[str, Any], Any, Any]]:
    """``(rec2, rec1, out1, out2)`` for each op of model 2 (its first call; a shared module's later calls
    are the plugin's "(i)" rows) whose module of the same name model 1 calls, both outputs tensors of
    one shape; ``out2`` is the output of the fake quantizer after the op where there is one."""
    first1: Dict[str, Dict[str, Any]] = {}
    for rec in calls1:
        first1.setdefault(rec["name"], rec)
    seen: set = set()
    for rec in calls2:
        ref = first1.get(rec["name"])
        if rec["name"] in seen or ref is None or not isinstance(ref["out"], torch.Tensor):
            continue
        seen.add(rec["name"])
        out2 = rec["fq_out"] if rec.get("fq") is not None else rec["out"]
        if isinstance(out2, torch.Tensor) and out2.shape == ref["out"].shape:
            yield rec, ref, ref["out"], out2


def _scale(fq: Any) -> Optional[float]:
    scale = getattr(fq, "scale", None)
    if scale is None or scale.numel() != 1:
        return None
    return float(scale.reshape(-1)[0])


def featuremap_similarity(
    model1: torch.nn.Module,
    model2: torch.nn.Module,
    inputs: Any,
    similarity_func: Union[str, Callable] = "Cosine",
    threshold: Optional[Real] = None,
    devices: Union[torch.device, tuple, None] = None,
    out_dir: Optional[str] = None,
) -> List[List]:
    """Compute the similarity of feature maps (see the module docstring for rows and files)."""
    from .. import _double

    if devices is not None:
        assert isinstance(devices, torch.device) or (isinstance(devices, tuple) and len(devices) == 2), \
            "devices arg should be torch.device or a tuple of 2 torch.device!"
        pair = devices if isinstance(devices, tuple) else (devices, devices)
        print("\nmodel1 and model2 will be run on {} and {}.".format(*pair))
        model1.to(pair[0])
        model2.to(pair[1])
    func = similarity_func if callable(similarity_func) else _builtin(similarity_func)
    name = similarity_func if isinstance(similarity_func, str) else getattr(similarity_func, "__name__", "callable")
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    _double.record("featuremap_similarity", similarity_func=name, out_dir=out_dir,
                   model1_training=model1.training, model2_training=model2.training)

    rows: List[List] = []
    for rec, ref, out1, out2 in _pairs(_record(model1, inputs), _record(model2, inputs)):
        op, mod, fq = rec["name"], rec["module"], rec.get("fq")
        scale = _scale(fq) if fq is not None else None
        sim = func(out1, out2)
        sim = float(sim.reshape(-1)[0]) if isinstance(sim, torch.Tensor) else float(sim)
        atol = float((out1.double() - out2.double()).abs().max())
        with torch.no_grad():  # same input: model1's input of this op, quantized as model2 feeds it
            fq_in = rec.get("fq_in", [])
            args = [fq_in[i](a) if i < len(fq_in) and fq_in[i] is not None and isinstance(a, torch.Tensor) else a
                    for i, a in enumerate(ref["args"])]
            single = mod(*args)
            if fq is not None:
                single = fq(single)
        op_err = float((out1.double() - single.double()).abs().max())
        n = (lambda v: int(round(v / scale))) if scale else (lambda v: v)
        rows.append([len(rows), op, str(type(mod)), sim, scale, atol, n(atol), n(op_err)])

    out_dir = "." if out_dir is None else out_dir
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "similarity.txt"), "w") as f:
        f.write(NOTE + _psql(rows))
    ordered = sorted(rows, key=lambda r: r[-1] if isinstance(r[-1], Real) else float("-inf"), reverse=True)
    with open(os.path.join(out_dir, "ordered_op_error_similarity.txt"), "w") as f:
        f.write(NOTE + _psql(ordered))
    with open(os.path.join(out_dir, "similarity.html"), "w") as f:
        f.write(_html(rows))
    limit = threshold if threshold is not None else _DEFAULT_THRESHOLD.get(name)
    if limit is not None:
        low = name in ("Cosine", "SQNR")
        unusual = [r for r in rows if (r[3] < limit if low else r[3] > limit)]
        if unusual:
            print("\nThis layers similarity maybe unusual...")
            print(_psql(unusual))
    return rows


def _cell(v: Any, fmt: str) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and fmt:
        return format(v, fmt)
    return str(v)


def _psql(rows: List[List]) -> str:
    """tabulate(rows, HEADERS, tablefmt="psql", floatfmt=("g", "g", "g", ".7f", ".7f", ".7f", "g", "g"))."""
    fmts = ["", "", "", ".7f", ".7f", ".7f", "g", "g"]
    head = [h.split("\n") for h in HEADERS]
    body = [[_cell(v, fmts[i]) for i, v in enumerate(r)] for r in rows]
    widths = [max([len(x) for x in head[i]] + [len(b[i]) for b in body]) for i in range(len(HEADERS))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line]
    for k in range(2):
        out.append("|" + "|".join(" %-*s " % (w, head[i][k] if k < len(head[i]) else "") for i, w in enumerate(widths)) + "|")
    out.append("|" + "+".join("-" * (w + 2) for w in widths) + "|")
    for b in body:
        out.append("|" + "|".join(" %-*s " % (w, b[i]) for i, w in enumerate(widths)) + "|")
    out.append(line)
    return "\n".join(out) + "\n"


def _html(rows: List[List]) -> str:
    """The similarity along the module index, as an SVG polyline (the plugin draws it with plotly)."""
    pts = " ".join("%d,%.1f" % (20 + 10 * r[0], 220 - 200 * max(0.0, min(1.1, r[3])) / 1.1) for r in rows
                   if isinstance(r[3], float) and math.isfinite(r[3]))
    labels = "".join("<li>%d %s: %s</li>" % (r[0], html.escape(r[1]), html.escape(str(r[3]))) for r in rows)
    return ("<html><body><h3>Similarity</h3><svg width='%d' height='240'><polyline fill='none' stroke='blue' "
            "points='%s'/></svg><ol>%s</ol></body></html>" % (40 + 10 * len(rows), pts, labels))
