"""A toy backbone whose next-token distributions are known exactly.

The next token's logits depend on the whole history h (prompt included) through three features:
the position len(h) modulo `period`, the last token h[-1], and sum(h) modulo `modulus`:
logits = table[len(h) % period, h[-1], sum(h) % modulus]. The sum makes every token of the
history matter, so any cache bug (a stale slot attended to, a hole not masked) changes the output.
Because the formula is closed, `exact_distribution` enumerates the exact AR distribution of short
sequences for statistical tests. It follows the same session and cache contract as real adapters.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import attrs
import torch

from ..core.backbone import Backbone, Scores, Session, Window
from ..core.config import SamplingConfig
from ..core.errors import ConfigError
from ..core.layout import FreeLayout, GridLayout, ImageGridLayout, TokenLayout
from ..core.plugins import hookimpl
from ..core.sampling import target_probs
from .hf_loading import parse_device


def _at_least(minimum: int):
    def check(_, attribute, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{attribute.name} must be an integer >= {minimum}, got {value!r}")

    return check


@attrs.define(eq=False)
class ToyBackbone(Backbone):
    """Exactly known context-dependent distributions over a tiny vocabulary (tests, examples)."""

    name = "toy"

    vocab_size: int = attrs.field(default=8, validator=_at_least(2))
    length: int = attrs.field(default=32, validator=_at_least(1))
    grid: tuple[int, int] | None = attrs.field(default=None, converter=lambda g: tuple(g) if g is not None else None)
    #: with `grid`: rows x cols image cells and nothing else (`ImageGridLayout`, every token allowed)
    #: instead of rows closed by an end-of-line and an end token (`GridLayout`)
    image_only: bool = False
    period: int = attrs.field(default=3, validator=_at_least(1))
    modulus: int = attrs.field(default=5, validator=_at_least(1))
    sharpness: float = 1.5
    seed: int = 0
    #: > 0 makes the toy noise-aware (for SJD2): tokens get embeddings of this width, a noisy input
    #: is read as the token whose embedding is nearest, and the embeddings are its image codebook
    noise_dim: int = attrs.field(default=0, validator=_at_least(0))
    default_sampling: SamplingConfig = SamplingConfig()
    #: where the tables live and the decode runs; the tables are drawn on the CPU first, so every
    #: device holds the same toy
    device: torch.device = attrs.field(default="cpu", converter=parse_device)
    table: torch.Tensor = attrs.field(init=False, repr=False)
    embeddings: torch.Tensor | None = attrs.field(init=False, repr=False, default=None)

    def __attrs_post_init__(self):
        if self.image_only and self.grid is None:
            raise ConfigError("image_only needs a grid=(rows, cols)")
        if self.grid is not None and not self.image_only and self.vocab_size < 3:
            raise ConfigError(
                f"a toy grid layout needs vocab_size >= 3 (image tokens, end-of-line, end), got {self.vocab_size}"
            )
        g = torch.Generator().manual_seed(self.seed)
        shape = (self.period, self.vocab_size, self.modulus, self.vocab_size)
        self.table = (torch.randn(shape, generator=g) * self.sharpness).to(self.device)
        if self.noise_dim:
            self.embeddings = torch.randn(self.vocab_size, self.noise_dim, generator=g).to(self.device)

    def noise_ready(self) -> bool:
        return self.embeddings is not None

    def embed_dim(self) -> int | None:
        return self.noise_dim or None

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.embeddings is None:
            raise ConfigError("this toy backbone has no embeddings; build it with noise_dim > 0")
        return self.embeddings[tokens]

    def image_codebook(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The token embeddings as the codebook of the image tokens (noise-aware toys only), so
        latent-neighbourhood rules (lantern, gsd) run on the toy too."""
        if self.embeddings is None:
            return None
        ids = torch.arange(self.vocab_size - (2 if self.grid is not None and not self.image_only else 0))
        return ids, self.embeddings[ids.to(self.device)]

    def read_noisy(self, tokens: torch.Tensor, window: Window) -> torch.Tensor:
        """The tokens the toy 'sees': at noisy positions, the token nearest to the noisy embedding."""
        if window.noisy is None:
            return tokens
        if self.embeddings is None:
            raise ConfigError("this toy backbone takes no noisy inputs; build it with noise_dim > 0")
        nearest = torch.cdist(window.noisy.embeds.float(), self.embeddings.unsqueeze(0)).argmin(-1)
        return torch.where(window.noisy.level > 0, nearest, window.tokens)

    # --- the closed form -------------------------------------------------------------------
    def prompt_tokens(self, prompt: str | None) -> list[int]:
        """Token 0 starts every sequence; an unconditional row has nothing else."""
        return [0] + ([ord(c) % self.vocab_size for c in prompt] if prompt is not None else [])

    def logits_of(self, history: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Float[R, T, V]: next-token logits after each position of Long[R, T] (invalid slots skipped)."""
        counts = valid.long().cumsum(1)
        sums = (history * valid).cumsum(1)
        return self.table[counts % self.period, history, sums % self.modulus]

    def layout(self) -> TokenLayout:
        if self.grid is None:
            return FreeLayout(self.length)
        v = self.vocab_size
        rows, cols = self.grid
        if self.image_only:
            return ImageGridLayout(rows, cols, torch.arange(v), vocab_size=v)
        return GridLayout(rows, cols, torch.arange(v - 2), end_of_line=v - 2, end_tokens=(v - 1,), vocab_size=v)

    def exact_distribution(self, prompt: str, sampling: SamplingConfig) -> tuple[torch.Tensor, torch.Tensor]:
        """(sequences Long[V^L, L], probabilities Float[V^L]) of the whole span under AR sampling."""
        layout, v = self.layout(), self.vocab_size
        if v**layout.length > 1_000_000:
            raise ConfigError(f"{v}^{layout.length} sequences are too many to enumerate")
        seqs = torch.tensor(list(itertools.product(range(v), repeat=layout.length)), dtype=torch.long)
        seqs = seqs.to(self.device)

        def branch(p: str | None) -> torch.Tensor:
            head = torch.tensor(self.prompt_tokens(p), device=self.device).expand(len(seqs), -1)
            history = torch.cat([head, seqs], 1)
            logits = self.logits_of(history, torch.ones_like(history, dtype=torch.bool))
            return logits[:, head.shape[1] - 1 : -1]

        scores = Scores(branch(prompt), branch(None) if sampling.uses_cfg else None)
        offsets = torch.arange(layout.length, device=self.device).expand(len(seqs), -1)
        probs = target_probs(scores, layout.allowed(offsets), sampling)
        return seqs.cpu(), probs.gather(-1, seqs.unsqueeze(-1)).squeeze(-1).prod(-1).cpu()

    # --- the backbone contract --------------------------------------------------------------
    def start(self, prompts: Sequence[str], sampling: SamplingConfig, **options) -> ToySession:
        if options:
            raise ConfigError(f"the toy backbone takes no start options, got {sorted(options)}")
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or not prompt:
                raise ConfigError(f"prompt {i} is empty; every prompt needs at least one character")
        # each distinct prompt is encoded once (batches of thousands of rows repeat a few prompts)
        distinct = list(dict.fromkeys(prompts))
        which = {p: i for i, p in enumerate(distinct)}
        index = [which[p] for p in prompts]
        encoded = [self.prompt_tokens(p) for p in distinct]
        if sampling.uses_cfg:  # the unconditional branch: rows B..2B-1
            index += [len(distinct)] * len(prompts)
            encoded.append(self.prompt_tokens(None))
        width = max(map(len, encoded))
        tokens = torch.tensor([[0] * (width - len(r)) + r for r in encoded])
        valid = torch.tensor([[False] * (width - len(r)) + [True] * len(r) for r in encoded])
        rows = torch.tensor(index)
        prompt, prompt_valid = tokens[rows].to(self.device), valid[rows].to(self.device)
        return ToySession(self, len(prompts), self.layout(), prompt, prompt_valid)


class ToySession(Session):
    supports_attention = True

    def __init__(
        self, backbone: ToyBackbone, batch: int, layout: TokenLayout, prompt: torch.Tensor, valid: torch.Tensor
    ):
        self.backbone, self.batch, self.layout = backbone, batch, layout
        self.device = backbone.device
        self.prompt, self.prompt_valid = prompt, valid
        # the "KV cache": span inputs
        self.slots = torch.zeros(prompt.shape[0], 0, dtype=torch.long, device=self.device)
        self.calls = 0

    def forward(self, window: Window) -> Scores:
        if window.attention is not None:
            return self._forward_placed(window)
        rows = self.prompt.shape[0]
        expand = rows // self.batch  # CFG rows see the same span inputs
        tokens = self.backbone.read_noisy(window.tokens, window).repeat(expand, 1)
        key_valid = window.key_valid.repeat(expand, 1)
        if key_valid.shape[1] != self.slots.shape[1] + tokens.shape[1]:
            raise ConfigError(
                f"key_valid covers {key_valid.shape[1]} slots; "
                f"cache holds {self.slots.shape[1]} + window {tokens.shape[1]}"
            )
        history = torch.cat([self.prompt, self.slots, tokens], 1)
        valid = torch.cat([self.prompt_valid, key_valid], 1)
        logits = self.backbone.logits_of(history, valid)
        start = history.shape[1] - tokens.shape[1] - (1 if window.first else 0)
        logits = logits[:, start:]
        self.slots = torch.cat([self.slots, tokens], 1)
        self.calls += 1
        cond, uncond = logits[: self.batch], (logits[self.batch :] if expand > 1 else None)
        return Scores(cond, uncond)

    def _forward_placed(self, window: Window) -> Scores:
        """Placed slots: each input's history is the prompt plus the span slots `attention` shows it,
        at its true position (prompt + offset), as a real model reads position ids."""
        expand = self.prompt.shape[0] // self.batch
        tokens = self.backbone.read_noisy(window.tokens, window).repeat(expand, 1)
        keys = torch.cat([self.slots, tokens], 1)
        if window.attention.shape[2] != keys.shape[1]:
            raise ConfigError(
                f"attention covers {window.attention.shape[2]} slots; "
                f"cache holds {self.slots.shape[1]} + window {tokens.shape[1]}"
            )
        prompt_sum = (self.prompt * self.prompt_valid).sum(1, keepdim=True)
        # the sum of the span tokens each slot sees, as one batched product (exact: small integers in
        # float64); guidance rows hold the same span tokens, so it is computed for the first B rows
        seen = torch.bmm(window.attention.double(), keys[: self.batch].double().unsqueeze(-1)).squeeze(-1).long()
        sums = prompt_sum + seen.repeat(expand, 1)
        position = self.prompt_valid.sum(1, keepdim=True) + window.offsets.repeat(expand, 1) + 1
        bb = self.backbone
        logits = bb.table[position % bb.period, tokens, sums % bb.modulus]
        if window.first:
            logits = torch.cat([bb.logits_of(self.prompt, self.prompt_valid)[:, -1:], logits], 1)
        self.slots = keys
        self.calls += 1
        return Scores(logits[: self.batch], logits[self.batch :] if expand > 1 else None)

    def crop(self, n: int) -> None:
        if n < 0:
            raise ConfigError(f"crop takes n >= 0, got {n}")
        if n:
            self.slots = self.slots[:, :-n]

    def compact(self, index: torch.Tensor) -> bool:
        self.slots = self.slots.gather(1, index.repeat(self.slots.shape[0] // self.batch, 1))
        return True


@hookimpl
def pardecode_register_backbones(register):
    register("toy", ToyBackbone, ToyBackbone.__doc__)
