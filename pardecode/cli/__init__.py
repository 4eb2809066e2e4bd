"""The `pardecode` command line.

`app` builds the parser and runs a command; `arguments` holds the flags and KEY=VALUE parsing every
command shares; each other module is one command (or a family) and its argparse wiring, calling
into the package that does the work. Nothing below this package imports it.
"""

from .app import main, parser
from .arguments import REFERENCE
from .generate import cmd_generate
from .listing import cmd_list
from .measure import cmd_overhead, cmd_profile

__all__ = ["REFERENCE", "cmd_generate", "cmd_list", "cmd_overhead", "cmd_profile", "main", "parser"]
