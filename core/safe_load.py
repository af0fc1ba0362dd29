# Loading files without running code from them. This module is self-contained (standard library at
# import, torch inside the functions) because the exported scripts embed its source verbatim: the
# script and qat-tui refuse the same files for the same reasons. Keep it Python 3.8 compatible and free
# of imports from the rest of qat-tui.
import io
import json
import pickle
import re
import sys
import zipfile


def _(message):
    """``message`` in qat-tui's language (core.i18n) when this module runs inside qat-tui, as written
    when an exported script runs it (this module imports nothing of qat-tui)."""
    i18n = sys.modules.get(__package__ + ".i18n") if __package__ else None
    return i18n._(message) if i18n is not None else message


class UnsafeFileError(Exception):
    """A file holds something other than plain data (a pickled Python object that would run code when
    loaded); it was refused before anything in it ran. The message names the file and what was found."""


# Globals a checkpoint of tensors may name, after torch's own weights_only allowlist
# (torch/_weights_only_unpickler.py, _get_allowed_globals): containers, tensor rebuild functions,
# storages, dtypes, qschemes. Nothing that can call arbitrary code.
_ALLOWED_BUILTINS = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("_codecs", "encode"),  # how protocol 2 pickles bytes
    ("torch", "Size"),
    ("torch", "device"),
    ("torch.nn.parameter", "Parameter"),
    ("torch.serialization", "_get_layout"),
}
_TORCH_REBUILD = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter",
                  "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_device_tensor_from_numpy")


def _allowed(module, name):
    """The object ``module.name`` when a plain-data checkpoint may reference it, else None."""
    import torch

    if (module, name) in _ALLOWED_BUILTINS:
        mod = __import__(module, fromlist=[name])
        return getattr(mod, name, None)
    if module == "torch._utils" and name in _TORCH_REBUILD:
        return getattr(torch._utils, name, None)
    if module in ("torch", "torch.storage", "torch.cuda") and name.endswith("Storage"):
        obj = getattr(__import__(module, fromlist=[name]), name, None)
        return obj if isinstance(obj, type) else None
    if module == "torch":
        obj = getattr(torch, name, None)
        if isinstance(obj, (torch.dtype, torch.qscheme)):  # e.g. torch.float32, torch.per_tensor_affine
            return obj
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the globals of a plain tensor checkpoint (see
    ``_allowed``); any other global - a class with ``__reduce__``, ``os.system``, ``builtins.eval`` -
    raises :class:`UnsafeFileError` before it is called."""

    def find_class(self, module, name):
        obj = _allowed(module, name)
        if obj is None:
            raise UnsafeFileError(
                _("it references the Python object {name} (pickled code, not tensors)").format(name="%s.%s" % (module, name))
            )
        return obj


class RestrictedPickleModule(object):
    """What ``torch.load(..., pickle_module=...)`` needs from a pickle module (``Unpickler``, ``load``),
    restricted to plain data. For torch < 1.13, which has no ``weights_only``."""

    __name__ = "qat_tui_restricted_pickle"
    Unpickler = RestrictedUnpickler

    @staticmethod
    def load(f, **kwargs):
        return RestrictedUnpickler(f, **kwargs).load()

    @staticmethod
    def loads(data, **kwargs):
        return RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("collections", "OrderedDict"), ("_codecs", "encode"),
}
"""What a pickle of numpy arrays in plain containers names (numpy's ``ndarray.__reduce__`` across
numpy 1.x and 2.x, pickle protocols 2-5)."""


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, numbers, strings, bytes, lists and dicts only; any other global raises
    :class:`UnsafeFileError` before it is called."""

    def find_class(self, module, name):
        if (module, name) not in _NUMPY_GLOBALS:
            raise UnsafeFileError(_("it references the Python object {name} (pickled code, not data)").format(
                name="%s.%s" % (module, name)))
        import importlib
        import warnings

        with warnings.catch_warnings():  # numpy 2 warns about the numpy.core alias old pickles name
            warnings.simplefilter("ignore")
            return getattr(importlib.import_module(module), name)


def load_pickled_arrays(path):
    """``pickle.load(f, encoding="latin1")`` of a data file made of numpy arrays and plain containers -
    CIFAR-10's ``cifar-10-batches-py`` batches, as torchvision's CIFAR10 reads them - refusing any
    other Python object (a crafted batch would otherwise run code: torchvision unpickles it as is).

    Raises:
        UnsafeFileError: the file references another Python object.
        pickle.UnpicklingError, EOFError, OSError: not a pickle / truncated / unreadable.
    """
    with open(path, "rb") as f:
        return ArrayUnpickler(f, encoding="latin1").load()


