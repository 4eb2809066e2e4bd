"""Third-party chatter stays out of pardecode's output unless asked for.

Loading a checkpoint with transformers draws a "Loading weights" bar and may log notices; a user
of `pardecode generate` or of the Python API asked for images, not for those. pardecode's own
messages and progress bars are unaffected. `set_verbose(True)` (the CLI's `--verbose`, or the
environment variable PARDECODE_VERBOSE=1) lets everything through.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_verbose = os.environ.get("PARDECODE_VERBOSE", "") not in ("", "0")


def set_verbose(on: bool) -> None:
    """Show (True) or hide (False, the default) third-party logs and progress bars."""
    global _verbose
    _verbose = bool(on)


def verbose() -> bool:
    return _verbose


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' progress bars and info/warning logs for the duration of a load."""
    if _verbose:
        yield
        return
    from transformers.utils import logging

    bars_were_on = logging.is_progress_bar_enabled()
    level = logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars_were_on:
            logging.enable_progress_bar()
