"""``python -m milr``."""

import sys

from milr.cli import main

sys.exit(main())
