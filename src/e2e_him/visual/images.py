"""Image arrays for pictures: a network input back to the photo (the one un-normalisation of the suite),
resizing and labelling tiles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from e2e_him.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def unnormalize(image: torch.Tensor, input_size: Sequence[int] | None = None) -> np.ndarray:
    """A network input (3, H, W), ImageNet-normalised (`data.transforms.normalize_image`), as uint8 (h, w, 3),
    cropped to `input_size` (h, w), the top-left region that holds the photo."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    rgb = (image.detach().float().cpu() * std + mean).clamp(0, 1)
    if input_size is not None:
        rgb = rgb[:, : int(input_size[0]), : int(input_size[1])]
    return (rgb * 255).round().byte().permute(1, 2, 0).numpy()


def photo_of(image: torch.Tensor, meta: Mapping[str, Any]) -> np.ndarray:
    """A network input (3, H, W) back to the photo: uint8 (h0, w0, 3) at `meta["orig_size"]`, from the
    region `meta["input_size"]` (the eval transform's resize undone bilinearly)."""
    return resize(unnormalize(image, meta["input_size"]), tuple(int(s) for s in meta["orig_size"]))


def resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """`image` (h, w[, C]) at `size` (H, W): bilinear, or nearest for label maps; unchanged when it fits."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)


def shrink(image: np.ndarray, side: int) -> np.ndarray:
    """`image` (H, W[, C]) with its long side at most `side` pixels (area interpolation)."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w, 1))
    if scale >= 1.0:
        return image
    size = (max(round(w * scale), 1), max(round(h * scale), 1))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    """The tile (h, w, 3) uint8 with `text` written on a dark band at its top."""
    out = tile.copy()
    scale = max(0.35, tile.shape[1] / 640)
    band = int(18 * scale / 0.5)
    out[:band] = (out[:band] * 0.35).astype(np.uint8)
    cv2.putText(out, text, (4, band - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out
