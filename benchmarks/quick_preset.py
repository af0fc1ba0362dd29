"""Benchmark: the quick preset end to end on the real CIFAR-10, with figures for the closing note.

    python benchmarks/quick_preset.py [--data DIR] [--run-dir DIR] [--layout auto|cifar-python|imagefolder]

Unpacks ../shared/data into --data when needed, runs the quick preset (float 1 epoch + QAT 1 epoch on
10,000 training images, calibration on 2,000, evaluation on all 10,000 test images) and prints:
per-stage wall time and top-1, the int8-vs-float top-1 difference, artifact sizes, and the latency
ratio of the int8 package against the fp32 eager model measured in the same process (perf.json).
The issue's targets: all five stages in under 20 minutes on 2 CPU cores; int8 top-1 within 1.5 points
of float top-1.
"""
import argparse
import json
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
    p.add_argument("--run-dir", default=os.path.join(REPO, "runs", "bench-quick"))
    p.add_argument("--layout", default="auto", choices=["auto", "cifar-python", "imagefolder"])
    p.add_argument("--fresh", action="store_true", help="delete the run directory first")
    a = p.parse_args()

    if not os.path.exists(os.path.join(a.data, "cifar-10-batches-py", "batches.meta")):
        script = os.path.join(REPO, "..", "shared", "data", "make_cifar10.py")
        subprocess.run([sys.executable, script, a.data, "--format", "both"], check=True)
    if a.fresh and os.path.isdir(a.run_dir):
        import shutil

        shutil.rmtree(a.run_dir)

    from core import events as E
    from core.pipeline import Pipeline
    from core.settings import preset

    settings = preset("quick", data={"root": a.data, "layout": a.layout}, run={"run_dir": a.run_dir})
    finished = {}
    sizes = {}
    t0 = time.time()

    def emit(ev):
        if isinstance(ev, E.StageFinished):
            finished[ev.stage] = ev
            print("%-10s %6.0f s  top-1 %s" % (ev.stage, ev.seconds, "%.2f%%" % ev.metrics["top1"] if "top1" in ev.metrics else "-"), flush=True)
        elif isinstance(ev, E.ArtifactWritten):
            sizes[ev.name] = ev.size
        elif isinstance(ev, E.StageFailed):
            print("FAILED %s: %s (%s)" % (ev.stage, ev.message, ev.hint), flush=True)

    ok = Pipeline(settings, emit=emit).run(force=True)
    total = time.time() - t0
    print("total      %6.0f s  (%.1f min; target < 20 min on 2 cores; %d CPU cores here)" % (total, total / 60, os.cpu_count() or 0))
    if not ok:
        return 1
    f1 = finished["float"].metrics["top1"]
    i1 = finished["int_infer"].metrics["top1"]
    print("float top-1 %.2f%%, int8 top-1 %.2f%%: difference %+.2f points (target within 1.5)" % (f1, i1, i1 - f1))
    for name, size in sizes.items():
        print("  %-22s %10d bytes" % (name, size))
    with open(os.path.join(settings.run_path(), "perf.json")) as fh:
        perf = json.load(fh)
    for bs, ratio in perf["speedup"].items():
        print("int8 package vs fp32 eager at batch %s: %.2fx faster (same process)" % (bs, ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
