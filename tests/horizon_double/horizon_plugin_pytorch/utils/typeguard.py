"""TEST DOUBLE of ``horizon_plugin_pytorch.utils.typeguard`` (Horizon Robotics' QAT plugin).

The plugin decorates public functions such as ``set_fake_quantize`` and ``get_default_qconfig`` with
``@typechecked`` (fake_quantize.py read_file id 31843094239, qconfig.py id 31499793000), so a wrong
argument type raises ``TypeError`` before the body runs. The real decorator wraps the ``typeguard``
package; the message format below is typeguard 2.x's (``type of argument "mode" must be
<qualified name>; got str instead``) - the exact text the plugin prints is **unconfirmed**.
Only what the double needs is checked: plain classes, ``Optional[...]``, ``Union[...]``, ``Dict`` and
``Type[...]``; other annotations are accepted as they are.
"""
import functools
import inspect
import typing
from typing import Any

__all__ = ["typechecked"]


def _qualified_name(t: Any) -> str:
    if t is None or t is type(None):
        return "NoneType"
    if isinstance(t, type):
        mod = t.__module__
        return t.__qualname__ if mod == "builtins" else "%s.%s" % (mod, t.__qualname__)
    return str(t).replace("typing.", "")


def _check(value: Any, annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = getattr(annotation, "__origin__", None)
    if origin is typing.Union:
        return any(_check(value, a) for a in annotation.__args__)
    if annotation is type(None) or annotation is None:
        return value is None
    if origin in (dict, typing.Dict):
        return isinstance(value, dict)
    if origin in (list, typing.List):
        return isinstance(value, list)
    if origin in (tuple, typing.Tuple):
        return isinstance(value, tuple)
    if origin in (type, typing.Type):
        return isinstance(value, type)
    if isinstance(annotation, type):
        if annotation is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        return isinstance(value, annotation)
    return True


def typechecked(func):
    """Raise TypeError (typeguard 2.x wording) when an annotated argument has the wrong type."""
    sig = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # pragma: no cover - forward references
        hints = {k: p.annotation for k, p in sig.parameters.items()}

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            ann = hints.get(name, inspect.Parameter.empty)
            if sig.parameters[name].kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            if not _check(value, ann):
                raise TypeError(
                    'type of argument "%s" must be %s; got %s instead'
                    % (name, _qualified_name(ann), _qualified_name(type(value)))
                )
        return func(*args, **kwargs)

    return wrapper
