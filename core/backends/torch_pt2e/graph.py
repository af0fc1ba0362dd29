"""The picture of the quantized graph: graphviz DOT (SVG with ``dot``) or text, one box per op coloured
by the model check's status, edges saying whether int8 or fp32 data flows."""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Dict, List, Tuple

from ...i18n import _
from ...errors import BackendError
from ...io import atomic_write_text
from ..base import Artifact, Log
from .check import _is_qdq, _module_path, _op_name, _output_quantized, _tensor_inputs, analyze_converted_graph

def _graph_nodes(gm: Any) -> List[Dict[str, Any]]:
    """Compute nodes of a converted graph with their producers (looking through quantize/dequantize)
    and whether each input edge carries int8 data."""
    report = {i.node: i for i in analyze_converted_graph(gm).items}
    nodes = []

    def producers(arg: Any, quantized: bool = False) -> List[Tuple[str, str]]:
        if not hasattr(arg, "op"):
            return []
        if arg.op == "placeholder":
            return [(arg.name, "int8" if quantized else "fp32")]
        if arg.op == "get_attr":
            return []
        if _is_qdq(arg):
            out: List[Tuple[str, str]] = []
            for a in _tensor_inputs(arg):
                out += producers(a, True)
            return out
        if quantized:
            return [(arg.name, "int8")]
        # float data from an op whose output the lowering fuses into this one
        return [(arg.name, "fused" if _output_quantized(arg) else "fp32")]

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            nodes.append({"name": node.name, "op": "input", "module": "", "status": "input", "inputs": []})
        elif node.op == "call_function" and not _is_qdq(node) and _op_name(node) != "_assert_tensor_metadata":
            inputs: List[Tuple[str, str]] = []
            for a in _tensor_inputs(node):
                inputs += producers(a)
            item = report.get(node.name)
            nodes.append(
                {
                    "name": node.name,
                    "op": _op_name(node),
                    "module": _module_path(node),
                    "status": item.status if item else "float",
                    "inputs": inputs,
                }
            )
        elif node.op == "output":
            inputs = []
            args = node.args[0] if isinstance(node.args[0], (tuple, list)) else [node.args[0]]
            for a in args:
                inputs += producers(a)
            nodes.append({"name": "output", "op": "output", "module": "", "status": "output", "inputs": inputs})
    return nodes


_COLORS = {
    "int8": "#b7e1a1",
    "int8-in/float-out": "#ffe08a",
    "float": "#f4a6a6",
    "no-op": "#dddddd",
    "input": "#9ecae1",
    "output": "#9ecae1",
}


def graph_dot(gm: Any) -> str:
    """Graphviz DOT of the converted graph: one box per op (green int8, yellow int8-in/float-out,
    red float, grey no-op); edges say int8 (quantized data), fused (folded into one int8 kernel with
    the next op) or fp32."""
    lines = [
        "digraph quantized_model {",
        '  rankdir=TB; node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
    ]
    for n in _graph_nodes(gm):
        label = "%s\\n%s\\n[%s]" % (n["op"], n["module"] or n["name"], n["status"])
        lines.append('  "%s" [label="%s", fillcolor="%s"];' % (n["name"], label, _COLORS.get(n["status"], "#ffffff")))
        for src, kind in n["inputs"]:
            lines.append('  "%s" -> "%s" [label="%s", fontsize=8];' % (src, n["name"], kind))
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_text(gm: Any) -> str:
    """The converted graph as text: one line per op with its module, status and inputs."""
    lines = [
        "Quantized graph (torch backend). One line per op; inputs: int8 = quantized data, fused = folded",
        "into one int8 kernel with this op by the x86 lowering, fp32 = float data.",
        "%-24s %-22s %-32s %-18s %s" % ("node", "op", "module", "status", "inputs"),
    ]
    for n in _graph_nodes(gm):
        ins = ", ".join("%s(%s)" % (src, kind) for src, kind in n["inputs"])
        lines.append("%-24s %-22s %-32s %-18s %s" % (n["name"], n["op"], n["module"] or "-", n["status"], ins))
    return "\n".join(lines) + "\n"


def write_graph_picture(gm: Any, out_dir: str, fmt: str, log: Log) -> Artifact:
    """Write ``model.svg`` (graphviz ``dot``) or, when ``dot`` is missing or ``fmt == "text"``,
    ``model_graph.txt``. ``fmt="svg"`` without ``dot`` raises :class:`BackendError`."""
    dot = shutil.which("dot")
    if fmt == "svg" and dot is None:
        raise BackendError(
            _("graph_format = 'svg' needs graphviz's 'dot' program, which is not on PATH"),
            hint=_("install graphviz (apt-get install graphviz) or set [compile] graph_format = 'auto'"),
        )
    if fmt != "text" and dot is not None:
        svg_path = os.path.join(out_dir, "model.svg")
        proc = subprocess.run([dot, "-Tsvg"], input=graph_dot(gm).encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.returncode == 0:
            atomic_write_text(svg_path, proc.stdout.decode("utf-8"))
            return Artifact("model.svg", svg_path, _("Picture of the quantized graph (green int8, red float)."))
        log(_("dot failed (%s); writing the graph as text") % proc.stderr.decode(errors="replace").strip()[:200])
    txt_path = os.path.join(out_dir, "model_graph.txt")
    atomic_write_text(txt_path, graph_text(gm))
    return Artifact("model_graph.txt", txt_path, _("The quantized graph as text (graphviz 'dot' not found for SVG)."))


__all__ = ["graph_dot", "graph_text", "write_graph_picture"]
