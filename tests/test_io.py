"""Crash-safe writes and checkpoint loading: nothing half-written, no code run from a file, clear
refusals. Runs on both test environments: torch 2.x (``weights_only``) and torch 1.10 (Horizon's
Python 3.8 dockers: the restricted unpickler)."""
import errno
import os

import pytest
import torch

from core.errors import CheckpointError, DiskFullError
from core.io import atomic_write_text, disk_full_error, human_size, load_checkpoint, save_checkpoint


class Payload:
    """Unpickling this runs ``os.mkdir(marker)``: the stand-in for a crafted file's code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_text(str(path), "good")

    from core import io as cio

    def broken(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        cio._atomic_write(str(path), broken)
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind


def test_checkpoint_round_trip_and_meta_check(tmp_path):
    path = str(tmp_path / "float-checkpoint.ckpt")
    sd = {"w": torch.arange(6.0).reshape(2, 3)}
    save_checkpoint(path, sd, {"stage": "float", "backend": "torch", "model": {"width_mult": 1.0}})
    ck = load_checkpoint(path, made_by="float", expect={"backend": "torch", "model": {"width_mult": 1.0}})
    assert torch.equal(ck["state_dict"]["w"], sd["w"]) and ck["meta"]["stage"] == "float"
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, made_by="float", expect={"backend": "horizon"})
    assert "backend='torch'" in e.value.msg and "backend='horizon'" in e.value.msg


def test_missing_checkpoint_names_the_stage_to_run(tmp_path):
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(str(tmp_path / "calib-checkpoint.ckpt"), made_by="calib")
    assert "missing" in e.value.msg and e.value.hint == "run the calib stage first (it writes this file)"


def test_truncated_checkpoint_is_reported_as_damaged(tmp_path):
    path = str(tmp_path / "qat-checkpoint.ckpt")
    save_checkpoint(path, {"w": torch.randn(100, 100)}, {"stage": "qat"})
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, made_by="qat")
    assert "damaged" in e.value.msg and "qat stage again" in e.value.hint


def test_plain_state_dict_is_accepted(tmp_path):
    path = str(tmp_path / "sample.ckpt")
    torch.save({"features.0.0.weight": torch.zeros(1)}, path)
    ck = load_checkpoint(path, made_by="float", expect={"backend": "torch"})
    assert ck["meta"] == {} and "features.0.0.weight" in ck["state_dict"]


@pytest.mark.parametrize("zip_format", [True, False])
def test_pickled_code_in_a_checkpoint_never_runs(tmp_path, zip_format):
    marker = str(tmp_path / "payload-ran")
    path = str(tmp_path / "calib-checkpoint.ckpt")
    with open(path, "wb") as f:
        torch.save({"format": "qat-tui-checkpoint", "meta": {}, "state_dict": {"w": Payload(marker)}}, f,
                   _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, made_by="calib")
    assert not os.path.exists(marker)
    assert "refused without loading it" in e.value.msg and "posix.mkdir" in e.value.msg
    assert "calib stage again" in e.value.hint


def test_users_pretrained_file_gets_a_hint_about_that_file(tmp_path):
    marker = str(tmp_path / "payload-ran")
    path = str(tmp_path / "my_weights.pth")
    torch.save({"model": Payload(marker)}, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, made_by=None, setting="[model] pretrained")
    assert not os.path.exists(marker)
    assert "stage again" not in e.value.hint and "torch.save(model.state_dict(), path)" in e.value.hint
    with open(path, "wb") as f:
        f.write(b"not a checkpoint at all")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, made_by=None, setting="[model] pretrained")
    assert "damaged" in e.value.msg and "[model] pretrained" in e.value.hint and "stage" not in e.value.hint


def test_checkpoints_with_metadata_and_rng_state_still_load(tmp_path):
    from collections import OrderedDict

    sd = OrderedDict(w=torch.ones(2, 3), n=torch.zeros(2, dtype=torch.int64))
    sd._metadata = {"": {"version": 1}}
    path = str(tmp_path / "float-last.ckpt")
    save_checkpoint(path, {"model": sd, "rng": torch.get_rng_state(), "opt": {"state": {}, "param_groups": [{"lr": 0.1}]}},
                    {"stage": "float", "best": {"top1": 1.5}, "history": [{"epoch": 1, "lr": None}]})
    ck = load_checkpoint(path, made_by="float")
    assert ck["state_dict"]["model"]._metadata == {"": {"version": 1}}
    assert torch.equal(ck["state_dict"]["rng"], torch.get_rng_state())


def test_disk_full_while_writing_keeps_the_old_file_and_says_so(tmp_path):
    from core import io as cio

    path = tmp_path / "state.json"
    atomic_write_text(str(path), "good")

    def full(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError) as e:
        cio._atomic_write(str(path), full)
    assert path.read_text() == "good" and [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert e.value.msg.startswith("no space left on ") and "MB free" in e.value.msg
    assert "the last good checkpoint is kept" in e.value.msg and str(tmp_path) in e.value.msg


def test_only_disk_errors_count_as_disk_full(tmp_path):
    target = str(tmp_path / "x.ckpt")
    assert disk_full_error(target, OSError(errno.EACCES, "Permission denied")) is None
    assert disk_full_error(target, RuntimeError("unexpected pos 64 vs 0")) is None  # this disk has room
    assert isinstance(disk_full_error(target, OSError(errno.ENOSPC, "No space left on device")), DiskFullError)


def test_human_size():
    assert human_size(999) == "999 B"
    assert human_size(9_200_000) == "9.2 MB"


def test_remove_stale_temp_files_takes_only_atomic_write_temps(tmp_path) -> None:
    """A SIGKILL during an atomic write leaves ``.<name>.<8 random>.tmp`` beside the whole old file;
    the next run (holding the lock) removes those, and nothing else."""
    import tempfile

    from core.io import TEMP_FILE, atomic_write_text, remove_stale_temp_files

    atomic_write_text(str(tmp_path / "check_report.txt"), "old, whole\n")
    fd, left = tempfile.mkstemp(prefix=".check_report.txt.", suffix=".tmp", dir=str(tmp_path))
    os.write(fd, b"half wri")
    os.close(fd)
    (tmp_path / "sub").mkdir()
    fd, left_below = tempfile.mkstemp(prefix=".perf.json.", suffix=".tmp", dir=str(tmp_path / "sub"))
    os.close(fd)
    (tmp_path / "notes.tmp").write_text("the user's")  # not an atomic write's temp
    assert TEMP_FILE.match(os.path.basename(left)) and not TEMP_FILE.match("notes.tmp")
    assert sorted(remove_stale_temp_files(str(tmp_path))) == sorted([left, left_below])
    assert sorted(os.listdir(tmp_path)) == ["check_report.txt", "notes.tmp", "sub"]
    assert (tmp_path / "check_report.txt").read_text() == "old, whole\n"
