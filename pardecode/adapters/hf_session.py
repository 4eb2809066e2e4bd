"""One batch decoded on a transformers decoder body + lm_head: everything that touches the model at
decode time. Left-padded prompt rows, the classifier-free-guidance rows stacked under the conditional
ones so both branches share one forward pass, position ids derived from span offsets (so holes in the
cache never shift positions), the additive 4D mask that hides padding and holes, the DynamicCache,
its crop and compaction.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import attrs
import torch
from torch import nn
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ..core.backbone import NoisyInputs, Scores, Session, Window
from ..core.errors import ConfigError
from ..core.layout import TokenLayout
from ..core.noise import NoiseConditioning
from .kv import ReservedLayer, reserved_cache


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Long[R, P] ids, Bool[R, P] valid): rows right-aligned so every row's next slot is the same."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):  # once per session, not per token
        if r:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            valid[i, width - len(r) :] = True
    return ids, valid


def cache_keyword(body: nn.Module) -> str:
    """The keyword `body.forward` takes its KV cache by: `cache` since transformers 5.24,
    `past_key_values` before (5.24 still accepts it, with a FutureWarning)."""
    known = getattr(body, "_pardecode_cache_keyword", None)  # read before the forward was compiled
    if known:
        return known
    return "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"


def causal_allowed(key_valid: torch.Tensor, q: int) -> torch.Tensor:
    """Bool[R, q, K]: the last `q` of K slots each see the earlier-or-same slots valid for their row."""
    k = key_valid.shape[1]
    q_slot = torch.arange(k - q, k, device=key_valid.device)[:, None]
    k_slot = torch.arange(k, device=key_valid.device)[None, :]
    return (k_slot <= q_slot)[None] & key_valid[:, None, :]


def additive_mask(key_valid: torch.Tensor, q: int, dtype: torch.dtype) -> torch.Tensor:
    """Float[R, 1, q, K] mask (0 attend, finfo.min hide) for the last `q` of K slots.

    A query sees earlier-or-same slots that are valid for its row (`causal_allowed`); it always sees
    itself, so padded queries (whose outputs nobody reads) stay finite.
    """
    k = key_valid.shape[1]
    q_slot = torch.arange(k - q, k, device=key_valid.device)[:, None]
    itself = torch.arange(k, device=key_valid.device)[None, :] == q_slot
    return _additive(causal_allowed(key_valid, q) | itself[None], dtype)


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float[R, 1, q, K] from Bool[R, q, K]: 0 where a query may attend, finfo.min where not (a
    boolean 4D mask is read wrongly by eager attention)."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]


def placed_mask(prompt_valid: torch.Tensor, attention: torch.Tensor, first: bool, dtype: torch.dtype) -> torch.Tensor:
    """Float[R, 1, q (+ P at the first pass), P + K] additive mask for placed slots (core.fronts).

    Span inputs see every valid prompt token and the span slots `attention` (Bool[R, q, K]) allows;
    at the first pass the prompt's own queries come first, causal over the valid prompt.
    """
    rows, q, k = attention.shape
    p = prompt_valid.shape[1]
    allowed = torch.cat([prompt_valid[:, None, :].expand(rows, q, p), attention], 2)
    if first:
        causal = torch.ones(p, p, dtype=torch.bool, device=attention.device).tril()
        prompt = (causal[None] & prompt_valid[:, None, :]) | torch.eye(p, dtype=torch.bool, device=attention.device)[
            None
        ]
        allowed = torch.cat([torch.cat([prompt, prompt.new_zeros(rows, p, k)], 2), allowed], 1)
    return _additive(allowed, dtype)


def kept_span_slots(layer, rows: torch.Tensor, prompt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A cache layer's span keys and values at the slots `rows` (Long[R, S']) keeps, gathered (copies)."""
    heads, _, dim = layer.keys.shape[1:]
    at = rows.to(layer.keys.device)[:, None, :, None].expand(-1, heads, -1, dim)  # layers may be spread
    return layer.keys[..., prompt:, :].gather(2, at), layer.values[..., prompt:, :].gather(2, at)


