"""The configs that checkpoints and run dirs of earlier versions store, in today's layout.

A checkpoint holds the resolved config it was trained with (`e2e_him_config`: `model` and `data`), and
`eval`, `predict`, `export` and `train init_weights=` rebuild the model from it. Configs written before the
modules moved into their packages name `_target_` paths that have moved since; `upgrade_model_config` turns
such a config into today's (a config of today passes unchanged), so that every checkpoint written before still
loads.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

# `_target_` paths that moved (stored in the optimizer and scheduler nodes of every checkpoint)
MOVED_TARGETS = {
    "e2e_him.optim.build_adamw": "e2e_him.models.optim.build_adamw",
    "e2e_him.optim.cosine_schedule": "e2e_him.models.optim.cosine_schedule",
    "e2e_him.optim.build_param_groups": "e2e_him.models.optim.build_param_groups",
}


def _moved(node: Any) -> Any:
    """`node` with every moved `_target_` below it replaced."""
    if isinstance(node, Mapping):
        out = {k: _moved(v) for k, v in node.items()}
        if isinstance(out.get("_target_"), str):
            out["_target_"] = MOVED_TARGETS.get(out["_target_"], out["_target_"])
        return out
    if isinstance(node, list):
        return [_moved(v) for v in node]
    return node


def upgrade_model_config(model: Mapping[str, Any]) -> dict[str, Any]:
    """The `model` config node of a checkpoint or run dir of any version, in today's layout (plain types)."""
    return _moved(copy.deepcopy(dict(model)))


def upgrade_run_config(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored run config (`{"model": ..., "data": ...}`, or a whole run's) with its model node upgraded."""
    if config is None:
        return None
    config = dict(config)
    if isinstance(config.get("model"), Mapping):
        config["model"] = upgrade_model_config(config["model"])
    return config
