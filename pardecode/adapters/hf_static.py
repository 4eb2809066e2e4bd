"""The static pass: a session whose passes after the first all have fixed shapes.

`HFSession` grows its cache by each window and passes a mask only when one is needed, so every pass
has new shapes and a compiled forward recompiles at each. `StaticSession` runs the first pass (the
prompt) exactly as `HFSession` does, into a cache preallocated for prompt + span + a wide window
(`static_kv`); every later pass then

- pads its window up to a bucket (`static_kv.WINDOW_BUCKETS`): the padded inputs repeat the last
  real input, their outputs are dropped and their cache writes land past the live slots, hidden
  by the mask until a later pass overwrites them;
- attends over the cache's whole capacity, a 4D additive mask hiding unwritten, cropped and hole
  slots (and, with placed slots, whatever `Window.attention` hides);
- writes its keys at a position tensor, so a compiled forward (`HFBackbone.compile`) holds one
  graph per bucket.

Cropping moves the write position back, compaction gathers the kept slots in place, and finished
rows keep being computed (their logits are zeroed, as `HFSession` returns them): no shape changes.
A cache that would overflow (many holes, a very wide window) is re-allocated larger, which costs
one new graph.

Logits differ from the eager pass's in the last bits after the prompt pass (which is the eager one,
to the bit): reductions over a longer, masked key axis round differently. Tokens agree, except
where a decision separates near-equal values (sjd_pac_tree's "top" siblings, entropy_sd's entropy
threshold), which a last-bit difference can tip; docs/design.md, "The static pass".
"""

from __future__ import annotations

import attrs
import torch

from ..core.backbone import NoisyInputs, Scores, Window
from ..core.errors import ConfigError
from .hf_session import HFSession, _additive, additive_mask, causal_allowed, kept_span_slots, placed_mask
from .static_kv import StaticWindowLayer, WritePosition, bucket_of, round_capacity, static_cache

#: room for a window this wide past the span, allocated at the first pass
FIRST_ROOM = 65


def static_mask(
    prompt_valid: torch.Tensor, span_allowed: torch.Tensor, cached: int, bucket: int, capacity: int, placed: bool
) -> torch.Tensor:
    """Bool[R, bucket, capacity]: which cache slots each (padded) input of a static pass may see.

    `span_allowed` (Bool[R, q, cached + q]) covers the span slots of the q real inputs; padded
    inputs (q..bucket) see only themselves, and so does every real input of a window pass (as in
    `additive_mask`) — placed inputs see exactly what their attention says.
    """
    rows, q, _ = span_allowed.shape
    p = prompt_valid.shape[1]
    allowed = torch.zeros(rows, bucket, capacity, dtype=torch.bool, device=span_allowed.device)
    allowed[:, :q, :p] = prompt_valid[:, None, :]
    allowed[:, :q, p : p + cached + q] = span_allowed
    own = torch.arange(q if placed else 0, bucket, device=span_allowed.device)
    allowed[:, own, p + cached + own] = True
    return allowed


def pad_window(window: Window, width: int) -> Window:
    """`window` widened to `width` inputs by repeating its last one (a valid token and position)."""
    extra = width - window.tokens.shape[1]
    if extra == 0:
        return window

    def repeat_last(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, t[:, -1:].expand(-1, extra, *t.shape[2:])], 1)

    noisy = window.noisy
    if noisy is not None:
        noisy = NoisyInputs(embeds=repeat_last(noisy.embeds), level=repeat_last(noisy.level))
    return attrs.evolve(window, tokens=repeat_last(window.tokens), offsets=repeat_last(window.offsets), noisy=noisy)


