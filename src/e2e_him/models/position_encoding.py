"""Sine positional encoding of a feature map (DETR's `PositionEmbeddingSine`, normalised coordinates)."""

from __future__ import annotations

import math

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """Fixed 2-D sine/cosine encoding: half the channels encode y, half x, at geometric frequencies.

    Coordinates are normalised to (0, 2*pi] per map, so the encoding of an (h, w) map does not depend on the
    batch or on anything but (h, w). No parameters.
    """

    def __init__(
        self, num_pos_feats: int = 128, temperature: float = 10000.0, scale: float = 2 * math.pi
    ) -> None:
        """Args:
        num_pos_feats: channels per axis (the encoding has 2 * num_pos_feats channels = the model width).
        temperature: base of the frequency progression.
        scale: range of the normalised coordinates.
        """
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, h, w) -> encoding (B, 2 * num_pos_feats, h, w) (same for every image of the batch)."""
        b, _, h, w = x.shape
        eps = 1e-6
        y_embed = torch.arange(1, h + 1, device=x.device, dtype=torch.float32) / (h + eps) * self.scale
        x_embed = torch.arange(1, w + 1, device=x.device, dtype=torch.float32) / (w + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, device=x.device, dtype=torch.float32)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x_embed[:, None] / dim_t  # (w, F)
        pos_y = y_embed[:, None] / dim_t  # (h, F)
        pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
        pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
        pos = torch.cat(
            (pos_y[:, None, :].expand(h, w, -1), pos_x[None, :, :].expand(h, w, -1)), dim=2
        )  # (h, w, 2F)
        return pos.permute(2, 0, 1).unsqueeze(0).expand(b, -1, -1, -1).to(x.dtype)
