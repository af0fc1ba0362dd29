"""The model check of the torch backend: which ops of a converted (pt2e) graph run in int8, which stayed
float and why, and which kernels the AOTInductor package really calls - the counterpart of Horizon's
``check_model`` advice (one :class:`~core.backends.base.CheckItem` per op)."""
from __future__ import annotations

import re
import zipfile
from collections import Counter
from typing import Any, Dict, List

from ...i18n import N_, _
from ..base import CheckItem, CheckReport
from .layers import module_path as _module_path, op_name as _op_name  # noqa: F401  (graph.py, backend.py use them)

_QDQ_OPS = {
    "quantize_per_tensor",
    "dequantize_per_tensor",
    "quantize_per_channel",
    "dequantize_per_channel",
    "quantize_affine",
    "dequantize_affine",
}
_COMPUTE_OPS = {
    "conv2d", "conv1d", "conv3d", "linear", "addmm", "mm", "matmul", "bmm",
    "add", "add_", "mul", "mul_", "cat", "adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "mean",
}
_ACTIVATIONS = {"relu", "relu_", "hardtanh", "hardtanh_", "relu6", "hardswish", "hardswish_", "silu", "gelu"}
_NOOPS = {
    "dropout": N_("identity in eval mode"),
    "flatten": N_("reshape only, no arithmetic"),
    "view": N_("reshape only, no arithmetic"),
    "reshape": N_("reshape only, no arithmetic"),
    "clone": N_("copy only"),
    "contiguous": N_("layout only"),
    "_assert_tensor_metadata": N_("shape guard"),
}
"""Ops that compute nothing, with why (N_-marked: the check's items are written in the run's language)."""


def _is_qdq(node: Any) -> bool:
    return node.op == "call_function" and _op_name(node) in _QDQ_OPS


def _is_dq(node: Any) -> bool:
    return _is_qdq(node) and _op_name(node).startswith("dequantize")


def _is_q(node: Any) -> bool:
    return _is_qdq(node) and _op_name(node).startswith("quantize")


def _output_producer(gm: Any) -> Any:
    for node in gm.graph.nodes:
        if node.op == "output":
            out = node.args[0]
            while isinstance(out, (tuple, list)) and out:
                out = out[0]
            return out if hasattr(out, "op") else None
    return None


def _tensor_inputs(node: Any) -> List[Any]:
    return [a for a in node.args if hasattr(a, "op")]


_BINARY = {"add", "add_"}


def _output_quantized(node: Any) -> bool:
    """True when the op's result reaches a quantize node directly, or through the activation or the
    residual add that the x86 lowering fuses into it (conv + add + ReLU -> one int8 kernel)."""
    users = list(node.users)
    if not users:
        return False
    if all(_is_q(u) for u in users):
        return True
    if len(users) == 1 and _op_name(users[0]) in _ACTIVATIONS | _BINARY:
        return _output_quantized(users[0])
    return False


def analyze_converted_graph(gm: Any) -> CheckReport:
    """Model check of a ``convert_pt2e`` graph: for every op, whether it computes on int8 data.

    An op counts as int8 when its tensor inputs come from ``dequantize`` nodes (the x86 lowering fuses
    dequantize-op-quantize into one int8 kernel); an activation directly after such an op is fused
    into it. Returns a :class:`CheckReport` whose items give each op's status, reason and a suggestion.
    """
    items: List[CheckItem] = []
    out_node = _output_producer(gm)
    for node in gm.graph.nodes:
        if node.op != "call_function" or _is_qdq(node):
            continue
        op = _op_name(node)
        module = _module_path(node)
        inputs = _tensor_inputs(node)
        in_q = bool(inputs) and any(_is_dq(a) for a in inputs)
        if op in _NOOPS:
            if op != "_assert_tensor_metadata":
                items.append(CheckItem(op, node.name, module, "no-op", _(_NOOPS[op]), _("nothing to do")))
            continue
        if op in _ACTIVATIONS:
            producer = inputs[0] if inputs else None
            if producer is not None and _op_name(producer) in _COMPUTE_OPS and any(
                _is_dq(a) for a in _tensor_inputs(producer)
            ):
                items.append(
                    CheckItem(op, node.name, module, "int8", _("fused into the preceding %s") % _op_name(producer), "none")
                )
                continue
        out_q = _output_quantized(node)
        if in_q and out_q:
            users = list(node.users)
            fused = len(users) == 1 and not _is_q(users[0])
            reason = (_("int8 inputs and output, fused with the following %s") % _op_name(users[0]) if fused
                      else _("int8 inputs and output"))
            items.append(CheckItem(op, node.name, module, "int8", reason, "none"))
        elif in_q:
            if node is out_node:
                items.append(
                    CheckItem(
                        op,
                        node.name,
                        module,
                        "int8-in/float-out",
                        _("model output kept in float: high-precision output (Horizon: 32-bit out)"),
                        _("intended; set [qconfig] high_precision_output = false for an 8-bit output"),
                    )
                )
            else:
                items.append(
                    CheckItem(
                        op,
                        node.name,
                        module,
                        "int8-in/float-out",
                        _("output is not re-quantized (the next op takes float)"),
                        _("fine when the next op is a no-op; else check that op's entry"),
                    )
                )
        else:
            items.append(
                CheckItem(
                    op,
                    node.name,
                    module,
                    "float",
                    _("inputs are not quantized: X86InductorQuantizer has no int8 recipe for aten.%s here") % op,
                    _("runs in fp32; replace it with a supported op (conv, linear, add, pooling, ReLU/ReLU6) "
                      "or keep it if its cost is small"),
                )
            )
    counts = Counter(i.status for i in items)
    heavy_float = [i for i in items if i.status == "float" and i.op in ("conv2d", "linear", "addmm", "mm", "matmul", "bmm")]
    passed = not heavy_float
    n_heavy = sum(1 for i in items if i.op in ("conv2d", "linear", "addmm", "mm", "matmul", "bmm"))
    summary = "%s: " % ("PASS" if passed else "FAIL") + _(
        "%d of %d conv/linear ops take int8 inputs; %d ops int8, %d int8-in/float-out, %d float, %d no-op") % (
        n_heavy - len(heavy_float),
        n_heavy,
        counts.get("int8", 0),
        counts.get("int8-in/float-out", 0),
        counts.get("float", 0),
        counts.get("no-op", 0),
    )
    report = CheckReport(passed=passed, summary=summary, items=items)
    report.text = render_check_text(report)
    return report


