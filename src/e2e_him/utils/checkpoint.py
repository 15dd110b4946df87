"""Rebuild a trained model from a checkpoint written by `e2e_him.train` (the config travels inside it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from e2e_him.utils.instantiate import build


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint file, with an error that names it when it is missing or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # Lightning checkpoints hold plain containers besides tensors; only load files you trust.
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({err})") from err
    if "state_dict" not in ckpt:
        raise ValueError(
            f"{path}: no 'state_dict' in this file; is it a Lightning checkpoint of e2e_him.train?"
        )
    return ckpt


def load_module(path: str | Path, map_location: str | torch.device = "cpu"):
    """The `E2EHIMModule` stored in `path`, in eval mode, with its training config as `module.run_config`."""
    ckpt = load_checkpoint(path, map_location)
    config = ckpt.get("e2e_him_config")
    if config is None or "model" not in config:
        raise ValueError(f"{path}: no model config inside; it was not written by e2e_him.train")
    model_cfg = OmegaConf.create(config["model"])
    # The backbone's ImageNet weights are in the checkpoint already: never look for the original file.
    if "backbone" in model_cfg.get("net", {}):
        model_cfg.net.backbone.pretrained = None
    module = build(model_cfg, "model (from checkpoint)")
    missing, unexpected = module.load_state_dict(ckpt["state_dict"], strict=False)
    real_missing = [k for k in missing if "metrics" not in k]
    if real_missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit the stored model config (missing {real_missing[:5]}, "
            f"unexpected {unexpected[:5]})"
        )
    module.run_config = config
    return module.eval().to(map_location)


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """`{"model.optimizer.lr": 1e-3, ...}`: the leaves of a plain config tree by dotted key."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def config_changes(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """`key: stored -> current` for every leaf that differs between two plain config trees (sorted)."""
    old, new = _leaves(stored), _leaves(current)
    missing = object()
    changes = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, missing), new.get(key, missing)
        if a != b:
            show = ["(absent)" if v is missing else repr(v) for v in (a, b)]
            changes.append(f"{key}: {show[0]} -> {show[1]}")
    return changes


def stored_config(path: str | Path) -> dict[str, Any] | None:
    """The run config inside a checkpoint of `e2e_him.train` (None if it has none), without loading the
    tensors into memory."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({err})") from err
    return ckpt.get("e2e_him_config") if isinstance(ckpt, Mapping) else None