@attrs.frozen
class Encoded:
    """What a family adapter makes of a batch of prompts: token rows and the layout to generate."""

    cond: list[list[int]]  # one prompt row per generation row
    uncond: list[list[int]] | None  # the CFG branch, one row per generation row (None: no guidance)
    layout: TokenLayout

    def __attrs_post_init__(self):
        if self.uncond is not None and len(self.uncond) != len(self.cond):
            raise ConfigError(f"{len(self.uncond)} unconditional rows for {len(self.cond)} prompts")


class HFSession(Session):
    """One batch decoded on a transformers decoder body + lm_head, CFG rows stacked under cond rows.

    Model rows: r < B are the conditional rows, r >= B the unconditional ones (row r - B's guidance
    branch); both are fed the same window, so one forward pass scores both branches.
    """

    supports_attention = True

    def __init__(
        self,
        body: nn.Module,
        head: nn.Module,
        encoded: Encoded,
        pad_id: int,
        device: torch.device,
        noise: NoiseConditioning | None = None,
        span_embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.body, self.head, self.encoded, self.noise = body, head, encoded, noise
        self.span_embed = span_embed  # None: span tokens share the prompt's embedding table
        self.layout = encoded.layout
        self.batch = len(encoded.cond)
        self.branches = 1 if encoded.uncond is None else 2
        ids, valid = left_pad(encoded.cond + (encoded.uncond or []), pad_id)
        self.device = device
        self._prompt_ids = ids.to(device)
        self._prompt_valid = valid.to(device)
        self._prompt_len = valid.sum(1, keepdim=True).to(device)  # Long[R, 1]
        self._prompt_pos = (valid.long().cumsum(1) - 1).clamp(min=0).to(device)
        self._padded = not bool(valid.all())
        self._dtype = next(body.parameters()).dtype
        self._cache_keyword = cache_keyword(body)
        self._cache: DynamicCache | None = None
        self.span_slots = 0  # generated-span slots in the cache
        self._live: torch.Tensor | None = None  # model rows still computed (None: all)

    def _live_rows(self, t: torch.Tensor) -> torch.Tensor:
        """A per-model-row tensor kept to the rows still computed."""
        return t if self._live is None else t[self._live]

    def _rows(self, t: torch.Tensor) -> torch.Tensor:
        """A per-generation-row tensor repeated for every CFG branch, kept to the live model rows."""
        return self._live_rows(t if self.branches == 1 else torch.cat([t, t], 0))

    def _retire(self, active: torch.Tensor) -> None:
        """Stop computing finished rows: drop their model rows from the cache for good."""
        live = self._live if self._live is not None else torch.arange(self.batch * self.branches, device=self.device)
        wanted = active.to(self.device).repeat(self.branches)
        keep = wanted[live]
        if int(keep.sum()) != int(wanted.sum()):
            raise ConfigError("window.active marks a row active again after it had finished")
        if not bool(keep.all()):
            self._cache.batch_select_indices(keep.nonzero().squeeze(1))
            self._live = live[keep]

    def _check(self, window: Window) -> None:
        b, q = window.tokens.shape
        if b != self.batch or window.offsets.shape != (b, q):
            raise ConfigError(
                f"window tokens {tuple(window.tokens.shape)} / offsets {tuple(window.offsets.shape)} "
                f"must both be [batch={self.batch}, q]"
            )
        if window.key_valid.shape != (b, self.span_slots + q):
            raise ConfigError(
                f"window.key_valid must be [{b}, {self.span_slots} cached + {q} new], "
                f"got {tuple(window.key_valid.shape)}"
            )
        if window.first != (self._cache is None):
            state = "before any pass" if self._cache is None else "after the first pass"
            raise ConfigError(f"window.first={window.first} {state}: the first pass feeds the prompt once")

    def _inputs(self, window: Window) -> dict[str, torch.Tensor]:
        """input_ids, or inputs_embeds for noisy drafts or a separate span embedding; prompt first at pass one."""
        ids = self._rows(window.tokens.to(self.device))
        if window.noisy is None and self.span_embed is None:
            return {"input_ids": torch.cat([self._prompt_ids, ids], 1) if window.first else ids}
        embed = self.body.get_input_embeddings()
        embeds = (self.span_embed or embed)(ids)
        if window.noisy is not None:
            if self.noise is None:
                raise ConfigError("this backbone takes no noisy inputs: its checkpoint has no noise conditioning")
            noisy = NoisyInputs(embeds=self._rows(window.noisy.embeds), level=self._rows(window.noisy.level))
            embeds = self.noise.inputs_embeds(embeds, noisy)
        return {"inputs_embeds": torch.cat([embed(self._prompt_ids), embeds], 1) if window.first else embeds}

    @torch.inference_mode()
    def forward(self, window: Window) -> Scores:
        self._check(window)
        if window.active is not None and not window.first:
            self._retire(window.active)
        q = window.tokens.shape[1]
        inputs = self._inputs(window)
        positions = self._live_rows(self._prompt_len) + self._rows(window.offsets.to(self.device))
        keys = torch.cat([self._live_rows(self._prompt_valid), self._rows(window.key_valid.to(self.device))], 1)
        if window.first:  # room for the prompt, the span and a wide window before any re-allocation
            room = self._prompt_ids.shape[1] + self.layout.length + q + 1
            self._cache = reserved_cache(self.body.config, room)
            positions = torch.cat([self._prompt_pos, positions], 1)
        fed = positions.shape[1]
        # slots and positions coincide without padding and holes: plain causal attention suffices
        if window.attention is not None:  # placed slots: the loop's own attention structure
            mask = placed_mask(
                self._live_rows(self._prompt_valid),
                self._rows(window.attention.to(self.device)),
                window.first,
                self._dtype,
            )
        else:
            mask = additive_mask(keys, fed, self._dtype) if self._padded or window.has_holes else None
        cache = {self._cache_keyword: self._cache}
        hidden = self.body(
            **inputs, attention_mask=mask, position_ids=positions, **cache, use_cache=True
        ).last_hidden_state
        # .to: under a multi-device device_map the head may sit on another device than the inputs
        logits = self.head(hidden[:, -(q + 1 if window.first else q) :]).float().to(self.device)
        self.span_slots += q
        if self._live is not None:  # finished rows: zeros, which the loop never reads
            full = logits.new_zeros(self.batch * self.branches, *logits.shape[1:])
            logits = full.index_copy_(0, self._live, logits)
        b = self.batch
        return Scores(cond=logits[:b], uncond=logits[b:] if self.branches == 2 else None)

    def crop(self, n: int) -> None:
        if not 0 <= n <= self.span_slots:
            raise ConfigError(f"crop needs 0 <= n <= {self.span_slots} cached span slots, got {n}")
        if n:  # crop(0) emptied the whole cache in transformers 4.x
            self._cache.crop(-n)
            self.span_slots -= n

    @torch.inference_mode()
    def compact(self, index: torch.Tensor) -> bool:
        layers = getattr(self._cache, "layers", None)
        if not layers or not all(
            type(layer) in (DynamicLayer, ReservedLayer) and layer.is_initialized for layer in layers
        ):
            return False  # sliding-window or quantised caches keep their holes
        rows = self._rows(index.to(self.device))
        prompt = self._prompt_ids.shape[1]
        kept = prompt + index.shape[1]
        for layer in layers:  # gather the kept slots, then write them back in place at the front
            keys, values = kept_span_slots(layer, rows, prompt)
            layer.keys, layer.values = layer.keys[..., :kept, :], layer.values[..., :kept, :]
            layer.keys[..., prompt:, :].copy_(keys)
            layer.values[..., prompt:, :].copy_(values)
        self.span_slots = index.shape[1]
        return True
