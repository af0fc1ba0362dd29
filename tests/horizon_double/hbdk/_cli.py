"""TEST DOUBLE of hbdk3's command-line tools ``hbdk-model-check``, ``hbdk-cc`` and ``hbdk-perf``
(Horizon Robotics' BPU compiler; binaries in the OpenExplorer docker).

Run as ``python hbdk/_cli.py <tool> <args...>`` by ``hbdk.util.process`` (plain Python, no torch, so
it starts fast). The command lines are the ones the hbdk wrappers build (checker.py read_file id
20811565886, compiler.py id 20877996094, tools.py id 20265692608). Printed lines follow the X3
quick_start output where it shows them ("This model is supported!", "INFO: launch 16 threads for
optimization", the progress bar, "WARNING: arg0 can not be assigned to NCHW_NATIVE layout because it's
input source is pyramid/resizer.", "consumed time 10.4302", "FPS=5722.98, latency = 44731.9 us   (see
<out_dir>/<name>.html)"); everything else is the double's invention and **unconfirmed**: the checks
(march, input sources, layouts, opt flags, what the HBIR marks unsupported, pyramid inputs needing a
1/128 input scale and 3 channels), the error texts (``ERROR: ...`` on stderr, exit status 1; argparse
usage errors exit 2), the advice lines, the ``.hbm`` layout, the ``000_original.dot`` graph and all perf
numbers (a simple ops/bandwidth model per march).
"""
import argparse
import json
import math
import os
import struct
import sys
import time
import zlib

HBM_MAGIC = b"HBDK3-TEST-DOUBLE-HBM\n"
HBIR_FORMAT = "hbdk3-test-double-hbir"
SUPPORTED_MARCH = ("bernoulli", "bernoulli2", "bayes", "bayes-e")
INPUT_SOURCES = ("ddr", "pyramid", "resizer")
LAYOUTS = ("NHWC", "NCHW", "BPU_RAW")
# invented per-march figures: effective int8 ops per second, DDR bytes per second
_MARCH_PERF = {
    "bernoulli": (0.5e12, 3.0e9),
    "bernoulli2": (1.0e12, 4.0e9),
    "bayes": (4.0e12, 8.0e9),
    "bayes-e": (2.0e12, 6.0e9),
}
_OPT_FACTOR = {"O0": 1.6, "O1": 1.2, "O2": 1.0, "O3": 0.9, "Om": 0.95}
HBDK_VERSION = os.environ.get("QAT_TUI_DOUBLE_HBDK_VERSION", "3.46.4")
RUNTIME_VERSION = "3.15.29.0"


def _err(msg):
    sys.stderr.write("ERROR: %s\n" % msg)
    sys.stderr.flush()


def write_hbm(path, header, payload=b""):
    data = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(HBM_MAGIC)
        f.write(struct.pack(">Q", len(data)))
        f.write(data)
        f.write(payload)


def is_hbm(path):
    try:
        with open(path, "rb") as f:
            return f.read(len(HBM_MAGIC)) == HBM_MAGIC
    except OSError:
        return False


def read_hbm(path):
    """(header dict, payload bytes) of a double-written .hbm (the payload is the traced model's .pt)."""
    with open(path, "rb") as f:
        if f.read(len(HBM_MAGIC)) != HBM_MAGIC:
            raise ValueError("%s is not a hbm written by the hbdk test double" % path)
        (n,) = struct.unpack(">Q", f.read(8))
        header = json.loads(f.read(n).decode())
        return header, f.read()


def _load_hbir(path):
    with open(path, "rb") as f:
        raw = f.read()
    desc = json.loads(raw.decode())
    if desc.get("format") != HBIR_FORMAT:
        raise ValueError("not an hbir file")
    return desc, raw


def _split(s):
    return [x for x in s.split(",")] if s else []


def _validate(desc, march, sources, names):
    """Problems that make the model uncompilable (list of strings)."""
    problems = []
    if march not in SUPPORTED_MARCH:
        problems.append("invalid march %r (hbdk3 supports %s)" % (march, ", ".join(SUPPORTED_MARCH)))
    elif desc.get("march") and desc["march"] != march:
        problems.append("the hbir was exported for march %r, not %r" % (desc["march"], march))
    inputs = desc.get("inputs", [])
    if names and len(names) != len(inputs):
        problems.append("%d input names given for %d inputs" % (len(names), len(inputs)))
    if sources:
        if len(sources) not in (1, len(inputs)):
            problems.append("%d input sources given for %d inputs" % (len(sources), len(inputs)))
        for s in sources:
            if s not in INPUT_SOURCES:
                problems.append("invalid input source %r (one of %s)" % (s, ", ".join(INPUT_SOURCES)))
        for i, inp in enumerate(inputs):
            src = sources[0] if len(sources) == 1 else (sources[i] if i < len(sources) else "ddr")
            if src in ("pyramid", "resizer"):
                shape = inp.get("shape") or []
                if len(shape) != 4 or shape[1] != 3:
                    problems.append("input %s from %s must be a 4-D image with 3 (YUV444) channels, got shape %s"
                                    % (inp["name"], src, shape))
                scale = inp.get("scale")
                if scale is not None and abs(scale - 1.0 / 128) > 1e-9:
                    problems.append("input %s from %s must be quantized with scale 1/128 (QuantStub(scale=1/128)), "
                                    "got %r" % (inp["name"], src, scale))
    problems.extend(desc.get("unsupported", []))
    return problems


