"""``python -m helpers <command>``: the course command line (see helpers.course.cli)."""

import sys

from helpers.course.cli import main

sys.exit(main())
