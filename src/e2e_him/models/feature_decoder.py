"""The feature decoder of the perception network: backbone features + F_c -> detailed context F_dc at H/8."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from e2e_him.models.layers import Bottleneck, ConvGNAct


class FeatureDecoder(nn.Module):
    """Top-down fusion of the backbone's H/32, H/16, H/8 features with the context F_c (Section III-A).

    Each level: a 1x1 conv-GN lateral projection of the backbone map to C, plus the upsampled coarser level
    (at H/16 also F_c), then `blocks_per_level` residual bottleneck blocks (GN); a 3x3 conv-GN-ReLU gives
    F_dc (B, C, H/8, W/8). The authors' release builds F_dc this way (residual bottlenecks, H/32 -> H/8).
    """

    def __init__(
        self,
        in_channels: tuple[int, int, int],
        hidden_dim: int = 256,
        blocks_per_level: int = 1,
        bottleneck_channels: int | None = None,
    ) -> None:
        """Args:
        in_channels: backbone widths at H/8, H/16, H/32.
        hidden_dim: C, the width of F_c and F_dc.
        blocks_per_level: residual bottleneck blocks after each fusion.
        bottleneck_channels: the blocks' inner width (C/4 when None).
        """
        super().__init__()
        self.laterals = nn.ModuleList(ConvGNAct(c, hidden_dim, 1, act=False) for c in in_channels)

        def blocks() -> nn.Sequential:
            return nn.Sequential(
                *(Bottleneck(hidden_dim, bottleneck_channels) for _ in range(blocks_per_level))
            )

        self.blocks = nn.ModuleList(blocks() for _ in in_channels)
        self.out = ConvGNAct(hidden_dim, hidden_dim, 3)

    def forward(self, features: list[torch.Tensor], context: torch.Tensor) -> torch.Tensor:
        """features [(B, C_8, H/8, W/8), (B, C_16, H/16, W/16), (B, C_32, H/32, W/32)], context F_c
        (B, C, H/16, W/16) -> F_dc (B, C, H/8, W/8)."""
        c8, c16, c32 = (lateral(f) for lateral, f in zip(self.laterals, features))
        p32 = self.blocks[2](c32)
        p16 = self.blocks[1](c16 + context + F.interpolate(p32, size=c16.shape[-2:], mode="bilinear"))
        p8 = self.blocks[0](c8 + F.interpolate(p16, size=c8.shape[-2:], mode="bilinear"))
        return self.out(p8)
