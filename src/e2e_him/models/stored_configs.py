"""The configs that checkpoints and run dirs of earlier versions store, in today's layout.

A checkpoint holds the resolved config it was trained with (`e2e_him_config`: `model` and `data`), and
`eval`, `predict`, `export` and `train init_weights=` rebuild the model from it; a run dir holds the same
in `.hydra/config.yaml`, which the ablation tables read. Configs written before the networks were built
from one node per sub-network (`E2EHIM.from_config`) hold flat network arguments, a matcher with its own
copy of the criterion's settings, and `_target_` paths of modules that have moved since.
`upgrade_model_config` turns such a config into today's (a config of today passes unchanged), so that every
checkpoint written before still loads, with the same weights and the same function.
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
_PERCEPTION = ("num_queries", "dec_layers", "nheads", "dim_feedforward", "dropout", "class_hidden_dim")
_PAPER_PERCEPTION = (*_PERCEPTION, "enc_layers", "decoder_blocks", "mask_position_channels",
                     "masked_attention", "person_head")  # fmt: skip
_PAPER_MATTING = ("use_fusion", "fusion_widths", "use_refiner", "refiner_widths", "refiner_convs",
                  "trimap_channels", "alpha_channels", "mask_prior")  # fmt: skip
# flat network argument -> (the sub-network's node, its name there); arguments not listed stay at the top
PAPER_ARGUMENTS = {
    "stem_widths": ("stem", "widths"),
    **{k: ("perception", k) for k in _PAPER_PERCEPTION},
    "guidance_heads": ("guidance", "num_heads"),
    "guidance_dim": ("guidance", "guidance_dim"),
    **{k: ("matting", k) for k in _PAPER_MATTING},
}
RELEASE_ARGUMENTS = {
    "stem_widths": ("stem", "widths"),
    "stem_norm_groups": ("stem", "norm_groups"),
    **{k: ("perception", k) for k in _PERCEPTION},
    "guidance_heads": ("guidance", "num_heads"),
    "guidance_dim": ("guidance", "guidance_dim"),
    "trimap_channels": ("matting", "trimap_channels"),
    "alpha_channels": ("matting", "alpha_channels"),
}
# the flat networks' `_target_` -> (today's, how their arguments are grouped)
FLAT_NETWORKS = {
    "e2e_him.models.e2e_him.E2EHIM": ("e2e_him.models.e2e_him.E2EHIM.from_config", PAPER_ARGUMENTS),
    "e2e_him.models.release.ReleaseE2EHIM": (
        "e2e_him.models.release.ReleaseE2EHIM.from_config",
        RELEASE_ARGUMENTS,
    ),
    "e2e_him.models.release.network.ReleaseE2EHIM": (
        "e2e_him.models.release.ReleaseE2EHIM.from_config",
        RELEASE_ARGUMENTS,
    ),
}
MODULE_TARGET = "e2e_him.models.module.E2EHIMModule"
# arguments of the LightningModule added since, with the values a config written before them gets: what
# earlier versions did, except `alpha_levels` (they scored float mattes): today's 8-bit scoring, the
# module's default and every recipe's (conf/model/recipe/paper.yaml)
ADDED_MODULE_ARGUMENTS = {
    "alpha_levels": 255,
    "compile": False,
    "compile_options": {},
    "skip_nonfinite_steps": True,
}
# switches added to the paper layout since; a config written before them ran with them off
PAPER_SWITCHES_ADDED = {"matting": {"trimap_stride": 2}}
# backbone arguments added since, by the backbone's `_target_`, at the value that earlier configs ran with
BACKBONE_ARGUMENTS_ADDED = {"e2e_him.models.backbones.timm_backbone.TimmResNetBackbone": {"channels": None}}
PAPER_NETWORK = "e2e_him.models.e2e_him.E2EHIM.from_config"
MATCHER_COSTS = ("cost_class", "cost_focal", "cost_dice")
SHARED_WITH_MATCHER = ("num_points", "focal_alpha", "focal_gamma", "mask_target")


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


def upgrade_net_config(net: Mapping[str, Any]) -> dict[str, Any]:
    """A flat network node (one argument list for the whole network) as one node per sub-network."""
    net = dict(net)
    if net.get("_target_") not in FLAT_NETWORKS:
        return net
    target, arguments = FLAT_NETWORKS[net["_target_"]]
    out: dict[str, Any] = {"_target_": target}
    nodes: dict[str, dict[str, Any]] = {}
    for key, value in net.items():
        if key == "_target_":
            continue
        if key in arguments:
            node, name = arguments[key]
            nodes.setdefault(node, {})[name] = value
        else:
            out[key] = value
    out.update(nodes)
    return out


def with_added_switches(net: Mapping[str, Any]) -> dict[str, Any]:
    """A network node with the switches added since it was written (the paper layout's and its backbone's),
    at their off value."""
    net = dict(net)
    backbone = net.get("backbone")
    if isinstance(backbone, Mapping):
        net["backbone"] = {**BACKBONE_ARGUMENTS_ADDED.get(backbone.get("_target_"), {}), **backbone}
    if net.get("_target_") != PAPER_NETWORK:
        return net
    for node, switches in PAPER_SWITCHES_ADDED.items():
        if isinstance(net.get(node), Mapping):
            net[node] = {**switches, **net[node]}
    return net


def upgrade_criterion_config(criterion: Mapping[str, Any]) -> dict[str, Any]:
    """A criterion whose matcher node was a `HungarianMatcher` with its own copy of the focal, point and
    mask-target settings: the matcher's cost weights only, the settings the criterion's (its own where it
    had them, e.g. the focal ones; the matcher's where it had none, e.g. `num_points`)."""
    criterion = dict(criterion)
    matcher = criterion.get("matcher")
    if not isinstance(matcher, Mapping) or "_target_" not in matcher:
        return criterion
    for key in SHARED_WITH_MATCHER:
        if key in matcher:
            criterion.setdefault(key, matcher[key])
    criterion["matcher"] = {k: matcher[k] for k in MATCHER_COSTS if k in matcher}
    return criterion


def upgrade_model_config(model: Mapping[str, Any]) -> dict[str, Any]:
    """The `model` config node of a checkpoint or run dir of any version, in today's layout (plain types)."""
    model = _moved(copy.deepcopy(dict(model)))
    if isinstance(model.get("net"), Mapping):
        model["net"] = with_added_switches(upgrade_net_config(model["net"]))
    if isinstance(model.get("criterion"), Mapping):
        model["criterion"] = upgrade_criterion_config(model["criterion"])
    if model.get("_target_") == MODULE_TARGET:
        for key, value in ADDED_MODULE_ARGUMENTS.items():
            model.setdefault(key, copy.deepcopy(value))
    return model


def upgrade_run_config(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored run config (`{"model": ..., "data": ...}`, or a whole run's) with its model node upgraded."""
    if config is None:
        return None
    config = dict(config)
    if isinstance(config.get("model"), Mapping):
        config["model"] = upgrade_model_config(config["model"])
    return config
