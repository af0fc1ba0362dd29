"""Make ``tests/assets/recorded_run/run/``: a real run, recorded once, for the snapshot tests' run,
results and debug screens (tests/test_snapshots.py attaches to a copy; nothing trains there).

    .venv/bin/python tests/assets/recorded_run/record.py        # about a minute on 2 cores
    .venv/bin/python tests/assets/recorded_run/record.py OUT    # into OUT instead (to compare)

It runs the whole pipeline (``qat-tui run``) with a fixed seed on the synthetic CIFAR-10 of
tests/conftest.py, then the per-layer debug (``qat-tui debug``), in a temporary folder; then it keeps
the run's text files (events.jsonl, state.json, settings.toml, debug_report.json, the check, perf and
graph reports; not the checkpoints and models) with what differs from machine to machine and from run
to run normalised (:func:`normalise`):

- paths: the temporary run folder becomes ``/tmp/qat-tui-snap/run`` and the data folder
  ``/tmp/qat-tui-snap/data``, where the snapshot tests put their copy and their data;
- times: the events' clock starts at 2026-01-02 03:04:05 UTC and advances one second an event; every
  duration (a stage's, a phase's, an epoch's, the run's) is recomputed from that clock, so they agree;
  ``state.json``'s and ``debug_report.json``'s timestamps are the same fixed moments;
- speeds (images/s) become 1000, the debug's duration 60 s, the pid 4242; torch's own versions and the accuracies stay as the
  run made them (they are what the screens show).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
OUT = os.path.join(HERE, "run")

FIXED = "/tmp/qat-tui-snap"
FIXED_RUN = FIXED + "/run"
FIXED_DATA = FIXED + "/data"
T0 = 1767323045.0  # 2026-01-02T03:04:05Z
KEPT = ("events.jsonl", "state.json", "settings.toml", "debug_report.json", "check_report.txt", "check_report.json",
        "perf.json", "model_graph.txt")
DURATIONS = ("seconds", "elapsed")
SPEEDS = ("images_per_s",)


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


def _paths(text: str, tmp: str) -> str:
    real = os.path.realpath(tmp)
    for root in sorted({tmp, real}, key=len, reverse=True):
        text = text.replace(os.path.join(root, "run"), FIXED_RUN).replace(os.path.join(root, "data"), FIXED_DATA)
        text = text.replace(root, FIXED)
    return text


def _events(lines: List[str]) -> List[str]:
    """One second an event; durations from that clock (from the event that started what they measure)."""
    out = []
    started: Dict[Any, float] = {}
    for i, line in enumerate(lines):
        e = json.loads(line)
        t = T0 + i
        kind, stage = e.get("type"), e.get("stage")
        e["t"] = t
        if kind == "RunStarted":
            started = {"run": t}
        elif kind == "StageStarted":
            started[("stage", stage)] = started[("epoch", stage)] = t
        elif kind == "PhaseStarted":
            started[("phase", stage, e.get("name"))] = t
        origin = {"RunFinished": started.get("run"), "PhaseFinished": started.get(("phase", stage, e.get("name"))),
                  "Heartbeat": started.get(("phase", stage, e.get("phase"))), "EpochEnd": started.get(("epoch", stage)),
                  }.get(kind) or started.get(("stage", stage)) or t - 1
        for key in DURATIONS:
            if isinstance(e.get(key), (int, float)):
                e[key] = float(t - origin)
        if kind == "StageFinished" and isinstance(e.get("metrics", {}).get("seconds"), (int, float)):
            e["metrics"]["seconds"] = e["seconds"]
        if kind == "EpochEnd":
            started[("epoch", stage)] = t
        for key in SPEEDS:
            if isinstance(e.get(key), (int, float)):
                e[key] = 1000.0
        if isinstance(e.get("text"), str):
            e["text"] = re.sub(r"\d+(\.\d+)? images/s", "1000 images/s", e["text"])
        if "pid" in e:
            e["pid"] = 4242
        out.append(json.dumps(e, ensure_ascii=False))
    return out


STAMP = re.compile(r"\d{4}-\d\d-\d\d([T ])\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:?\d\d|Z)?")


def _stamps(obj: Any, times: Dict[str, Dict[str, Any]], end: str) -> Any:
    """Every timestamp in a JSON document made a fixed moment: a stage's (``times[stage]``: its
    StageStarted/StageFinished times, and its seconds) where the stage is known, else the end of the
    run; a stage's ``seconds`` (also in its metrics) its StageFinished seconds."""

    def walk(o: Any, key: str = "", stage: str = "") -> Any:
        if isinstance(o, dict):
            return {k: walk(v, k, k if k in times else stage) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v, key, stage) for v in o]
        if isinstance(o, str):
            m = STAMP.fullmatch(o)
            if m:
                mine = times.get(stage, {})
                return str(mine.get("started_at" if key == "started_at" else "finished_at", end)).replace("T", m.group(1))
        if key == "seconds" and isinstance(o, (int, float)) and "seconds" in times.get(stage, {}):
            return times[stage]["seconds"]
        return o

    return walk(obj)


