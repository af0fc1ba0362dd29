"""Crash-safe writes and checkpoint loading: nothing half-written, clear refusals."""
import pytest
import torch

from core.errors import CheckpointError
from core.io import atomic_write_text, human_size, load_checkpoint, save_checkpoint


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


def test_human_size():
    assert human_size(999) == "999 B"
    assert human_size(9_200_000) == "9.2 MB"