def render_check_text(report: CheckReport) -> str:
    lines = [
        "qat-tui model check (torch backend: torchao pt2e, X86InductorQuantizer)",
        report.summary,
        "",
        "%-18s %-28s %-30s %s" % ("status", "op (node)", "module", "reason / suggestion"),
    ]
    for i in report.items:
        if i.status == "int8" and i.suggestion == "none":
            continue
        lines.append("%-18s %-28s %-30s %s" % (i.status, "%s (%s)" % (i.op, i.node), i.module or "-", i.reason))
        if i.suggestion and i.suggestion != "none":
            lines.append("%-18s %-28s %-30s -> %s" % ("", "", "", i.suggestion))
    lines.append("")
    lines.append("This model is supported!" if report.passed else "Some conv/linear ops stay in float.")
    lines.append("model check %s" % ("PASS" if report.passed else "FAIL"))
    return "\n".join(lines) + "\n"


def package_kernels(path: str) -> Dict[str, int]:
    """Count the kernels an AOTInductor package calls, from its generated C++ wrapper.

    Returns counts for ``int8_conv`` (oneDNN qconv), ``int8_linear`` (qlinear), ``fp32_conv`` and
    ``fp32_matmul`` (aten convolution / addmm / mm fallbacks).
    """
    counts = {"int8_conv": 0, "int8_linear": 0, "fp32_conv": 0, "fp32_matmul": 0}
    try:
        with zipfile.ZipFile(path) as z:
            wrappers = [n for n in z.namelist() if n.endswith("wrapper.cpp")]
            text = "".join(z.read(n).decode("utf-8", "replace") for n in wrappers)
    except (OSError, zipfile.BadZipFile):
        return counts
    counts["int8_conv"] = len(re.findall(r"aoti_torch_cpu__qconv\w*\(", text))
    counts["int8_linear"] = len(re.findall(r"aoti_torch_cpu__qlinear\w*\(", text))
    counts["fp32_conv"] = len(re.findall(r"aoti_torch_cpu_convolution\w*\(", text))
    counts["fp32_matmul"] = len(re.findall(r"aoti_torch_cpu_(?:addmm|mm|bmm)\w*\(", text))
    return counts


def add_lowering_items(check: CheckReport, kernels: Dict[str, int]) -> None:
    line = _("package kernels: %d int8 conv, %d int8 linear, %d fp32 conv, %d fp32 matmul") % (
        kernels["int8_conv"],
        kernels["int8_linear"],
        kernels["fp32_conv"],
        kernels["fp32_matmul"],
    )
    if kernels["fp32_conv"]:
        check.items.append(
            CheckItem(
                "convolution",
                "(package)",
                "",
                "float",
                _("%d convolutions were not lowered to int8 kernels by Inductor") % kernels["fp32_conv"],
                _("check that torch and torchao versions match (freezing patterns come from torchao)"),
            )
        )
        check.passed = False
        check.summary = check.summary.replace("PASS", "FAIL", 1)
    if kernels["fp32_matmul"]:
        check.items.append(
            CheckItem(
                "linear",
                "(package)",
                "",
                "int8-in/float-out" if not kernels["fp32_conv"] else "float",
                _("%d matmuls run as fp32 kernels (dequantized weights): Inductor fuses int8 linear only when its "
                  "output is re-quantized or its input is 2-D int8") % kernels["fp32_matmul"],
                _("small for a classifier; set [qconfig] high_precision_output = false to try an int8 linear"),
            )
        )
    check.summary += "; " + line
    check.text = render_check_text(check)


__all__ = ["analyze_converted_graph", "render_check_text", "package_kernels", "add_lowering_items"]
