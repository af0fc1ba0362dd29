"""TEST DOUBLE of ``hbdk4.compiler`` (Horizon Robotics' hbdk4 compiler, J6 / RDK S100 nash marches).

Follows the API as used/described in HorizonRobotics/OE-Skills@0c35b73:
``horizon/docs/oe_code_chunk_hbdk4_compiler.md`` (load, save, convert, compile, link, statistics,
visualize, hbm_perf; Module/Function; Hbm/Graph; marches nash-e, nash-m, nash-p, nash-h, nash-b,
nash-b-lite, nash-b-plus), ``horizon/skills/plugin/j6-plugin-hbdk-generating/j6-hbdk-export-compile/
SKILL.md`` (``convert(qat_bc, march)``, ``quantized_model.functions[0].remove_io_op(op_types=["Dequantize",
"Quantize"])``, ``statistics`` where "hbtl" ops run on the CPU, ``compile(m, "model.hbm", march, opt=2,
jobs=64, progress_bar=True, debug=False)``) and Horizon's HAT ``HbirCompiler`` (``compile(m, path=...,
march=..., opt=..., jobs=..., max_time_per_fc=..., debug=...)``, ``hbm_perf(hbm, out_dir)``).

What the double does (its own choices, **unconfirmed** against the real compiler): a ``Module`` holds
the traced integer model (the plugin double's ``export`` converts before tracing) and the HBIR
description of ``hbdk.torch_script._hbir``; ``save``/``load`` use ``.bc`` files of the double's format
(magic line, JSON header, TorchScript bytes) and ``save`` requires the ``.bc`` suffix (ValueError);
``convert`` requires a nash march (ValueError) and marks float convolutions/linears as CPU ops
("hbtl.call") instead of failing; ``compile`` requires a converted module, ``path`` ending in
``.hbm``/``.hbo``, the same march as ``convert``, ``opt`` 0..2 and ``balance`` 0..100 (ValueError);
``hbm_perf`` writes ``<output_dir>/<hbm file stem>.html`` and ``.json`` with invented estimates (marked
``"test double": true``) and returns the dict; ``visualize`` writes a placeholder file (not a real
ONNX model) and refuses ``use_netron=True`` (it would start a web server) with
``horizon_plugin_pytorch._double.DoubleRefusal``. ``Hbm.graphs[0].feed(inputs)`` runs the traced model on
the CPU. Calls are logged in ``horizon_plugin_pytorch._double.CALLS`` (``"api": "hbdk4.<name>"``).
"""
import copy
import enum
import io
import json
import os
import struct
from typing import Any, Dict, List, Optional, Sequence

import torch

from .version import VERSION

__all__ = ["March", "Module", "Function", "Argument", "Hbm", "Hbo", "Graph", "load", "save", "convert",
           "compile", "link", "statistics", "visualize", "hbm_perf"]

_BC_MAGIC = b"HBDK4-TEST-DOUBLE-BC\n"
_HBM_MAGIC = b"HBDK4-TEST-DOUBLE-HBM\n"


class March(enum.Enum):
    nash_e = "nash-e"
    nash_m = "nash-m"
    nash_p = "nash-p"
    nash_h = "nash-h"
    nash_b = "nash-b"
    nash_b_lite = "nash-b-lite"
    nash_b_plus = "nash-b-plus"

    def __str__(self) -> str:
        return self.value


def _march_str(march: Any) -> str:
    m = march.value if isinstance(march, March) else str(march)
    if m not in [x.value for x in March]:
        raise ValueError("invalid march %r for hbdk4 (one of %s)" % (m, ", ".join(x.value for x in March)))
    return m


def _log(api: str, **fields: Any) -> Dict[str, Any]:
    try:
        from horizon_plugin_pytorch import _double
    except ImportError:  # pragma: no cover
        return {}
    return _double.record("hbdk4." + api, **fields)


class Argument(object):
    """A function input or output."""

    def __init__(self, name: str, shape: Optional[List[int]], kind: str) -> None:
        self.name = name
        self.shape = shape
        self.kind = kind  # "input" | "output"
        self.attached_ops = ["Quantize"] if kind == "input" else ["Dequantize"]

    @property
    def is_removable(self):
        return (bool(self.attached_ops), "" if self.attached_ops else "nothing attached")

    def __repr__(self) -> str:
        return "Argument(%s, %s, ops=%s)" % (self.name, self.shape, self.attached_ops)


