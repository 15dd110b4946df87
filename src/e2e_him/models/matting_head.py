"""The instance matting network (Section III-C): fusion, refiner and the dynamic trimap / alpha decoders."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from e2e_him.data.trimap import trimap_argmax_masks
from e2e_him.models.dynamic import KernelMLP, dynamic_conv1x1
from e2e_him.models.fusion import UNetFusion
from e2e_him.models.layers import ConvGNAct, cat_channels
from e2e_him.models.query_selection import gather_queries, scatter_queries
from e2e_him.models.refiner import Refiner


def trimap_regions(trimap_logits: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 8's regions U_pred and F_pred: where the argmax of the trimap logits (B, N, 3, h, w), bilinearly
    upsampled to `size`, is unknown / foreground, (B, N, *size) bool each."""
    b, n, k, h, w = trimap_logits.shape
    with torch.no_grad():  # the regions are piecewise constant: no gradient flows through the argmax
        logits = F.interpolate(trimap_logits.reshape(b, n * k, h, w), size=size, mode="bilinear")
        return trimap_argmax_masks(logits.view(b, n, k, *size), dim=2)


def fuse_alpha(
    alpha_pred: torch.Tensor,
    trimap_logits: torch.Tensor,
    regions: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Final alpha alpha_fin = alpha_pred * U_pred + F_pred (Eq. 8).

    Args:
        alpha_pred: (B, N, H, W) in [0, 1].
        trimap_logits: (B, N, 3, h, w).
        regions: `trimap_regions(trimap_logits, (H, W))` when already computed.

    Returns:
        alpha_fin (B, N, H, W) in [0, 1].
    """
    is_unknown, is_foreground = regions or trimap_regions(trimap_logits, alpha_pred.shape[-2:])
    return alpha_pred * is_unknown.to(alpha_pred.dtype) + is_foreground.to(alpha_pred.dtype)


class InstanceMattingNetwork(nn.Module):
    """Image features, G_All and X -> trimap logits T_pred, boundary alpha alpha_pred and alpha_fin.

    The image features are F_dc (B, C, H/8, W/8); with guidance they are concatenated with G_All. With
    `use_fusion` a U-Net aggregates them; without (Table VII, Var1 and Var5) a 1x1 conv-GN-ReLU projects them
    to the refiner's input width. The refiner returns F_tri at H/2 and F_alpha at H; MLPs of X give the
    per-query trimap kernels (3 x C_tri) and alpha kernels (C_alpha) with their biases.
    """

    def __init__(
        self,
        hidden_dim: int = 256,
        guidance_channels: int = 256,
        stem_channels: Sequence[int] = (64, 128),
        use_fusion: bool = True,
        fusion_widths: Sequence[int] = (320, 640, 1280),
        use_refiner: bool = True,
        refiner_widths: Sequence[int] = (256, 128, 64),
        refiner_convs: Sequence[int] = (2, 2, 2),
        trimap_channels: int = 32,
        alpha_channels: int = 64,
        kernel_hidden_dim: int = 512,
        kernel_layers: int = 3,
        mask_prior: bool = False,
        trimap_stride: int = 2,
    ) -> None:
        """Args:
        hidden_dim: C, the width of F_dc and X.
        guidance_channels: S * C_g (0 without the guidance network).
        stem_channels: the stem's H/2 and H/4 feature widths.
        use_fusion: the U-Net feature fusion (False: Table VII, Var1 / Var5).
        fusion_widths: U-Net widths from H/8 down; widths[0] is also the projection width without fusion.
        use_refiner: bring back the low-level features in the refiner (False: Table VII, Var6).
        refiner_widths: refiner stage widths at H/4, H/2, H.
        refiner_convs: 3x3 convolutions per refiner stage.
        trimap_channels: C_tri.
        alpha_channels: C_alpha (release: 64).
        kernel_hidden_dim: hidden width of the kernel MLPs (release: 512).
        kernel_layers: depth of the kernel MLPs (release: 3).
        mask_prior: ours, off in the paper: each query's trimap and alpha decoders also read its own
            perception mask M_pred (Eq. 2, logits upsampled to their resolution) through one more kernel
            weight, so the matting decoders start from where the perception network put the person.
        trimap_stride: where F_tri comes from. 2 (the paper): the refiner's H/2 stage. 8 (ours, off in the
            paper; the authors' released layout does the same): a 3x3 conv-GN-ReLU and a 1x1 projection of
            the fused H/8 features, so T_pred is predicted on the perception grid and upsampled where it is
            read (Eq. 8, L_tri at H/8); at small training scales the trimap then follows the people's
            shapes rather than the refiner's textures (docs/training.md).
        """
        super().__init__()
        if trimap_stride not in (2, 8):
            raise ValueError(f"matting.trimap_stride must be 2 (the paper) or 8, got {trimap_stride}")
        self.mask_prior = mask_prior
        prior = int(mask_prior)
        in_channels = hidden_dim + guidance_channels
        if use_fusion:
            self.fusion: nn.Module = UNetFusion(in_channels, fusion_widths)
        else:
            self.fusion = ConvGNAct(in_channels, fusion_widths[0], 1)
        half, quarter = stem_channels
        self.refiner = Refiner(
            fusion_widths[0],
            refiner_widths,
            skip_channels=(quarter, half, 3),
            convs_per_stage=refiner_convs,
            trimap_channels=trimap_channels if trimap_stride == 2 else 0,
            alpha_channels=alpha_channels,
            use_low_level=use_refiner,
        )
        self.trimap_head: nn.Module | None = None
        if trimap_stride == 8:
            width = fusion_widths[0]
            self.trimap_head = nn.Sequential(ConvGNAct(width, width, 3), nn.Conv2d(width, trimap_channels, 1))
        self.trimap_kernels = KernelMLP(
            hidden_dim, trimap_channels + prior, 3, kernel_hidden_dim, kernel_layers
        )
        self.alpha_kernels = KernelMLP(
            hidden_dim, alpha_channels + prior, 1, kernel_hidden_dim, kernel_layers
        )

    @staticmethod
    def _with_prior(features: torch.Tensor, kernels, biases, masks: torch.Tensor | None) -> torch.Tensor:
        """Conv(F, k) + B(b), plus k's last weight times each query's upsampled mask logits when `masks`
        (B, N, h, w) are given: (B, N, K, H', W')."""
        if masks is None:
            return dynamic_conv1x1(features, kernels, biases)
        prior = F.interpolate(masks, size=features.shape[-2:], mode="bilinear")  # (B, N, H', W')
        out = dynamic_conv1x1(features, kernels[..., :-1], biases)
        return out + kernels[..., -1, None, None] * prior[:, :, None]

    def predict_trimaps(
        self, trimap_features: torch.Tensor, codes: torch.Tensor, masks: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Trimap logits T_pred = Conv(F_tri, k_tri) + B(b_tri) (Eq. 6): (B, N, 3, H/s, W/s), s: stride."""
        kernels, biases = self.trimap_kernels(codes)  # (B, N, 3, C_tri [+ 1]), (B, N, 3)
        return self._with_prior(trimap_features, kernels, biases, masks)

    def predict_alpha(
        self, alpha_features: torch.Tensor, codes: torch.Tensor, masks: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Boundary alpha alpha_pred = sigmoid(Conv(F_alpha, k_alpha) + B(b_alpha)) (Eq. 7): (B, N, H, W),
        float32 under autocast too (in bfloat16 the sigmoid rounds every value from 0.998 up to 1, where its
        gradient is then 0)."""
        kernels, biases = self.alpha_kernels(codes)  # (B, N, 1, C_alpha [+ 1]), (B, N, 1)
        return self._with_prior(alpha_features, kernels, biases, masks).squeeze(2).float().sigmoid()

    def forward(
        self,
        image: torch.Tensor,
        low_level: tuple[torch.Tensor, torch.Tensor],
        detailed: torch.Tensor,
        guidance: torch.Tensor | None,
        codes: torch.Tensor,
        select: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Args:
            image: (B, 3, H, W), the normalised input.
            low_level: the stem's (H/2, H/4) features.
            detailed: F_dc (B, C, H/8, W/8), the image features.
            guidance: G_All (B, S * C_g, H/8, W/8) or None.
            codes: X (B, N, C).
            select: (B, K) queries to decode (models/query_selection.py), None = all; the others get zeros.
            masks: M_pred (B, N, H/8, W/8), read with `mask_prior`.

        Returns:
            `trimap_logits` (B, N, 3, H/s, W/s) (s: trimap_stride), `alpha_pred` and, in eval mode,
            `alpha_fin` (B, N, H, W).
        """
        x = detailed if guidance is None else cat_channels((detailed, guidance))
        x = self.fusion(x)  # (B, fusion_widths[0], H/8, W/8)
        half, quarter = low_level
        trimap_features, alpha_features = self.refiner(x, (quarter, half, image))
        if self.trimap_head is not None:
            trimap_features = self.trimap_head(x)  # (B, C_tri, H/8, W/8)
        decoded = codes if select is None else gather_queries(codes, select)
        prior = None
        if self.mask_prior:
            prior = masks if select is None else gather_queries(masks, select)
        trimap_logits = self.predict_trimaps(trimap_features, decoded, prior)
        alpha_pred = self.predict_alpha(alpha_features, decoded, prior)
        out = {"trimap_logits": trimap_logits, "alpha_pred": alpha_pred}
        if not self.training:  # no loss reads alpha_fin (Eq. 8): training does not compute it
            out["alpha_fin"] = fuse_alpha(alpha_pred, trimap_logits)
        if select is not None:
            out = {k: scatter_queries(v, select, codes.shape[1]) for k, v in out.items()}
        return out
