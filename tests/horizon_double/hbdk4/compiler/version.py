"""TEST DOUBLE of ``hbdk4.compiler.version``: ``VERSION`` "4.11.2" (the hbdk4-compiler version in
OE-Skills@0c35b73 ``horizon/docs/oe_code_chunk_hbdk4_compiler.md``), or ``QAT_TUI_DOUBLE_HBDK4_VERSION``."""
import os

VERSION = os.environ.get("QAT_TUI_DOUBLE_HBDK4_VERSION", "4.11.2")
