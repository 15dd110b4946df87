"""Build callbacks, loggers and the model from config groups, with errors that name the config node."""

from __future__ import annotations

import logging
import os
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config node could not be built; the message names the node and the problem."""


def build(node: DictConfig, where: str, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate(node)`, re-raising failures with the config path `where` in the message.

    A misspelt key in an experiment file reaches the constructor as an unexpected keyword argument; this makes
    the error say which node it came from, at start-up rather than deep inside training.
    """
    if node is None:
        raise ConfigError(f"config node '{where}' is empty")
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except Exception as err:  # InstantiationException wraps the constructor's own error
        cause = err.__cause__ or err
        raise ConfigError(f"could not build '{where}' ({node.get('_target_', '?')}): {cause}") from err


def build_dict(node: DictConfig | None, where: str) -> list[Any]:
    """Instantiate every entry of a dict-of-configs group (callbacks, loggers); an empty group gives []."""
    if not node:
        return []
    built = []
    for name, sub in node.items():
        if isinstance(sub, DictConfig) and "_target_" in sub:
            built.append(build(sub, f"{where}.{name}"))
    return built


def build_loggers(node: DictConfig | None) -> list[Any]:
    """Loggers of the `logger` group; wandb runs offline unless the config says otherwise."""
    if node and "wandb" in node and node.wandb.get("offline", True):
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
    return build_dict(node, "logger")


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers (safe to store in checkpoints and logs)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]