class Function(object):
    def __init__(self, module: "Module") -> None:
        self._module = module
        desc = module._desc
        self.name = module.name
        self.inputs = [Argument(i["name"], i.get("shape"), "input") for i in desc.get("inputs", [])]
        self.outputs = [Argument(o["name"], None, "output") for o in desc.get("outputs", [])]

    def remove_io_op(self, op_types: Optional[Sequence[str]] = None, op_names: Optional[Sequence[str]] = None) -> None:
        """Remove the Quantize ops on the inputs / Dequantize ops on the outputs."""
        types = list(op_types) if op_types is not None else ["Quantize", "Dequantize"]
        for t in types:
            if t not in ("Quantize", "Dequantize"):
                raise ValueError("test double: remove_io_op emulates op_types Quantize and Dequantize, not %r" % t)
        for a in self.inputs + self.outputs:
            a.attached_ops = [op for op in a.attached_ops if op not in types]
        self._module._io_removed = sorted(set(self._module._io_removed) | set(types))
        _log("remove_io_op", op_types=types)

    def statistics(self) -> Dict[str, int]:
        return statistics(self._module, _print=False)

    @property
    def flatten_inputs(self) -> List[Argument]:
        return list(self.inputs)

    @property
    def flatten_outputs(self) -> List[Argument]:
        return list(self.outputs)

    def feed(self, feed_dict: Dict[str, Any]) -> Dict[str, Any]:
        """HBIR inference: ``{input name: numpy array}`` -> ``{output name: numpy array}``
        (OE-Skills ``horizon/skills/hbdk/hbdk-manual/model-inference.md``: ``Module[i].feed(feed_dict) ->
        Dict[str, np.ndarray]``). The double runs its traced integer model on the CPU. After
        ``remove_io_op`` the real inputs are the quantized tensors; that is not emulated (the double
        raises NotImplementedError), nor is the memory reuse between calls the reference mentions."""
        import numpy as np

        _log("feed", function=self.name, inputs=sorted(feed_dict), stage=self._module.stage)
        if self._module._io_removed:
            raise NotImplementedError("test double: feed after remove_io_op (quantized inputs) is not emulated")
        missing = [a.name for a in self.inputs if a.name not in feed_dict]
        if missing:
            raise ValueError("feed_dict lacks the inputs %s (the function's inputs: %s)"
                             % (missing, [a.name for a in self.inputs]))
        args = []
        for a in self.inputs:
            v = feed_dict[a.name]
            if not isinstance(v, np.ndarray):
                raise TypeError("test double: feed expects numpy arrays, got %s for %s" % (type(v).__name__, a.name))
            if a.shape is not None and list(v.shape) != list(a.shape):
                raise ValueError("input %s has shape %s, the HBIR expects %s (static shapes)" % (a.name, list(v.shape), a.shape))
            args.append(torch.from_numpy(np.ascontiguousarray(v)))
        with torch.no_grad():
            out = self._module._traced(*args)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return {a.name: o.detach().cpu().numpy() for a, o in zip(self.outputs, outs)}


class Module(object):
    """An HBIR module of the double (traced integer model + description)."""

    def __init__(self, traced: Any, desc: Dict[str, Any], name: str = "forward", stage: str = "qat",
                 march: Optional[str] = None, io_removed: Optional[List[str]] = None) -> None:
        self._traced = traced
        self._desc = desc
        self.name = name
        self.stage = stage
        self.march = march
        self._io_removed = list(io_removed or [])
        self.functions = [Function(self)]

    @classmethod
    def _from_traced(cls, traced: Any, example_inputs: Any, name: str = "forward", input_names=None,
                     output_names=None) -> "Module":
        from hbdk.torch_script import _hbir

        desc = _hbir.describe(traced, example_inputs, None, getattr(traced, "original_name", name))
        if input_names:
            for inp, n in zip(desc["inputs"], input_names):
                inp["name"] = n
        if output_names:
            for out, n in zip(desc["outputs"], output_names):
                out["name"] = n
        return cls(traced, desc, name=name)

    def clone(self) -> "Module":
        return Module(self._traced, copy.deepcopy(self._desc), self.name, self.stage, self.march, self._io_removed)

    def __getitem__(self, i: int) -> Function:
        return self.functions[i]

    def __repr__(self) -> str:
        return "hbdk4.compiler.Module(%s, stage=%s, march=%s) [test double]" % (self.name, self.stage, self.march)


def _write(path: str, magic: bytes, header: Dict[str, Any], traced: Any) -> None:
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    data = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(magic)
        f.write(struct.pack(">Q", len(data)))
        f.write(data)
        f.write(buf.getvalue())


def _read(path: str, magic: bytes):
    with open(path, "rb") as f:
        if f.read(len(magic)) != magic:
            raise ValueError("%s is not a file written by the hbdk4 test double" % path)
        (n,) = struct.unpack(">Q", f.read(8))
        header = json.loads(f.read(n).decode())
        traced = torch.jit.load(io.BytesIO(f.read()))
    return header, traced


