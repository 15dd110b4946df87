"""The picture a run ends with: validation images, their people, and the model's predicted people."""

from __future__ import annotations

from pathlib import Path

import torch

from e2e_him.visual.images import photo_of
from e2e_him.visual.overlays import save_prediction_grid


@torch.no_grad()
def save_val_predictions(module, datamodule, path: str | Path, num_images: int) -> Path | None:
    """Run `module` (an `E2EHIMModule`) on the first `num_images` validation samples and save a grid
    (input / truth / prediction); None when there is no validation image."""
    if datamodule.val_dataset is None:
        datamodule.setup("validate")
    dataset = datamodule.val_dataset
    if dataset is None or len(dataset) == 0:
        return None
    was_training = module.training
    module.eval()
    rows, titles = [], []
    for index in range(min(num_images, len(dataset))):
        sample = dataset[index]
        meta = sample["meta"]
        image = sample["image"].to(module.device)
        outputs = module(image[None])
        pred = module.postprocess(outputs, [meta])[0]
        gt = meta.get("orig_alphas")
        rows.append(
            (
                photo_of(sample["image"], meta),
                None if gt is None else gt.float().numpy() / 255.0,
                pred["alphas"].float().cpu().numpy(),
            )
        )
        titles.append(str(meta.get("name", index)))
    module.train(was_training)
    return save_prediction_grid(rows, path, titles)
