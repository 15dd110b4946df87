"""Dynamic 1x1 convolutions: kernels and biases generated from the latent codes X by MLPs.

The same mechanism serves the segmentation head (Eq. 2), the spatial attention (Eq. 3), the trimap decoder
(Eq. 6) and the alpha decoder (Eq. 7): an MLP maps each latent code to `out_channels x in_channels` kernel
weights plus `out_channels` biases (the authors' release: 3-layer MLPs with hidden width 512 that emit kernel
and bias together), and the "convolution" of a shared feature map with one 1x1 kernel per query is an einsum.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from e2e_him.models.layers import MLP, StackedMLP, is_channels_last


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


class SplitKernelMLP(nn.Module):
    """One MLP of the latent codes whose output is cut into named parts (the authors' release: one MLP gives
    the affinity kernels of every guidance head and the segmentation kernel, another the trimap and alpha
    kernels, all with their biases).

    `parts` maps each name to its shape per query, in the order the parts lie in the MLP's output; e.g.
    `{"trimap_kernels": (3, 256), "trimap_biases": (3,), "alpha_kernel": (1, 64), "alpha_bias": (1,)}`.
    A kernel of shape (K, C) is read row-major: K maps of C weights each.
    """

    def __init__(
        self, in_dim: int, hidden_dim: int, num_layers: int, parts: dict[str, tuple[int, ...]]
    ) -> None:
        """Args:
        in_dim: latent code width (the release: C + 2, the codes with their class probabilities).
        hidden_dim: MLP hidden width (release: 512).
        num_layers: MLP depth (release: 3).
        parts: name -> shape per query, in output order.
        """
        super().__init__()
        self.parts = {name: tuple(int(d) for d in shape) for name, shape in parts.items()}
        self.sizes = [math.prod(shape) for shape in self.parts.values()]
        self.mlp = MLP(in_dim, hidden_dim, sum(self.sizes), num_layers)

    def forward(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """codes (..., N, in_dim) -> {name: (..., N, *shape)}."""
        flat = self.mlp(codes).split(self.sizes, dim=-1)
        lead = codes.shape[:-1]
        return {name: t.reshape(*lead, *shape) for (name, shape), t in zip(self.parts.items(), flat)}


def dynamic_conv1x1(features: torch.Tensor, kernels: torch.Tensor, biases: torch.Tensor) -> torch.Tensor:
    """Per-query 1x1 convolution Conv(F, k) + B(b) of one feature map (Eq. 2, 3, 6, 7), every query of every
    image in one matrix product (exportable to ONNX: the kernels are runtime tensors).

    Args:
        features: (B, C_f, h, w) shared by all queries.
        kernels: (B, *Q, C_f): 1x1 kernels per image, any query axes Q (e.g. (N, K) or (S, N)).
        biases: (B, *Q).

    Returns:
        (B, *Q, h, w).
    """
    b, *q, c = kernels.shape
    h, w = features.shape[-2:]
    kernels = kernels.reshape(b, -1, c)  # (B, M, C_f)
    if is_channels_last(features):  # the map as (B, h * w, C_f) rows, a view (docs/benchmarks.md: faster)
        rows = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
        out = torch.matmul(rows, kernels.transpose(1, 2)).transpose(1, 2).contiguous()  # (B, M, h * w)
    else:
        out = torch.matmul(kernels, features.reshape(b, c, h * w))  # (B, M, h * w)
    return out.view(b, *q, h, w) + biases[..., None, None]


def per_image_conv1x1(features: torch.Tensor, kernels: torch.Tensor, biases: torch.Tensor) -> torch.Tensor:
    """`dynamic_conv1x1` as one `F.conv2d` per image, the bias inside the convolution: the rounding of the
    authors' release, which convolves query by query.

    Args:
        features: (B, C_f, h, w).
        kernels: (B, *Q, C_f): 1x1 kernels per image, any query axes Q (e.g. (N, K) or (S, N)).
        biases: (B, *Q).

    Returns:
        (B, *Q, h, w).
    """
    b, *q, c = kernels.shape
    flat, flat_bias = kernels.reshape(b, -1, 1, c, 1), biases.reshape(b, -1)  # (B, M, 1, C_f, 1)
    maps = [F.conv2d(features[i : i + 1], flat[i].view(-1, c, 1, 1), flat_bias[i]) for i in range(b)]
    return torch.cat(maps).view(b, *q, *features.shape[-2:])
