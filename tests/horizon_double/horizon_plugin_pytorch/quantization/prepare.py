"""TEST DOUBLE of ``horizon_plugin_pytorch.quantization.prepare`` (Horizon Robotics' QAT plugin, hbdk4
generation).

Follows OE-Skills@0c35b73 ``horizon/skills/plugin/j6-plugin-adaptation/j6-plugin-prepare/SKILL.md`` and
the reference (J6 OE 3.0.17 user guide, prepare.html): ``prepare(model, example_inputs=None,
qconfig_setter=None, method=PrepareMethod.JIT_STRIP)``; methods JIT, JIT_STRIP (default), SYMBOLIC,
EAGER; JIT and JIT_STRIP need ``example_inputs`` (the double raises ValueError without them - the real
message is **unconfirmed**); prepare writes ``model_check_result.txt`` into the current directory
(OE-Skills j6-plugin-model-check-result; the double writes a short summary of its own format there).

The double delegates to its ``prepare_qat_fx`` with the qconfig dict the ``QconfigSetter`` translates to
(qint8 only), then runs ``example_inputs`` through the result once in eval mode with fake quantization
off (a smoke check of the graph, as graph capture does in the plugin). Like ``prepare_qat_fx`` it does
not copy the model. Logged as ``{"api": "prepare", "method", "has_example_inputs", ...}`` followed by
the ``prepare_qat_fx`` entry. Available from emulated plugin version 2.0.0 (invented threshold); older
versions raise NotImplementedError.
"""
from enum import Enum
from typing import Any

import torch

from .. import _double

__all__ = ["PrepareMethod", "prepare"]


class PrepareMethod(Enum):
    JIT = "jit"
    JIT_STRIP = "jit-strip"
    SYMBOLIC = "symbolic"
    EAGER = "eager"


def prepare(model: torch.nn.Module, example_inputs: Any = None, qconfig_setter: Any = None,
            method: PrepareMethod = PrepareMethod.JIT_STRIP):
    entry = _double.record("prepare", method=getattr(method, "value", method), has_example_inputs=example_inputs is not None,
                           model_id=id(model), model_class=type(model).__name__)
    if not _double.version_at_least("2.0.0"):
        raise NotImplementedError(
            "test double: prepare() (hbdk4 generation) is emulated from plugin 2.0.0; use prepare_qat_fx")
    if not isinstance(method, PrepareMethod):
        raise TypeError("method must be a PrepareMethod, got %r" % (method,))
    if method in (PrepareMethod.JIT, PrepareMethod.JIT_STRIP) and example_inputs is None:
        raise ValueError("example_inputs must be given when method is %s" % method)
    from .qconfig_setter import QconfigSetter
    from .quantize_fx import prepare_qat_fx

    setter = qconfig_setter if qconfig_setter is not None else QconfigSetter()
    qconfig_dict = setter.to_qconfig_dict()
    qat = prepare_qat_fx(model, qconfig_dict)
    entry["result_id"] = id(qat)
    if example_inputs is not None:
        from .fake_quantize import FakeQuantizeBase

        args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
        states = [(m, m.training, int(m.fake_quant_enabled[0]), int(m.observer_enabled[0]))
                  for m in qat.modules() if isinstance(m, FakeQuantizeBase)]
        was_training = qat.training
        qat.eval()
        for m, _, _, _ in states:
            m.disable_fake_quant()
            m.disable_observer()
        with torch.no_grad():
            qat(*args)
        for m, tr, fq, ob in states:
            m.train(tr)
            m.enable_fake_quant(bool(fq))
            m.enable_observer(bool(ob))
        qat.train(was_training)
    n_fq = sum(1 for m in qat.modules() if type(m).__name__ == "FakeQuantize")
    with open("model_check_result.txt", "w") as f:
        f.write("horizon_plugin_pytorch test double: prepare() check result\n")
        f.write("method: %s\nfake quantizers: %d\n" % (method.value, n_fq))
        f.write("This is not the plugin's report format.\n")
    return qat
