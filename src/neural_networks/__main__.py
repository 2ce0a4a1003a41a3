"""python -m neural_networks: the command line."""

import sys

from .cli import main

sys.exit(main())
