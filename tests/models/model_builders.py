"""Builders shared by the model tests: backbones from their Hydra files, a narrow E2EHIM for shapes, a narrow
released layout; both from one config node per sub-network, as the configs build them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from e2e_him.models.e2e_him import E2EHIM
from e2e_him.models.release import ReleaseE2EHIM

REPO_ROOT = Path(__file__).resolve().parents[2]
BACKBONE_CONF = REPO_ROOT / "conf" / "model" / "backbone"
BACKBONES = sorted(p.stem for p in BACKBONE_CONF.glob("*.yaml"))  # every backbone config, as timm's tests

# Narrow widths where a test is about shapes and wiring, not capacity (stem H/4 width 32 = backbone input).
SMALL_NET: dict[str, Any] = {
    "hidden_dim": 32,
    "kernel_hidden_dim": 32,
    "stem": {"widths": (8, 8, 16, 32)},
    "perception": {
        "num_queries": 5,
        "enc_layers": 1,
        "dec_layers": 2,
        "nheads": 4,
        "dim_feedforward": 64,
        "class_hidden_dim": 16,
    },
    "guidance": {"num_heads": 2, "guidance_dim": 16},
    "matting": {
        "fusion_widths": (32, 64),
        "refiner_widths": (16, 16, 8),
        "refiner_convs": (1, 1, 1),
        "trimap_channels": 8,
        "alpha_channels": 8,
    },
}

# The released layout as narrow: its GroupNorms of 32 groups need guidance and trimap widths of 32 or more.
SMALL_RELEASE_NET: dict[str, Any] = {
    "hidden_dim": 64,
    "kernel_hidden_dim": 32,
    "stem": {"widths": (8, 8, 16, 32), "norm_groups": (4, 4, 8, 8)},
    "perception": {
        "num_queries": 5,
        "dec_layers": 2,
        "nheads": 4,
        "dim_feedforward": 64,
        "dropout": 0.0,
        "class_hidden_dim": 16,
    },
    "guidance": {"num_heads": 2, "guidance_dim": 32},
    "matting": {"trimap_channels": 32, "alpha_channels": 8},
}


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides`: a dict for a sub-network's node updates that node, anything else replaces."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in overrides.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def build_backbone(name: str, **overrides) -> torch.nn.Module:
    """The backbone of conf/model/backbone/<name>.yaml, instantiated as Hydra would, with overrides."""
    cfg = OmegaConf.load(BACKBONE_CONF / f"{name}.yaml")
    return instantiate(cfg, **overrides)


def build_small_net(backbone: str = "resnet18", seed: int = 0, **overrides) -> E2EHIM:
    """A narrow E2EHIM on a real (full-width, random) timm backbone; `overrides` by node, e.g.
    `perception={"num_queries": 6}`."""
    torch.manual_seed(seed)
    kwargs = merged(SMALL_NET, overrides)
    stem_out = kwargs["stem"]["widths"][-1]
    return E2EHIM.from_config(build_backbone(backbone, in_channels=stem_out), **kwargs)


def build_small_release_net(seed: int = 0, **overrides) -> ReleaseE2EHIM:
    """A narrow ReleaseE2EHIM on a real (full-width, random) ResNet-18."""
    torch.manual_seed(seed)
    kwargs = merged(SMALL_RELEASE_NET, overrides)
    backbone = build_backbone("resnet18", in_channels=kwargs["stem"]["widths"][-1])
    return ReleaseE2EHIM.from_config(backbone, **kwargs)


def training_batch(b: int = 2, size: int = 64, seed: int = 3) -> dict[str, torch.Tensor]:
    """A complete training batch (contract section 2) of `b` noise images with two rectangular people each,
    soft-edged so that their trimaps have unknown bands."""
    from e2e_him.data.trimap import trimap_from_alpha

    g = torch.Generator().manual_seed(seed)
    alphas = torch.zeros(b, 2, size, size)
    for i in range(b):
        for j, (top, left) in enumerate(torch.randint(0, size // 2, (2, 2), generator=g).tolist()):
            alphas[i, j, top : top + size // 2, left : left + size // 4] = 1.0
    alphas = torch.nn.functional.avg_pool2d(alphas, 3, 1, 1)
    return {
        "image": torch.randn(b, 3, size, size, generator=g),
        "alphas": alphas,
        "masks": (alphas >= 0.5).float(),
        "trimaps": trimap_from_alpha(alphas, 5),
        "labels": torch.ones(b, 2, dtype=torch.long),
        "valid": torch.ones(b, 2, dtype=torch.bool),
    }
