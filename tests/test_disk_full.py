"""A full disk, for real: the run folder on a small tmpfs, mounted in a private mount namespace
(``unshare``) so that nothing outside the test sees it. Every write that fails says "no space left on
<device> (<folder>), N MB free" and nothing is lost: the float checkpoint still loads, the state file is
complete JSON, no temp file is left behind."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from core import settings as S

from .conftest import REPO, requires_torch_backend, tiny_settings_dict

pytestmark = [pytest.mark.slow, requires_torch_backend]

SCENARIO = r"""
import errno, json, os, sys, glob
sys.path.insert(0, REPO)
from core.io import torch_load
from qat_tui.cli import main

def fill(folder, leave):
    # write until the disk is full, then give back `leave` bytes
    path = os.path.join(folder, "filler")
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"x" * 65536)
                f.flush()
        except OSError:
            pass
    size = os.path.getsize(path)
    os.truncate(path, max(0, size - leave))

result = {}
config = os.path.join(RUN, "settings.toml")
result["float_rc"] = main(["run", "--config", config, "--stage", "float"])
fill(MNT, 48 * 1024)  # room for settings.toml (8 kB), the lock, state and events; not for a 1 MB checkpoint
result["calib_rc"] = main(["run", "--config", config, "--stage", "calib"])
fill(MNT, 0)
result["full_rc"] = main(["run", "--config", config, "--stage", "calib"])
torch_load(os.path.join(RUN, "float-checkpoint.ckpt"))  # the last good checkpoint loads
result["state"] = json.load(open(os.path.join(RUN, "state.json")))["stages"]
result["tmp_files"] = [n for n in os.listdir(RUN) if n.endswith(".tmp")]
result["calib_ckpt"] = os.path.exists(os.path.join(RUN, "calib-checkpoint.ckpt"))
print("RESULT " + json.dumps(result))
"""


def _namespace_prefix(probe_dir):
    """``unshare`` arguments giving a private mount namespace where tmpfs can be mounted (root in
    the namespace: -r for a user who is not root), or None when this machine does not allow it."""
    if not shutil.which("unshare"):
        return None
    for args in (["unshare", "-m"], ["unshare", "-Urm"]):
        probe = subprocess.run(args + ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe_dir], capture_output=True)
        if probe.returncode == 0:
            return args
    return None


def test_full_disk_says_so_at_every_write_and_loses_nothing(cifar_python_root, tmp_path):
    os.makedirs(str(tmp_path / "probe"))
    prefix = _namespace_prefix(str(tmp_path / "probe"))
    if prefix is None:
        pytest.skip("cannot mount a small tmpfs here (needs unshare with mount namespaces)")
    mnt = str(tmp_path / "small-disk")
    os.makedirs(mnt)
    run_dir = os.path.join(mnt, "run")
    settings = S.validate(tiny_settings_dict(cifar_python_root, run_dir, float={"epochs": 1}, qat={"enabled": False}))
    script = "REPO = %r\nRUN = %r\nMNT = %r\n" % (REPO, run_dir, mnt) + SCENARIO
    inner = "mount -t tmpfs -o size=12m tmpfs %s && mkdir -p %s && cp %s %s/settings.toml && exec %s -c %s" % (
        mnt, run_dir, "$0", run_dir, sys.executable, _quote(script))
    settings_file = str(tmp_path / "settings.toml")
    S.save(settings, settings_file)
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=REPO)
    proc = subprocess.run(prefix + ["sh", "-c", inner, settings_file], capture_output=True, text=True, env=env, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "RESULT " in out, out[-4000:]
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    assert result["float_rc"] == 0
    # a few kB left: the calibration checkpoint cannot be written; the message says where and how much
    assert result["calib_rc"] == 1
    messages = " ".join(out.split())
    assert ("Disk full: no space left on tmpfs (%s), 0.0 MB free: writing calib-checkpoint.ckpt failed; "
            "the last good checkpoint is kept" % run_dir) in messages, out[-3000:]
    assert "Traceback" not in out and "inline_container" not in out and "Errno 28" not in out
    # nothing lost: float is still recorded as finished, the state is complete JSON, no temp files
    assert result["state"]["float"]["status"] == "finished"
    assert result["tmp_files"] == [] and not result["calib_ckpt"]
    # no byte left: the run lock itself cannot be written - the same message, no traceback
    assert result["full_rc"] == 1
    assert "0.0 MB free: writing run.lock failed" in messages


def _quote(text):
    import shlex

    return shlex.quote(text)
