"""TEST DOUBLE helper (no real counterpart in Horizon Robotics' hbdk3): reading the ``.hbm`` files the
double writes. Format (the double's invention): the magic line ``HBDK3-TEST-DOUBLE-HBM\\n``, an 8-byte
big-endian length, a JSON header of that length (march, model name, compiling options, inputs,
outputs, layers, ...), then the bytes of the ``.pt`` (torch.jit.save of the traced module) that was
exported beside the hbir, or nothing when there was none. A real hbm is Horizon's binary format.
"""
from ._cli import HBM_MAGIC, is_hbm, read_hbm  # noqa: F401

__all__ = ["HBM_MAGIC", "is_hbm", "read_hbm"]
