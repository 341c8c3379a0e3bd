"""``python -m assistant``: the same command line as ``xiangyin``."""

import sys

from .cli import main

sys.exit(main())
