"""TEST DOUBLE of ``horizon_plugin_pytorch.march`` (Horizon Robotics' QAT plugin).

Follows the plugin source stored in the code index: read_file id 6887783963 (old: BAYES, BERNOULLI2,
BERNOULLI) and id 31212512250 (new: adds BAYES_E, BAYES_A825_03, NASH, NASH_E/M/P, META and
``is_nash_series``). ``March`` holds plain ``str`` constants (not an Enum); ``set_march`` stores a
global without any validation; ``get_march`` returns it or ``None``.

Version gating is the double's invention (the plugin versions that added the newer constants are
**unconfirmed**): with the emulated version (``QAT_TUI_DOUBLE_PLUGIN_VERSION``) below 1.6.0 only
BERNOULLI/BERNOULLI2/BAYES exist; BAYES_E from 1.6.0; BAYES_A825_03, NASH* and META from 1.9.0.
``set_march`` is recorded in the double's call log (``_double.CALLS``: ``{"api": "set_march",
"march": <new value>}``).
"""
from typing import Optional

from . import _double

__all__ = ["March", "set_march", "get_march", "with_march", "is_nash_series"]


class March(object):
    """BPU platform (plain string constants)."""

    BERNOULLI = "bernoulli"
    BERNOULLI2 = "bernoulli2"
    BAYES = "bayes"


if _double.version_at_least("1.6.0"):
    March.BAYES_E = "bayes-e"
if _double.version_at_least("1.9.0"):
    March.BAYES_A825_03 = "bayes-a825-03"
    March.NASH = "nash"
    March.NASH_E = "nash-e"
    March.NASH_M = "nash-m"
    March.NASH_P = "nash-p"
    March.META = "meta"

_march = None  # type: Optional[str]


def set_march(march):
    """Set the global target march (no validation, as in the source)."""
    global _march
    _march = march
    _double.CALLS.append({"api": "set_march", "march": march})


def get_march():
    """The global march, or None when ``set_march`` was never called."""
    return _march


def with_march(func):
    """Pass the global march as ``march=`` unless the caller gave it (simplified from the source)."""
    import functools
    import inspect

    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        if "march" in kwargs or len(args) == len(inspect.getfullargspec(func).args):
            return func(*args, **kwargs)
        return func(*args, march=get_march(), **kwargs)

    return wrapped


def is_nash_series(march=None):
    if march is None:
        march = _march
    return march in ("nash", "nash-e", "nash-m", "nash-p")
