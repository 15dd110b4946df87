"""The released network's feature decoder: Swin's H/32, H/16, H/8 maps -> F_16 and F_dc (Section III-A)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from e2e_him.models.layers import cat_channels
from e2e_him.models.release.blocks import conv_gn, stage


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x upsampling (align_corners=False), as the release's `nn.Upsample(scale_factor=2)`."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class ReleaseFeatureDecoder(nn.Module):
    """Top-down concatenation (not addition, as `FeatureDecoder`) of the backbone's maps.

    top = 1x1 conv-GN-ReLU(x32) (512); F_16 = stage(cat[up(top), x16]) (512, 3x3 + 2 residual blocks);
    F_dc = stage(cat[up(F_16), x8]) (C = 256, 3x3 + 2 residual blocks) then a 1x1 conv-GN-ReLU. GroupNorms of
    16 groups, ReLU. F_16 is also read by the release's fusion U-Net.
    """

    def __init__(
        self, in_channels: tuple[int, int, int] = (192, 384, 768), width: int = 512, hidden_dim: int = 256
    ) -> None:
        """Args:
        in_channels: backbone widths at H/8, H/16, H/32 (Swin-T: 192, 384, 768).
        width: channels of the H/32 and H/16 levels (512).
        hidden_dim: C, the width of F_dc (256).
        """
        super().__init__()
        c8, c16, c32 = in_channels
        self.top = conv_gn(c32, width, 1, 16)
        self.mid = stage(width + c16, width, 3, 2, norm_groups=16, act="relu")
        self.out = nn.Sequential(
            *stage(width + c8, hidden_dim, 3, 2, norm_groups=16, act="relu"),
            conv_gn(hidden_dim, hidden_dim, 1, 16),
        )

    def forward(
        self, x8: torch.Tensor, x16: torch.Tensor, x32: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone maps (B, C_s, H/s, W/s) for s = 8, 16, 32 -> F_16 (B, 512, H/16, W/16) and F_dc (B, C,
        H/8, W/8)."""
        f16 = self.mid(cat_channels((upsample2(self.top(x32)), x16)))
        return f16, self.out(cat_channels((upsample2(f16), x8)))
