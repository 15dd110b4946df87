"""Layers of the released network built from the project's own blocks, and its position-attention block."""

from __future__ import annotations

import torch
from torch import nn

from e2e_him.models.layers import Bottleneck, ConvGNAct


def conv_gn(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    norm_groups: int,
    act: str = "relu",
    stride: int = 1,
) -> ConvGNAct:
    """The release's conv (with bias) -> GroupNorm(norm_groups) -> activation."""
    return ConvGNAct(
        in_channels, out_channels, kernel_size, stride=stride, act=act, bias=True, norm_groups=norm_groups
    )


def residual(channels: int, mid_channels: int) -> Bottleneck:
    """The release's residual bottleneck: conv biases, GroupNorm groups of 32 channels, LeakyReLU after the
    3x3 convolution and after the sum."""
    return Bottleneck(
        channels, mid_channels, bias=True, channels_per_group=32, mid_act="leaky_relu", out_act="leaky_relu"
    )


def stage(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    blocks: int,
    norm_groups: int = 32,
    act: str = "leaky_relu",
    stride: int = 1,
) -> nn.Sequential:
    """conv-GN-act followed by `blocks` residual bottlenecks of width out_channels / 4 (the release's
    recurring pattern)."""
    layers: list[nn.Module] = [conv_gn(in_channels, out_channels, kernel_size, norm_groups, act, stride)]
    layers += [residual(out_channels, out_channels // 4) for _ in range(blocks)]
    return nn.Sequential(*layers)


class PositionAttention(nn.Module):
    """DANet's position-attention module: every position attends to every other one of the same map.

    out = gamma * V softmax(Q^T K)^T + x with 1x1-conv projections Q, K (`key_channels`) and V (`channels`);
    gamma is a learned scalar that starts at 0 (the block starts as the identity).
    """

    def __init__(self, channels: int, key_channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, h, w) -> (B, C, h, w)."""
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, hw, C_k)
        k = self.key(x).flatten(2)  # (B, C_k, hw)
        attention = torch.bmm(q, k).softmax(dim=-1)  # (B, hw, hw): row i = where position i looks
        v = self.value(x).flatten(2)  # (B, C, hw)
        out = torch.bmm(v, attention.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * out + x
