"""Backbones with one contract: a list of NCHW feature maps plus `channels` and `strides`.

A backbone is built with keyword arguments that include `in_channels` (the deep stem's H/4 width, 128) and
`pretrained` (a local weights file or None; never a download). Its `forward(x)` takes the stem's features
`(B, in_channels, H/4, W/4)` and returns four NCHW maps at strides 4, 8, 16 and 32 relative to the image;
`channels` lists their widths and `strides` is `[4, 8, 16, 32]`. Any H, W that are multiples of 32 work.

Implementations: `timm_backbone.TimmResNetBackbone`, `timm_backbone.TimmSwinBackbone`,
`vitaev2.ViTAEv2Backbone`. The contract is duck-typed; `Backbone` is a convenience base class and
`validate_backbone` checks any module against the contract. A backbone may expose `in_channels` too, which
E2EHIM then checks against its stem.
"""

from __future__ import annotations

import torch
from torch import nn

STRIDES = [4, 8, 16, 32]


class Backbone(nn.Module):
    """Base class: subclasses set `channels` and `strides` and implement `forward`."""

    channels: list[int]
    strides: list[int]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stem features (B, in_channels, H/4, W/4) -> [(B, channels[i], H/strides[i], W/strides[i])]."""
        raise NotImplementedError


def validate_backbone(backbone: nn.Module) -> None:
    """Raise a clear error when `backbone` does not expose the contract's `channels` and `strides`."""
    name = type(backbone).__name__
    channels = getattr(backbone, "channels", None)
    strides = getattr(backbone, "strides", None)
    if channels is None or strides is None:
        raise TypeError(f"backbone {name} must expose `channels` and `strides` (see models/backbones)")
    if len(channels) != 4 or list(strides) != STRIDES:
        raise ValueError(
            f"backbone {name} must give 4 maps at strides {STRIDES}; it has channels={list(channels)}, "
            f"strides={list(strides)}"
        )
