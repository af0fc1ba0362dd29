"""TEST DOUBLE of ``hbdk.util.process`` (Horizon Robotics' hbdk3), following the source in the code index
(read_file id 20758249515): ``run_program_redirect_realtime(args, stdout=None, stderr=None, **kwargs)``
starts the command with pipes and copies its output line by line, while it runs, into the given
streams - to ``stream.buffer`` (bytes) when the stream has one, else as text - then waits for it. The
hbdk wrappers pass ``sys.stdout``/``sys.stderr``, so the CLI tools' lines go through Python's current
``sys.stdout``/``sys.stderr`` objects (whatever a caller put there), not straight to file descriptor 1.

Double specifics: the hbdk3 command names (``hbdk-cc``, ``hbdk-model-check``, ``hbdk-perf``) are run as
``python hbdk/_cli.py <name> ...`` (the double's stand-ins), never a real binary on PATH. Setting
``QAT_TUI_DOUBLE_HBDK_CLI_OUTPUT=inherit`` makes the children write to the inherited file
descriptors 1/2 directly instead (a stricter mode: output a caller only captures at the fd level).
"""
import os
import subprocess
import sys
import threading

_CLI = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_cli.py")
TOOLS = ("hbdk-cc", "hbdk-model-check", "hbdk-perf")


def _command(args):
    args = list(args)
    if args and args[0] in TOOLS:
        return [sys.executable, "-B", _CLI] + args
    return args


def _pump(src, dest) -> None:
    try:
        for line in iter(src.readline, b""):
            if not line:
                break
            if hasattr(dest, "buffer"):
                dest.buffer.write(line)
                dest.buffer.flush()
            elif "b" in getattr(dest, "mode", ""):
                dest.write(line)
                dest.flush()
            else:
                dest.write(line.decode())
                dest.flush()
    except (IOError, OSError):
        pass


def run_program_redirect_realtime(args, stdout=None, stderr=None, **kwargs):
    """Run ``args``; relay its stdout/stderr into ``stdout``/``stderr`` while it runs; return the Popen."""
    inherit = os.environ.get("QAT_TUI_DOUBLE_HBDK_CLI_OUTPUT", "") == "inherit"
    cmd = _command(args)
    if inherit:
        p = subprocess.Popen(cmd, **kwargs)
        p.wait()
        return p
    # flush what Python already buffered so lines keep their order
    for s in (stdout, stderr):
        try:
            if s is not None:
                s.flush()
        except Exception:
            pass
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE if stdout is not None else None,
        stderr=subprocess.PIPE if stderr is not None else None,
        **kwargs
    )
    threads = []
    if stdout is not None:
        threads.append(threading.Thread(target=_pump, args=(p.stdout, stdout)))
    if stderr is not None:
        threads.append(threading.Thread(target=_pump, args=(p.stderr, stderr)))
    for t in threads:
        t.daemon = True
        t.start()
    p.wait()
    for t in threads:
        t.join()
    for f in (p.stdout, p.stderr):
        if f is not None:
            f.close()
    return p
