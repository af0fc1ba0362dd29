"""TEST DOUBLE of ``horizon_plugin_profiler`` (Horizon Robotics' profiler for the QAT plugin, hbdk4
generation: J6 / RDK S100), only its ``QuantAnalysis`` class.

Follows HorizonRobotics/OE-Skills ``horizon/docs/oe_code_chunk_horizon_plugin_profiler.md`` (v3.3.4: class
API ``QuantAnalysis(baseline, analysis, type, device_ids, post_process, out_dir)`` with
``.auto_find_bad_case(dataloader, num_steps, topk)``, ``.run()``, ``.compare_per_layer(prefixes, types)``,
``.sensitivity(...)``; reports under ``./horizon_quant_analysis`` by default) and
``horizon/skills/plugin/j6-plugin-precision-tuning/SKILL.md``::

    from horizon_plugin_profiler import QuantAnalysis
    qa = QuantAnalysis(float_model, calibration_model, "fake_quant")
    qa.auto_find_bad_case(dataloader)
    qa.run()                 # needs auto_find_bad_case, set_bad_case or load_bad_case first
    qa.compare_per_layer()   # compare_per_layer_out.csv, abnormal_layer_advisor.csv

``load_bad_case()`` reads ``out_dir/all_badcase_info.pt``. ``compare_per_layer_out.csv`` holds, per layer,
``base_model_min``, ``base_model_max``, ``analy_model_min``, ``analy_model_max``, ``COSINE``, ``ATOL`` and
``max_qscale_diff`` (the skill's column names); ``abnormal_layer_advisor.csv`` gives advice such as
"Set fixed scale X" for a clipped range. Analysis types: fake_quant, pre_export, export, convert.

The double's own choices (**unconfirmed**): only ``"fake_quant"`` is emulated (the other types raise
NotImplementedError); the keyword names beyond ``analysis_model_type``; a bad case is the batch whose
outputs differ most (largest absolute difference), ``topk`` of them kept, the worst used by ``run()``;
the layer name column is ``mod_name``, followed by ``base_op_type``, ``analy_op_type``, ``qscale``
(empty without a per-tensor scale) and ``max_qscale_diff`` = ATOL / qscale; the layers are those of the
plugin double's ``featuremap_similarity`` (modules the analysis model's graph calls, matched to the
baseline by name; the output of an op is that of the fake quantizer after it); ``compare_per_layer``
returns the rows as dicts; ``sensitivity`` is not emulated (NotImplementedError). Calls are logged in
``horizon_plugin_pytorch._double.CALLS`` as ``"QuantAnalysis.<method>"``.
"""
import csv
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

__version__ = "3.3.4"
__all__ = ["QuantAnalysis"]

TYPES = ("fake_quant", "pre_export", "export", "convert")
COLUMNS = ["mod_name", "base_op_type", "analy_op_type", "qscale", "base_model_min", "base_model_max",
           "analy_model_min", "analy_model_max", "COSINE", "ATOL", "max_qscale_diff"]


def _log(api: str, **fields: Any) -> Dict[str, Any]:
    from horizon_plugin_pytorch import _double

    return _double.record("QuantAnalysis." + api, **fields)


def _as_args(batch: Any) -> tuple:
    return tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)


