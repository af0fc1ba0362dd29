"""Building the float model: torchvision classifiers by name, the user's own builder file, the
QAT-ready wrapping (stubs at input and output, state_dict keys unchanged), the output layer found by
tracing, named torchvision weights from the local hub cache, and one clear message per bad input.
On both Python environments (torchvision 0.29 with its model registry, 0.11 without)."""
import os
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from core.errors import CheckpointError, ModelError
from core.models import arch_choices, build_float_model, load_pretrained, pretrained_path, summarize

USER_NET = os.path.join(os.path.dirname(__file__), "assets", "user_net.py")


def _spec(**kw: Any) -> Any:
    base = dict(arch="mobilenet_v2", builder=None, kwargs={}, width_mult=1.0, pretrained=None)
    base.update(kw)
    return SimpleNamespace(**base)


def test_torchvision_classifiers_are_offered_by_name() -> None:
    archs = arch_choices()
    assert {"mobilenet_v2", "resnet18", "mobilenet_v3_small"} <= set(archs)
    assert not any(n.startswith(("fasterrcnn", "deeplab", "fcn_", "r3d", "raft")) for n in archs)  # classifiers only
    assert all(isinstance(h, str) and h for h in archs.values())


@pytest.mark.parametrize("arch,last", [("resnet18", "fc"), ("mobilenet_v3_small", "classifier.3"), ("mobilenet_v2", "classifier.1")])
def test_wrapping_keeps_torchvision_keys_and_finds_the_output_layer(arch: str, last: str) -> None:
    import torchvision.models as tvm

    model = build_float_model(5, arch=arch)
    plain = getattr(tvm, arch)(num_classes=5)
    assert set(model.state_dict()) == set(plain.state_dict())  # weights of torchvision load unchanged
    plain.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 64, 64)
    model.eval(), plain.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), plain(x), atol=1e-6)  # the stubs are identities in the float model
    assert type(model).__name__ == type(plain).__name__ and isinstance(model, type(plain))
    s = summarize(_spec(arch=arch), 5, 64)
    assert s.output_layer == last and s.output_shape == (2, 5) and s.parameters == sum(p.numel() for p in plain.parameters())
    assert s.macs > 1e6


def test_user_builder_file_is_wrapped_and_traceable() -> None:
    model = build_float_model(3, builder=USER_NET + ":build", kwargs={"width": 8})
    s = summarize(_spec(builder=USER_NET + ":build", kwargs={"width": 8}), 3, 64)
    assert s.output_layer == "head" and s.output_shape == (2, 3) and "user_net.py:build" in s.source
    # conv 3->8 3x3 stride 2 on 64x64 alone: 32*32*8 outputs x 27 MACs
    assert s.macs > 32 * 32 * 8 * 27
    assert "quant" in dict(model.named_children()) and "dequant" in dict(model.named_children())
    # Horizon's prepare_qat_fx traces with torch.fx: the wrapper's forward must trace, stubs included
    try:
        from torch.ao.quantization import DeQuantStub, QuantStub
    except ImportError:  # torch 1.10
        from torch.quantization import DeQuantStub, QuantStub

    class StubsAsLeaves(torch.fx.Tracer):  # quantization tracers keep the stubs as modules
        def is_leaf_module(self, m: Any, name: str) -> bool:
            return isinstance(m, (QuantStub, DeQuantStub)) or super().is_leaf_module(m, name)

    graph = StubsAsLeaves().trace(model)
    targets = [n.target for n in graph.nodes if n.op == "call_module"]
    assert targets[0] == "quant" and targets[-1] == "dequant" and "head" in targets


