"""Benchmark: training throughput when two runs share the CPU, against one run alone.

    python benchmarks/contention.py [--batches 30] [--batch-size 128] [--width 1.0]

Each trainer is a separate process running a bare MobileNetV2 training loop (random 32x32 images,
batch 128, SGD), the loop qat-tui's float stage runs. A trainer started with ``--qat-tui`` takes its
threads and OpenMP wait policy from :mod:`core.threads` as the worker does (held run-folder lock,
``choose_at_start`` before torch is imported, a :class:`ThreadGovernor` re-planning between batches).

Printed, as images/s and as ratios against "alone" measured in this same invocation:

* alone: one trainer, torch's defaults (one thread per core).
* two, torch defaults: the collapse the issue measured (16.5 vs 378 images/s on 2 cores).
* two, OMP_WAIT_POLICY=PASSIVE / two, 1 thread each: the candidate remedies.
* two, qat-tui policy: the first starts alone (all cores), the second starts while it trains; both
  follow core.threads. Target: each keeps at least 0.4x of alone (together at least 0.8x).

Throughput of a pair is measured over the time both trainers were training.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def trainer(a: argparse.Namespace) -> int:
    """One training process: prints one JSON line per batch (time, images)."""
    sys.path.insert(0, REPO)
    governor = None
    if a.qat_tui:
        from core import threads
        from core.runs import RunLock, register_run

        run_dir = tempfile.mkdtemp(prefix="bench-contention-")
        lock = RunLock(run_dir).acquire()  # noqa: F841  held for the life of the process, as a worker's
        register_run(run_dir)
        choice = threads.choose_at_start(run_dir)
        threads.apply_wait_policy(choice)
        print(json.dumps({"plan": choice.threads, "policy": choice.wait_policy, "reason": choice.reason}), flush=True)
    import torch
    import torch.nn.functional as F
    from torchvision.models import mobilenet_v2

    if a.qat_tui:
        torch.set_num_threads(choice.threads)
        governor = threads.ThreadGovernor(run_dir, log=lambda m: print(json.dumps({"log": m}), flush=True))
        governor.current = choice.threads
    elif a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = mobilenet_v2(num_classes=10, width_mult=a.width).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(a.batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (a.batch_size,))
    for i in range(a.batches):
        if governor is not None:
            governor.maybe_adjust()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(json.dumps({"t": time.time(), "images": a.batch_size, "threads": torch.get_num_threads()}), flush=True)
    return 0


def _spawn(a: argparse.Namespace, extra: list, env_extra: dict) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.update(env_extra)
    env["QAT_TUI_STATE_DIR"] = a.state_dir
    cmd = [sys.executable, __file__, "--trainer", "--batches", str(a.batches), "--batch-size", str(a.batch_size),
           "--width", str(a.width)] + extra
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def _read(proc: subprocess.Popen) -> list:
    out, _ = proc.communicate()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _rate(rows: list, t0: float, t1: float) -> float:
    """images/s of the batches that ended inside [t0, t1] (the first batch of a process is warm-up)."""
    batches = [r for r in rows if "t" in r][1:]
    inside = [r for r in batches if t0 <= r["t"] <= t1]
    if len(inside) < 2:
        return 0.0
    return sum(r["images"] for r in inside[1:]) / (inside[-1]["t"] - inside[0]["t"])


def _pair(a: argparse.Namespace, extra_a: list, extra_b: list, env: dict, stagger: bool) -> tuple:
    p1 = _spawn(a, extra_a, env)
    if stagger:  # the second one starts while the first trains
        line = ""
        while '"t"' not in line:
            line = p1.stdout.readline()
            if not line:
                break
        first = [json.loads(line)] if line.strip() else []
    else:
        first = []
    p2 = _spawn(a, extra_b, env)
    r1, r2 = first + _read(p1), _read(p2)
    b1 = [r["t"] for r in r1 if "t" in r]
    b2 = [r["t"] for r in r2 if "t" in r]
    t0, t1 = max(b1[0], b2[0]), min(b1[-1], b2[-1])
    logs = [r for r in r1 + r2 if "log" in r or "plan" in r]
    return _rate(r1, t0, t1), _rate(r2, t0, t1), logs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trainer", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--qat-tui", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--width", type=float, default=1.0)
    a = p.parse_args()
    if a.trainer:
        return trainer(a)
    a.state_dir = tempfile.mkdtemp(prefix="bench-contention-state-")
    print("%d cores, MobileNetV2 width %.2f, batch %d, %d batches per trainer" % (os.cpu_count() or 0, a.width, a.batch_size, a.batches))
    rows = _read(_spawn(a, [], {}))
    b = [r["t"] for r in rows if "t" in r]
    alone = _rate(rows, b[0], b[-1])
    print("%-34s %7.1f images/s  (1.00x)" % ("alone, torch defaults", alone))
    cases = [
        ("two, torch defaults", [], [], {}, False),
        ("two, OMP_WAIT_POLICY=PASSIVE", [], [], {"OMP_WAIT_POLICY": "PASSIVE"}, False),
        ("two, 1 thread each", ["--threads", "1"], ["--threads", "1"], {}, False),
        ("two, qat-tui policy (second joins)", ["--qat-tui"], ["--qat-tui"], {}, True),
    ]
    for name, ea, eb, env, stagger in cases:
        r1, r2, logs = _pair(a, ea, eb, env, stagger)
        print("%-34s %7.1f + %7.1f images/s  (%.2fx + %.2fx = %.2fx of alone)"
              % (name, r1, r2, r1 / alone, r2 / alone, (r1 + r2) / alone), flush=True)
        for entry in logs:
            print("    %s" % (entry.get("log") or "plan: %s threads, %s (%s)" % (entry["plan"], entry["policy"], entry["reason"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
