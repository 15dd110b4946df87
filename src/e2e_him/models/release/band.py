"""Band-only refinement (ours, inference only; the network does it when asked, predict asks by default): the
released refiner's last stage at full resolution, computed only on the tiles that hold unknown pixels.

Eq. 8 reads alpha_pred only where a query's trimap is unknown; elsewhere alpha_fin is 0 or 1 from the
trimap. The release's full-resolution stage is two 3x3 convolutions without normalisation
(models/release/matting.py), so each output pixel depends on a 5 x 5 window of the stage's input alone:
on a tile cut with a 2-pixel halo it is the same function as on the whole image. Tiles without an unknown
pixel of any decoded query are skipped (F_alpha stays 0 there): alpha_fin is unchanged everywhere, and
alpha_pred is meaningful on the computed tiles only. The stage holds a quarter of the network's
multiply-adds at 640 x 640, so the saving grows as a trained network's unknown band thins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# above this share of tiles the stage runs on the whole image: the halos make tiles dearer per pixel, and at
# two threads tiles stop paying at about 52 % of them in bf16, 60 % in float32 (`scripts/bench_band.py
# --shares`, docs/benchmarks.md)
MAX_TILE_SHARE = 0.5


def check_tile(tile: int, size_multiple: int) -> int:
    """`tile`, checked to divide the network's input size multiple, so that every input is whole tiles."""
    if isinstance(tile, bool) or not isinstance(tile, int) or tile <= 0 or size_multiple % tile:
        divisors = [d for d in range(1, size_multiple + 1) if size_multiple % d == 0]
        raise ValueError(f"band_tile must divide the input size multiple {size_multiple}: one of {divisors}, "
                         f"got {tile!r}")  # fmt: skip
    return tile


def band_tiles(band: torch.Tensor, tile: int) -> torch.Tensor:
    """band (B, H, W) bool, H and W multiples of `tile` -> (M, 3) long [image, tile row, tile column] of the
    tiles that hold at least one band pixel."""
    b, h, w = band.shape
    if h % tile or w % tile:
        raise ValueError(f"band-only refinement needs H and W multiples of the tile {tile}, got {h}x{w}")
    hit = band.view(b, h // tile, tile, w // tile, tile).any(dim=4).any(dim=2)  # (B, H/t, W/t)
    return hit.nonzero()


def stage_on_band(stack: nn.Sequential, x: torch.Tensor, band: torch.Tensor, tile: int) -> torch.Tensor:
    """`stack(x)` where it matters: x (B, C, H, W), band (B, H, W) bool -> (B, C_out, H, W), computed on the
    tiles holding band pixels (zeros elsewhere), or on the whole image when most tiles hold some."""
    tiles = band_tiles(band, tile)
    if tiles.shape[0] > MAX_TILE_SHARE * band[:, ::tile, ::tile].numel():
        return stack(x)
    return convs_on_tiles(stack, x, tiles, tile)


def local_convs(stack: nn.Sequential) -> list[nn.Conv2d]:
    """The 3x3 stride-1 padding-1 convolutions of a stack of convolutions and identities (others refused)."""
    convs = []
    for layer in stack:
        if isinstance(layer, nn.Identity):
            continue
        if not (isinstance(layer, nn.Conv2d) and layer.kernel_size == (3, 3) and layer.stride == (1, 1)
                and layer.padding == (1, 1) and layer.dilation == (1, 1) and layer.groups == 1):  # fmt: skip
            raise ValueError(f"band-only refinement needs 3x3 convolutions and identities, got {layer}")
        convs.append(layer)
    return convs


def convs_on_tiles(stack: nn.Sequential, x: torch.Tensor, tiles: torch.Tensor, tile: int) -> torch.Tensor:
    """`stack(x)` on the listed tiles, zeros elsewhere: x (B, C, H, W) -> (B, C_out, H, W), channels-last.

    Each tile is read with a halo of one pixel per convolution and convolved without padding; the halo and
    the intermediate maps are zeroed outside the image, where the whole-image convolutions' zero padding
    would be, so every computed pixel equals the whole-image result.
    """
    convs = local_convs(stack)
    halo, (b, _, h, w) = len(convs), x.shape
    image, row, col = tiles.unbind(1)
    offsets = torch.arange(-halo, tile + halo, device=x.device)  # (win,)
    rows, cols = row[:, None] * tile + offsets, col[:, None] * tile + offsets  # (M, win) pixel indices
    row_in, col_in = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    inside = (row_in[:, :, None] & col_in[:, None, :]).unsqueeze(1)  # (M, 1, win, win)
    # (M, win, win, C) read pixel by pixel (contiguous channel vectors of a channels-last x), as NCHW view
    y = x[image[:, None, None], :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]
    y = y.permute(0, 3, 1, 2)  # (M, C, win, win), channels-last
    edge = ~inside.flatten(1).all(dim=1)  # (M,) tiles whose halo leaves the image
    masked = bool(edge.any())
    for i, conv in enumerate(convs):
        if masked:
            crop = inside[edge, :, i : inside.shape[-2] - i, i : inside.shape[-1] - i]
            y[edge] = y[edge] * crop.to(y.dtype)
        y = F.conv2d(y, conv.weight, conv.bias)  # (M, C_i, win - 2i - 2, win - 2i - 2)
    out = y.new_zeros(b, h // tile, tile, w // tile, tile, y.shape[1])  # NHWC with the tiles split out
    out[image, row, :, col] = y.permute(0, 2, 3, 1)  # (M, t, t, C_out) into the listed tiles
    return out.view(b, h, w, -1).permute(0, 3, 1, 2)
