# Building the float model of a run: a torchvision classifier by name or the user's own builder
# function, made QAT-ready by wrapping (QuantStub at the input, DeQuantStub at the output). This module
# is self-contained (standard library at import, torch/torchvision inside the functions) because the
# exported scripts embed its source verbatim: the script builds the model qat-tui builds. Keep it
# Python 3.8 compatible and free of imports from the rest of qat-tui.
import importlib
import importlib.util
import inspect
import os
import sys


def _(message):
    """``message`` in qat-tui's language (core.i18n) when this module runs inside qat-tui, as written
    when an exported script runs it (this module imports nothing of qat-tui)."""
    i18n = sys.modules.get(__package__ + ".i18n") if __package__ else None
    return i18n._(message) if i18n is not None else message


class ModelBuildError(Exception):
    """The model cannot be built as the settings ask; ``hint`` says what to change."""

    def __init__(self, msg, hint=None):
        super().__init__(msg)
        self.hint = hint


DEFAULT_ARCH = "mobilenet_v2"


def is_weights_name(value):
    """Whether ``[model] pretrained`` names torchvision weights (``DEFAULT``, ``IMAGENET1K_V1``) rather
    than a file: no folder, no extension, and no such file."""
    value = str(value or "")
    return bool(value) and "/" not in value and os.sep not in value and "." not in value and not os.path.exists(value)


def builder_kwargs(arch, builder, kwargs, width_mult):
    """The keyword arguments the builder gets besides ``num_classes``: ``[model] kwargs``, plus
    ``width_mult`` for torchvision's MobileNetV2 (the sample's own setting) when it is not 1.0.

    Raises:
        ModelBuildError: ``width_mult`` set for another model.
    """
    kw = dict(kwargs or {})
    if float(width_mult) != 1.0:
        if builder or arch != DEFAULT_ARCH:
            raise ModelBuildError(_("[model] width_mult = {value} applies to torchvision's mobilenet_v2 only").format(value=width_mult),
                                  hint=_("remove width_mult and pass the builder's own parameter in [model] kwargs"))
        kw.setdefault("width_mult", float(width_mult))
    return kw


def builtin_archs():
    """Classification architectures the installed torchvision builds: ``{name: one line of help}``.

    torchvision >= 0.14: its model registry (``list_models(module=torchvision.models)``); older ones
    (0.11 in Horizon's Python 3.8 dockers has no registry): the top-level builder functions of
    ``torchvision.models`` (those taking ``pretrained``), which are its classification models."""
    import torchvision.models as tvm

    if hasattr(tvm, "list_models"):
        names = list(tvm.list_models(module=tvm))
        get = tvm.get_model_builder
    else:
        names = sorted(n for n, f in vars(tvm).items()
                       if inspect.isfunction(f) and not n.startswith("_") and "pretrained" in inspect.signature(f).parameters)
        get = lambda n: getattr(tvm, n)  # noqa: E731
    import re

    out = {}
    for n in sorted(names):
        para = " ".join((get(n).__doc__ or "").strip().split("\n\n")[0].split())
        para = re.sub(r"`([^`<]*?)\s*<[^>]*>`_+", r"\1", para).replace("`", "")  # RST links -> their text
        para = re.sub(r"\s*\.\. .*", "", para).strip(" .")
        out[n] = (para[:77] + "...") if len(para) > 80 else (para or n)
    return out


def _file_builder(path, fn, base_dir):
    full = os.path.abspath(os.path.join(base_dir or os.getcwd(), os.path.expanduser(path)))
    if not os.path.isfile(full):
        raise ModelBuildError(_("[model] builder: file {path} does not exist").format(path=full),
                              hint=_("give the path of a .py file (relative to the folder qat-tui is started from), then ':' and the function name"))
    name = "qat_tui_user_model_" + "".join(c if c.isalnum() else "_" for c in os.path.splitext(os.path.basename(full))[0])
    spec = importlib.util.spec_from_file_location(name, full)
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(full)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # the file may import its neighbours
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise ModelBuildError(_("[model] builder: importing {path} failed: {error}: {detail}{where}").format(
            path=full, error=type(e).__name__, detail=e, where=_where(e, full)),
            hint=_("fix the error in that file (run python {path} to see it alone)").format(path=full)) from None
    finally:
        if added:
            sys.path.remove(folder)
    return module, full


def _where(exc, path):
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) == path]
    return _(" (line {line}: {code})").format(line=frames[-1].lineno, code=(frames[-1].line or "").strip()) if frames else ""


