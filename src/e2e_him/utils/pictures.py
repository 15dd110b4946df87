"""The picture a run ends with: validation images, their people, and the model's predicted people."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from e2e_him.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from e2e_him.viz import save_prediction_grid


def denormalize(image: torch.Tensor, meta: dict) -> np.ndarray:
    """A network input (3, H, W) back to the photo: uint8 (h0, w0, 3) at its original size."""
    h1, w1 = meta["input_size"]
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    rgb = ((image[:, :h1, :w1] * std + mean).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    h0, w0 = meta["orig_size"]
    if (h0, w0) != (h1, w1):
        rgb = cv2.resize(rgb, (w0, h0), interpolation=cv2.INTER_LINEAR)
    return rgb


@torch.no_grad()
def save_val_predictions(module, datamodule, path: str | Path, num_images: int) -> Path | None:
    """Run `module` on the first `num_images` validation samples and save a grid (input/truth/prediction)."""
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
                denormalize(sample["image"], meta),
                None if gt is None else gt.float().numpy() / 255.0,
                pred["alphas"].float().cpu().numpy(),
            )
        )
        titles.append(str(meta.get("name", index)))
    module.train(was_training)
    return save_prediction_grid(rows, path, titles)
