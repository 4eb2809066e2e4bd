"""pardecode: parallel decoding for autoregressive image generators."""

from .api import choose_strategy, decode, get_backbone, get_strategy, list_plugins
from .core.backbone import Backbone, Scores, Session, Window
from .core.claims import Claim
from .core.config import SamplingConfig
from .core.errors import BackboneError, CheckpointError, ConfigError, PardecodeError, UnknownNameError
from .core.layout import FreeLayout, Grid, GridLayout, ImageGridLayout, TokenLayout
from .core.plugins import hookimpl
from .core.strategy import Commits, DecodeContext, Proposal, Strategy, Verdict
from .core.trace import DecodeResult, Trace
from .version import __version__

__all__ = [
    "Backbone",
    "BackboneError",
    "CheckpointError",
    "Claim",
    "Commits",
    "ConfigError",
    "DecodeContext",
    "DecodeResult",
    "FreeLayout",
    "Grid",
    "GridLayout",
    "ImageGridLayout",
    "PardecodeError",
    "Proposal",
    "SamplingConfig",
    "Scores",
    "Session",
    "Strategy",
    "TokenLayout",
    "Trace",
    "UnknownNameError",
    "Verdict",
    "Window",
    "decode",
    "__version__",
    "choose_strategy",
    "get_backbone",
    "get_strategy",
    "hookimpl",
    "list_plugins",
]
