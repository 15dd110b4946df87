"""Training batches travel compact and are completed on the device (docs/contracts.md, section 2).

A training sample leaves the data-loader worker as 8-bit values: the photo (3, H, W) uint8 and the mattes
(K, H, W) uint8, given masks as bool, and the trimap kernel size in its meta: 1 byte per pixel and person
through worker shared memory, pinning and the copy to the GPU, where float32 mattes and masks and int64
trimaps would take 16. `complete_batch` then makes the batch the model and the objective read, on whatever
device the batch is: the ImageNet-normalised float32 photo, float32 mattes and masks, and the trimaps
(`data.trimap.trimap_from_alpha`, two 1-D max-pools on a GPU, OpenCV on the CPU). Evaluation batches are
complete already and pass through unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from e2e_him.data.trimap import trimap_from_alpha

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ALPHA_SCALE = 255.0  # uint8 matte value of alpha 1
MASK_FROM_ALPHA = 128  # alpha >= 0.5 for 8-bit values: 128 / 255 = 0.502, 127 / 255 = 0.498


def to_uint8(alphas: np.ndarray) -> np.ndarray:
    """(K, H, W) float mattes in [0, 1] -> uint8 [0, 255], rounded (an error of at most 1/510)."""
    return np.round(np.clip(alphas, 0.0, 1.0) * ALPHA_SCALE).astype(np.uint8)


def compact_sample(
    image: np.ndarray,
    alphas: np.ndarray,
    masks: np.ndarray | None,
    size: tuple[int, int],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """A training sample as the loader ships it, zero-padded bottom/right to `size` (H, W).

    Args:
        image: (h, w, 3) uint8 RGB photo.
        alphas: (K, h, w) float32 mattes in [0, 1].
        masks: (K, h, w) bool given masks, or None (then `alpha >= 0.5` on the device).
        meta: the sample's meta, with `input_size` (h, w) and `trimap_kernel`.

    Returns:
        {"image": (3, H, W) uint8, "alphas": (K, H, W) uint8, ["masks": (K, H, W) bool,] "labels": (K,)
        int64 ones, "meta": meta}.
    """
    h, w = image.shape[:2]
    H, W = size
    k = len(alphas)
    img = torch.zeros((3, H, W), dtype=torch.uint8)
    img[:, :h, :w] = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    a = torch.zeros((k, H, W), dtype=torch.uint8)
    a[:, :h, :w] = torch.from_numpy(to_uint8(alphas))
    sample = {"image": img, "alphas": a, "labels": torch.ones(k, dtype=torch.long), "meta": meta}
    if masks is not None:
        m = torch.zeros((k, H, W), dtype=torch.bool)
        m[:, :h, :w] = torch.from_numpy(np.ascontiguousarray(masks, dtype=bool))
        sample["masks"] = m
    return sample


def is_compact(batch: dict[str, Any]) -> bool:
    """Whether a batch (or sample) still carries the loader's 8-bit photo (see the module doc)."""
    return batch["image"].dtype == torch.uint8


def complete_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """A compact training batch -> the batch of contract section 2, computed on the batch's device.

    Args:
        batch: `collate` of compact samples: "image" (B, 3, H, W) uint8, "alphas" (B, K, H, W) uint8,
            optional "masks" (B, K, H, W) bool, "meta" with each sample's `input_size` and `trimap_kernel`.
            A batch whose photo is not uint8 is returned as it is.

    Returns:
        The batch with "image" (B, 3, H, W) float32 ImageNet-normalised and 0 outside each sample's
        `input_size`, "alphas" and "masks" (B, K, H, W) float32, and "trimaps" (B, K, H, W) int64 computed
        inside each sample's `input_size` with its kernel (0 outside), exactly as `_targets` computes them in
        a worker from the same mattes.
    """
    if not is_compact(batch):
        return batch
    device = batch["image"].device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    image = (batch["image"].float().div_(255.0) - mean) / std  # (B, 3, H, W)
    alphas8 = batch["alphas"]
    alphas = alphas8.float().div_(ALPHA_SCALE)  # (B, K, H, W)
    masks = batch["masks"] if "masks" in batch else alphas8 >= MASK_FROM_ALPHA
    trimaps = torch.zeros(alphas.shape, dtype=torch.long, device=device)
    for b, meta in enumerate(batch["meta"]):  # a batch holds a few images; each has its own kernel and size
        h, w = meta["input_size"]
        image[b, :, h:] = 0.0
        image[b, :, :, w:] = 0.0
        if alphas.shape[1]:
            trimaps[b, :, :h, :w] = trimap_from_alpha(alphas[b, :, :h, :w], meta["trimap_kernel"])
    return {**batch, "image": image, "alphas": alphas, "masks": masks.float(), "trimaps": trimaps}


def complete_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """`complete_batch` of one sample: its (3, H, W) photo and (K, H, W) maps completed, on its device
    (for looking at training samples one at a time; training completes whole batches)."""
    if not is_compact(sample):
        return sample
    batch = {k: v[None] for k, v in sample.items() if torch.is_tensor(v)}
    full = complete_batch({**batch, "meta": [sample["meta"]]})
    return {**sample, **{k: full[k][0] for k in ("image", "alphas", "masks", "trimaps")}}
