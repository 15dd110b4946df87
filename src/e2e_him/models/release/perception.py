"""The released network's general perception network (Section III-A as the authors' network builds it):
context, decoder, heads, every dynamic kernel of the latent codes, and the feature decoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from e2e_him.models.dynamic import SplitKernelMLP, dynamic_conv1x1, per_image_conv1x1
from e2e_him.models.layers import MLP
from e2e_him.models.release.blocks import conv_gn
from e2e_him.models.release.feature_decoder import ReleaseFeatureDecoder
from e2e_him.models.transformer import TransformerDecoder


class ReleasePerception(nn.Module):
    """Backbone maps at H/8, H/16, H/32 -> latent codes, class logits, masks M_pred, F_16, F_dc and the
    guidance heads' affinity maps.

    No transformer encoder: a 1x1 conv-GN-ReLU of the H/32 map (F_c) is the memory of a DETR decoder with N
    learned queries, read without positions -> X per decoder layer. X with its class probabilities (C + 2)
    drives two shared kernel MLPs: `perception_kernels` (the segmentation kernel of Eq. 2 and every head's
    affinity kernel of Eq. 3) and `matting_kernels` (trimap and alpha kernels of Eq. 6-7, applied by the
    network to the decoded queries only). `ReleaseFeatureDecoder` gives F_16 and F_dc.
    """

    def __init__(
        self,
        backbone_channels: Sequence[int],
        hidden_dim: int = 256,
        num_queries: int = 20,
        dec_layers: int = 6,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        class_hidden_dim: int = 128,
        kernel_hidden_dim: int = 512,
        kernel_layers: int = 3,
        guidance_heads: int = 2,
        trimap_channels: int = 256,
        alpha_channels: int = 64,
        release_rounding: bool = False,
    ) -> None:
        """Args:
        backbone_channels: the backbone's widths at strides 4, 8, 16, 32.
        hidden_dim: C, the width of the decoder, X and F_dc.
        num_queries: N.
        dec_layers: decoder layers.
        nheads: decoder attention heads.
        dim_feedforward: decoder FFN width.
        dropout: decoder dropout.
        class_hidden_dim: hidden width of the class MLP.
        kernel_hidden_dim: hidden width of the two kernel MLPs.
        kernel_layers: depth of the two kernel MLPs.
        guidance_heads: S, the heads whose affinity kernels `perception_kernels` gives.
        trimap_channels: C_tri, the width `matting_kernels`' trimap kernels read.
        alpha_channels: C_alpha, the width its alpha kernel reads.
        release_rounding: the decoder's attention and the dynamic convolutions in the release's float32
            order (`ReleaseE2EHIM.from_config`).
        """
        super().__init__()
        b32 = backbone_channels[3]
        c, n, s = hidden_dim, num_queries, guidance_heads
        self.context_proj = conv_gn(b32, c, 1, 32)
        self.query_embed = nn.Embedding(n, c)
        self.decoder = TransformerDecoder(
            dec_layers, c, nheads, dim_feedforward, dropout, explicit_attention=release_rounding
        )
        self.class_head = MLP(c, class_hidden_dim, 2, num_layers=2)
        code_dim = c + 2  # X with its class probabilities
        self.perception_kernels = SplitKernelMLP(
            code_dim,
            kernel_hidden_dim,
            kernel_layers,
            {"affinity_kernels": (s, c), "affinity_biases": (s,), "mask_kernel": (c,), "mask_bias": ()},
        )
        self.matting_kernels = SplitKernelMLP(
            code_dim,
            kernel_hidden_dim,
            kernel_layers,
            {
                "trimap_kernels": (3, trimap_channels),
                "trimap_biases": (3,),
                "alpha_kernel": (1, alpha_channels),
                "alpha_bias": (1,),
            },
        )
        self.feature_decoder = ReleaseFeatureDecoder(tuple(backbone_channels[1:]), hidden_dim=c)
        self.dynamic_conv = per_image_conv1x1 if release_rounding else dynamic_conv1x1

    @property
    def num_queries(self) -> int:
        return self.query_embed.num_embeddings

    def forward(self, x8: torch.Tensor, x16: torch.Tensor, x32: torch.Tensor) -> dict[str, Any]:
        """Backbone maps (B, C_s, H/s, W/s), s = 8, 16, 32 -> `context` F_c (B, C, H/32, W/32), `codes` X with
        class probabilities (D, B, N, C + 2), `logits` (D, B, N, 2), `masks` M_pred (D, B, N, H/8, W/8),
        `affinity` Conv(F_dc, k_a) + B(b_a) of the last layer (B, S, N, H/8, W/8), `f16` (B, 512, H/16,
        W/16) and `detailed` F_dc (B, C, H/8, W/8)."""
        context = self.context_proj(x32)  # (B, C, H/32, W/32)
        memory = context.flatten(2).transpose(1, 2)  # (B, L, C)
        query_pos = self.query_embed.weight.unsqueeze(0).expand(x32.shape[0], -1, -1)  # (B, N, C)
        codes = self.decoder(torch.zeros_like(query_pos), memory, query_pos, None)  # (D, B, N, C)
        logits = self.class_head(codes)  # (D, B, N, 2)
        codes = torch.cat((codes, logits.softmax(dim=-1)), dim=-1)  # (D, B, N, C + 2)
        kernels = self.perception_kernels(codes)
        f16, detailed = self.feature_decoder(x8, x16, x32)  # (B, 512, H/16, W/16), F_dc (B, C, H/8, W/8)
        # M_pred of every decoder layer (Eq. 2), (D, B, N, h, w)
        masks = self.dynamic_conv(
            detailed, kernels["mask_kernel"].transpose(0, 1), kernels["mask_bias"].transpose(0, 1)
        ).transpose(0, 1)
        affinity = self.dynamic_conv(  # Conv(F_dc, k_a) + B(b_a) of every head (Eq. 3), (B, S, N, h, w)
            detailed,
            kernels["affinity_kernels"][-1].transpose(1, 2),
            kernels["affinity_biases"][-1].transpose(1, 2),
        )
        return {"context": context, "codes": codes, "logits": logits, "masks": masks, "affinity": affinity,
                "f16": f16, "detailed": detailed}  # fmt: skip
