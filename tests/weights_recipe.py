"""Deterministic weights for any state dict, made from its key names and shapes alone: the recipe of
../shared/fixtures/official_swint/README.md (the authors' golden outputs were computed with it), shared by
the released-layout tests and the tests of checkpoints written by earlier versions."""

from __future__ import annotations

import math
import zlib

import torch


def recipe_tensor(key: str, shape: list[int]) -> torch.Tensor:
    """The recipe's value of one float32 key: a uniform draw seeded by crc32(key), scaled by kind."""
    gen = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    u = torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1
    if len(shape) == 1:
        return 1 + 0.1 * u if key.endswith(".weight") else 0.05 * u
    fan_in = math.prod(shape) // shape[0]
    return u * math.sqrt(3 / fan_in)