def _layer_costs(desc, march, opt):
    ops_s, bw = _MARCH_PERF.get(march, _MARCH_PERF["bayes"])
    f = _OPT_FACTOR.get(opt, 0.95)
    out = []
    for layer in desc.get("layers", []):
        comp = layer["ops"] / ops_s * 1e6 * f
        nbytes = layer.get("in_bytes", 0) + layer.get("out_bytes", 0) + layer.get("weight_bytes", 0)
        ls = nbytes / bw * 1e6 * f
        out.append((layer, comp, ls, nbytes))
    return out


def _opt_from_args(a):
    for o in ("O0", "O1", "O2", "O3", "Om"):
        if getattr(a, o):
            return o
    return "O2"


# ------------------------------------------------------------------------------------ model check


def model_check(argv):
    p = argparse.ArgumentParser(prog="hbdk-model-check")
    p.add_argument("--march", required=True)
    p.add_argument("-m", "--model", required=True)
    p.add_argument("-f", "--format", default="hbir")
    p.add_argument("-s", "--shape")
    p.add_argument("-p", "--param")
    p.add_argument("-i", "--input-source")
    p.add_argument("--input-name")
    p.add_argument("--advice", type=int, default=0)
    p.add_argument("--skip-check-quanti-param", action="store_true")
    a = p.parse_args(argv)
    if a.format != "hbir":
        _err("the test double only reads hbir models (-f hbir)")
        return 1
    try:
        desc, _ = _load_hbir(a.model)
    except (OSError, ValueError) as e:
        _err("cannot read model %s: %s" % (a.model, e))
        return 1
    problems = _validate(desc, a.march, _split(a.input_source), _split(a.input_name))
    if problems:
        for pr in problems:
            _err(pr)
        print("This model is not supported!")
        return 1
    print("This model is supported!")
    if a.advice:
        shown = 0
        for layer, comp, ls, _ in _layer_costs(desc, a.march, "O2"):
            if layer["op"] not in ("conv2d", "linear", "conv2d_torch_native", "linear_torch_native"):
                continue
            slow = max(comp, ls)
            if slow > a.advice:
                shown += 1
                hint = ("memory bound: consider channel counts that are multiples of 8/16"
                        if ls > comp else "compute bound: consider fewer channels or a smaller kernel")
                print("ADVICE: layer %s (%s): estimated %.1f us > %d us; %s [test double advice]"
                      % (layer["name"], layer["op"], slow, a.advice, hint))
        if not shown:
            print("ADVICE: no layer is slower than %d us [test double advice]" % a.advice)
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------------------- compile


def _dot(desc):
    lines = ['digraph "%s" {' % desc.get("model_name", "model"), "  rankdir=TB;", "  node [shape=box];"]
    for inp in desc.get("inputs", []):
        lines.append('  "%s" [shape=ellipse, label="%s\\n%s"];' % (inp["name"], inp["name"], "x".join(map(str, inp.get("shape") or []))))
    for layer in desc.get("layers", []):
        lines.append('  "%s" [label="%s\\n%s"];' % (layer["name"], layer["name"], layer["op"]))
        for src in layer.get("inputs", []):
            lines.append('  "%s" -> "%s";' % (src, layer["name"]))
    for out in desc.get("outputs", []):
        lines.append('  "%s" [shape=ellipse];' % out["name"])
        for src in out.get("producers", []):
            lines.append('  "%s" -> "%s";' % (src, out["name"]))
    lines.append("}")
    return "\n".join(lines) + "\n"


