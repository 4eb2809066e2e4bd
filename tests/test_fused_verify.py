"""sjd_pac's fused pass (`SJDPAC._verify_fused`) against its step-by-step path: the same draws from
the same random stream, so every token, window and count must be identical, with windows that
grow and shrink mid-decode, a layout that forbids tokens, guidance and a batch of rows that finish
apart."""

from __future__ import annotations

import pytest
import torch
from test_windows import SWINGING

from pardecode import SamplingConfig
from pardecode.adapters.toy import ToyBackbone
from pardecode.core.loop import decode
from pardecode.strategies.sjd import SJD
from pardecode.strategies.sjd_pac import SJDPAC


class StepByStep(SJDPAC):
    """sjd_pac through the generic Jacobi/SJD verification, hook by hook."""

    def verify(self, ctx, proposal, p):
        return SJD.verify(self, ctx, proposal, p)


@pytest.mark.parametrize(
    "backbone,sampling,window,batch",
    [
        (ToyBackbone(vocab_size=5, length=9, sharpness=1.0, seed=3), SamplingConfig(), "auto", 3),
        (ToyBackbone(vocab_size=6, length=14, grid=(3, 3), seed=1), SamplingConfig(cfg_scale=2.0), "auto", 4),
        (ToyBackbone(vocab_size=6, length=14, grid=(3, 3), seed=2), SamplingConfig(top_k=3, temperature=0.7), 4, 2),
    ],
)
def test_the_fused_pass_is_bit_identical_to_the_step_by_step_one(backbone, sampling, window, batch):
    results = []
    for cls in (SJDPAC, StepByStep):
        runs = [
            decode(backbone, cls(window=window), ["x"] * batch, sampling=sampling, seed=seed, profile=SWINGING)
            for seed in range(12)
        ]
        results.append(runs)
    widths = set()
    for fused, generic in zip(*results):
        assert torch.equal(fused.tokens, generic.tokens)
        assert fused.trace.widths == generic.trace.widths
        assert torch.equal(fused.trace.committed, generic.trace.committed)
        widths |= set(fused.trace.widths)
    if window == "auto":
        assert len(widths) >= 3  # the window really grew and shrank


def test_other_settings_take_the_step_by_step_path(monkeypatch):
    def refuse(*_):
        raise AssertionError("fused path taken")

    monkeypatch.setattr(SJDPAC, "_verify_fused", refuse)
    backbone = ToyBackbone(vocab_size=5, length=6, seed=0)
    for options in ({"coupling": "gumbel"}, {"proactive": False}, {"init": "repeat"}):
        decode(backbone, SJDPAC(window=3, **options), ["x"], seed=0)
