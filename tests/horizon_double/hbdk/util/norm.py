"""TEST DOUBLE of ``hbdk.util.norm`` (Horizon Robotics' hbdk3), following the source in the code index
(read_file id 20472558579).

``opt_to_str(opt, factor=2)`` maps the ``opt`` argument of compile/perf to hbdk-cc flags:
"O0".."O3"/"Om" -> ["--O0"].., "0".."3"/"m" -> ["--O0"].., "fast"/"ddr" -> ["--O3", "--fast"/"--ddr"],
"balance" -> ["--O3", "--balance", str(factor)], int 0..3 -> ["--O<n>"]. As in the source, an unknown
value is **not** rejected: the function builds a NotImplementedError without raising it and returns
None, so the caller fails later with ``TypeError`` when it unpacks ``*None`` into the command line; an
out-of-range balance factor is passed on unchanged. (``True`` counts as the int 1 and gives "--OTrue",
which hbdk-cc then rejects.) ``str_list_to_str`` joins a list with commas, then lower-cases and strips
blanks - so ``input_source=["DDR"]`` becomes "ddr".
"""
import re
from typing import Sequence, Union


def iterable_except_str_bytes(arg) -> bool:
    try:
        iter(arg)
    except TypeError:
        return False
    return not isinstance(arg, (str, bytes))


def normalize_str(s: str) -> str:
    """Lower case, strip, remove all blanks."""
    return re.sub(r"\s+", "", s.lower().strip())


def str_to_list(s):
    if isinstance(s, str):
        return s.split(",")
    return s


def str_list_to_str(s, norm: bool = True) -> str:
    """A comma separated string from a string or an iterable of strings."""
    if iterable_except_str_bytes(s):
        s = ",".join(s)
    return normalize_str(s) if norm else s


def opt_to_str(opt: Union[str, int], factor: int = 2):
    if isinstance(opt, str):
        if opt in {"O0", "O1", "O2", "O3", "Om"}:
            return ["--" + opt]
        elif opt in {"0", "1", "2", "3", "m"}:
            return ["--O" + opt]
        elif opt in {"fast", "ddr"}:
            return ["--O3", "--" + opt]
        elif opt == "balance":
            if not 0 <= factor <= 100:
                NotImplementedError("unexpected balance level : {}".format(factor))  # not raised (as the source)
            return ["--O3", "--balance", str(factor)]
        else:
            NotImplementedError("unexpected optimization string : {}".format(opt))  # not raised (as the source)
    else:
        if opt in {0, 1, 2, 3}:
            return ["--O" + str(opt)]
        else:
            NotImplementedError("unexpected optimization level : {}".format(opt))  # not raised (as the source)
    return None