def load_builder(spec, base_dir=None):
    """The function named by ``[model] builder``: ``"package.module:function"`` (imported from the
    Python path) or ``"path/to/file.py:function"`` (relative to ``base_dir``, default the working folder).

    Returns:
        ``(function, where)``: the callable and a description of where it came from.

    Raises:
        ModelBuildError: malformed value, missing file/module, an import that fails (with the line), or
            no such function.
    """
    target, sep, fn = str(spec).rpartition(":")
    if not sep or not target or not fn.isidentifier():
        raise ModelBuildError(_("[model] builder = {value} is not 'package.module:function' or 'path/file.py:function'").format(
            value=repr(spec)),
            hint=_("e.g. builder = \"models/net.py:build\" (build(num_classes, **kwargs) returns an nn.Module)"))
    if target.endswith(".py") or os.sep in target or "/" in target:
        module, where = _file_builder(target, fn, base_dir)
    else:
        try:
            module = importlib.import_module(target)
        except Exception as e:
            raise ModelBuildError(_("[model] builder: cannot import module {module}: {error}: {detail}").format(
                module=target, error=type(e).__name__, detail=e),
                hint=_("install the package, add its folder to PYTHONPATH, or give the path of the .py file")) from None
        where = getattr(module, "__file__", None) or target
    func = getattr(module, fn, None)
    if not callable(func):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_") and getattr(v, "__module__", "") == module.__name__)
        raise ModelBuildError(_("[model] builder: {where} has no function {name}").format(where=where, name=repr(fn)),
                              hint=_("functions and classes defined there: {names}").format(names=", ".join(found) or _("none")))
    return func, "%s:%s" % (where, fn)


def _raised_hint(error):
    """What to do about a builder that raised: its parameters when the call did not fit them, else
    the line of the model code that raised."""
    import traceback

    if isinstance(error, TypeError) and "argument" in str(error):
        return _("check [model] kwargs against that function's parameters: it is called as function(num_classes=N, **kwargs)")
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        last = frames[-1]
        return _("the error is in the model's code ({file}, line {line}: {code}): fix it there").format(
            file=last.filename, line=last.lineno, code=(last.line or "").strip())
    return _("fix the error in the model's code")


def build_net(arch, builder, kwargs, num_classes, base_dir=None):
    """The plain float network (no stubs), freshly initialised, in training mode.

    Args:
        arch: a name of :func:`builtin_archs` (used when ``builder`` is empty).
        builder: ``[model] builder`` or None.
        kwargs: keyword arguments for the builder (e.g. ``{"width_mult": 0.5}``).
        num_classes: passed as ``num_classes``.

    Raises:
        ModelBuildError: unknown arch, builder problems, the builder raises or returns no ``nn.Module``.
    """
    import torch

    kwargs = dict(kwargs or {})
    if builder:
        func, where = load_builder(builder, base_dir)
    else:
        import torchvision.models as tvm

        names = builtin_archs()
        if arch not in names:
            close = [n for n in names if n.startswith(str(arch)[:4])][:8]
            raise ModelBuildError(_("[model] arch = {arch} is not a classification model of torchvision {version}").format(
                arch=repr(arch), version=__import__("torchvision").__version__),
                hint=_("choose one of: {names} (qat-tui models lists all), or set [model] builder to your own function").format(
                    names=", ".join(close or sorted(names)[:12])))
        func, where = getattr(tvm, arch), "torchvision.models.%s" % arch
    try:
        net = func(num_classes=num_classes, **kwargs)
    except Exception as e:
        raise ModelBuildError(_("{call} raised {error}: {detail}").format(
            call="%s(num_classes=%d%s)" % (where, num_classes, "".join(", %s=%r" % kv for kv in sorted(kwargs.items()))),
            error=type(e).__name__, detail=e),
            hint=_raised_hint(e)) from None
    if not isinstance(net, torch.nn.Module):
        if net is None:
            text = _("{where} returned None, not a torch.nn.Module")
        elif type(net).__name__[:1].lower() in "aeiou":
            text = _("{where} returned an {type}, not a torch.nn.Module")
        else:
            text = _("{where} returned a {type}, not a torch.nn.Module")
        raise ModelBuildError(text.format(where=where, type=type(net).__name__),
                              hint=_("make the function return the model (an nn.Module instance)"))
    return net.train()


