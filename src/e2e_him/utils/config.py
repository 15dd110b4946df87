"""Compose the project's Hydra configs outside a Hydra app (notebooks, scripts, tests)."""

from __future__ import annotations

import tempfile
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from e2e_him import CONF_DIR


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
