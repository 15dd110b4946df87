"""Deterministic weights in the release's layout, made from the key list of the authors' network by the
recipe of ../shared/fixtures/official_swint/README.md (the weights its golden outputs were computed with)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from weights_recipe import recipe_tensor


def manifest(fixture_dir: Path) -> list[dict]:
    """[{"key", "shape", "dtype"}] of every entry of the release's state dict, in its order."""
    return json.loads((fixture_dir / "state_dict_manifest.json").read_text())


def recipe_state_dict(fixture_dir: Path, seed_suffix: str = "") -> dict[str, torch.Tensor]:
    """The float32 entries of the release's state dict by the recipe; `seed_suffix` != "" draws another set
    of weights (the key plus the suffix seeds each tensor) for tests that need two different networks."""
    return {
        e["key"]: recipe_tensor(e["key"] + seed_suffix, e["shape"])
        for e in manifest(fixture_dir)
        if e["dtype"] == "float32"
    }
