"""Benchmark: your own model and images - torchvision's resnet18 on 3 classes of the real CIFAR-10 resized
to 64x64, with the quick preset's stage settings, end to end; figures for the closing note.

    python benchmarks/own_model.py [--data DIR] [--work DIR] [--arch resnet18] [--classes airplane,cat,ship]

Builds an ImageFolder (train/ + val/, 64x64 PNGs resized from CIFAR-10's 32x32 JPEGs with bilinear
filtering) of the chosen classes from ``DIR/cifar10-jpg`` (unpacked from ../shared/data when missing),
then runs the five stages with ``[data] image_size = 64`` and the quick preset's epochs, subsets and
batch size (10,000 training images, float 1 epoch, calib 2,000 images, QAT 1 epoch; all 3,000 test images of those
classes) and
prints per-stage wall time and top-1, and the int8-vs-float drop. Nothing is compared against a
threshold: the figures are the result.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)


def make_folder(src: str, dst: str, classes: list, size: int) -> str:
    from PIL import Image

    for split, src_split in (("train", "train"), ("val", "test")):
        for c in classes:
            out = os.path.join(dst, split, c)
            if os.path.isdir(out) and os.listdir(out):
                continue
            tmp = out + ".partial"
            os.makedirs(tmp, exist_ok=True)
            for name in sorted(os.listdir(os.path.join(src, src_split, c))):
                with Image.open(os.path.join(src, src_split, c, name)) as img:
                    img.convert("RGB").resize((size, size), Image.BILINEAR).save(
                        os.path.join(tmp, os.path.splitext(name)[0] + ".png"))
            os.replace(tmp, out)
    return dst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(REPO, "data"))
    p.add_argument("--work", default=os.path.join(REPO, "runs", "bench-own"))
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--classes", default="airplane,cat,ship")
    p.add_argument("--size", type=int, default=64)
    a = p.parse_args()

    src = os.path.join(a.data, "cifar10-jpg")
    if not os.path.isdir(os.path.join(src, "train")):
        script = os.path.join(REPO, "..", "shared", "data", "make_cifar10.py")
        subprocess.run([sys.executable, script, a.data, "--format", "both"], check=True)
    classes = a.classes.split(",")
    t0 = time.time()
    root = make_folder(src, os.path.join(a.work, "images"), classes, a.size)
    print("data: %s (%s at %dx%d) built in %.0f s" % (root, ", ".join(classes), a.size, a.size, time.time() - t0), flush=True)

    from core import events as E
    from core.pipeline import Pipeline
    from core.settings import PRESETS, validate

    quick = PRESETS["quick"]
    settings = validate(dict(quick, run={"run_dir": os.path.join(a.work, "run-%s" % a.arch)},
                             data=dict(quick["data"], root=root, image_size=a.size),
                             model={"arch": a.arch}))
    finished = {}

    def emit(ev):
        if isinstance(ev, E.StageFinished):
            finished[ev.stage] = ev
            top1 = ev.metrics.get("top1")
            print("%-10s %6.0f s  top-1 %s" % (ev.stage, ev.seconds, "%.2f%%" % top1 if top1 is not None else "-"), flush=True)
        elif isinstance(ev, E.StageFailed):
            print("FAILED %s: %s (%s)" % (ev.stage, ev.message, ev.hint), flush=True)
        elif isinstance(ev, E.LogLine) and ev.text.startswith(("model:", "imagefolder in")):
            print("  " + ev.text, flush=True)

    t1 = time.time()
    ok = Pipeline(settings, emit=emit).run(force=True)
    total = time.time() - t1
    print("total      %6.0f s  (%.1f min, %d CPU cores)" % (total, total / 60, os.cpu_count() or 0))
    if "float" in finished and "int_infer" in finished:
        f, i = finished["float"].metrics["top1"], finished["int_infer"].metrics["top1"]
        print("int8 vs float top-1: %.2f - %.2f = %+.2f points" % (i, f, i - f))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
