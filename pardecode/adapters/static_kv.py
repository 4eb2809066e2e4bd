"""A KV cache of fixed shape for the static pass (`hf_static`): allocated once, written in place.

Every layer holds Float[R, heads, capacity, dim] keys and values and returns them whole, so a
pass's shapes depend only on its window bucket, never on how long the cache is. Where a pass
writes is a position tensor shared by all layers (`WritePosition.at`), set by the session before
the pass: no Python integer of the cache length enters a compiled graph. Cropping moves that
position back; slots past it are stale and the session's mask hides them until they are
overwritten.

The first pass (the prompt) runs eagerly and sees only the slots it wrote (`WritePosition.visible`),
as the growing cache would: its attention is the eager pass's, to the bit.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, StaticLayer

from ..core.errors import ConfigError

#: window widths a static pass is padded up to, one compiled graph each: a power of two plus one,
#: since a pass feeds the pending token before W drafts and windows are mostly powers of two
WINDOW_BUCKETS = (1, 2, 3, 5, 9, 17, 33, 65, 129, 257)
#: capacities are rounded up to a multiple of this, so a grown cache lands on few shapes
CAPACITY_STEP = 64


def bucket_of(width: int) -> int:
    """The smallest window bucket holding `width` inputs (a multiple of the widest beyond it)."""
    for bucket in WINDOW_BUCKETS:
        if width <= bucket:
            return bucket
    widest = WINDOW_BUCKETS[-1]
    return -(-width // widest) * widest


def round_capacity(slots: int) -> int:
    return -(-slots // CAPACITY_STEP) * CAPACITY_STEP


class WritePosition:
    """Where the next pass writes (`at`, Long[1] on the cache's device) and, during the eager
    first pass only, how many leading slots attention sees (`visible`; None: the whole capacity)."""

    def __init__(self, device: torch.device):
        self.at = torch.zeros(1, dtype=torch.long, device=device)
        self.visible: int | None = None


class StaticWindowLayer(StaticLayer):
    """A transformers `StaticLayer` that writes at the shared `WritePosition` instead of counting
    its own length, so a session can crop, overwrite and compact it freely."""

    def __init__(self, capacity: int, position: WritePosition):
        super().__init__(max_cache_len=capacity)
        self.position = position

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        device = self.keys.device  # layers may be spread over devices (a device_map)
        slots = self.position.at.to(device) + torch.arange(key_states.shape[-2], device=device)
        self.keys.index_copy_(2, slots, key_states)
        self.values.index_copy_(2, slots, value_states)
        visible = self.position.visible
        if visible is not None:  # the eager first pass: exactly the slots written so far
            return self.keys[..., :visible, :], self.values[..., :visible, :]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.max_cache_len if self.is_initialized else 0

    def get_mask_sizes(self, *args: Any, **kwargs: Any) -> tuple[int, int]:
        """(keys, offset) a mask transformers builds must cover: what `update` returns (the eager
        first pass sees only the slots written so far). Its argument changed across transformers 5."""
        visible = self.position.visible
        return (self.max_cache_len if visible is None else visible), 0

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a static session crops by moving its write position")

    def grow(self, capacity: int) -> None:
        """Re-allocate to `capacity` slots, keeping what is written (new shapes: one new graph)."""
        if self.is_initialized:
            keys = self.keys.new_zeros((*self.keys.shape[:2], capacity, self.keys.shape[-1]))
            values = self.values.new_zeros((*self.values.shape[:2], capacity, self.values.shape[-1]))
            keys[..., : self.max_cache_len, :].copy_(self.keys)
            values[..., : self.max_cache_len, :].copy_(self.values)
            self.keys, self.values = keys, values
            if not torch.compiler.is_compiling():
                torch._dynamo.mark_static_address(self.keys)
                torch._dynamo.mark_static_address(self.values)
        self.max_cache_len = capacity


def static_cache(config: Any, capacity: int, position: WritePosition) -> Cache:
    """A cache of `capacity` slots per layer for `config`; a ConfigError for models with
    sliding-window or other special layers, which a fixed-shape pass does not cover."""
    layers = getattr(DynamicCache(config=config), "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        raise ConfigError(
            f"static=True needs a model whose layers all use full attention; {type(config).__name__} has "
            "sliding-window or other special cache layers: use static=False"
        )
    return Cache(layers=[StaticWindowLayer(capacity, position) for _ in layers])
