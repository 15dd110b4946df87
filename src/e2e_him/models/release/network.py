"""`ReleaseE2EHIM`: the authors' released Swin-T network (the "released layout"), any batch, any size / 32."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from e2e_him.models.backbones import validate_backbone
from e2e_him.models.dynamic import SplitKernelMLP, dynamic_conv1x1, per_image_conv1x1
from e2e_him.models.init import kaiming_init
from e2e_him.models.layers import MLP, cat_channels
from e2e_him.models.matting_head import fuse_alpha, trimap_regions
from e2e_him.models.query_selection import gather_queries, scatter_queries, select_queries
from e2e_him.models.release.blocks import conv_gn
from e2e_him.models.release.feature_decoder import ReleaseFeatureDecoder
from e2e_him.models.release.guidance import ReleaseGuidance
from e2e_him.models.release.matting import ReleaseFusion, ReleaseRefiner, trimap_features
from e2e_him.models.stem import DeepStem
from e2e_him.models.transformer import TransformerDecoder

SIZE_MULTIPLE = 32
# Tensors of the release's state dict that its forward never reads (two 1x1 convs of F_dc). They are kept as
# buffers so that a converted checkpoint maps back onto the release's keys one to one.
UNUSED_RELEASE_TENSORS = {"conv1.weight": (1, 256, 1, 1), "conv1.bias": (1,), "conv2.weight": (1, 256, 1, 1),
                          "conv2.bias": (1,)}  # fmt: skip


class ReleaseE2EHIM(nn.Module):
    """The released E2E-HIM network with the output contract of `E2EHIM` (docs/contracts.md, section 3).

    Deep stem -> Swin-T -> (no encoder) a 1x1 conv-GN-ReLU of the H/32 map is the decoder's memory, read
    without positions by a 6-layer DETR decoder with N learned queries -> latent codes X, class logits; X with
    its class probabilities drives two shared kernel MLPs (affinity kernels of every guidance head and the
    segmentation kernel; trimap and alpha kernels). The trimap logits are at H/8; `alpha_pred` is the raw
    alpha clamped to [0, 1] (the paper: a sigmoid), `alpha_raw` the value before the clamp. In training the
    clamp can pass its gradient straight through (`straight_through_clamp`, ours): the release's exact clamp
    has none outside [0, 1], so a raw alpha pushed below 0 everywhere never comes back.

    Defaults are the release's (C = 256, N = 20, S = 2, C_g = 128, C_tri = 256, C_alpha = 64).
    """

    size_multiple = SIZE_MULTIPLE  # H and W of every input are multiples of this

    def __init__(
        self,
        backbone: nn.Module,
        hidden_dim: int = 256,
        num_queries: int = 20,
        dec_layers: int = 6,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        stem_widths: Sequence[int] = (32, 32, 64, 128),
        stem_norm_groups: Sequence[int] = (16, 16, 32, 32),
        class_hidden_dim: int = 128,
        kernel_hidden_dim: int = 512,
        kernel_layers: int = 3,
        guidance_heads: int = 2,
        guidance_dim: int = 128,
        trimap_channels: int = 256,
        alpha_channels: int = 64,
        release_rounding: bool = False,
        straight_through_clamp: bool = False,
    ) -> None:
        """Args:
        backbone: a built backbone (models/backbones contract) reading the stem's H/4 map; the release: Swin-T
            with `out_norm_levels` [0, 1, 2, 3] and `window_padding` "pad_then_shift".
        hidden_dim: C, the width of the decoder, X and F_dc.
        num_queries: N.
        dec_layers: perception decoder layers.
        nheads: decoder attention heads.
        dim_feedforward: decoder FFN width.
        dropout: decoder dropout.
        stem_widths: deep stem widths.
        stem_norm_groups: the stem's GroupNorm groups.
        class_hidden_dim: hidden width of the class MLP.
        kernel_hidden_dim: hidden width of the two kernel MLPs.
        kernel_layers: depth of the two kernel MLPs.
        guidance_heads: S (>= 1).
        guidance_dim: C_g of each head.
        trimap_channels: C_tri (the release: 256, at H/8).
        alpha_channels: C_alpha.
        release_rounding: compute the decoder's attention, the guidance and the dynamic convolutions in the
            release's float32 order, bit for bit (explicit attention products, `ReleaseGuidance`,
            `per_image_conv1x1`; for comparisons with the authors' network: slower, and the torchscript ONNX
            exporter cannot take it); off: the same function with PyTorch's fused attention and einsums.
        straight_through_clamp: in training, alpha_pred's gradient reaches alpha_raw also where the clamp
            cuts it (ours; the forward values are the clamp's, bit for bit; inference is unchanged); off: the
            release's clamp, whose zero gradient outside [0, 1] lets the alpha output die from random weights.
        """
        super().__init__()
        validate_backbone(backbone)
        if guidance_heads < 1:
            raise ValueError(f"the released layout needs guidance_heads >= 1, got {guidance_heads}")
        b4, b8, b16, b32 = backbone.channels
        c, n, s = hidden_dim, num_queries, guidance_heads
        self.stem = DeepStem(3, stem_widths, conv_bias=True, norm_groups=stem_norm_groups)
        self.backbone = backbone
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
        self.feature_decoder = ReleaseFeatureDecoder((b8, b16, b32), hidden_dim=c)
        self.guidance = ReleaseGuidance(s, c, code_dim, guidance_dim, release_rounding)
        self.dynamic_conv = per_image_conv1x1 if release_rounding else dynamic_conv1x1
        self.straight_through_clamp = straight_through_clamp
        self.fusion = ReleaseFusion(s * guidance_dim + c + n, (b8, b16, b32))
        self.trimap_features = trimap_features(out_channels=trimap_channels)
        self.refiner = ReleaseRefiner(low_level_channels=(b4, stem_widths[3], stem_widths[2]),
                                      alpha_channels=alpha_channels)  # fmt: skip
        self.unused = nn.Module()
        for key, shape in UNUSED_RELEASE_TENSORS.items():
            name, attr = key.split(".")
            if not hasattr(self.unused, name):
                self.unused.add_module(name, nn.Module())
            getattr(self.unused, name).register_buffer(attr, torch.zeros(shape))
        for part in (self.stem, self.context_proj, self.decoder, self.class_head, self.perception_kernels,
                     self.matting_kernels, self.feature_decoder, self.guidance, self.fusion,
                     self.trimap_features, self.refiner):  # fmt: skip
            kaiming_init(part)

    @property
    def num_queries(self) -> int:
        return self.query_embed.num_embeddings

    def alpha_only_parts(self) -> list[nn.Module]:
        """The sub-modules whose outputs reach alpha_pred alone, not class or trimap logits: the refiner."""
        return [self.refiner]

    def forward(
        self, image: torch.Tensor, keep_scores_above: float | None = None, band_tile: int | None = None
    ) -> dict[str, Any]:
        """image (B, 3, H, W), ImageNet-normalised, H and W multiples of 32 -> the outputs of
        docs/contracts.md section 3, with `trimap_logits` at H/8 and `alpha_raw` (B, N, H, W) besides.

        `keep_scores_above`: at inference, decode trimaps and mattes only for queries whose p(human) can
        pass this post-processing threshold (zeros for the others; models/query_selection.py).
        `band_tile`: at inference, run the refiner's full-resolution stage only on tiles of this size that
        hold unknown pixels of a decoded query (ours; alpha_fin is unchanged, alpha_raw and alpha_pred are
        then valid on those tiles only; models/release/band.py)."""
        h, w = image.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"ReleaseE2EHIM needs H and W multiples of {SIZE_MULTIPLE}, got {h}x{w}")
        half, quarter = self.stem(image)  # (B, 64, H/2, W/2), (B, 128, H/4, W/4)
        x4, x8, x16, x32 = self.backbone(quarter)
        context = self.context_proj(x32)  # (B, C, H/32, W/32)
        memory = context.flatten(2).transpose(1, 2)  # (B, L, C)
        query_pos = self.query_embed.weight.unsqueeze(0).expand(image.shape[0], -1, -1)  # (B, N, C)
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
        guidance, attention = self.guidance(detailed, codes[-1], affinity)
        fused = self.fusion(cat_channels((guidance, detailed, masks[-1].sigmoid())), f16, x8, x16, x32)
        decoded, select = codes[-1], None  # the queries whose trimaps and mattes are decoded
        if keep_scores_above is not None and not self.training:
            select = select_queries(logits[-1], keep_scores_above)
            decoded = gather_queries(decoded, select)
        matting = self.matting_kernels(decoded)
        tri = self.trimap_features(fused)  # F_tri (B, C_tri, H/8, W/8)
        trimap_logits = self.dynamic_conv(tri, matting["trimap_kernels"], matting["trimap_biases"])  # Eq. 6
        regions, band = None, None
        if band_tile is not None and not self.training:
            regions = trimap_regions(trimap_logits, image.shape[-2:])  # U_pred, F_pred (B, K, H, W)
            band = regions[0].any(dim=1)  # (B, H, W): unknown for some decoded query
        alpha_features = self.refiner(fused, x4, quarter, half, image, band, band_tile)  # (B, C_alpha, H, W)
        alpha_raw = self.dynamic_conv(alpha_features, matting["alpha_kernel"], matting["alpha_bias"])[:, :, 0]
        alpha_pred = alpha_raw.clamp(0.0, 1.0)  # Eq. 7 with the release's clamp
        if self.straight_through_clamp and self.training:
            # the clamp's values (+ 0), the identity's gradient
            alpha_pred = alpha_pred.detach() + (alpha_raw - alpha_raw.detach())
        maps = {
            "trimap_logits": trimap_logits,
            "alpha_pred": alpha_pred,
            "alpha_raw": alpha_raw,
            "alpha_fin": fuse_alpha(alpha_pred, trimap_logits, regions),  # Eq. 8
        }
        if select is not None:
            maps = {k: scatter_queries(v, select, logits.shape[2]) for k, v in maps.items()}
        return {
            "pred_logits": logits[-1],
            "pred_masks": masks[-1],
            "aux_outputs": [
                {"pred_logits": logits[i], "pred_masks": masks[i]} for i in range(len(masks) - 1)
            ],
            **maps,
            "context": context,
            "detailed_context": detailed,
            "guidance": guidance,
            "guidance_attention": attention,
        }