def load_tensors(f, map_location="cpu"):
    """``torch.load`` that never runs code from ``f`` (a path or binary file object).

    torch >= 1.13: ``weights_only=True``. Older torch (Horizon's Python 3.8 dockers ship 1.10, whose
    ``torch.load`` unpickles anything): :class:`RestrictedPickleModule` as its ``pickle_module``.

    Raises:
        UnsafeFileError: the file references Python objects other than tensors and plain containers.
        Exception: what torch raises for a file that is not a checkpoint (truncated zip, ...).
    """
    import inspect

    import torch

    if "weights_only" in inspect.signature(torch.load).parameters:
        try:
            return torch.load(f, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            text = str(e)
            found = re.search(r"(?:unsupported GLOBAL|Unsupported global:\s*GLOBAL)\s+([\w.]+)", text)
            if found:
                raise UnsafeFileError(
                    _("it references the Python object {name} (pickled code, not tensors)").format(name=found.group(1))
                ) from None
            reason = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("Weights only", "Check the", "Please file"))]
            raise pickle.UnpicklingError(reason[0].strip() if reason else _("not a tensor checkpoint")) from None
    return torch.load(f, map_location=map_location, pickle_module=RestrictedPickleModule)


_PT2_MEMBER = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/\w+\.json|data/weights/(weight_\d+|\w+_weights_config\.json)"
    r"|data/constants/(tensor_\d+|\w+_constants_config\.json)|data/sample_inputs/\w+\.pt|extra/[^/]+)"
)
"""Members ``torch.export.save`` writes for a plain model (torch/export/pt2_archive/constants.py);
anything else (legacy pickled weights ``data/weights/model.pt``, custom or opaque objects, AOTInductor
binaries) is refused."""

_OP_NAMESPACES = ("torch.ops.aten.", "torch.ops.quantized_decomposed.", "torch.ops.prims.")
_OPERATOR_FNS = {"getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs",
                 "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "not_", "xor"}
_TORCH_SYM_FNS = {"sym_int", "sym_float", "sym_max", "sym_min", "sym_not", "sym_ite", "sym_sqrt", "sym_sum",
                  "_assert", "_check", "_check_is_size"}
_SYMPY_NAMES = {"Symbol", "Integer", "Float", "Rational", "true", "false", "True", "False", "oo", "int_oo",
                "Max", "Min", "Abs", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "Piecewise",
                "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt",
                "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv",
                "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt",
                "RoundToInt", "RoundDecimal", "ToFloat", "Identity"}
_SYMPY_KEYWORDS = {"positive", "integer", "nonnegative", "negative", "real", "finite", "nonzero", "evaluate"}
_SYMBOL = re.compile(r"[a-z]{1,4}\d+")
_TREESPEC_TYPES = {None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict",
                   "collections.namedtuple", "torch.fx.immutable_collections.immutable_list",
                   "torch.fx.immutable_collections.immutable_dict"}


def _check_expression(text, what, names, attributes=()):
    """Refuse a Python expression string that ``torch.export.load`` evaluates (sympy's ``sympify``
    for symbolic shapes, ``exec`` for guards) unless it only combines numbers, symbol names, the
    allowed function ``names`` and ``attributes`` with arithmetic and comparisons."""
    import ast

    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        raise UnsafeFileError(_("its {what} {text} is not a plain expression").format(what=what, text=repr(text[:80]))) from None
    plain = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.operator, ast.unaryop,
             ast.boolop, ast.cmpop, ast.Load, ast.Call, ast.keyword, ast.Subscript, ast.Tuple)
    for node in ast.walk(tree):
        ok = isinstance(node, plain)
        if isinstance(node, getattr(ast, "Index", ())):  # Python 3.8's subscript wrapper
            ok = True
        if isinstance(node, ast.Constant) or type(node).__name__ in ("Num", "Str", "NameConstant"):
            value = getattr(node, "value", getattr(node, "n", getattr(node, "s", None)))
            ok = isinstance(value, (int, float, bool, type(None))) or (isinstance(value, str) and bool(_SYMBOL.fullmatch(value)))
        elif isinstance(node, ast.Name):
            ok = node.id in names or bool(_SYMBOL.fullmatch(node.id))
        elif isinstance(node, ast.Attribute):
            ok = node.attr in attributes
        elif isinstance(node, ast.keyword):
            ok = node.arg in _SYMPY_KEYWORDS
        elif isinstance(node, ast.Call):
            fn = node.func
            ok = (isinstance(fn, ast.Name) and fn.id in names) or (isinstance(fn, ast.Attribute) and fn.attr in attributes)
        if not ok:
            raise UnsafeFileError(_("its {what} {text} holds code ({node})").format(
                what=what, text=repr(text[:80]), node=type(node).__name__))


