"""Benchmark: the per-layer debug (``qat-tui debug``) of the quick preset's run on the real CIFAR-10.

    python benchmarks/debug_quick.py [--data DIR] [--run-dir DIR]

Runs the quick preset (MobileNetV2, float 1 epoch + calib + QAT 1 epoch on 10,000 training images; see
benchmarks/quick_preset.py) into --run-dir unless its stages are already done with these settings
(compile off: the debug needs the float and QAT checkpoints only), then times the debug with the default
``[debug]`` settings (32 images compared, the 8 worst layers' sensitivity, 500 evaluation images) and
prints its parts, the worst layers and what the top-1 gains are. The issue's target: under 2 minutes on
2 CPU cores. The figure is the debug's own wall time in this process; nothing else should run.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(REPO, "data"))
    p.add_argument("--run-dir", default=os.path.join(REPO, "runs", "bench-debug"))
    a = p.parse_args()
    if not os.path.exists(os.path.join(a.data, "cifar-10-batches-py", "batches.meta")):
        script = os.path.join(REPO, "..", "shared", "data", "make_cifar10.py")
        subprocess.run([sys.executable, script, a.data, "--format", "both"], check=True)

    from core import events as E
    from core.debug import run_debug
    from core.pipeline import Pipeline
    from core.settings import preset

    settings = preset("quick", data={"root": a.data}, run={"run_dir": a.run_dir}, compile={"enabled": False})

    def emit(ev):
        if isinstance(ev, E.StageFinished):
            print("%-10s %6.0f s  top-1 %.2f%%" % (ev.stage, ev.seconds, ev.metrics.get("top1", float("nan"))), flush=True)
        elif isinstance(ev, E.StageFailed):
            print("FAILED %s: %s (%s)" % (ev.stage, ev.message, ev.hint), flush=True)

    if not Pipeline(settings, emit=emit).run():
        return 1
    marks = [("start", time.time())]

    def log(line):
        marks.append((line, time.time()))
        print("  %6.1f s  %s" % (marks[-1][1] - marks[0][1], line), flush=True)

    t0 = time.time()
    report = run_debug(settings, log=log)
    seconds = time.time() - t0
    print("debug: %d layers, %d images compared, %d for top-1; %.0f s (target < 120 s; %d CPU cores)" % (
        len(report.layers), report.images, report.eval_images, seconds, os.cpu_count() or 0))
    print("top-1 on the evaluation subset: float %.2f%%, %s %.2f%%" % (report.top1["float"], report.source, report.top1["quantized"]))
    for r in report.worst()[:8]:
        print("  %2d %-28s own %5.1f dB  accumulated %5.1f dB  top-1 gain %s  %s" % (
            r["rank"], r["name"], r["same_input"]["sqnr_db"], r["accumulated"]["sqnr_db"],
            "-" if r["top1_gained"] is None else "%+.2f" % r["top1_gained"], "; ".join(r["reasons"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
