"""The feature fusion of the instance matting network (Section III-C): a simple U-Net at H/8."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from e2e_him.models.layers import ConvGNAct, cat_channels


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-GN-ReLU layers (U-Net's basic block)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(ConvGNAct(in_channels, out_channels, 3), ConvGNAct(out_channels, out_channels, 3))


class UNetFusion(nn.Module):
    """U-Net over concat[image features, G_All]: aggregates the image features per instance (Section III-C).

    Contracting path: a double conv at H/8, then max-pool + double conv per further width (H/16, H/32, ...);
    expanding path: bilinear upsampling to the skip's size, concatenation, double conv. Pooling uses
    `ceil_mode` and upsampling goes to the skip's exact size, so odd map sizes work.
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (256, 512, 1024)) -> None:
        """Args:
        in_channels: C + S * C_g (F_dc and G_All concatenated).
        widths: channels per level, from H/8 down; the output has widths[0] channels at H/8.
        """
        super().__init__()
        widths = list(widths)
        if not widths:
            raise ValueError("UNetFusion needs at least one level width")
        self.down = nn.ModuleList(DoubleConv(a, b) for a, b in zip([in_channels, *widths[:-1]], widths))
        self.up = nn.ModuleList(
            DoubleConv(deep + skip, skip) for deep, skip in zip(widths[:0:-1], widths[-2::-1])
        )
        self.out_channels = widths[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_channels, H/8, W/8) -> instance-aware features (B, widths[0], H/8, W/8)."""
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2, ceil_mode=True)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear")
            x = block(cat_channels((x, skip)))
        return x
