"""Deterministic weights in the release's layout, made from the key list of the authors' network by the
recipe of ../shared/fixtures/official_swint/README.md (the weights its golden outputs were computed with)."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch


def manifest(fixture_dir: Path) -> list[dict]:
    """[{"key", "shape", "dtype"}] of every entry of the release's state dict, in its order."""
    return json.loads((fixture_dir / "state_dict_manifest.json").read_text())


def recipe_tensor(key: str, shape: list[int]) -> torch.Tensor:
    """The fixture's value of one float32 key: a uniform draw seeded by crc32(key), scaled by kind."""
    gen = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    u = torch.rand(shape, generator=gen, dtype=torch.float32) * 2 - 1
    if len(shape) == 1:
        return 1 + 0.1 * u if key.endswith(".weight") else 0.05 * u
    fan_in = math.prod(shape) // shape[0]
    return u * math.sqrt(3 / fan_in)


def recipe_state_dict(fixture_dir: Path, seed_suffix: str = "") -> dict[str, torch.Tensor]:
    """The float32 entries of the release's state dict by the recipe; `seed_suffix` != "" draws another set
    of weights (the key plus the suffix seeds each tensor) for tests that need two different networks."""
    return {
        e["key"]: recipe_tensor(e["key"] + seed_suffix, e["shape"])
        for e in manifest(fixture_dir)
        if e["dtype"] == "float32"
    }
