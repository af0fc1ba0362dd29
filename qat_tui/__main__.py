"""``python -m qat_tui`` = the ``qat-tui`` command."""
import sys

from .cli import main

sys.exit(main())