class QuantAnalysis(object):
    """Compare a baseline model (float) with an analysis model (fake quant) op by op."""

    def __init__(self, baseline_model: torch.nn.Module, analysis_model: torch.nn.Module, analysis_model_type: str,
                 device_ids: Any = None, post_process: Optional[Callable] = None, out_dir: Optional[str] = None) -> None:
        _log("__init__", analysis_model_type=analysis_model_type, out_dir=out_dir,
             baseline_training=bool(baseline_model.training), analysis_training=bool(analysis_model.training))
        if analysis_model_type not in TYPES:
            raise ValueError("analysis_model_type must be one of %s, got %r" % (list(TYPES), analysis_model_type))
        if analysis_model_type != "fake_quant":
            raise NotImplementedError("test double: QuantAnalysis(%r) is not emulated (only fake_quant)" % analysis_model_type)
        self.baseline_model = baseline_model
        self.analysis_model = analysis_model
        self.post_process = post_process
        self.out_dir = out_dir if out_dir is not None else "./horizon_quant_analysis"
        self.bad_cases: List[Dict[str, Any]] = []
        self._records: Optional[tuple] = None

    # ------------------------------------------------------------------------------- bad cases
    def _outputs(self, model: torch.nn.Module, args: tuple) -> torch.Tensor:
        with torch.no_grad():
            out = model(*args)
        if self.post_process is not None:
            out = self.post_process(out)
        return out

    def auto_find_bad_case(self, data_generator: Any, num_steps: Optional[int] = None, topk: int = 1) -> None:
        """Run both models on up to ``num_steps`` batches; keep the ``topk`` whose outputs differ most
        and save them to ``out_dir/all_badcase_info.pt``."""
        _log("auto_find_bad_case", num_steps=num_steps, topk=topk)
        found = []
        for step, batch in enumerate(data_generator):
            if num_steps is not None and step >= num_steps:
                break
            args = _as_args(batch)
            diff = float((self._outputs(self.baseline_model, args).double()
                          - self._outputs(self.analysis_model, args).double()).abs().max())
            found.append({"index": step, "atol": diff, "inputs": [a.detach().cpu() if isinstance(a, torch.Tensor) else a for a in args]})
        if not found:
            raise ValueError("auto_find_bad_case got no data from the data generator")
        self.bad_cases = sorted(found, key=lambda c: -c["atol"])[:max(int(topk), 1)]
        os.makedirs(self.out_dir, exist_ok=True)
        torch.save({"bad_cases": self.bad_cases}, os.path.join(self.out_dir, "all_badcase_info.pt"))

    def set_bad_case(self, data: Any) -> None:
        _log("set_bad_case")
        self.bad_cases = [{"index": 0, "atol": None, "inputs": list(_as_args(data))}]

    def load_bad_case(self, filename: Optional[str] = None) -> None:
        path = filename or os.path.join(self.out_dir, "all_badcase_info.pt")
        _log("load_bad_case", filename=path)
        self.bad_cases = torch.load(path)["bad_cases"]

    # -------------------------------------------------------------------------------- analysis
    def run(self) -> None:
        """Trace both models on the worst bad case."""
        _log("run", has_bad_case=bool(self.bad_cases))
        if not self.bad_cases:
            raise RuntimeError("no bad case: call auto_find_bad_case, set_bad_case or load_bad_case before run()")
        from horizon_plugin_pytorch.utils.quant_profiler import _record

        args = tuple(self.bad_cases[0]["inputs"])
        self._records = (_record(self.baseline_model, args), _record(self.analysis_model, args))

    def compare_per_layer(self, prefixes: Sequence[str] = (), types: Sequence[Any] = ()) -> List[Dict[str, Any]]:
        """Write ``compare_per_layer_out.csv`` and ``abnormal_layer_advisor.csv`` into ``out_dir``."""
        _log("compare_per_layer", prefixes=list(prefixes), types=[str(t) for t in types])
        if self._records is None:
            raise RuntimeError("call run() before compare_per_layer()")
        from horizon_plugin_pytorch.utils.quant_profiler import _pairs, _scale

        rows, advice = [], []
        for rec, ref, out1, out2 in _pairs(*self._records):
            name, fq = rec["name"], rec.get("fq")
            if prefixes and not any(name.startswith(p) for p in prefixes):
                continue
            if types and not isinstance(rec["module"], tuple(types)):
                continue
            a, b = out1.detach().double().reshape(-1), out2.detach().double().reshape(-1)
            scale = _scale(fq) if fq is not None else None
            atol = float((a - b).abs().max())
            rows.append({
                "mod_name": name, "base_op_type": type(ref["module"]).__name__, "analy_op_type": type(rec["module"]).__name__,
                "qscale": scale, "base_model_min": float(a.min()), "base_model_max": float(a.max()),
                "analy_model_min": float(b.min()), "analy_model_max": float(b.max()),
                "COSINE": float(F.cosine_similarity(a, b, dim=0)), "ATOL": atol,
                "max_qscale_diff": atol / scale if scale else None,
            })
            if scale and fq is not None:
                qmax = float(scale) * float(getattr(fq, "quant_max", 127))
                if float(a.abs().max()) > qmax * 1.0001:
                    advice.append({"mod_name": name, "advice": "clamp error: the float output reaches %.6g, the scale "
                                   "covers %.6g. Set fixed scale %.6g" % (float(a.abs().max()), qmax,
                                                                          float(a.abs().max()) / float(getattr(fq, "quant_max", 127)))})
        os.makedirs(self.out_dir, exist_ok=True)
        with open(os.path.join(self.out_dir, "compare_per_layer_out.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
        with open(os.path.join(self.out_dir, "abnormal_layer_advisor.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["mod_name", "advice"])
            w.writeheader()
            w.writerows(advice)
        return rows

    def sensitivity(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("test double: QuantAnalysis.sensitivity is not emulated")
