"""A resumed or fine-tuned run keeps its own config, and says what differs from the checkpoint's."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from e2e_him.models.checkpoint import stored_config
from e2e_him.models.module import E2EHIMModule
from e2e_him.train import warn_config_changes
from e2e_him.utils.config import config_changes

STORED = {
    "model": {"optimizer": {"lr": 1e-3, "betas": [0.9, 0.999]}, "net": {"num_queries": 10}},
    "data": {"batch_size": 8, "train": {"max_people": 3}},
}


def _current() -> dict:
    return {
        "model": {"optimizer": {"lr": 5e-4, "betas": [0.9, 0.99]}, "net": {"num_queries": 10}},
        "data": {"batch_size": 8, "train": {"max_people": 3, "height_range": [0.5, 0.9]}},
    }


def test_config_changes_lists_changed_added_and_removed_leaves():
    current = _current()
    del current["data"]["batch_size"]
    assert config_changes(STORED, current) == [
        "data.batch_size: 8 -> (absent)",
        "data.train.height_range: (absent) -> [0.5, 0.9]",
        "model.optimizer.betas: [0.9, 0.999] -> [0.9, 0.99]",
        "model.optimizer.lr: 0.001 -> 0.0005",
    ]
    assert config_changes(STORED, STORED) == []


def test_resume_with_another_config_warns_with_the_keys(tmp_path: Path, caplog):
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "e2e_him_config": STORED}, ckpt)
    assert stored_config(ckpt) == STORED
    with caplog.at_level(logging.WARNING, logger="e2e_him.train"):
        changes = warn_config_changes(str(ckpt), _current(), shown=2)
    assert len(changes) == 3
    text = caplog.text
    assert str(ckpt) in text and "3 changed" in text
    # the first `shown` changes in key order, then a count of the rest
    assert "data.train.height_range: (absent) -> [0.5, 0.9]" in text
    assert "model.optimizer.betas: [0.9, 0.999] -> [0.9, 0.99]" in text
    assert "model.optimizer.lr" not in text and "... and 1 more" in text


def test_same_config_no_warning_and_checkpoint_without_config(tmp_path: Path, caplog):
    same, bare = tmp_path / "same.ckpt", tmp_path / "bare.ckpt"
    torch.save({"state_dict": {}, "e2e_him_config": STORED}, same)
    torch.save({"state_dict": {}}, bare)
    with caplog.at_level(logging.WARNING, logger="e2e_him.train"):
        assert warn_config_changes(str(same), STORED) == []
        assert warn_config_changes(str(bare), STORED) == []
    assert caplog.text == ""


def test_loading_a_checkpoint_keeps_the_runs_own_config():
    module = E2EHIMModule.__new__(E2EHIMModule)  # the hook only touches run_config
    module.run_config = _current()
    module.on_load_checkpoint({"e2e_him_config": STORED})
    assert module.run_config == _current()
    module.run_config = None  # e.g. a module built outside e2e_him.train: take the checkpoint's
    module.on_load_checkpoint({"e2e_him_config": STORED})
    assert module.run_config == STORED


def test_unreadable_checkpoint_is_named(tmp_path: Path):
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"broken\.ckpt: not a readable PyTorch checkpoint"):
        stored_config(broken)


def test_old_checkpoints_with_omegaconf_objects_are_refused_then_rewritten(tmp_path: Path):
    """weights_only=True refuses pickled objects; `rewrite_plain` turns an earlier file into plain types."""
    from omegaconf import OmegaConf

    from e2e_him.models.checkpoint import read_plain, rewrite_plain

    path = tmp_path / "old.ckpt"
    hparams = {"metrics": OmegaConf.create(["instance"]), "iou_thresholds": OmegaConf.create([0.5, 0.75])}
    torch.save({"state_dict": {"net.w": torch.ones(2)}, "hyper_parameters": hparams}, path)
    refused = r"weights_only=True refuses it.*python -m e2e_him\.models\.checkpoint"
    with pytest.raises(ValueError, match=refused):
        read_plain(path)
    rewrite_plain(path)
    ckpt = read_plain(path)
    assert ckpt["hyper_parameters"] == {"metrics": ["instance"], "iou_thresholds": [0.5, 0.75]}
    assert torch.equal(ckpt["state_dict"]["net.w"], torch.ones(2))
