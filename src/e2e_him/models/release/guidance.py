"""The released network's united guidance (Section III-B, Eq. 3-5 as the authors' network computes them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from e2e_him.models.guidance import semantics_guidance


def _stacked(modules: nn.ModuleList, name: str) -> torch.Tensor:
    """The per-head parameters `name` of `modules` concatenated along the output axis: the heads keep the
    release's separate parameters but run as one operation."""
    return torch.cat([getattr(m, name) for m in modules])


class ReleaseGuidance(nn.Module):
    """F_dc (B, C, H/8, W/8), codes, affinity maps -> G_All (B, S * C_g, H/8, W/8) and softmax(W_sa).

    Where it differs from `UnitedGuidanceNetwork` (docs/architecture.md, "The released layout"):
    - F_sp is F_dc itself (no convolution); the affinity kernels and biases come from the release's shared
      kernel MLP (`SplitKernelMLP`, with the segmentation kernel), so they are inputs here;
    - W_b (a 1x1 conv of F_dc per head) is concatenated *last* in the softmax, as the release does (the
      attention is returned with the background first, the output contract);
    - F_rep = one linear layer of the codes (with their class probabilities) followed by the same GroupNorm
      as that head's F_bf (the release applies it to F_rep broadcast over the map; on a constant map a
      GroupNorm equals the GroupNorm of the vector, which is what is computed here);
    - F_bf = 1x1 conv (with bias) of F_dc, then that GroupNorm.

    `release_rounding=True` computes the same function in the release's float32 order of operations, bit for
    bit: the GroupNorm of F_rep on the broadcast (N, C_g, h, w) maps and Eq. 4's sum over the N + 1 maps one
    term after the other (a loop over queries, and N times the memory of F_rep). It exists to compare with
    the authors' network (scripts/release_parity.py), where a sum of clamped near-zero alphas magnifies
    last-bit differences; the default is the batched computation.
    """

    def __init__(
        self,
        num_heads: int = 2,
        hidden_dim: int = 256,
        code_dim: int = 258,
        guidance_dim: int = 128,
        release_rounding: bool = False,
    ) -> None:
        """Args:
        num_heads: S (the release: 2).
        hidden_dim: C, the width of F_dc.
        code_dim: width of the latent codes with their class probabilities (C + 2).
        guidance_dim: C_g of each head (128).
        release_rounding: reproduce the release's float32 rounding (see the class docstring).
        """
        super().__init__()
        s = self.num_heads = num_heads
        self.guidance_dim = guidance_dim
        self.release_rounding = release_rounding
        self.semantics = nn.Linear(code_dim, s * guidance_dim)  # F_rep of every head
        self.background_weight = nn.ModuleList(nn.Conv2d(hidden_dim, 1, 1) for _ in range(s))  # W_b
        self.background_features = nn.ModuleList(nn.Conv2d(hidden_dim, guidance_dim, 1) for _ in range(s))
        self.norms = nn.ModuleList(nn.GroupNorm(32, guidance_dim) for _ in range(s))

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        """Each head's GroupNorm on (B', S * C_g, h, w), the heads side by side on the channel axis."""
        groups = self.norms[0].num_groups * self.num_heads
        eps = self.norms[0].eps
        return F.group_norm(x, groups, _stacked(self.norms, "weight"), _stacked(self.norms, "bias"), eps)

    def _conv(self, x: torch.Tensor, convs: nn.ModuleList) -> torch.Tensor:
        """The heads' 1x1 convolutions `convs` of x, as one convolution."""
        return F.conv2d(x, _stacked(convs, "weight"), _stacked(convs, "bias"))

    def forward(
        self, detailed: torch.Tensor, codes: torch.Tensor, affinity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            detailed: F_dc (B, C, h, w).
            codes: latent codes with class probabilities (B, N, C + 2).
            affinity: Conv(F_sp, k_a) + B(b_a) of every head and query, (B, S, N, h, w).

        Returns:
            G_All (B, S * C_g, h, w) and softmax(W_sa) (B, S, N + 1, h, w), index 0 = the background.
        """
        b, _, h, w = detailed.shape
        n, s, c_g = codes.shape[1], self.num_heads, self.guidance_dim
        w_b = self._conv(detailed, self.background_weight).unsqueeze(2)  # (B, S, 1, h, w)
        attention = torch.cat((affinity, w_b), dim=2).softmax(dim=2)  # Eq. 3, the background last
        attention = torch.cat((attention[:, :, -1:], attention[:, :, :-1]), dim=2)  # background first
        background = self._norm(self._conv(detailed, self.background_features)).view(b, s, c_g, h, w)  # F_bf
        semantics = self.semantics(codes).reshape(b * n, s * c_g, 1, 1)  # F_rep before its GroupNorm
        if not self.release_rounding:
            semantics = self._norm(semantics).view(b, n, s, c_g).transpose(1, 2)  # (B, S, N, C_g)
            guidance = semantics_guidance(attention, background, semantics)  # Eq. 4, (B, S, C_g, h, w)
        else:
            semantics = self._norm(semantics.expand(-1, -1, h, w)).view(b, n, s, c_g, h, w)
            guidance = torch.zeros_like(background)
            for i in range(n):  # the release's order: one query after the other, the background last
                guidance = guidance + attention[:, :, i + 1 : i + 2] * semantics[:, i]
            guidance = guidance + attention[:, :, :1] * background
        return guidance.flatten(1, 2), attention
