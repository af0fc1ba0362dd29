"""TEST DOUBLE of ``horizon_plugin_pytorch.quantization.hbdk4`` (Horizon Robotics' QAT plugin: export of a
QAT model to HBIR for the hbdk4 compiler - J6 / RDK S100).

Follows OE-Skills@0c35b73 ``horizon/skills/plugin/j6-plugin-export`` and ``j6-hbdk-export-compile``:
``export(model, example_inputs, *, name="forward", input_names=None, output_names=None,
input_descs=None, output_descs=None, native_pytree=True)`` returns an HBIR module (here
``hbdk4.compiler.Module`` of the hbdk4 double) after ``model.eval()`` and
``set_fake_quantize(model, FakeQuantState.VALIDATION)``; ``pre_export(model)`` is a no-op in the double.

The double converts a deep copy of the prepared model with its ``convert_fx`` and traces it, so the
exported module already holds the integer model (the real export keeps fake-quant ops for hbdk4's
``convert``). A model in training mode is accepted with a UserWarning (the docs require VALIDATION;
what the real export does otherwise is **unconfirmed**). Logged as ``{"api": "export", "model_id",
"model_role", "training", "devices", "name"}``. Available from emulated plugin version 2.0.0.
"""
import copy
import warnings
from typing import Any

import torch

from .. import _double

__all__ = ["export", "pre_export", "get_hbir_input_flattener"]


def pre_export(model: torch.nn.Module) -> torch.nn.Module:
    return model


def export(model: torch.nn.Module, example_inputs: Any, *, name: str = "forward", input_names=None,
           output_names=None, input_descs=None, output_descs=None, native_pytree: bool = True):
    from .quantize_fx import ROLE_ATTR, convert_fx

    entry = _double.record("export", model_id=id(model), model_role=getattr(model, ROLE_ATTR, None),
                           training=bool(model.training), devices=_double.module_devices(model), name=name)
    if not _double.version_at_least("2.0.0"):
        raise NotImplementedError("test double: hbdk4 export is emulated from plugin 2.0.0")
    if model.training:
        warnings.warn("test double: export() of a model in training mode; call model.eval() and "
                      "set_fake_quantize(model, FakeQuantState.VALIDATION) first", UserWarning, stacklevel=2)
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    cpu = copy.deepcopy(model).cpu()
    int_model = convert_fx(cpu)
    int_model.eval()
    traced = torch.jit.trace(int_model, tuple(a.cpu() if isinstance(a, torch.Tensor) else a for a in args))
    from hbdk4.compiler import Module

    m = Module._from_traced(traced, list(args), name=name, input_names=input_names, output_names=output_names)
    entry["result"] = "hbdk4.compiler.Module"
    return m


def get_hbir_input_flattener(module: Any):
    """Return a function flattening a structure shaped like the model inputs (lists/tuples/dicts)."""

    def flatten(x: Any):
        if isinstance(x, (list, tuple)):
            out = []
            for i in x:
                out.extend(flatten(i))
            return out
        if isinstance(x, dict):
            out = []
            for k in sorted(x):
                out.extend(flatten(x[k]))
            return out
        return [x]

    return flatten
