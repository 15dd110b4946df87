"""The full model and objective learn: a few steps on one synthetic batch lower its loss (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from e2e_him.data.targets import complete_batch
from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build

pytestmark = pytest.mark.slow


def test_a_few_steps_on_one_batch_lower_the_loss(tmp_path: Path):
    cfg = compose_config("train", ["debug=smoke"], output_dir=tmp_path)  # the quickstart model, tiny widths
    torch.manual_seed(0)
    module, datamodule = build(cfg.model, "model"), build(cfg.data, "data")
    datamodule.setup("fit")
    batch = complete_batch(next(iter(datamodule.train_dataloader())))
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    history = []
    for _ in range(20):
        losses = module.criterion(module(batch["image"]), batch)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    first, last = history[0], history[-1]
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    assert last["loss"] < 0.6 * first["loss"], [round(h["loss"], 2) for h in history]
    # both halves of the objective learn, not only the larger one
    assert last["loss_perception"] < first["loss_perception"]
    assert last["loss_matting"] < 0.6 * first["loss_matting"]
