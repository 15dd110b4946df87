"""Ground-truth trimaps from alpha mattes (0 = background, 1 = unknown, 2 = foreground, as the authors' release)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

BACKGROUND, UNKNOWN, FOREGROUND = 0, 1, 2
_EPS = 1.0 / 512.0  # half an 8-bit step: alpha below is 0, above 1 - _EPS is 1


def _dilate(mask: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Binary dilation of (..., H, W) bool masks with a square kernel of odd size."""
    if kernel_size <= 1:
        return mask
    shape = mask.shape
    x = mask.reshape(-1, 1, *shape[-2:]).float()
    r = kernel_size // 2
    # A square max-pool is separable: a row pass then a column pass costs 2k instead of k^2 per pixel.
    x = F.max_pool2d(x, (1, kernel_size), stride=1, padding=(0, r))
    x = F.max_pool2d(x, (kernel_size, 1), stride=1, padding=(r, 0))
    return x.reshape(shape) > 0.5


def trimap_from_alpha(alpha: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Trimap of each matte: definite foreground eroded and definite background shrunk by `kernel_size`.

    Args:
        alpha: (..., H, W) float mattes in [0, 1].
        kernel_size: side of the square structuring element; even values are rounded up to the next odd one.
            The unknown band therefore covers the soft transition plus about kernel_size // 2 pixels on each side,
            so that binary masks (no soft pixels) still get a band around their edges.

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