def save(m: Module, path: str) -> None:
    """Save a module as ``.bc`` (the double's format)."""
    _log("save", path=path, stage=m.stage)
    if not str(path).endswith(".bc"):
        raise ValueError("test double: hbdk4 save expects a .bc path, got %r" % path)
    _write(path, _BC_MAGIC, {"desc": m._desc, "name": m.name, "stage": m.stage, "march": m.march,
                             "io_removed": m._io_removed, "hbdk4_version": VERSION, "test double": True}, m._traced)


def load(path: str) -> Module:
    _log("load", path=path)
    header, traced = _read(path, _BC_MAGIC)
    return Module(traced, header["desc"], header["name"], header["stage"], header["march"], header["io_removed"])


def convert(m: Module, march: Any, advice: bool = False, advice_path: str = "", **kwargs: Any) -> Module:
    """Lower a (QAT) HBIR module for ``march``; float conv/linear ops become CPU (hbtl) ops."""
    entry = _log("convert", march_arg=str(march), stage=m.stage)
    ms = _march_str(march)
    if m.stage != "qat":
        raise ValueError("test double: convert expects the exported (QAT) module, got a %s one" % m.stage)
    out = m.clone()
    out.stage = "quantized"
    out.march = ms
    out._desc["march"] = ms
    for layer in out._desc.get("layers", []):
        layer["device"] = "cpu" if layer.get("float_weight") else "bpu"
    if advice:
        text = "\n".join("ADVICE: %s (%s) [test double advice]" % (l["name"], l["op"])
                         for l in out._desc.get("layers", []) if l["op"].startswith(("conv", "linear")))
        if advice_path:
            with open(advice_path, "w") as f:
                f.write(text + "\n")
        else:
            print(text)
    entry["result"] = "Module"
    return out


def statistics(m: Module, _print: bool = True) -> Dict[str, int]:
    """Op counts: ``hbir.<op>`` for BPU ops, ``hbtl.call::<op>`` for CPU ops (plus unsupported items)."""
    _log("statistics", stage=m.stage, io_removed=list(m._io_removed))
    counts = {}  # type: Dict[str, int]
    for layer in m._desc.get("layers", []):
        key = ("hbtl.call::" if layer.get("device") == "cpu" or layer.get("float_weight") else "hbir.") + layer["op"]
        counts[key] = counts.get(key, 0) + 1
    for item in m._desc.get("unsupported", []):
        if "fake-quantize" in item or "no quantize op" in item:
            counts["hbtl.call::float_model"] = counts.get("hbtl.call::float_model", 0) + 1
    if _print:
        print("op statistics [test double]:")
        for k in sorted(counts):
            print("  %-40s %d" % (k, counts[k]))
    return counts


class Graph(object):
    def __init__(self, hbm: "Hbm") -> None:
        self._hbm = hbm
        self.name = hbm._header["name"]
        self.inputs = [i["name"] for i in hbm._header["desc"].get("inputs", [])]
        self.outputs = [o["name"] for o in hbm._header["desc"].get("outputs", [])]

    def feed(self, inputs: Any, remote_ip: Optional[str] = None, **kwargs: Any):
        """Run the model on the CPU (the double has no BPU simulator); ``remote_ip`` is refused."""
        if remote_ip:
            from horizon_plugin_pytorch._double import DoubleRefusal

            raise DoubleRefusal("test double: Graph.feed(remote_ip=...) would connect to a board over SSH")
        args = [inputs[k] for k in self.inputs] if isinstance(inputs, dict) else list(inputs)
        with torch.no_grad():
            out = self._hbm._traced(*args)
        return out

    def perf(self, output_dir: str = ".", **kwargs: Any):
        return hbm_perf(self._hbm.path, output_dir=output_dir)


