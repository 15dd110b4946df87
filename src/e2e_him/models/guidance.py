"""The united guidance network (Section III-B, Algorithm 1, Eq. 3-5), all S heads computed together.

Each guidance head is a spatial attention module and a semantics embedding module. The S heads read the same
inputs (F_dc and the latent codes X), so their convolutions are one convolution with S times the outputs
(grouped where a head's layer reads that head's own features) and their MLPs are stacked MLPs with a head
axis: no Python loop over heads or queries.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from e2e_him.models.dynamic import KernelMLP
from e2e_him.models.layers import ConvGNAct, StackedMLP, group_norm


def semantics_guidance(
    attention: torch.Tensor, background_features: torch.Tensor, semantics: torch.Tensor
) -> torch.Tensor:
    """G = Sum(Softmax(W_sa, 1) * Concat(F_bf, F_urep), 1) (Eq. 4) of all heads, F_urep never materialised.

    Args:
        attention: softmax(W_sa) over the N + 1 axis, (B, S, N + 1, h, w), index 0 = the background.
        background_features: F_bf, (B, S, C_g, h, w).
        semantics: F_rep, (B, S, N, C_g) (broadcast over (h, w) by the einsum: F_urep never exists).

    Returns:
        G of every head, (B, S, C_g, h, w).
    """
    instances = torch.einsum("bsnhw,bsnc->bschw", attention[:, :, 1:], semantics)
    return attention[:, :, :1] * background_features + instances


class UnitedGuidanceNetwork(nn.Module):
    """F_dc (B, C, H/8, W/8) and X (B, N, C) -> G_All (B, S * C_g, H/8, W/8) and softmax(W_sa).

    Per head (release values): affinity kernel and bias from one 3-layer MLP (hidden 512); F_sp = 3x3
    conv-GN-ReLU then 1x1 conv of F_dc (C_sp = C channels, the paper's F_sp in R^{C x H/8 x W/8}); W_b = 1x1
    conv of F_dc; F_rep = 3-layer MLP of X (C_g = 128 channels); F_bf = 1x1 conv C -> C_g + GroupNorm.
    """

    def __init__(
        self,
        num_heads: int = 2,
        hidden_dim: int = 256,
        guidance_dim: int = 128,
        spatial_dim: int | None = None,
        kernel_hidden_dim: int = 512,
        kernel_layers: int = 3,
        semantics_hidden_dim: int | None = None,
        semantics_layers: int = 3,
    ) -> None:
        """Args:
        num_heads: S >= 1 (paper: 2; Table VII: 4). S = 0 means no guidance network at all (E2EHIM).
        hidden_dim: C, the width of F_dc and X.
        guidance_dim: C_g, channels of each head's G (release: 128).
        spatial_dim: C_sp, channels of F_sp (C when None).
        kernel_hidden_dim: hidden width of the affinity kernel MLP (release: 512).
        kernel_layers: depth of the affinity kernel MLP (release: 3).
        semantics_hidden_dim: hidden width of the F_rep MLP (C when None).
        semantics_layers: depth of the F_rep MLP.
        """
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"UnitedGuidanceNetwork needs num_heads >= 1, got {num_heads}")
        s = self.num_heads = num_heads
        c_sp = self.spatial_dim = spatial_dim or hidden_dim
        c_g = self.guidance_dim = guidance_dim
        # Spatial attention: F_sp = CNN(F_dc), W_b = CNN(F_dc), (k_a, b_a) = MLP(X).
        self.spatial = nn.Sequential(
            ConvGNAct(hidden_dim, s * c_sp, 3, max_gn_groups=s * math.gcd(32, c_sp)),
            nn.Conv2d(s * c_sp, s * c_sp, 1, groups=s),
        )
        self.background_weight = nn.Conv2d(hidden_dim, s, 1)
        self.affinity_kernels = KernelMLP(hidden_dim, c_sp, 1, kernel_hidden_dim, kernel_layers, num_stacks=s)
        # Semantics embedding: F_rep = MLP(X), F_bf = CNN(F_dc).
        self.semantics = StackedMLP(s, hidden_dim, semantics_hidden_dim or hidden_dim, c_g, semantics_layers)
        self.background_features = nn.Sequential(
            nn.Conv2d(hidden_dim, s * c_g, 1, bias=False), group_norm(s * c_g, s * math.gcd(32, c_g))
        )

    def spatial_attention(self, detailed: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Spatial attention logits W_sa = Concat(W_b, Conv(F_sp, k_a) + B(b_a)) (Eq. 3).

        Args:
            detailed: F_dc (B, C, h, w).
            codes: X (B, N, C).

        Returns:
            W_sa (B, S, N + 1, h, w), index 0 = the background weight W_b.
        """
        b, _, h, w = detailed.shape
        spatial = self.spatial(detailed).view(b, self.num_heads, self.spatial_dim, h, w)  # F_sp per head
        kernels, biases = self.affinity_kernels(codes)  # (B, S, N, 1, C_sp), (B, S, N, 1)
        affinity = torch.einsum("bsnc,bschw->bsnhw", kernels.squeeze(-2), spatial) + biases[..., None]
        background = self.background_weight(detailed).unsqueeze(2)  # (B, S, 1, h, w)
        return torch.cat((background, affinity), dim=2)

    def embed_semantics(
        self, attention: torch.Tensor, detailed: torch.Tensor, codes: torch.Tensor
    ) -> torch.Tensor:
        """F_rep = MLP(X), F_bf = CNN(F_dc), then G of Eq. 4 (`semantics_guidance`).

        Args:
            attention: softmax(W_sa) over the N + 1 axis, (B, S, N + 1, h, w).
            detailed: F_dc (B, C, h, w).
            codes: X (B, N, C).

        Returns:
            G of every head, (B, S, C_g, h, w).
        """
        b, _, h, w = detailed.shape
        semantics = self.semantics(codes)  # F_rep (B, S, N, C_g)
        background = self.background_features(detailed).view(b, self.num_heads, self.guidance_dim, h, w)
        return semantics_guidance(attention, background, semantics)

    def forward(self, detailed: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """United guidance G_All = Concat(G^1, ..., G^S) (Eq. 5, Algorithm 1).

        Args:
            detailed: F_dc (B, C, H/8, W/8).
            codes: X (B, N, C).

        Returns:
            G_All (B, S * C_g, H/8, W/8) and softmax(W_sa) (B, S, N + 1, H/8, W/8).
        """
        attention = self.spatial_attention(detailed, codes).softmax(dim=2)
        guidance = self.embed_semantics(attention, detailed, codes)  # (B, S, C_g, h, w)
        return guidance.flatten(1, 2), attention
