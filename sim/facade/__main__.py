"""`python -m sim.facade`: see sim/facade/cli.py."""

import sys

from sim.facade.cli import main

sys.exit(main())
