"""``python -m sparsemixed ...``: the command line (see :mod:`sparsemixed.cli`)."""
import sys

from .cli import main

sys.exit(main())
