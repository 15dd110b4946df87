"""A paper setup whose backbone starts from random weights (`model.net.backbone.pretrained=null`, as the CPU
smoke configs set it) says so, loudly, at start; by default the paper experiments fetch ImageNet weights."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from e2e_him.utils.config import compose_config
from e2e_him.utils.fidelity import paper_departures, warn_paper_departures

PAPER_EXPERIMENTS = ["paper_r50", "var3", "backbone_swin_tiny", "backbone_vitaev2_s", "p3m"]


@pytest.mark.parametrize("experiment", PAPER_EXPERIMENTS)
def test_paper_experiments_start_from_the_pinned_imagenet_weights(experiment: str, tmp_path: Path):
    cfg = compose_config("train", [f"experiment={experiment}"], output_dir=tmp_path)
    assert cfg.model.net.backbone.pretrained == "timm"
    assert paper_departures(cfg) == []


@pytest.mark.parametrize("overrides", [["model.net.backbone.pretrained=null"], ["debug=smoke"]])
@pytest.mark.parametrize("experiment", ["paper_r50", "var3", "backbone_swin_tiny"])
def test_paper_experiments_from_random_weights_are_flagged(experiment, overrides, tmp_path: Path, caplog):
    cfg = compose_config("train", [f"experiment={experiment}", *overrides], output_dir=tmp_path)
    with caplog.at_level(logging.WARNING):
        found = warn_paper_departures(cfg)
    assert len(found) == 1 and "random weights" in found[0] and "pretrained: timm" in found[0]
    assert "departs from the paper" in caplog.text and experiment in caplog.text


def test_no_warning_with_weights_or_outside_the_paper(tmp_path: Path):
    cfg = compose_config("train", ["experiment=paper_r50", "model.net.backbone.pretrained=/w.bin"], tmp_path)
    assert paper_departures(cfg) == []
    cfg = compose_config(
        "train", ["experiment=paper_r50", "debug=smoke", "init_weights=/run/last.ckpt"], tmp_path
    )
    assert paper_departures(cfg) == []  # the whole network starts from a checkpoint
    quickstart = compose_config("train", ["experiment=quickstart"], tmp_path)
    assert paper_departures(quickstart) == [] and quickstart.model.net.backbone.pretrained is None


@pytest.mark.parametrize("debug", ["smoke", "smoke_release"])
def test_the_cpu_smoke_configs_train_from_random_weights_offline(debug: str, tmp_path: Path):
    experiment = "release_swint" if debug == "smoke_release" else "backbone_swin_base"
    cfg = compose_config("train", [f"experiment={experiment}", f"debug={debug}"], tmp_path)
    assert cfg.model.net.backbone.pretrained is None
