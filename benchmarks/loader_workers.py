"""Benchmark: the float and QAT stages' training throughput against a bare loop, by loader workers.

    python benchmarks/loader_workers.py [--data DIR] [--images 5120] [--batch-size 256]

In one process, on the real CIFAR-10 (cifar-python layout, as ``make data`` unpacks it): a bare
PyTorch loop (the same model and data, a DataLoader with 0 workers, forward/backward/step, nothing
else) is the baseline; then qat-tui's float stage and QAT stage train the same images with
``[data] num_workers`` = 2 (the old default) and "auto" (what ``core.data.auto_num_workers`` picks
here). Printed: images/s of each and its ratio to the bare loop of the same model (float, or the
QAT-prepared model). Target: "auto" at 0.95x or better.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)


def bare_loop(model, dataset, batch_size, batches):
    """images/s of plain training over ``batches`` batches, timed from the first batch as qat-tui's
    BatchProgress is."""
    import torch
    import torch.nn.functional as F

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    seen, t0 = 0, time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if i >= batches:
            break
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += x.shape[0]
    return seen / (time.perf_counter() - t0)


def stage_rate(settings_dict, stages):
    """images/s of the last stage's training epoch, as qat-tui measures it (BatchProgress)."""
    from core import events as E
    from core.pipeline import Pipeline
    from core.settings import validate

    last = {}

    def emit(ev):
        if isinstance(ev, E.BatchProgress) and ev.phase == "train":
            last[ev.stage] = ev.images_per_s
        elif isinstance(ev, E.StageFailed):
            raise SystemExit("%s failed: %s" % (ev.stage, ev.message))

    Pipeline(validate(settings_dict), emit=emit).run(stages=stages, force=True)
    return last[stages[-1]]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(REPO, "data"))
    p.add_argument("--images", type=int, default=5120)
    p.add_argument("--batch-size", type=int, default=256)
    a = p.parse_args()
    if not os.path.exists(os.path.join(a.data, "cifar-10-batches-py", "batches.meta")):
        import subprocess

        subprocess.run([sys.executable, os.path.join(REPO, "..", "shared", "data", "make_cifar10.py"), a.data,
                        "--format", "both"], check=True)
    import torch

    from core.backends.torch_pt2e import TorchPt2eBackend
    from core.data import DataBundle, resolve_num_workers
    from core.models import build_float_model
    from core.settings import DataSettings, QconfigSettings

    run_dir = tempfile.mkdtemp(prefix="bench-loader-")
    base = {
        "run": {"run_dir": run_dir, "seed": 0},
        "data": {"root": os.path.join(a.data, "cifar-10-batches-py"), "train_images": a.images, "eval_images": 256,
                 "batch_size": a.batch_size, "eval_batch_size": 256, "augment": "crop_flip"},
        "model": {"width_mult": 1.0},
        "float": {"epochs": 1}, "calib": {"enabled": False}, "qat": {"epochs": 1},
        "int_infer": {"enabled": False}, "compile": {"enabled": False},
    }
    auto = resolve_num_workers(DataSettings(**base["data"]))
    batches = a.images // a.batch_size
    print("%d cores, %d threads; %d images, batch %d; num_workers auto -> %d here"
          % (os.cpu_count() or 0, torch.get_num_threads(), a.images, a.batch_size, auto))
    backend = TorchPt2eBackend()
    bundle = DataBundle(DataSettings(**dict(base["data"], num_workers=0)), 0, backend.normalize_transform(), 10, print)
    torch.manual_seed(0)
    bare_float = bare_loop(build_float_model(10, 1.0, backend.quant_stubs()).train(), bundle.train, a.batch_size, batches)
    prepared = backend.prepare(build_float_model(10, 1.0, backend.quant_stubs()).eval(), (bundle.example_batch(8),),
                               "qat", QconfigSettings())
    backend.set_fake_quant_state(prepared, "qat")
    bare_qat = bare_loop(prepared, bundle.train, a.batch_size, batches)
    print("%-28s %7.1f images/s" % ("bare loop, float model", bare_float))
    print("%-28s %7.1f images/s" % ("bare loop, QAT model", bare_qat))
    for workers in (2, "auto"):
        cfg = dict(base, data=dict(base["data"], num_workers=workers))
        f = stage_rate(cfg, ["float"])
        q = stage_rate(cfg, ["qat"])
        label = "num_workers = %s" % (workers if workers != "auto" else "auto (%d)" % auto)
        print("%-28s float %7.1f images/s (%.2fx), qat %7.1f images/s (%.2fx)"
              % (label, f, f / bare_float, q, q / bare_qat), flush=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
