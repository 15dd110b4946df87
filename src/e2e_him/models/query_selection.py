"""Inference economy (ours): decode full-resolution trimaps and mattes only for queries that can be kept.

A query is kept when p(human) exceeds the post-processing threshold (docs/contracts.md, section 3). At
inference the networks can skip the dynamic trimap and alpha decoders (Eq. 6-8) for the other queries: they
decode the top-K queries of each image, K the largest number above the threshold in the batch, and return the
usual (B, N, ...) tensors with zeros for the queries they skipped, which post-processing drops anyway. The
kept queries' outputs are the same numbers as without selection (each query's decoder is its own 1x1 kernel).
"""

from __future__ import annotations

import torch


def select_queries(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices (B, K) of the top-K queries by p(human), K = max over the batch of the count above
    `threshold` (at least 1), from class logits (B, N, 2)."""
    scores = logits.float().softmax(dim=-1)[..., 1]  # (B, N)
    k = max(1, int((scores > threshold).sum(dim=1).max()))
    return scores.topk(k, dim=1).indices


def gather_queries(x: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
    """x (B, N, ...) -> (B, K, ...) at the selected queries."""
    index = select.view(*select.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return x.gather(1, index)


def scatter_queries(x: torch.Tensor, select: torch.Tensor, num_queries: int) -> torch.Tensor:
    """x (B, K, ...) at the selected queries -> (B, N, ...), zeros for the queries not selected.

    `select` (B, K): distinct indices per row, as `select_queries` gives. The result is scattered in place
    into a new tensor (`scatter` would copy it first), left unfilled when the rows of `select` hold every
    query (each slot is then written): for 20 full-resolution mattes each fill and copy is a pass over 33 MB.
    """
    shape = (x.shape[0], num_queries, *x.shape[2:])
    every = select.shape[1] == num_queries and torch.equal(
        select.sort(dim=1).values, torch.arange(num_queries, device=select.device).expand_as(select)
    )
    out = x.new_empty(shape) if every else x.new_zeros(shape)
    index = select.view(*select.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return out.scatter_(1, index, x)