def cached_weights(arch, name):
    """The file of torchvision's named weights ``name`` (``DEFAULT``, ``IMAGENET1K_V1``, ...) for
    ``arch`` in the local torch hub cache (``torch.hub.get_dir()/checkpoints``, where torchvision's own
    download puts it); never downloaded (machines in Horizon's dockers are often offline).

    Raises:
        ModelBuildError: torchvision has no such weights for that model, or the file is not there
            (the hint gives the URL and the path to copy it to).
    """
    import torch
    import torchvision.models as tvm

    url, names = None, []
    if hasattr(tvm, "get_model_weights"):  # torchvision >= 0.14: weight enums
        if arch in tvm.list_models():
            enum = tvm.get_model_weights(arch)
            names = ["DEFAULT"] + [w.name for w in enum]
            if name in names:
                url = (enum.DEFAULT if name == "DEFAULT" else enum[name]).url
    else:  # torchvision 0.11: one ImageNet weight file per model, in its module's model_urls
        module = sys.modules.get(getattr(getattr(tvm, arch, None), "__module__", ""), None)
        urls = getattr(module, "model_urls", {}) if module else {}
        names = ["DEFAULT", "IMAGENET1K_V1"] if arch in urls else []
        url = urls.get(arch) if name in names else None
    if url is None:
        raise ModelBuildError(_("[model] pretrained = {name}: torchvision has no weights of that name for {arch}").format(
            name=repr(name), arch=arch),
            hint=_("use one of: {names}, or the path of a state_dict file").format(names=", ".join(names) or _("none for this model")))
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    if not os.path.isfile(cached):
        raise ModelBuildError(_("torchvision's {name} weights for {arch} are not on this machine (looked in {path})").format(
            name=name, arch=arch, path=cached),
            hint=_("this machine may be offline: download {url} elsewhere and copy it to {path} (or set TORCH_HOME)").format(
                url=url, path=cached))
    return cached


_READY = {}


def make_qat_ready(net, quant, dequant):
    """``net`` (changed in place and returned) with ``quant`` run on its input and ``dequant`` on its
    output: its class becomes a subclass of its own whose ``forward`` is
    ``dequant(<the original forward>(quant(x)))``. The state_dict keys stay the network's own (plus the
    stubs'), so torchvision's and Horizon's weights load; FX tracing (Horizon's ``prepare_qat_fx``) and
    ``torch.export`` see one forward.

    Raises:
        ModelBuildError: the network already has attributes ``quant``/``dequant`` of its own.
    """
    base = type(net)
    if getattr(base, "_qat_tui_ready", False):
        return net
    for attr in ("quant", "dequant"):
        if hasattr(net, attr):
            raise ModelBuildError(_("the model already has an attribute {name}; qat-tui adds its QuantStub/DeQuantStub under "
                                    "the names quant and dequant").format(name=repr(attr)),
                                  hint=_("rename that attribute in the model (or return the model without its own stubs)"))
    cls = _READY.get(base)
    if cls is None:
        def forward(self, x):
            return self.dequant(base.forward(self, self.quant(x)))

        cls = type(base.__name__, (base,), {"forward": forward, "_qat_tui_ready": True,
                                            "__module__": base.__module__, "__qualname__": base.__qualname__})
        _READY[base] = cls
    net.__class__ = cls
    net.quant = quant
    net.dequant = dequant
    return net


def output_layer(model, example):
    """The name of the conv/linear module that computes the model's output (the last one a forward
    pass of ``example`` runs), found by tracing the call order with forward hooks; None when the
    model has none.

    Args:
        model: an ``nn.Module``; example: float32 ``(N, 3, H, W)``.
    """
    import torch

    kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)
    order = []
    forward_with_hooks(model, example, [(m, lambda _m, _i, _o, n=n: order.append(n))
                                        for n, m in model.named_modules() if isinstance(m, kinds)])
    return order[-1] if order else None


def forward_with_hooks(model, example, hooks):
    """One forward pass of ``example`` in eval mode without gradients, with ``hooks`` (``[(module,
    forward hook)]``) registered only for it; the model's train/eval mode is restored."""
    import torch

    handles = [m.register_forward_hook(fn) for m, fn in hooks]
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        model.train(was)
        for h in handles:
            h.remove()


def check_output(model, example, num_classes, where):
    """One forward pass of ``example``; the output must be a float tensor ``(N, num_classes)``.

    Returns:
        The output shape as a tuple.

    Raises:
        ModelBuildError: the forward pass raises (names the line of the model's file when it can) or
            returns something else (a tuple, a dict, another shape).
    """
    import torch

    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(example)
    except Exception as e:
        raise ModelBuildError(_("a forward pass of {where} on a {shape} input failed: {error}: {detail}").format(
            where=where, shape="x".join(str(d) for d in example.shape), error=type(e).__name__, detail=e),
            hint=_("check that the model accepts (N, 3, H, W) images at [data] image_size")) from None
    finally:
        model.train(was)
    n = example.shape[0]
    if not isinstance(out, torch.Tensor):
        raise ModelBuildError(_("{where} returns a {type}, not one tensor of logits").format(where=where, type=type(out).__name__),
                              hint=_("return the logits (N, num_classes) only (e.g. aux_logits=False for inception/googlenet)"))
    if tuple(out.shape) != (n, num_classes):
        raise ModelBuildError(_("{where} returns shape {shape} for {n} images; expected ({n}, {num_classes}) = (N, num_classes)").format(
            where=where, shape=tuple(out.shape), n=n, num_classes=num_classes),
            hint=_("end the model with a classifier of num_classes outputs (flatten after pooling)"))
    return tuple(out.shape)