def cc(argv):
    t0 = time.time()
    p = argparse.ArgumentParser(prog="hbdk-cc")
    p.add_argument("--march", required=True)
    p.add_argument("-m", "--model", required=True)
    p.add_argument("-f", "--format", default="hbir")
    p.add_argument("-s", "--shape")
    p.add_argument("-p", "--param")
    for o in ("O0", "O1", "O2", "O3", "Om"):
        p.add_argument("--" + o, dest=o, action="store_true")
    p.add_argument("--fast", action="store_true")
    p.add_argument("--ddr", action="store_true")
    p.add_argument("--balance", type=int)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--jobs", type=int, default=16)
    p.add_argument("-n", "--name")
    p.add_argument("-i", "--input-source")
    p.add_argument("--input-name")
    p.add_argument("--input-layout", choices=LAYOUTS)
    p.add_argument("--output-layout", choices=LAYOUTS)
    p.add_argument("--progressbar", action="store_true")
    p.add_argument("--dev-dump-graph", action="store_true")
    p.add_argument("--debug", action="store_true")
    a = p.parse_args(argv)
    if a.format != "hbir":
        _err("the test double only compiles hbir models (-f hbir)")
        return 1
    if not a.output.endswith(".hbm"):
        _err("output %s must end with .hbm" % a.output)
        return 1
    if a.balance is not None and not 0 <= a.balance <= 100:
        _err("balance factor must be in [0, 100], got %d" % a.balance)
        return 1
    if a.jobs < 0:
        _err("--jobs must be >= 0")
        return 1
    try:
        desc, raw = _load_hbir(a.model)
    except (OSError, ValueError) as e:
        _err("cannot read model %s: %s" % (a.model, e))
        return 1
    sources = _split(a.input_source)
    problems = _validate(desc, a.march, sources, _split(a.input_name))
    if problems:
        for pr in problems:
            _err(pr)
        return 1
    jobs = a.jobs or os.cpu_count() or 1
    print("INFO: launch %d threads for optimization" % jobs)
    if a.progressbar:
        print("[" + "=" * 50 + "] 100%")
    for i, inp in enumerate(desc.get("inputs", [])):
        src = (sources[0] if len(sources) == 1 else sources[i]) if sources else "ddr"
        if src in ("pyramid", "resizer"):
            print("WARNING: %s can not be assigned to NCHW_NATIVE layout because it's input source is pyramid/resizer."
                  % inp["name"])
    pt = a.model[: -len(".hbir")] + ".pt" if a.model.endswith(".hbir") else None
    payload = b""
    if pt and os.path.exists(pt):
        with open(pt, "rb") as f:
            payload = f.read()
    opts = " ".join(argv)
    header = {
        "format": "hbdk3-test-double-hbm", "test double": True, "hbdk_version": HBDK_VERSION,
        "march": a.march, "model_name": a.name or desc.get("model_name"), "compiling options": opts,
        "opt": _opt_from_args(a), "fast": a.fast, "ddr": a.ddr, "balance": a.balance,
        "input_source": sources or ["ddr"], "input_names": _split(a.input_name),
        "input_layout": a.input_layout, "output_layout": a.output_layout, "debug": a.debug,
        "hbir_file": a.model, "hbir_crc": "%08x" % (zlib.crc32(raw) & 0xFFFFFFFF),
        "inputs": desc.get("inputs", []), "outputs": desc.get("outputs", []), "layers": desc.get("layers", []),
        "payload": "torch.jit.save bytes of %s" % pt if payload else None,
    }
    write_hbm(a.output, header, payload)
    if a.dev_dump_graph:
        with open(os.path.join(os.path.dirname(os.path.abspath(a.output)), "000_original.dot"), "w") as f:
            f.write(_dot(desc))
    print("")
    print("consumed time %.4f" % (time.time() - t0))
    sys.stdout.flush()
    return 0


# ------------------------------------------------------------------------------------------ perf


def _fmt_int(n):
    return "{:,}".format(int(n))


