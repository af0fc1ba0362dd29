"""Per-layer debug on the Horizon backend through the plugin's own tools: in the hbdk3 generation
``horizon_plugin_pytorch.utils.quant_profiler.featuremap_similarity`` (X3/J5 expert user guide,
"相似度对比"; signature and output columns in /work/shared/reference/debug-tools.md), in the hbdk4
generation ``horizon_plugin_profiler.QuantAnalysis`` (:func:`compare_quant_analysis`).

* The float reference is a copy of the prepared model with every fake quant off (torch's
  ``disable_fake_quant``, which the plugin's FakeQuantize inherits): the same graph and module names,
  so each op pairs with itself, and for a QAT model the weights QAT trained. The user guide warns
  that comparing an unfused float model pairs a fused conv with the float conv alone.
* Two calls on the same images: ``similarity_func="Cosine"`` writes the plugin's ``similarity.txt``,
  ``ordered_op_error_similarity.txt`` and ``similarity.html`` into ``<run>/debug_horizon/`` (kept as the
  debug's artifacts), and a callable with qat-tui's per-channel SQNR (the formula of
  :class:`core.backends.base.LayerComparison`) gives the accumulated SQNR.
* The plugin's "Op Error with Same Input" is the op's largest error in multiples of its output scale.
  It says whether the op computes right, but not whether its range crushes the other values: every
  rounded-away value is under half a scale. So the same-input SQNR stays unknown (None) and the debug
  ranks Horizon layers by the SQNR lost at the layer (see :func:`core.debug._rank`).
* Range, clipping and levels used come from forward hooks on the float reference, against the
  op's int8 scale (symmetric, zero point 0: the plugin's qint8).
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import tempfile
from typing import Any, Dict, Iterable, Iterator, List, Optional

from ...i18n import _
from ..base import LayerComparison

SQNR_CAP_DB = 100.0
DEBUG_DIR = "debug_horizon"


def per_channel_sqnr(out1: Any, out2: Any) -> float:
    """10·log10(Σx²/Σ(x−y)²) per output channel (dim 1), averaged over the channels where x is not all
    zero, capped at 100 dB (as the torch backend's figures)."""
    import torch

    x, y = out1.detach().double(), out2.detach().double()
    if x.dim() < 2:
        x, y = x.reshape(1, -1), y.reshape(1, -1)
    dims = [d for d in range(x.dim()) if d != 1]
    x2, e2 = (x * x).sum(dim=dims), ((x - y) ** 2).sum(dim=dims)
    live = x2 > 0
    if not bool(live.any()):
        return SQNR_CAP_DB
    x2, e2 = x2[live], e2[live]
    db = torch.where(e2 > 0, 10 * torch.log10(x2 / e2.clamp_min(1e-30)), torch.full_like(x2, SQNR_CAP_DB))
    return float(db.clamp(max=SQNR_CAP_DB).mean())


def float_reference(prepared: Any) -> Any:
    """A copy of ``prepared`` with every fake quant off (eval mode)."""
    import torch

    ref = copy.deepcopy(prepared).eval()
    ref.apply(torch.quantization.disable_fake_quant)
    return ref


def _output_stats(ref: Any, names: List[str], x: Any, scales: Dict[str, Optional[float]]) -> Dict[str, Dict[str, Any]]:
    """Per named module of ``ref`` on ``x``: float min/max, clipped fraction and levels used of int8."""
    import torch

    stats: Dict[str, Dict[str, Any]] = {}
    hooks = []
    mods = dict(ref.named_modules())

    def hook(name: str) -> Any:
        def fn(_m: Any, _args: Any, out: Any) -> None:
            if name in stats or not isinstance(out, torch.Tensor):
                return
            t = out.detach().float()
            rec: Dict[str, Any] = {"float_min": float(t.min()), "float_max": float(t.max())}
            s = scales.get(name)
            if s:
                q = torch.round(t / s)
                rec["clipped"] = float(((q < -128.5) | (q > 127.5)).float().mean())
                counts = sorted(torch.bincount((q.clamp(-128, 127) + 128).long().reshape(-1), minlength=256).tolist(),
                                reverse=True)
                need, total, used = 0.999 * sum(counts), 0, len(counts)
                for i, c in enumerate(counts):
                    total += c
                    if total >= need:
                        used = i + 1
                        break
                rec["levels_used"] = used
            stats[name] = rec
        return fn

    for name in names:
        if name in mods:
            hooks.append(mods[name].register_forward_hook(hook(name)))
    _forward_then_unhook(ref, x, hooks)
    return stats


def _forward_then_unhook(model: Any, x: Any, hooks: List[Any]) -> None:
    """``model(x)`` without gradients, then remove ``hooks`` (also when the forward raises)."""
    import torch

    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()


def _weight_outliers(module: Any) -> Optional[float]:
    w = getattr(module, "weight", None)
    if w is None or not hasattr(w, "dim") or w.dim() < 2:
        return None
    a = w.detach().abs().reshape(w.shape[0], -1).float()
    return float((a.max(1).values / a.mean(1).clamp_min(1e-12)).max())


def compare(prepared: Any, batches: Iterable[Any], out_dir: str) -> List[LayerComparison]:
    """The per-layer table of ``prepared`` (validation state) from two ``featuremap_similarity`` calls;
    the plugin's files are written into ``out_dir``."""
    import torch
    from horizon_plugin_pytorch.utils.quant_profiler import featuremap_similarity

    x = torch.cat([b.detach().cpu().float() for b in batches])
    ref = float_reference(prepared)
    os.makedirs(out_dir, exist_ok=True)
    cos_rows = featuremap_similarity(ref, prepared, (x,), similarity_func="Cosine", out_dir=out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        sqnr_rows = featuremap_similarity(ref, prepared, (x,), similarity_func=per_channel_sqnr, out_dir=tmp)
    sqnr = {r[1]: float(r[3]) for r in sqnr_rows}
    names = [r[1] for r in cos_rows]
    scales = {r[1]: (float(r[4]) if r[4] is not None else None) for r in cos_rows}
    stats = _output_stats(ref, names, x, scales)
    mods = dict(prepared.named_modules())
    out = []
    for _index, name, mtype, cos, scale, atol, _n_acc, n_same in cos_rows:
        st = stats.get(name, {})
        same_abs = float(n_same) * scale if scale else float(n_same)
        out.append(LayerComparison(
            name=name, op=str(mtype).split("'")[1].rsplit(".", 1)[-1] if "'" in str(mtype) else str(mtype),
            accumulated={"cosine": float(cos) if math.isfinite(float(cos)) else 1.0,
                         "sqnr_db": min(sqnr.get(name, SQNR_CAP_DB), SQNR_CAP_DB), "max_abs": float(atol)},
            same_input={"cosine": None, "sqnr_db": None, "max_abs": same_abs,
                        "scale_error": int(n_same) if scale else None},
            float_min=st.get("float_min", 0.0), float_max=st.get("float_max", 0.0), scale=scale,
            zero_point=0 if scale else None, clipped=st.get("clipped", 0.0), levels_used=st.get("levels_used"),
            levels=256 if scale else None, weight_outliers=_weight_outliers(mods.get(name)),
        ))
    return out


def compare_quant_analysis(prepared: Any, batches: Iterable[Any], out_dir: str) -> List[LayerComparison]:
    """The per-layer table of ``prepared`` (validation state) through the hbdk4 generation's profiler,
    ``horizon_plugin_profiler.QuantAnalysis`` (OE-Skills j6-plugin-precision-tuning: ``QuantAnalysis(float,
    calibration, "fake_quant")``, ``auto_find_bad_case``, ``run``, ``compare_per_layer``), with
    :func:`float_reference` as the baseline. Its ``compare_per_layer_out.csv`` (COSINE, ATOL, the two
    models' min/max on the worst batch) and ``abnormal_layer_advisor.csv`` stay in ``out_dir``; the
    accumulated per-channel SQNR over all the images, clipping and levels used are measured here with
    forward hooks (the profiler takes no custom metric).

    Raises:
        BackendError: the profiler does not import, or its CSV lacks a column this reads.
    """
    import torch

    from ...errors import BackendError

    try:
        from horizon_plugin_profiler import QuantAnalysis
    except ImportError as e:
        raise BackendError(_("per-layer debug on %s needs horizon_plugin_profiler (%s)") % ("the hbdk4 generation", e),
                           hint=_("install horizon-plugin-profiler (it ships with Horizon's J6/S100 docker)")) from None
    batches = [b.detach().cpu().float() for b in batches]
    ref = float_reference(prepared)
    os.makedirs(out_dir, exist_ok=True)
    qa = QuantAnalysis(ref, prepared, "fake_quant", out_dir=out_dir)
    qa.auto_find_bad_case(batches, num_steps=len(batches), topk=1)
    qa.run()
    qa.compare_per_layer()
    rows = _read_csv(os.path.join(out_dir, "compare_per_layer_out.csv"),
                     ("COSINE", "ATOL", "base_model_min", "base_model_max"))
    name_col = next((c for c in ("mod_name", "name", "op_name") if c in rows[0]), None) if rows else "mod_name"
    if name_col is None:
        raise BackendError(_("compare_per_layer_out.csv names no layer column (looked for mod_name, name, op_name); "
                           "columns: %s") % ", ".join(rows[0]))
    names = [r[name_col] for r in rows]
    x = torch.cat(batches)
    scales = {n: _fq_scale(prepared, n) for n in names}
    out_ref, out_q = _layer_outputs(ref, names, x), _layer_outputs(prepared, names, x)
    stats = _output_stats(ref, names, x, scales)
    mods = dict(prepared.named_modules())
    out = []
    for r, name in zip(rows, names):
        st = stats.get(name, {})
        sqnr = per_channel_sqnr(out_ref[name], out_q[name]) if name in out_ref and name in out_q else SQNR_CAP_DB
        cos = float(r["COSINE"])
        out.append(LayerComparison(
            name=name, op=r.get("analy_op_type") or type(mods.get(name)).__name__,
            accumulated={"cosine": cos if math.isfinite(cos) else 1.0, "sqnr_db": min(sqnr, SQNR_CAP_DB),
                         "max_abs": float(r["ATOL"])},
            same_input={"cosine": None, "sqnr_db": None, "max_abs": None, "scale_error": None},
            float_min=st.get("float_min", float(r["base_model_min"])), float_max=st.get("float_max", float(r["base_model_max"])),
            scale=scales.get(name), zero_point=0 if scales.get(name) else None, clipped=st.get("clipped", 0.0),
            levels_used=st.get("levels_used"), levels=256 if scales.get(name) else None,
            weight_outliers=_weight_outliers(mods.get(name)),
        ))
    return out


def _read_csv(path: str, need: Iterable[str]) -> List[Dict[str, str]]:
    import csv

    from ...errors import BackendError

    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise BackendError(_("QuantAnalysis.compare_per_layer wrote no %s (%s)") % (os.path.basename(path), e)) from None
    missing = [c for c in need if rows and c not in rows[0]]
    if missing:
        raise BackendError(_("%s has no column %s; its columns: %s") % (os.path.basename(path), ", ".join(missing), ", ".join(rows[0])),
                           hint=_("this horizon_plugin_profiler writes another format: tell qat-tui's developers its version"))
    return rows


def _fq_scale(prepared: Any, name: str) -> Optional[float]:
    for fq in _output_fake_quants(prepared, name):
        s = getattr(fq, "scale", None)
        if s is not None and s.numel() == 1:
            return float(s.reshape(-1)[0])
    return None


def _layer_outputs(model: Any, names: List[str], x: Any) -> Dict[str, Any]:
    """Per name: the output of the fake quant after the module (the quantized tensor), else the module's
    own output; first call only."""
    import torch

    outs: Dict[str, Any] = {}
    hooks = []
    mods = dict(model.named_modules())
    for name in names:
        if name not in mods:
            continue
        fqs = _output_fake_quants(model, name)
        target = fqs[0] if fqs else mods[name]

        def keep(_m: Any, _a: Any, o: Any, name: str = name) -> None:  # a hook that returns None keeps the output
            if isinstance(o, torch.Tensor) and name not in outs:
                outs[name] = o.detach()

        hooks.append(target.register_forward_hook(keep))
    _forward_then_unhook(model, x, hooks)
    return outs


def _output_fake_quants(prepared: Any, name: str) -> List[Any]:
    """The fake quants that quantize the output of module ``name``: its own ``activation_post_process``
    (the plugin's QAT modules hold it), else the fake quant modules its graph node feeds."""
    import torch

    is_fq = (lambda m: isinstance(m, torch.quantization.FakeQuantizeBase))
    mod = dict(prepared.named_modules()).get(name)
    own = getattr(mod, "activation_post_process", None)
    if is_fq(own):
        return [own]
    found = []
    for node in getattr(prepared, "graph", None).nodes if hasattr(prepared, "graph") else []:
        if node.op == "call_module" and node.target == name:
            for user in node.users:
                if user.op == "call_module" and is_fq(prepared.get_submodule(str(user.target))):
                    found.append(prepared.get_submodule(str(user.target)))
    return found


@contextlib.contextmanager
def layers_in_float(prepared: Any, names: List[str]) -> Iterator[None]:
    """Fake quant off on the outputs and weights of the named modules; restored on exit.

    Raises:
        ValueError: a name is no module of ``prepared``, with the closest names.
    """
    import difflib

    import torch

    mods = dict(prepared.named_modules())
    fqs: List[Any] = []
    for name in names:
        if name not in mods:
            close = difflib.get_close_matches(name, list(mods), n=5)
            raise ValueError("%r is no layer of this model%s" % (name, "; closest: %s" % ", ".join(close) if close else ""))
        fqs += _output_fake_quants(prepared, name)
        fqs += [m for m in mods[name].modules() if isinstance(m, torch.quantization.FakeQuantizeBase)]
    was = [bool(fq.fake_quant_enabled[0]) for fq in fqs]
    for fq in fqs:
        fq.disable_fake_quant()
    try:
        yield
    finally:
        for fq, on in zip(fqs, was):
            if on:
                fq.enable_fake_quant()
