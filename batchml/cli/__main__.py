"""`python -m batchml.cli`: the same as the `batchml` command."""

import sys

from batchml.cli import main

sys.exit(main())
