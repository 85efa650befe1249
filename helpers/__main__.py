"""``python -m helpers <command>``: the course command line (see helpers.cli)."""

import sys

from helpers.cli import main

sys.exit(main())
