"""A KV cache layer that appends in place, for transformers' `DynamicCache`.

transformers' `DynamicLayer` grows by `torch.cat`: every forward pass copies every cached key and
value of every layer, a cost that grows with the sequence (about a sixth of an AR pass at batch 8
on the default model). `ReservedLayer` keeps its keys and values as views of larger buffers and
writes each pass's new slots into the spare room; cropping only moves the view's end. Anything
that replaces `keys`/`values` with a tensor of its own (compaction, dropping finished rows) is
adopted at the next update, with one copy.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

GROWTH = 1.5  # a full buffer is re-allocated this much larger (amortised O(1) appends)


class ReservedLayer(DynamicLayer):
    """A `DynamicLayer` whose keys/values live in buffers with room for `capacity` slots."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def _length(self) -> int:
        return self.keys.shape[-2] if self.keys is not None and self.keys.dim() == 4 else 0

    def _owns_views(self) -> bool:
        """True while keys/values are still the leading slots of this layer's buffers."""
        if self._buffers is None:
            return False
        k, v = self._buffers
        return (
            self.keys.untyped_storage().data_ptr() == k.untyped_storage().data_ptr()
            and self.values.untyped_storage().data_ptr() == v.untyped_storage().data_ptr()
            and self.keys.shape[:2] == k.shape[:2]
        )

    def _reserve(self, like: torch.Tensor, needed: int) -> None:
        """New buffers with room for at least `needed` slots, holding the current keys/values."""
        n = self._length()
        room = max(needed, self.capacity, int(GROWTH * (self._buffers[0].shape[-2] if self._owns_views() else 0)))
        shape = (*like.shape[:2], room, like.shape[-1])
        k, v = like.new_empty(shape), like.new_empty(shape)
        if n:
            k[..., :n, :].copy_(self.keys)
            v[..., :n, :].copy_(self.values)
        self._buffers = (k, v)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, q = self._length(), key_states.shape[-2]
        if not (self._owns_views() and n + q <= self._buffers[0].shape[-2]):
            self._reserve(key_states, n + q)
        k, v = self._buffers
        k[..., n : n + q, :].copy_(key_states)
        v[..., n : n + q, :].copy_(value_states)
        self.keys, self.values = k[..., : n + q, :], v[..., : n + q, :]
        return self.keys, self.values


def reserved_cache(config: Any, capacity: int) -> DynamicCache:
    """A `DynamicCache` for `config` whose full-attention layers append in place (sliding-window
    and other special layers are left as transformers made them)."""
    cache = DynamicCache(config=config)
    layers = getattr(cache, "layers", None)
    if layers:
        for i, layer in enumerate(layers):
            if type(layer) is DynamicLayer:
                layers[i] = ReservedLayer(capacity)
    return cache
