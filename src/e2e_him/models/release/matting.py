"""The released network's instance matting network (Section III-C as the authors' network builds it): fusion
U-Net with position attention, trimap features at H/8, a refiner to full resolution, and the dynamic trimap
and alpha decoders."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from e2e_him.models.dynamic import dynamic_conv1x1, per_image_conv1x1
from e2e_him.models.layers import cat_channels
from e2e_him.models.matting_head import fuse_alpha, trimap_regions
from e2e_him.models.release.band import stage_on_band
from e2e_him.models.release.blocks import PositionAttention, conv_gn, stage
from e2e_him.models.release.feature_decoder import upsample2


class ReleaseFusion(nn.Module):
    """cat[G_All, F_dc, sigmoid(M_pred)] at H/8 -> instance-aware features (B, 512, H/8, W/8).

    A U-Net over H/8, H/16 and H/32 that brings the backbone's maps (and F_16) back at each level, with a
    position-attention block at H/32; LeakyReLU and GroupNorms of 32 groups except the ReLU entry layers.
    """

    def __init__(
        self,
        in_channels: int,
        backbone_channels: tuple[int, int, int] = (192, 384, 768),
        decoder_width: int = 512,
        width: int = 512,
        deep_width: int = 1024,
    ) -> None:
        """Args:
        in_channels: S * C_g + C + N (guidance, F_dc and one mask per query; the release: 256 + 256 + 20).
        backbone_channels: backbone widths at H/8, H/16, H/32.
        decoder_width: channels of F_16 (512).
        width: channels at H/8 and H/16 (512).
        deep_width: channels at H/32 (1024).
        """
        super().__init__()
        c8, c16, c32 = backbone_channels
        self.enter8 = stage(in_channels, width, 1, 2, act="relu")
        self.down16 = conv_gn(width, width, 3, 32, "relu", stride=2)
        self.fuse16 = stage(width + decoder_width + c16, width, 1, 2)
        self.down32 = conv_gn(width, c32, 3, 32, "leaky_relu", stride=2)
        self.fuse32 = stage(c32 + c32, deep_width, 1, 1)
        self.attention = PositionAttention(deep_width, deep_width // 4)
        self.out32 = stage(deep_width, deep_width, 1, 2)
        self.up16 = stage(width + deep_width + c16, width, 1, 2)
        self.up8 = stage(width + c8 + width, width, 1, 2)

    def forward(
        self, x: torch.Tensor, f16: torch.Tensor, x8: torch.Tensor, x16: torch.Tensor, x32: torch.Tensor
    ) -> torch.Tensor:
        """x (B, in_channels, H/8, W/8); F_16 (B, 512, H/16, W/16); backbone maps at H/8, H/16, H/32 ->
        (B, width, H/8, W/8)."""
        e8 = self.enter8(x)
        e16 = self.fuse16(cat_channels((self.down16(e8), f16, x16)))
        e32 = self.fuse32(cat_channels((self.down32(e16), x32)))
        d32 = self.out32(self.attention(e32))
        d16 = self.up16(cat_channels((e16, upsample2(d32), x16)))
        return self.up8(cat_channels((upsample2(d16), x8, e8)))


def trimap_features(in_channels: int = 512, width: int = 512, out_channels: int = 256, dropout: float = 0.1):
    """F_tri at H/8: 3x3 conv-GN-ReLU, dropout, 3x3 conv-GN-ReLU (the release predicts trimaps at H/8)."""
    return nn.Sequential(
        conv_gn(in_channels, width, 3, 32), nn.Dropout(dropout), conv_gn(width, out_channels, 3, 32)
    )


class ReleaseRefiner(nn.Module):
    """Instance-aware features at H/8 -> F_alpha (B, C_alpha, H, W), bringing back the low-level maps.

    H/4: cat[up(x), Swin's H/4 map, the stem's H/4 map] -> 3x3 conv-GN-LReLU + 3 residual blocks (256);
    H/2: cat[up(.), the stem's H/2 map] -> two 3x3 conv-GN-LReLU (128);
    H: cat[up(.), image] -> 3x3 conv (96) -> 3x3 conv (C_alpha = 64), no normalisation and no non-linearity:
    the release writes `nn.LeakyReLU(True)` there, which sets the negative slope to 1 (the identity), so
    these two convolutions are one linear map; `nn.Identity` keeps the release's layer positions.
    """

    def __init__(
        self,
        in_channels: int = 512,
        low_level_channels: tuple[int, int, int] = (96, 128, 64),
        widths: tuple[int, int, int] = (256, 128, 96),
        alpha_channels: int = 64,
    ) -> None:
        """Args:
        in_channels: channels of the H/8 input.
        low_level_channels: Swin's H/4 map, the stem's H/4 map, the stem's H/2 map.
        widths: the H/4, H/2 and first H stage widths.
        alpha_channels: C_alpha (64).
        """
        super().__init__()
        b4, s4, s2 = low_level_channels
        w4, w2, w1 = widths
        self.stage4 = stage(in_channels + b4 + s4, w4, 3, 3)
        self.stage2 = nn.Sequential(
            conv_gn(w4 + s2, w2, 3, 32, "leaky_relu"), conv_gn(w2, w2, 3, 32, "leaky_relu")
        )
        self.stage1 = nn.Sequential(
            nn.Conv2d(w2 + 3, w1, 3, padding=1),
            nn.Identity(),
            nn.Conv2d(w1, alpha_channels, 3, padding=1),
            nn.Identity(),
        )

    def forward(
        self,
        x: torch.Tensor,
        x4: torch.Tensor,
        stem4: torch.Tensor,
        stem2: torch.Tensor,
        image: torch.Tensor,
        band: torch.Tensor | None = None,
        tile: int = 16,
    ) -> torch.Tensor:
        """x (B, in, H/8, W/8); Swin's and the stem's H/4 maps; the stem's H/2 map; the image (B, 3, H, W)
        -> F_alpha (B, C_alpha, H, W). With a `band` (B, H, W) bool, the full-resolution stage runs only on
        the tiles of size `tile` that hold band pixels, F_alpha is 0 elsewhere (models/release/band.py)."""
        r4 = self.stage4(cat_channels((upsample2(x), x4, stem4)))
        r2 = self.stage2(cat_channels((upsample2(r4), stem2)))
        r1 = cat_channels((upsample2(r2), image))  # (B, w2 + 3, H, W)
        return self.stage1(r1) if band is None else stage_on_band(self.stage1, r1, band, tile)


class ReleaseMatting(nn.Module):
    """cat[G_All, F_dc, sigmoid(M_pred)], F_16, the backbone's and the stem's maps, the image and each decoded
    query's trimap and alpha kernels -> `trimap_logits` (B, K, 3, H/8, W/8), `alpha_raw`, `alpha_pred` and
    `alpha_fin` (B, K, H, W).

    `ReleaseFusion` -> F_tri at H/8 (`trimap_features`) and `ReleaseRefiner` -> F_alpha at H; T_pred =
    Conv(F_tri, k_tri) + B(b_tri) (Eq. 6); alpha_pred = the raw alpha clamped to [0, 1] (the release; the
    paper's Eq. 7 has a sigmoid), whose gradient passes the clamp straight through in training with
    `straight_through_clamp` (ours: the release's clamp has none outside [0, 1], so a raw alpha pushed
    below 0 everywhere never comes back); alpha_fin by Eq. 8.
    """

    def __init__(
        self,
        in_channels: int,
        backbone_channels: Sequence[int] = (96, 192, 384, 768),
        stem_channels: Sequence[int] = (64, 128),
        trimap_channels: int = 256,
        alpha_channels: int = 64,
        release_rounding: bool = False,
        straight_through_clamp: bool = False,
    ) -> None:
        """Args:
        in_channels: S * C_g + C + N (guidance, F_dc and one mask per query).
        backbone_channels: the backbone's widths at strides 4, 8, 16, 32.
        stem_channels: the stem's H/2 and H/4 widths.
        trimap_channels: C_tri (the release: 256, at H/8).
        alpha_channels: C_alpha.
        release_rounding: the dynamic convolutions in the release's float32 order, one image at a time.
        straight_through_clamp: in training, alpha_pred's gradient reaches alpha_raw also where the clamp
            cuts it (ours; the forward values are the clamp's, bit for bit; inference is unchanged).
        """
        super().__init__()
        b4, b8, b16, b32 = backbone_channels
        half, quarter = stem_channels
        self.fusion = ReleaseFusion(in_channels, (b8, b16, b32))
        self.trimap_features = trimap_features(out_channels=trimap_channels)
        self.refiner = ReleaseRefiner(low_level_channels=(b4, quarter, half), alpha_channels=alpha_channels)
        self.dynamic_conv = per_image_conv1x1 if release_rounding else dynamic_conv1x1
        self.straight_through_clamp = straight_through_clamp

    def forward(
        self,
        features: torch.Tensor,
        f16: torch.Tensor,
        maps: Sequence[torch.Tensor],
        low_level: tuple[torch.Tensor, torch.Tensor],
        image: torch.Tensor,
        kernels: dict[str, torch.Tensor],
        band_tile: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Args:
        features: cat[G_All, F_dc, sigmoid(M_pred)] (B, in_channels, H/8, W/8).
        f16: F_16 (B, 512, H/16, W/16).
        maps: the backbone's maps at strides 4, 8, 16, 32.
        low_level: the stem's (H/2, H/4) maps.
        image: (B, 3, H, W), the normalised input.
        kernels: `matting_kernels` of the decoded queries (B, K, ...).
        band_tile: at inference, the refiner's full-resolution stage only on the tiles of this size that
            hold unknown pixels of a decoded query (alpha_fin unchanged; models/release/band.py).
        """
        x4, x8, x16, x32 = maps
        half, quarter = low_level
        fused = self.fusion(features, f16, x8, x16, x32)  # (B, 512, H/8, W/8)
        tri = self.trimap_features(fused)  # F_tri (B, C_tri, H/8, W/8)
        trimap_logits = self.dynamic_conv(tri, kernels["trimap_kernels"], kernels["trimap_biases"])  # Eq. 6
        regions, band = None, None
        if band_tile is not None and not self.training:
            regions = trimap_regions(trimap_logits, image.shape[-2:])  # U_pred, F_pred (B, K, H, W)
            band = regions[0].any(dim=1)  # (B, H, W): unknown for some decoded query
        alpha_features = self.refiner(fused, x4, quarter, half, image, band, band_tile)  # (B, C_alpha, H, W)
        alpha_raw = self.dynamic_conv(alpha_features, kernels["alpha_kernel"], kernels["alpha_bias"])[:, :, 0]
        # in float32 under autocast too: in bfloat16 values from 0.998 up would round to 1
        alpha_raw = alpha_raw.float()
        alpha_pred = alpha_raw.clamp(0.0, 1.0)  # Eq. 7 with the release's clamp
        if self.straight_through_clamp and self.training:
            # the clamp's values (+ 0), the identity's gradient
            alpha_pred = alpha_pred.detach() + (alpha_raw - alpha_raw.detach())
        out = {"trimap_logits": trimap_logits, "alpha_pred": alpha_pred, "alpha_raw": alpha_raw}
        if not self.training:  # no loss reads alpha_fin: training does not compute it
            out["alpha_fin"] = fuse_alpha(alpha_pred, trimap_logits, regions)  # Eq. 8
        return out
