"""Ground-truth trimaps from alpha mattes (0 background, 1 unknown, 2 foreground, as the authors' release)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

BACKGROUND, UNKNOWN, FOREGROUND = 0, 1, 2
_EPS = 1.0 / 512.0  # half an 8-bit step: alpha below is 0, above 1 - _EPS is 1


def _dilate(mask: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Binary dilation of (..., H, W) bool masks with a square kernel of odd size.

    On the CPU (the data pipeline) OpenCV dilation costs O(1) per pixel whatever the kernel; elsewhere two 1-D
    max-pools (a row pass, then a column pass) give the same result at O(k) per pixel.
    """
    if kernel_size <= 1 or mask.numel() == 0:
        return mask
    shape = mask.shape
    if mask.device.type == "cpu":
        kernel = np.ones((kernel_size, kernel_size), np.uint8)
        flat = mask.reshape(-1, *shape[-2:]).numpy().astype(np.uint8)
        out = np.stack([cv2.dilate(m, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) for m in flat])
        return torch.from_numpy(out.reshape(shape) > 0)
    return _dilate_pool(mask, kernel_size)


def _dilate_pool(mask: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """`_dilate` on any device: a 1 x k then a k x 1 max-pool (a square max-pool is separable)."""
    shape, r = mask.shape, kernel_size // 2
    x = mask.reshape(-1, 1, *shape[-2:]).float()
    x = F.max_pool2d(x, (1, kernel_size), stride=1, padding=(0, r))
    x = F.max_pool2d(x, (kernel_size, 1), stride=1, padding=(r, 0))
    return x.reshape(shape) > 0.5


def trimap_from_alpha(alpha: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Trimap of each matte: definite foreground eroded and definite background shrunk by `kernel_size`.

    Args:
        alpha: (..., H, W) float mattes in [0, 1].
        kernel_size: side of the square structuring element; even values are rounded up to the next odd one.
            The unknown band therefore covers the soft transition plus about kernel_size // 2 pixels on each
            side, so that binary masks (no soft pixels) still get a band around their edges.

    Returns:
        (..., H, W) int64 trimap with values in {0, 1, 2}.
    """
    k = int(kernel_size)
    k = k + 1 if k % 2 == 0 else k
    fg = alpha >= 1.0 - _EPS
    not_bg = alpha > _EPS
    fg_core = ~_dilate(~fg, k)  # erosion of the foreground
    reach = _dilate(not_bg, k)  # dilation of everything that is not background
    trimap = torch.full(alpha.shape, BACKGROUND, dtype=torch.long, device=alpha.device)
    trimap[reach] = UNKNOWN
    trimap[fg_core] = FOREGROUND
    return trimap


def trimap_argmax_masks(logits: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmax == unknown, argmax == foreground) of 3-class trimap logits along `dim`, ties going to the lower
    class as `argmax` does. Elementwise comparisons: an argmax over a strided 3-long axis is slow on CPU."""
    bg, unknown, fg = logits.unbind(dim)
    return (unknown > bg) & (unknown >= fg), (fg > bg) & (fg > unknown)
