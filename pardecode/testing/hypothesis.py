"""Hypothesis strategies for property tests of decoding strategies: random reference backbones and
sampling settings.

    from hypothesis import given
    from pardecode.testing import check_greedy
    from pardecode.testing.hypothesis import reference_backbones

    @given(reference_backbones())
    def test_greedy(reference):
        assert not check_greedy(MyStrategy(), references=[reference]).deviation_detected

Needs the `hypothesis` package (`pip install 'pardecode[test]'`); `pardecode.testing` itself does not.
"""

from __future__ import annotations

from collections.abc import Sequence

try:
    from hypothesis import strategies as st
except ModuleNotFoundError as err:  # an optional dependency: say which package to install
    raise ModuleNotFoundError(
        "pardecode.testing.hypothesis needs the hypothesis package: pip install 'pardecode[test]'"
    ) from err

from ..adapters.toy import ToyBackbone
from ..core.config import SamplingConfig
from .references import NOISE_DIM, PLAIN, Reference

LAYOUTS = ("free", "grid", "image_only")


def _fits(vocab: int, length: int, max_sequences: int) -> bool:
    return vocab**length <= max_sequences


@st.composite
def reference_backbones(draw, max_sequences: int = 20_000, layouts: Sequence[str] = LAYOUTS) -> Reference:
    """A random noise-aware toy backbone whose span has at most `max_sequences` token sequences, with
    one to three prompts: a free sequence, a grid closed by end-of-line tokens, or an image-only grid."""
    layout = draw(st.sampled_from(tuple(layouts)))
    if layout == "free":
        vocab = draw(st.integers(2, 5))
        length = draw(st.integers(1, max(1, max(n for n in range(1, 12) if _fits(vocab, n, max_sequences)))))
        shape = {"vocab_size": vocab, "length": length}
    elif layout == "grid":  # rows x cols cells, an end-of-line per row, one end token
        vocab = draw(st.integers(3, 5))
        rows, cols = draw(st.sampled_from([(r, c) for r in (1, 2, 3) for c in (1, 2, 3)
                                           if _fits(vocab, r * (c + 1) + 1, max_sequences)] or [(1, 1)]))
        shape = {"vocab_size": vocab, "grid": (rows, cols)}
    else:
        vocab = draw(st.integers(2, 4))
        rows, cols = draw(st.sampled_from([(r, c) for r in (1, 2, 3) for c in (1, 2, 3)
                                           if _fits(vocab, r * c, max_sequences)] or [(1, 1)]))
        shape = {"vocab_size": vocab, "grid": (rows, cols), "image_only": True}
    backbone = ToyBackbone(
        **shape, sharpness=draw(st.sampled_from([0.5, 1.0, 2.0, 3.0])), seed=draw(st.integers(0, 2**16)),
        period=draw(st.integers(1, 4)), modulus=draw(st.integers(1, 6)), noise_dim=NOISE_DIM,
    )
    prompts = draw(st.lists(st.text("abcdefgh", min_size=1, max_size=4), min_size=1, max_size=3, unique=True))
    return Reference(f"random {layout}", backbone, (PLAIN,), tuple(prompts))


def sampling_configs(greedy: bool = False) -> st.SearchStrategy[SamplingConfig]:
    """Random sampling settings: temperature, top-k, top-p and guidance (temperature 0 with `greedy`)."""
    temperature = st.just(0.0) if greedy else st.sampled_from([0.5, 0.8, 1.0, 1.5])
    return st.builds(SamplingConfig, temperature=temperature, top_k=st.integers(0, 3),
                     top_p=st.sampled_from([0.7, 0.9, 1.0]), cfg_scale=st.sampled_from([1.0, 1.5, 3.0]))
