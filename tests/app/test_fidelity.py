"""A paper setup that starts its backbone from random weights says so, loudly, at start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from e2e_him.utils.config import compose_config
from e2e_him.utils.fidelity import paper_departures, warn_paper_departures


@pytest.mark.parametrize("experiment", ["paper_r50", "var3", "backbone_swin_tiny"])
def test_paper_experiments_without_imagenet_weights_are_flagged(experiment: str, tmp_path: Path, caplog):
    cfg = compose_config("train", [f"experiment={experiment}"], output_dir=tmp_path)
    with caplog.at_level(logging.WARNING):
        found = warn_paper_departures(cfg)
    assert len(found) == 1 and "model.net.backbone.pretrained=" in found[0]
    assert "departs from the paper" in caplog.text and experiment in caplog.text


def test_no_warning_with_weights_or_outside_the_paper(tmp_path: Path):
    cfg = compose_config("train", ["experiment=paper_r50", "model.net.backbone.pretrained=/w.bin"], tmp_path)
    assert paper_departures(cfg) == []
    cfg = compose_config("train", ["experiment=paper_r50", "init_weights=/run/last.ckpt"], tmp_path)
    assert paper_departures(cfg) == []  # the whole network starts from a checkpoint
    assert paper_departures(compose_config("train", ["experiment=quickstart"], tmp_path)) == []
