"""The perf report of the torch backend: median latency of the fp32 eager model and of the quantized
model per batch size on the CPU, FLOPs and parameters, as JSON and as a self-contained HTML page."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any, Callable, Dict, List, Optional

from ...io import human_size

def _latency_ms(fn: Callable, x: Any, iters: int) -> float:
    import torch

    with torch.no_grad():
        for _ in range(3):
            fn(x)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t0) * 1000.0)
    return float(statistics.median(times))


def count_flops(model: Any, x: Any) -> Optional[int]:
    """FLOPs of one forward pass (2 x multiply-accumulates of conv/linear/matmul), via
    ``torch.utils.flop_counter.FlopCounterMode`` (torch >= 2.1); None where unavailable."""
    import torch

    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops())


def measure_perf(
    float_model: Any,
    quantized: Callable,
    quantized_label: str,
    image_shape: Any,
    batch_sizes: List[int],
    iterations: int,
) -> Dict[str, Any]:
    """Median latency (ms) per batch size of the fp32 eager model and the quantized model, CPU.

    Returns a JSON-ready dict: ``rows`` (one per model and batch size: latency_ms, images_per_s),
    ``speedup`` per batch size, ``params``, ``flops_per_image``, and the machine/threads used.
    """
    import torch

    float_model = float_model.cpu().eval()
    rows = []
    speedup = {}
    for bs in batch_sizes:
        x = torch.randn((bs,) + tuple(image_shape))
        f_ms = _latency_ms(float_model, x, iterations)
        q_ms = _latency_ms(quantized, x, iterations)
        rows.append({"model": "fp32 float model (eager)", "batch": bs, "latency_ms": f_ms, "images_per_s": bs * 1000.0 / f_ms})
        rows.append({"model": quantized_label, "batch": bs, "latency_ms": q_ms, "images_per_s": bs * 1000.0 / q_ms})
        speedup[str(bs)] = f_ms / q_ms if q_ms > 0 else None
    x1 = torch.randn((1,) + tuple(image_shape))
    return {
        "rows": rows,
        "speedup": speedup,
        "params": int(sum(p.numel() for p in float_model.parameters())),
        "flops_per_image": count_flops(float_model, x1),
        "iterations": iterations,
        "threads": torch.get_num_threads(),
        "machine": "%s, %s, %d cores" % (platform.machine(), platform.processor() or platform.system(), os.cpu_count() or 1),
        "torch": torch.__version__,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def render_perf_html(perf: Dict[str, Any]) -> str:
    """A self-contained HTML page of the perf figures (no scripts, no external files)."""
    import html

    def esc(v: Any) -> str:
        return html.escape(str(v))

    rows = "".join(
        "<tr><td>%s</td><td>%d</td><td>%.2f</td><td>%.0f</td></tr>"
        % (esc(r["model"]), r["batch"], r["latency_ms"], r["images_per_s"])
        for r in perf.get("rows", [])
    )
    speed = "".join(
        "<tr><td>%s</td><td>%s</td></tr>" % (esc(bs), "%.2fx" % s if s else "-") for bs, s in perf.get("speedup", {}).items()
    )
    sizes = "".join(
        "<tr><td>%s</td><td>%s</td><td>%d</td></tr>" % (esc(k), esc(human_size(v)), v)
        for k, v in perf.get("sizes", {}).items()
    )
    flops = perf.get("flops_per_image")
    kernels = perf.get("kernels") or {}
    kern = "".join("<tr><td>%s</td><td>%d</td></tr>" % (esc(k), v) for k, v in kernels.items())
    return """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>qat-tui perf report</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #999;padding:4px 10px;text-align:right}th{background:#eee}td:first-child{text-align:left}</style>
</head><body>
<h1>Perf report</h1>
<p>Median of %(iters)d timed runs after 3 warm-up runs, CPU, %(threads)d threads, %(machine)s, torch %(torch)s,
measured %(when)s.</p>
<h2>Latency</h2>
<table><tr><th>model</th><th>batch</th><th>latency (ms)</th><th>images/s</th></tr>%(rows)s</table>
<h2>Speed-up of the quantized model over fp32</h2>
<table><tr><th>batch</th><th>speed-up</th></tr>%(speed)s</table>
<h2>Model</h2>
<table><tr><th>figure</th><th>value</th></tr>
<tr><td>parameters</td><td>%(params)s</td></tr>
<tr><td>FLOPs per image (2 x MACs, conv/linear)</td><td>%(flops)s</td></tr></table>
<h2>Kernels in the package</h2>
<table><tr><th>kind</th><th>count</th></tr>%(kern)s</table>
<h2>Files</h2>
<table><tr><th>file</th><th>size</th><th>bytes</th></tr>%(sizes)s</table>
</body></html>
""" % {
        "iters": perf.get("iterations", 0),
        "threads": perf.get("threads", 0),
        "machine": esc(perf.get("machine", "")),
        "torch": esc(perf.get("torch", "")),
        "when": esc(perf.get("measured_at", "")),
        "rows": rows,
        "speed": speed,
        "params": "{:,}".format(perf.get("params", 0)),
        "flops": "{:,}".format(flops) if flops is not None else "n/a",
        "kern": kern or "<tr><td>(no package)</td><td>-</td></tr>",
        "sizes": sizes,
    }


__all__ = ["measure_perf", "count_flops", "render_perf_html"]