def normalise(src: str, dst: str, tmp: str) -> None:
    """Copy the kept files of run folder ``src`` to ``dst`` with paths, times, speeds and pids normalised."""
    os.makedirs(dst, exist_ok=True)
    times: Dict[str, Dict[str, Any]] = {}
    with open(os.path.join(src, "events.jsonl"), encoding="utf-8") as f:
        events = _events([_paths(line, tmp) for line in f.read().splitlines() if line.strip()])
    for line in events:
        e = json.loads(line)
        if e.get("type") == "StageStarted":
            times.setdefault(e["stage"], {})["started_at"] = iso(e["t"])
        elif e.get("type") == "StageFinished":
            times.setdefault(e["stage"], {}).update(finished_at=iso(e["t"]), seconds=e["seconds"])
    end = iso(json.loads(events[-1])["t"])
    for name in KEPT:
        path = os.path.join(src, name)
        if not os.path.exists(path):
            continue
        if name == "events.jsonl":
            text = "\n".join(events) + "\n"
        else:
            with open(path, encoding="utf-8") as f:
                text = _paths(f.read(), tmp)
            if name.endswith(".json"):
                doc = _stamps(json.loads(text), times, end)
                if isinstance(doc, dict) and "pid" in doc:
                    doc["pid"] = 4242
                if name == "debug_report.json":
                    doc["seconds"] = 60.0  # how long the debug took
                text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
        with open(os.path.join(dst, name), "w", encoding="utf-8") as f:
            f.write(text)


def main(out: str = OUT) -> int:
    sys.path.insert(0, REPO)
    from core.settings import save, validate
    from tests.conftest import tiny_settings_dict, write_cifar_python

    tmp = tempfile.mkdtemp(prefix="qat-tui-record-")
    try:
        data, run_dir = os.path.join(tmp, "data"), os.path.join(tmp, "run")
        write_cifar_python(data)
        settings = validate(tiny_settings_dict(data, run_dir, run={"seed": 0}, qat={"epochs": 2},
                                               debug={"images": 64, "sensitivity_layers": 3, "eval_images": 128}))
        config = os.path.join(run_dir, "settings.toml")
        save(settings, config)
        env = dict(os.environ, QAT_TUI_STATE_DIR=os.path.join(tmp, "state"), QAT_TUI_LANG="en")
        cli = [sys.executable, "-m", "qat_tui"]
        subprocess.run(cli + ["run", "--config", config], check=True, env=env, cwd=tmp)
        subprocess.run(cli + ["debug", run_dir], check=True, env=env, cwd=tmp)
        if os.path.exists(out):
            shutil.rmtree(out)
        normalise(run_dir, out, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("wrote %s: %s" % (out, ", ".join(sorted(os.listdir(out)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
