"""Loud warnings when a run tagged as one of the paper's setups departs from the paper in a way that changes
its results (Section IV-B), so that nobody mistakes such a run for a reproduction: today a backbone that
starts from random weights (`model.net.backbone.pretrained=null`, which the CPU smoke configs set) where the
paper experiments fetch ImageNet weights."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
BANNER = "!" * 100


def paper_departures(cfg: DictConfig) -> list[str]:
    """What a run whose tags include "paper" does differently from Section IV-B (empty when nothing)."""
    if "paper" not in list(cfg.get("tags") or []):
        return []
    found = []
    backbone = OmegaConf.select(cfg, "model.net.backbone")
    whole_network = cfg.get("init_weights") or cfg.get("ckpt_path")  # weights for everything, backbone too
    if backbone is not None and backbone.get("pretrained") is None and not whole_network:
        name = backbone.get("name") or backbone.get("_target_", "the backbone")
        found.append(
            f"the backbone ({name}) starts from random weights (model.net.backbone.pretrained=null, as "
            "debug=smoke sets it); the paper initialises it with ImageNet weights, which the paper "
            "experiments fetch by default (pretrained: timm, the tag pinned in the backbone's config; "
            "docs/weights.md)."
        )
    return found


def warn_paper_departures(cfg: DictConfig) -> list[str]:
    """Log `paper_departures(cfg)` as a warning banner; returns them."""
    found = paper_departures(cfg)
    if found:
        lines = "\n".join(f"  - {f}" for f in found)
        log.warning(
            "\n%s\nexperiment %s is tagged as a paper setup but departs from the paper:\n%s\n%s",
            BANNER, cfg.get("experiment_name"), lines, BANNER,
        )  # fmt: skip
    return found
