"""`python -m qtq`: the same as the `qtq` command."""

import sys

from qtq.cli import main

sys.exit(main())