class StaticSession(HFSession):
    """An `HFSession` whose passes after the prompt have fixed shapes (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._position = WritePosition(self.device)
        self._capacity = 0
        self._active: torch.Tensor | None = None  # Bool[model rows]: rows still generating (None: all)

    def _call_body(self, inputs: dict[str, torch.Tensor], mask, positions: torch.Tensor, eager: bool) -> torch.Tensor:
        # the prompt pass has a shape of its own: it runs the eager forward even when the body is compiled
        forward = getattr(self.body, "_pardecode_eager_forward", None) if eager else None
        cache = {self._cache_keyword: self._cache}
        out = (forward or self.body)(**inputs, attention_mask=mask, position_ids=positions, **cache, use_cache=True)
        return out.last_hidden_state

    def _scores(self, logits: torch.Tensor) -> Scores:
        if self._active is not None:  # finished rows: zeros, which the loop never reads
            logits = logits.masked_fill_(~self._active[:, None, None], 0.0)
        b = self.batch
        return Scores(cond=logits[:b], uncond=logits[b:] if self.branches == 2 else None)

    @torch.inference_mode()
    def forward(self, window: Window) -> Scores:
        self._check(window)
        if window.active is not None and not window.first:
            active = window.active.to(self.device).repeat(self.branches)
            if self._active is not None and bool((active & ~self._active).any()):
                raise ConfigError("window.active marks a row active again after it had finished")
            self._active = None if bool(active.all()) else active
        if window.first:
            logits = self._prompt_pass(window)
        else:
            logits = self._fixed_pass(window)
        self.span_slots += window.tokens.shape[1]
        return self._scores(logits)

    def _prompt_pass(self, window: Window) -> torch.Tensor:
        """The first pass, as `HFSession` runs it, into a freshly allocated static cache."""
        q, p = window.tokens.shape[1], self._prompt_ids.shape[1]
        # the same capacity for every decode of a prompt width and layout: compiled graphs are reused
        self._capacity = round_capacity(max(p + self.layout.length + FIRST_ROOM + 1, p + q))
        self._cache = static_cache(self.body.config, self._capacity, self._position)
        positions = torch.cat([self._prompt_pos, self._prompt_len + self._rows(window.offsets.to(self.device))], 1)
        if window.attention is not None:
            mask = placed_mask(self._prompt_valid, self._rows(window.attention.to(self.device)), True, self._dtype)
        elif self._padded or window.has_holes:
            keys = torch.cat([self._prompt_valid, self._rows(window.key_valid.to(self.device))], 1)
            mask = additive_mask(keys, p + q, self._dtype)
        else:
            mask = None
        self._position.at.zero_()
        self._position.visible = p + q
        try:
            hidden = self._call_body(self._inputs(window), mask, positions, eager=True)
        finally:
            self._position.visible = None
        return self.head(hidden[:, -(q + 1) :]).float().to(self.device)

    def _fixed_pass(self, window: Window) -> torch.Tensor:
        """A later pass: the window padded to its bucket, attending over the whole capacity."""
        q, p, cached = window.tokens.shape[1], self._prompt_ids.shape[1], self.span_slots
        bucket = bucket_of(q)
        if p + cached + bucket > self._capacity:
            self._grow(round_capacity(p + cached + bucket + FIRST_ROOM))
        padded = pad_window(window, bucket)
        positions = self._prompt_len + self._rows(padded.offsets.to(self.device))
        if window.attention is not None:
            span = self._rows(window.attention.to(self.device))
        else:
            span = causal_allowed(self._rows(window.key_valid.to(self.device)), q)
        allowed = static_mask(self._prompt_valid, span, cached, bucket, self._capacity, window.attention is not None)
        self._position.at.fill_(p + cached)
        hidden = self._call_body(self._inputs(padded), _additive(allowed, self._dtype), positions, eager=False)
        return self.head(hidden[:, :q]).float().to(self.device)

    def _grow(self, capacity: int) -> None:
        for layer in self._cache.layers:
            layer.grow(capacity)
        self._capacity = capacity

    def crop(self, n: int) -> None:
        if not 0 <= n <= self.span_slots:
            raise ConfigError(f"crop needs 0 <= n <= {self.span_slots} cached span slots, got {n}")
        self.span_slots -= n  # the slots stay, hidden by the mask until overwritten

    @torch.inference_mode()
    def compact(self, index: torch.Tensor) -> bool:
        layers = getattr(self._cache, "layers", None)
        if not layers or not all(isinstance(layer, StaticWindowLayer) and layer.is_initialized for layer in layers):
            return False
        rows = self._rows(index.to(self.device))
        p, kept = self._prompt_ids.shape[1], index.shape[1]
        for layer in layers:  # gather the kept slots, then write them back in place at the front
            keys, values = kept_span_slots(layer, rows, p)
            layer.keys[..., p : p + kept, :].copy_(keys)
            layer.values[..., p : p + kept, :].copy_(values)
        self.span_slots = kept
        return True