class Hbm(object):
    """A compiled model file (``.hbm``) written by the double."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._header, self._traced = _read(path, _HBM_MAGIC)
        self.version = self._header.get("hbdk4_version")
        self.description = self._header.get("description", "")
        self.graphs = [Graph(self)]


class Hbo(Hbm):
    """An object file (``.hbo``) to ``link`` into an hbm."""


def compile(m: Module, path: str, march: Any, opt: int = 2, jobs: int = 4, max_time_per_fc: float = 0.0,
            debug: bool = False, progress_bar: bool = False, advice: float = 0.0, balance: int = 100,
            input_no_padding: bool = False, output_no_padding: bool = False, **kwargs: Any):
    """Compile a converted module to ``path`` (.hbm or .hbo)."""
    entry = _log("compile", path=path, march_arg=str(march), opt=opt, jobs=jobs, debug=debug, balance=balance,
                 stage=m.stage, io_removed=list(m._io_removed))
    ms = _march_str(march)
    if m.stage != "quantized":
        raise ValueError("test double: compile expects the module returned by convert(m, march)")
    if m.march != ms:
        raise ValueError("test double: module converted for %s, compiled for %s" % (m.march, ms))
    if not str(path).endswith((".hbm", ".hbo")):
        raise ValueError("test double: compile path must end with .hbm or .hbo, got %r" % path)
    if opt not in (0, 1, 2):
        raise ValueError("test double: opt must be 0, 1 or 2, got %r" % (opt,))
    if not 0 <= int(balance) <= 100:
        raise ValueError("test double: balance must be in [0, 100], got %r" % (balance,))
    if progress_bar:
        print("[" + "=" * 50 + "] 100%")
    header = {"desc": m._desc, "name": m.name, "march": ms, "opt": opt, "jobs": jobs, "debug": debug,
              "balance": balance, "io_removed": m._io_removed, "hbdk4_version": VERSION, "test double": True,
              "description": ""}
    magic = _HBM_MAGIC
    _write(path, magic, header, m._traced)
    entry["files"] = [path]
    return Hbo(path) if str(path).endswith(".hbo") else Hbm(path)


def link(hbo_list: Sequence[Any], path: str, **kwargs: Any) -> Hbm:
    _log("link", path=path, n=len(hbo_list))
    if len(hbo_list) != 1:
        raise NotImplementedError("test double: link of several hbo files is not emulated")
    if not str(path).endswith(".hbm"):
        raise ValueError("test double: link output must end with .hbm")
    src = hbo_list[0].path if isinstance(hbo_list[0], Hbm) else str(hbo_list[0])
    with open(src, "rb") as f, open(path, "wb") as g:
        g.write(f.read())
    return Hbm(path)


def hbm_perf(model: Any, output_dir: str = ".", **kwargs: Any) -> Dict[str, Any]:
    """Invented performance estimate of an hbm: writes ``<output_dir>/<stem>.html`` and ``.json``."""
    path = model.path if isinstance(model, Hbm) else str(model)
    entry = _log("hbm_perf", hbm=path, output_dir=output_dir)
    header, _ = _read(path, _HBM_MAGIC)
    desc = header["desc"]
    ops_s, bw = 8.0e12, 1.6e10  # invented nash figures
    layers = desc.get("layers", [])
    lat = sum(max(l["ops"] / ops_s, (l.get("in_bytes", 0) + l.get("out_bytes", 0) + l.get("weight_bytes", 0)) / bw)
              * 1e6 + 0.3 for l in layers) or 1.0
    batch = max(1, int((desc.get("inputs") or [{"shape": [1]}])[0].get("shape", [1])[0]))
    stem = os.path.splitext(os.path.basename(path))[0]
    summary = {"FPS": round(batch / (lat / 1e6), 2), "latency (us)": round(lat, 1), "latency (ms)": round(lat / 1000, 3),
               "BPU march": header["march"], "HBDK version": header.get("hbdk4_version", VERSION), "model name": header["name"],
               "frame per run": batch, "test double": True}
    result = {"summary": summary, "test double": True,
              "test double note": "hbdk4 test double: invented estimates, not hbdk4-perf results"}
    os.makedirs(output_dir, exist_ok=True)
    base = os.path.join(output_dir, stem)
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    with open(base + ".html", "w") as f:
        f.write("<html><body><h1>%s [hbdk4 test double]</h1><pre>%s</pre></body></html>\n"
                % (stem, json.dumps(summary, indent=1)))
    entry["files"] = [base + ".html", base + ".json"]
    return result


def visualize(m: Module, onnx_file: Optional[str] = None, use_netron: bool = False, **kwargs: Any) -> str:
    """Write a placeholder for the ONNX visualization (not a real ONNX model); netron is refused."""
    _log("visualize", onnx_file=onnx_file, use_netron=use_netron)
    if use_netron:
        from horizon_plugin_pytorch._double import DoubleRefusal

        raise DoubleRefusal("test double: visualize(use_netron=True) would start a netron web server")
    if onnx_file is None:
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".onnx", delete=False) as tmp:
            onnx_file = tmp.name
    with open(onnx_file, "w") as f:
        f.write("# hbdk4 test double: placeholder for an ONNX visualization of %s\n" % m.name)
        for layer in m._desc.get("layers", []):
            f.write("%s %s <- %s\n" % (layer["name"], layer["op"], ",".join(layer.get("inputs", []))))
    return onnx_file
