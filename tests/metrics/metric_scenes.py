"""Hand-built scenes for the metric tests: a 10x10 image (100 px) with people easy to count."""

from __future__ import annotations

import torch

H = W = 10


def rect(r0: int, r1: int, c0: int, c1: int, value: float = 1.0) -> torch.Tensor:
    """A (H, W) matte with `value` on rows r0..r1-1, columns c0..c1-1."""
    m = torch.zeros(H, W)
    m[r0:r1, c0:c1] = value
    return m
