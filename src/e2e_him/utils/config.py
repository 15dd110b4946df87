"""Compose the project's Hydra configs outside a Hydra app (notebooks, scripts, tests), keep saved
hyperparameters plain, and list what differs between two configs."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from e2e_him.utils.resolvers import CONF_DIR


def compose_config(
    config_name: str = "train", overrides: Sequence[str] = (), output_dir: str | Path | None = None
) -> DictConfig:
    """The config `python -m e2e_him.<config_name> <overrides>` would run with, fully composed.

    `paths.output_dir` (a Hydra run dir inside an app) is set to `output_dir`, or to a fresh temporary folder,
    so that every interpolation resolves. Unknown groups, options and keys raise Hydra's own errors, which
    name them.
    """
    if output_dir is None:
        output_dir = tempfile.mkdtemp(prefix=f"e2e_him_{config_name}_")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=[*overrides, f"paths.output_dir={output_dir}"])


def plain_hparams(hparams: MutableMapping[str, Any]) -> None:
    """Turn the OmegaConf containers among saved hyperparameters into plain dicts and lists, in place, so
    that checkpoints hold plain types only and load with `torch.load(weights_only=True)`."""
    for key, value in list(hparams.items()):
        if isinstance(value, (DictConfig, ListConfig)):
            hparams[key] = OmegaConf.to_container(value, resolve=True)


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
