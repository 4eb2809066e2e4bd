"""Latent neighbourhoods of image tokens, from the backbone's image codebook (computed once, cached).

Relaxed acceptance rules (LANTERN arXiv 2410.03355, GSD arXiv 2508.07747) treat tokens whose
codebook vectors lie close together as interchangeable. `neighbours` gives, for every token id of
the vocabulary, its k nearest other image tokens by Euclidean distance between codebook vectors
(nearest first), and a validity mask (tokens without a codebook entry have no neighbours).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

from .errors import ConfigError

_CACHE: weakref.WeakKeyDictionary[object, dict[int, tuple[torch.Tensor, torch.Tensor]]] = weakref.WeakKeyDictionary()


def nearest(ids: torch.Tensor, embeddings: torch.Tensor, vocab: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Long[vocab, k] neighbour ids, Bool[vocab, k] valid) of the k nearest codebook entries."""
    k_eff = max(0, min(k, len(ids) - 1))
    index = torch.zeros(vocab, k, dtype=torch.long)
    valid = torch.zeros(vocab, k, dtype=torch.bool)
    if k_eff:
        e = embeddings.double()
        dist = torch.cdist(e, e)
        dist.fill_diagonal_(float("inf"))
        order = dist.topk(k_eff, largest=False).indices  # [K, k_eff], nearest first
        index[ids, :k_eff] = ids[order]
        valid[ids, :k_eff] = True
    index[~valid] = torch.arange(vocab).unsqueeze(1).expand(vocab, k)[~valid]  # padding: the token itself
    return index, valid


def neighbours(
    codebook: Callable[[], tuple[torch.Tensor, torch.Tensor] | None],
    vocab: int,
    k: int,
    device: torch.device,
    what: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`nearest` for the backbone behind `codebook` (DecodeContext.image_codebook), cached per backbone and k."""
    owner = getattr(codebook, "__self__", None)
    cache = _CACHE.setdefault(owner, {}) if owner is not None else {}
    if k not in cache:
        entry = codebook()
        if entry is None:
            raise ConfigError(
                f"{what} needs the backbone's image codebook (Backbone.image_codebook); this backbone has none"
            )
        ids, table = entry
        cache[k] = nearest(ids.long().cpu(), table.float().cpu(), vocab, k)
    index, valid = cache[k]
    return index.to(device), valid.to(device)