def _check_treespec(text):
    try:
        spec = json.loads(text)
    except ValueError:
        raise UnsafeFileError(_("its input/output spec is not JSON")) from None
    stack = [spec]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if "type" in node and node["type"] not in _TREESPEC_TYPES:
                raise UnsafeFileError(_("its input/output spec names the Python type {type}").format(type=repr(node["type"])))
            if isinstance(node.get("context"), str) and "__enum__" in node["context"]:
                raise UnsafeFileError(_("its input/output spec imports an enum class"))
            stack.extend(node.values())


def _check_program_json(program):
    """Walk a serialized ExportedProgram (``models/<name>.json``) and refuse what the loader would turn
    into code: op targets outside the aten/prims/quantized_decomposed namespaces and plain operators
    (``torch.<anything>`` would be looked up and called), symbolic-shape expressions and guards that are
    not plain arithmetic (they are evaluated), custom objects, and pytree specs that import modules."""
    stack = [program]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        target = node.get("target")
        if isinstance(target, str) and isinstance(node.get("inputs"), list):
            module, _dot, fn = target.rpartition(".")
            ok = (target.startswith(_OP_NAMESPACES) or (module == "_operator" and fn in _OPERATOR_FNS)
                  or module == "math" or (module == "torch" and fn in _TORCH_SYM_FNS))
            if not ok:
                raise UnsafeFileError(_("its graph calls {target}, which is not a tensor operator").format(target=target))
        for key, value in node.items():
            if key == "expr_str" and isinstance(value, str):
                _check_expression(value, _("shape expression"), _SYMPY_NAMES)
            elif key == "guards_code" and isinstance(value, list):
                for guard in value:
                    _check_expression(str(guard), _("guard"), _SYMPY_NAMES | {"L"},
                                      ("size", "stride", "storage_offset", "dim", "numel"))
            elif key in ("in_spec", "out_spec") and isinstance(value, str):
                _check_treespec(value)
            elif key in ("custom_obj_values", "as_custom_obj") and value:
                raise UnsafeFileError(_("it holds a custom (TorchScript) object"))
            else:
                stack.append(value)


def check_pt2_archive(path):
    """Refuse a ``torch.export`` archive (``.pt2`` holding an ExportedProgram) that would run code when
    ``torch.export.load`` reads it or when its module is built.

    What torch 2.x does with an archive (torch/export/pt2_archive/_package.py,
    torch/_export/serde/serialize.py, torch/export/_unlift.py): weights and constants whose payload
    config says ``use_pickle`` are unpickled with ``weights_only=False``; "opaque" constants with
    ``pickle.loads``; legacy weight files and sample inputs that fail ``weights_only`` are retried with
    ``weights_only=False``; symbolic-shape strings go through ``sympy.sympify`` (``eval``); guards are
    ``exec``'d; op targets ``torch.<path>`` are looked up by name and called; pytree specs may import
    modules. ``torch.export.save`` of a plain model writes none of these, so every such entry is refused.

    Raises:
        UnsafeFileError: the first such entry, named in the message.
        zipfile.BadZipFile, OSError, ValueError: not a readable zip archive / JSON.
    """
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        roots = {n.split("/", 1)[0] for n in names}
        if len(roots) != 1 or not all("/" in n for n in names):
            if any(n.startswith("serialized_") for n in names):
                raise UnsafeFileError(_("it is in torch.export's pre-2.8 format, which loads by unrestricted unpickling"))
            raise UnsafeFileError(_("it is not a torch.export archive (entries outside one root folder)"))
        root = roots.pop() + "/"
        if root + "archive_format" not in names:
            raise UnsafeFileError(_("it is not a torch.export archive (no archive_format entry)"))
        for name in names:
            rel = name[len(root):]
            if not _PT2_MEMBER.fullmatch(rel):
                raise UnsafeFileError(_("it holds {entry}, which torch.export.save does not write for a plain model").format(entry=rel))
            if rel.endswith("_config.json"):
                config = json.loads(z.read(name).decode("utf-8")).get("config", {})
                kind = "weight" if rel.startswith("data/weights/") else "constant"
                for fqn, meta in config.items():
                    if meta.get("use_pickle"):
                        raise UnsafeFileError(_("{kind} {name} is stored as a pickle (use_pickle)").format(kind=kind, name=repr(fqn)))
                    prefix = "weight_" if kind == "weight" else "tensor_"
                    if not str(meta.get("path_name", "")).startswith(prefix):
                        raise UnsafeFileError(_("{kind} {name} is a Python object ({path}), not a tensor").format(
                            kind=kind, name=repr(fqn), path=meta.get("path_name")))
            elif rel.startswith("data/sample_inputs/"):
                try:
                    load_tensors(io.BytesIO(z.read(name)))
                except UnsafeFileError as e:
                    raise UnsafeFileError(_("its sample inputs ({entry}): {reason}").format(entry=rel, reason=e)) from None
            elif rel.startswith("models/"):
                _check_program_json(json.loads(z.read(name).decode("utf-8")))
