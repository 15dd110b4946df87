"""Checkpoints written before the modules moved into their packages still load: the `_target_` paths they
store are those of today after `upgrade_model_config`."""

from __future__ import annotations

from pathlib import Path

import torch

from e2e_him.models.checkpoint import load_module, stored_config
from e2e_him.models.stored_configs import upgrade_model_config, upgrade_run_config
from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build, plain_config


def test_a_checkpoint_naming_the_moved_optimiser_loads(tmp_path: Path):
    model = plain_config(compose_config("train", ["debug=smoke"], tmp_path).model)
    earlier = {**model, "optimizer": {**model["optimizer"], "_target_": "e2e_him.optim.build_adamw"},
               "scheduler": {**model["scheduler"], "_target_": "e2e_him.optim.cosine_schedule"}}  # fmt: skip
    assert upgrade_model_config(earlier) == model and upgrade_model_config(model) == model
    torch.manual_seed(0)
    weights = build(compose_config("train", ["debug=smoke"], tmp_path).model, "model").state_dict()
    path = tmp_path / "earlier.ckpt"
    torch.save({"state_dict": weights, "e2e_him_config": {"model": earlier}}, path)
    module = load_module(path)
    assert module.run_config["model"]["optimizer"]["_target_"] == "e2e_him.models.optim.build_adamw"
    assert stored_config(path) == module.run_config
    assert all(torch.equal(module.state_dict()[k], v) for k, v in weights.items())
    assert upgrade_run_config(None) is None
