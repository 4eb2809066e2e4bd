"""The built-in metrics as a plugin: `fid` and `clip` arrive through `pardecode_register_metrics`.

The factories import nothing heavy; torchmetrics and CLIP weights load on the first score.
"""

from __future__ import annotations

from ..core.plugins import hookimpl
from .clip import CLIPScore
from .fid import FID


@hookimpl
def pardecode_register_metrics(register):
    register("fid", FID, "FID (torchmetrics, InceptionV3 features) against a reference folder or mu/sigma .npz")
    register("clip", CLIPScore, "CLIP score (transformers CLIPModel): 100 * max(cos, 0), mean over images")
