"""The deep stem of the semantic encoder (Section III-A), with GroupNorm for batch size 1 per GPU."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from e2e_him.models.layers import ConvGNAct


class DeepStem(nn.Module):
    """Four 3x3 conv-GN-ReLU layers: 3 -> 32 (stride 2) -> 32 -> 64 (H/2) -> 128 (stride 2, H/4).

    The H/2 and H/4 outputs are kept as the low-level features that the refiner brings back (Section III-C),
    and the H/4 output feeds the backbone (the authors' release). The released network gives its stem
    convolutions biases and GroupNorms of 16, 16, 32 and 32 groups (`conv_bias`, `norm_groups`).
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 32, 64, 128),
        conv_bias: bool = False,
        norm_groups: Sequence[int] | None = None,
    ) -> None:
        """Args:
        in_channels: image channels.
        widths: output channels of the four layers; the third is the H/2 feature, the fourth the H/4 one.
        conv_bias: biases in the four convolutions.
        norm_groups: GroupNorm groups of the four layers (None: up to 32 dividing each width).
        """
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"stem widths needs 4 entries (H/2, H/2, H/2, H/4 layers), got {list(widths)}")
        groups = list(norm_groups) if norm_groups is not None else [None] * 4
        if len(groups) != 4:
            raise ValueError(f"stem norm_groups needs 4 entries, got {groups}")
        w1, w2, w3, w4 = widths

        def layer(i: int, a: int, b: int, stride: int = 1) -> ConvGNAct:
            return ConvGNAct(a, b, 3, stride=stride, bias=conv_bias, norm_groups=groups[i])

        self.layers_h2 = nn.Sequential(layer(0, in_channels, w1, 2), layer(1, w1, w2), layer(2, w2, w3))
        self.layer_h4 = layer(3, w3, w4, 2)
        self.channels = (w3, w4)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (B, 3, H, W) -> (features (B, w3, H/2, W/2), features (B, w4, H/4, W/4))."""
        half = self.layers_h2(image)
        return half, self.layer_h4(half)
