"""Dynamic 1x1 convolutions: kernels and biases generated from the latent codes X by MLPs.

The same mechanism serves the segmentation head (Eq. 2), the spatial attention (Eq. 3), the trimap decoder
(Eq. 6) and the alpha decoder (Eq. 7): an MLP maps each latent code to `out_channels x in_channels` kernel
weights plus `out_channels` biases (the authors' release: 3-layer MLPs with hidden width 512 that emit kernel
and bias together), and the "convolution" of a shared feature map with one 1x1 kernel per query is an einsum.
"""

from __future__ import annotations

import torch
from torch import nn

from e2e_him.models.layers import MLP, StackedMLP


class KernelMLP(nn.Module):
    """Latent codes -> per-query 1x1 kernels (out x in) and biases (out), from one MLP.

    With `num_stacks` = S > 0 it holds S independent MLPs (one per guidance head) evaluated together.
    """

    def __init__(
        self,
        in_dim: int,
        feature_channels: int,
        out_channels: int = 1,
        hidden_dim: int = 512,
        num_layers: int = 3,
        num_stacks: int | None = None,
    ) -> None:
        """Args:
        in_dim: latent code width C.
        feature_channels: channels of the feature map the kernels convolve.
        out_channels: output maps per query (1 for masks / alpha / affinity, 3 for the trimap).
        hidden_dim: MLP hidden width (release: 512).
        num_layers: MLP depth (release: 3).
        num_stacks: None for one MLP; S for S independent MLPs (guidance heads).
        """
        super().__init__()
        self.feature_channels = feature_channels
        self.out_channels = out_channels
        out_dim = out_channels * (feature_channels + 1)
        self.num_stacks = num_stacks
        if num_stacks is None:
            self.mlp: nn.Module = MLP(in_dim, hidden_dim, out_dim, num_layers)
        else:
            self.mlp = StackedMLP(num_stacks, in_dim, hidden_dim, out_dim, num_layers)

    def forward(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """codes (B, N, C) -> kernels (B, [S,] N, out, C_f) and biases (B, [S,] N, out)."""
        params = self.mlp(codes)  # (B, [S,] N, out * (C_f + 1))
        lead = params.shape[:-1]
        params = params.view(*lead, self.out_channels, self.feature_channels + 1)
        return params[..., :-1], params[..., -1]


def dynamic_conv1x1(features: torch.Tensor, kernels: torch.Tensor, biases: torch.Tensor) -> torch.Tensor:
    """Per-query 1x1 convolution Conv(F, k) + B(b) of one feature map (Eq. 2, 6, 7).

    Args:
        features: (B, C_f, h, w) shared by all queries.
        kernels: (B, N, K, C_f): K output maps per query.
        biases: (B, N, K).

    Returns:
        (B, N, K, h, w).
    """
    out = torch.einsum("bnkc,bchw->bnkhw", kernels, features)
    return out + biases[..., None, None]
