"""`python -m pardecode.cli`: the `pardecode` command."""

import sys

from .app import main

sys.exit(main())