def perf(argv):
    p = argparse.ArgumentParser(prog="hbdk-perf")
    p.add_argument("hbm")
    p.add_argument("-o", "--output-dir", default=".")
    p.add_argument("--internal-detail", action="store_true")
    a = p.parse_args(argv)
    try:
        header, _ = read_hbm(a.hbm)
    except (OSError, ValueError) as e:
        _err("cannot read hbm %s: %s" % (a.hbm, e))
        return 1
    march = header["march"]
    opt = header.get("opt", "O2")
    if header.get("fast") or header.get("ddr") or header.get("balance") is not None:
        opt = "Om"
    costs = _layer_costs(header, march, opt)
    inputs = header.get("inputs", [])
    batch = int((inputs[0].get("shape") or [1])[0]) if inputs else 1
    batch = max(1, batch)
    per_layer = [max(c, l) + 0.5 for _, c, l, _ in costs]  # 0.5 us fixed cost per layer
    latency_us = round(max(1.0, sum(per_layer)), 1)
    fps = round(batch / (latency_us / 1e6), 2)
    total_ops = sum(layer["ops"] for layer, _, _, _ in costs)
    loaded = sum(layer.get("in_bytes", 0) + layer.get("weight_bytes", 0) for layer, _, _, _ in costs)
    stored = sum(layer.get("out_bytes", 0) for layer, _, _, _ in costs)
    ddr_run = loaded + stored
    n_int = max(1, int(math.ceil(latency_us / 1000.0)))
    ops_s, bw = _MARCH_PERF.get(march, _MARCH_PERF["bayes"])
    util = round(min(1.0, total_ops / ops_s / (latency_us / 1e6)), 3) if latency_us else 0.0
    load_bw = int(loaded / (latency_us / 1e6) / 1e6)
    store_bw = int(stored / (latency_us / 1e6) / 1e6)
    name = header.get("model_name") or "model"
    summary = {
        "BPU OPs per frame (effective)": int(total_ops // batch),
        "BPU OPs per run (effective)": int(total_ops),
        "BPU PE number": 1,
        "BPU core number": 1,
        "BPU march": march.upper().replace("-", "_"),
        "DDR bytes per frame": float(round(ddr_run / batch, 1)),
        "DDR bytes per run": int(ddr_run),
        "DDR bytes per second": int(ddr_run / (latency_us / 1e6)),
        "DDR megabytes per frame": round(ddr_run / batch / 1048576.0, 3),
        "DDR megabytes per run": round(ddr_run / 1048576.0, 3),
        "DDR megabytes per second": round(ddr_run / (latency_us / 1e6) / 1048576.0, 1),
        "FPS": fps,
        "HBDK version": header.get("hbdk_version", HBDK_VERSION),
        "compiling options": header.get("compiling options", ""),
        "frame per run": batch,
        "frame per second": fps,
        "input features": [["input name", "input size"]] + [
            [i["name"], "x".join(str(d) for d in ([i["shape"][0]] + i["shape"][2:] + [i["shape"][1]]
                                                  if len(i.get("shape") or []) == 4 else (i.get("shape") or [])))]
            for i in inputs
        ],
        "interval computing unit utilization": [util] * n_int,
        "interval computing units utilization": [util] * n_int,
        "interval loading bandwidth (megabytes/s)": [load_bw] * n_int,
        "interval number": n_int,
        "interval storing bandwidth (megabytes/s)": [store_bw] * n_int,
        "interval time (ms)": 1.0,
        "latency (ms)": round(latency_us / 1000.0, 2),
        "latency (ms) by segments": [round(latency_us / 1000.0, 3)],
        "latency (us)": latency_us,
        "loaded bytes per frame": int(loaded // batch),
        "loaded bytes per run": int(loaded),
        "model json CRC": header.get("hbir_crc", "00000000"),
        "model json file": header.get("hbir_file", ""),
        "model name": name,
        "model param CRC": "00000000",
        "multicore sync time (ms)": 0.0,
        "run per second": round(1e6 / latency_us, 2),
        "runtime version": RUNTIME_VERSION,
        "stored bytes per frame": int(stored // batch),
        "stored bytes per run": int(stored),
        "worst FPS": fps,
        "test double": True,
    }
    if a.internal_detail:
        total = sum(per_layer) or 1.0
        rows = [["layer", "ops", "computing cost (no DDR)", "load/store cost"]]
        for layer, c, l, _ in costs:
            rows.append([layer["name"], _fmt_int(layer["ops"]),
                         "%d us (%s%% of model)" % (round(c), round(100.0 * c / total, 1)),
                         "%d us (%s%% of model)" % (round(l), round(100.0 * l / total, 1))])
        summary["layer details"] = rows
    result = {
        "summary": summary,
        "test double": True,
        "test double note": "hbdk test double: every number here is an invented estimate from operation counts "
                            "and tensor sizes, not a BPU measurement or hbdk-perf result",
    }
    out_dir = a.output_dir
    os.makedirs(out_dir, exist_ok=True)
    base = out_dir.rstrip("/") + "/" + name
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    rows_html = "\n".join("<tr><th>%s</th><td>%s</td></tr>" % (k, v) for k, v in sorted(summary.items())
                          if k != "layer details")
    with open(base + ".html", "w") as f:
        f.write("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s - HBDK performance (test double)"
                "</title></head><body>\n<h1>%s</h1>\n<p><b>hbdk test double</b>: invented estimates, not a BPU "
                "measurement.</p>\n<table>\n%s\n</table>\n</body></html>\n" % (name, name, rows_html))
    print("FPS=%.2f, latency = %.1f us   (see %s.html)" % (fps, latency_us, base))
    sys.stdout.flush()
    return 0


TOOLS = {"hbdk-model-check": model_check, "hbdk-cc": cc, "hbdk-perf": perf}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in TOOLS:
        _err("usage: _cli.py {%s} ..." % ",".join(TOOLS))
        return 2
    return TOOLS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