@pytest.mark.parametrize("builder,needle", [
    ("missing.py:build", "does not exist"),
    ("{user}:nope", "has no function 'nope'"),
    ("{user}:raises", "raised ValueError: this builder needs a config file"),
    ("{user}:not_a_model", "returned a dict, not a torch.nn.Module"),
    ("no_such_package_xyz.models:build", "cannot import module no_such_package_xyz.models"),
    ("{user}", "is not 'package.module:function'"),
])
def test_bad_builders_get_one_clear_message(builder: str, needle: str) -> None:
    with pytest.raises(ModelError) as e:
        build_float_model(3, builder=builder.format(user=USER_NET))
    assert needle in e.value.msg and e.value.hint, e.value
    if "{user}" in builder and "nope" in builder:
        assert "build" in e.value.hint  # lists the functions that are there
    if builder.endswith(":raises"):  # the line that raised, not a guess about kwargs
        assert "user_net.py, line" in e.value.hint and 'raise ValueError("this builder' in e.value.hint, e.value.hint


def test_a_builder_called_with_kwargs_it_does_not_take_is_told_so() -> None:
    with pytest.raises(ModelError) as e:
        build_float_model(3, builder=USER_NET + ":build", kwargs={"depth": 3})
    assert "unexpected keyword argument 'depth'" in e.value.msg and "[model] kwargs" in e.value.hint


def test_a_builder_file_that_fails_to_import_names_the_line(tmp_path: Any) -> None:
    bad = tmp_path / "net.py"
    bad.write_text("import torch\n\nX = 1 / 0\n\ndef build(num_classes):\n    return torch.nn.Linear(3, num_classes)\n")
    with pytest.raises(ModelError) as e:
        build_float_model(3, builder=str(bad) + ":build")
    assert str(bad) in e.value.msg and "ZeroDivisionError" in e.value.msg and "line 3: X = 1 / 0" in e.value.msg


@pytest.mark.parametrize("fn,needle", [("wrong_shape", "returns shape (2, 4, 1, 1) for 2 images; expected (2, 3)"),
                                       ("two_outputs", "returns a tuple, not one tensor")])
def test_an_output_that_is_not_logits_is_named(fn: str, needle: str) -> None:
    with pytest.raises(ModelError) as e:
        summarize(_spec(builder=USER_NET + ":" + fn), 3, 32)
    assert needle in e.value.msg and USER_NET in e.value.msg


def test_unknown_arch_and_misplaced_width_mult() -> None:
    with pytest.raises(ModelError) as e:
        build_float_model(3, arch="resnet19")
    assert "'resnet19' is not a classification model of torchvision" in e.value.msg and "resnet18" in e.value.hint
    with pytest.raises(ModelError) as e:
        build_float_model(3, width_mult=0.5, arch="resnet18")
    assert "width_mult" in e.value.msg and "kwargs" in e.value.hint


def test_named_weights_come_from_the_hub_cache_only(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(ModelError) as e:
        pretrained_path(_spec(arch="resnet18", pretrained="DEFAULT"))
    cached = e.value.hint.rsplit(" to ", 1)[1].split(" (")[0]
    assert "not on this machine" in e.value.msg and cached.startswith(str(tmp_path / "hub")) and "https://" in e.value.hint
    with pytest.raises(ModelError) as e:
        pretrained_path(_spec(arch="resnet18", pretrained="NO_SUCH_WEIGHTS"))
    assert "no weights of that name" in e.value.msg
    # ImageNet weights (1000 classes) in the cache: loaded, the classifier skipped and said so
    import torchvision.models as tvm

    os.makedirs(os.path.dirname(cached))
    torch.save(tvm.resnet18(num_classes=1000).state_dict(), cached)
    path = pretrained_path(_spec(arch="resnet18", pretrained="DEFAULT"))
    assert path == cached
    model = build_float_model(3, arch="resnet18")
    msgs = load_pretrained(model, path)
    assert "loaded 120 of 122" in msgs[0] and "fc.weight" in msgs[1] and "skipped" in msgs[1]
    with pytest.raises(CheckpointError):
        load_pretrained(build_float_model(3, builder=USER_NET + ":build"), path)
