"""No code runs from an integer-model archive: every way torch.export.load would execute something
from a crafted ``int_model.pt2`` is refused before torch sees the file (torch 2.x only: the torch
backend). The first test shows the attack works against plain ``torch.export.load``."""
import io
import json
import os
import shutil
import zipfile

import pytest
import torch

from core.errors import CheckpointError
from core.safe_load import UnsafeFileError, check_pt2_archive

from .conftest import requires_torch_backend

pytestmark = requires_torch_backend


class Payload:
    """Unpickling this runs ``os.mkdir(marker)``: the stand-in for a crafted file's code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_buffer("offset", torch.ones(2))

    def forward(self, x):
        return self.lin(x) + self.offset


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A genuine torch.export archive with a dynamic batch dimension (as int_model.pt2 has)."""
    path = str(tmp_path_factory.mktemp("pt2") / "int_model.pt2")
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(Tiny(), (torch.randn(4, 3),), dynamic_shapes=({0: batch},))
    torch.export.save(ep, path)
    return path


def rewrite(src, dst, change):
    """Copy archive ``src`` to ``dst``, letting ``change(rel_name, bytes) -> bytes | None`` edit (or,
    returning None, drop) each member; ``change`` may return extra members under the key ``"+"``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        root = zin.namelist()[0].split("/", 1)[0] + "/"
        extra = change("+", b"") or {}
        for name in zin.namelist():
            data = change(name[len(root):], zin.read(name))
            if data is not None:
                zout.writestr(name, data)
        for rel, data in extra.items():
            zout.writestr(root + rel, data)
    return dst


def pickled(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def edit_json(data, fn):
    d = json.loads(data)
    fn(d)
    return json.dumps(d).encode()


def test_genuine_archive_passes_and_loads(archive):
    check_pt2_archive(archive)
    from core.backends.torch_pt2e.backend import TorchPt2eBackend

    module = TorchPt2eBackend().load_int_model(archive)
    assert module(torch.randn(5, 3)).shape == (5, 2)


def test_pickled_weight_runs_code_in_torch_but_is_refused_here(archive, tmp_path):
    from core.backends.torch_pt2e.backend import TorchPt2eBackend

    marker = str(tmp_path / "payload-ran")

    def change(rel, data):
        if rel == "data/weights/model_weights_config.json":
            return edit_json(data, lambda d: d["config"]["lin.weight"].update(use_pickle=True))
        if rel.startswith("data/weights/") and rel.endswith("weight_0"):
            return pickled(Payload(marker))
        return None if rel == "+" else data

    bad = rewrite(archive, str(tmp_path / "bad.pt2"), change)
    with pytest.raises(CheckpointError) as e:
        TorchPt2eBackend().load_int_model(bad)
    assert not os.path.exists(marker)
    assert "refused without loading it" in e.value.msg and "'lin.weight' is stored as a pickle" in e.value.msg
    assert "int_infer stage again" in e.value.hint
    # the same file handed to torch directly runs the payload: the refusal above is what protects
    try:
        torch.export.load(bad)
    except Exception:
        pass
    assert os.path.exists(marker)


def _expr_attack(marker):
    def change(rel, data):
        if rel.startswith("models/"):
            def fn(d):
                stack = [d]
                while stack:
                    node = stack.pop()
                    if isinstance(node, dict):
                        if "expr_str" in node:
                            node["expr_str"] = "__import__('os').mkdir(%r)" % marker
                        stack.extend(node.values())
                    elif isinstance(node, list):
                        stack.extend(node)
            return edit_json(data, fn)
        return None if rel == "+" else data
    return change


CRAFTED = {
    "legacy pickled weights file": lambda m: lambda rel, data: {"data/weights/model.pt": pickled(Payload(m))} if rel == "+" else data,
    "pickled sample inputs": lambda m: lambda rel, data: (None if rel == "+" else pickled((Payload(m),)) if rel.startswith("data/sample_inputs/") else data),
    "opaque constant": lambda m: lambda rel, data: (
        {"data/constants/opaque_obj_0": pickled(Payload(m))} if rel == "+" else
        edit_json(data, lambda d: d["config"].update(evil={"path_name": "opaque_obj_0", "use_pickle": False}))
        if rel == "data/constants/model_constants_config.json" else data),
    "evaluated shape expression": _expr_attack,
    "exec'd guard": lambda m: lambda rel, data: (None if rel == "+" else edit_json(
        data, lambda d: d.update(guards_code=["__import__('os').mkdir(%r) is None" % m])) if rel.startswith("models/") else data),
    "op target outside aten": lambda m: lambda rel, data: (None if rel == "+" else data.replace(
        b'"torch.ops.aten.linear.default"', b'"torch.hub.load"') if rel.startswith("models/") else data),
    "pytree spec importing a module": lambda m: lambda rel, data: (None if rel == "+" else data.replace(
        b'builtins.tuple', b'collections.defaultdict', 1) if rel.startswith("models/") else data),
    "old zip format": None,
}


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_every_code_path_of_the_loader_is_refused(archive, tmp_path, kind):
    marker = str(tmp_path / "payload-ran")
    bad = str(tmp_path / "bad.pt2")
    if CRAFTED[kind] is None:  # torch 2.7's layout, loaded by unrestricted unpickling
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("version", "8.0")
            z.writestr("serialized_exported_program.json", "{}")
            z.writestr("serialized_state_dict.pt", pickled(Payload(marker)))
    else:
        rewrite(archive, bad, CRAFTED[kind](marker))
    with pytest.raises(UnsafeFileError):
        check_pt2_archive(bad)
    assert not os.path.exists(marker)


def test_not_an_archive_is_damaged_not_unsafe(tmp_path):
    from core.backends.torch_pt2e.backend import TorchPt2eBackend

    path = tmp_path / "int_model.pt2"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError) as e:
        TorchPt2eBackend().load_int_model(str(path))
    assert "damaged or not an exported program" in e.value.msg
