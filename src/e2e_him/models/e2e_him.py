"""`E2EHIM`: the end-to-end human instance matting network of Section III (Figure 2).

General perception network (deep stem, backbone, transformer encoder, perception decoder, heads, feature
decoder) -> united guidance network (S heads) -> instance matting network (fusion, refiner, dynamic trimap
and alpha decoders). Outputs follow docs/contracts.md, section 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from e2e_him.models.backbones import validate_backbone
from e2e_him.models.guidance import UnitedGuidanceNetwork
from e2e_him.models.init import kaiming_init
from e2e_him.models.matting_head import InstanceMattingNetwork
from e2e_him.models.perception import PerceptionNetwork
from e2e_him.models.query_selection import select_queries
from e2e_him.models.stem import DeepStem

SIZE_MULTIPLE = 32


class E2EHIM(nn.Module):
    """The E2E-HIM network. Defaults are the paper's (C = 256, N = 20, S = 2, fusion and refiner on); the
    widths the paper leaves open are chosen to match its Table II size with ResNet-50 (docs/architecture.md).

    Table VII's variants: `guidance_heads` 0 (Var1, with `use_fusion=False`) or 4 (Var2), `num_queries` 10
    or 50 (Var3 / Var4), `use_fusion=False` (Var5), `use_refiner=False` (Var6).
    """

    size_multiple = SIZE_MULTIPLE  # H and W of every input are multiples of this

    def __init__(
        self,
        backbone: nn.Module,
        hidden_dim: int = 256,
        num_queries: int = 20,
        enc_layers: int = 6,
        dec_layers: int = 6,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        stem_widths: Sequence[int] = (32, 32, 64, 128),
        class_hidden_dim: int = 128,
        kernel_hidden_dim: int = 512,
        kernel_layers: int = 3,
        decoder_blocks: int = 1,
        guidance_heads: int = 2,
        guidance_dim: int = 128,
        use_fusion: bool = True,
        fusion_widths: Sequence[int] = (320, 640, 1280),
        use_refiner: bool = True,
        refiner_widths: Sequence[int] = (256, 128, 64),
        refiner_convs: Sequence[int] = (2, 2, 2),
        trimap_channels: int = 32,
        alpha_channels: int = 64,
        mask_position_channels: int = 0,
        masked_attention: bool = False,
        person_head: bool = False,
        mask_prior: bool = False,
    ) -> None:
        """Args:
        backbone: a built backbone (models/backbones contract) whose `in_channels` equals stem_widths[-1].
        hidden_dim: C, the width of F_c, F_dc, X and the transformer (paper: 256).
        num_queries: N (paper: 20).
        enc_layers: transformer encoder layers over the H/16 context features.
        dec_layers: perception decoder layers (paper: 6).
        nheads: attention heads (release: 8).
        dim_feedforward: transformer FFN width (release: 2048).
        dropout: transformer dropout (release: 0.1).
        stem_widths: deep stem widths (release: 32, 32, 64 at H/2, 128 at H/4).
        class_hidden_dim: hidden width of the class MLP (release: 128).
        kernel_hidden_dim: hidden width of every kernel MLP (release: 512).
        kernel_layers: depth of every kernel MLP (release: 3).
        decoder_blocks: residual bottleneck blocks per level of the feature decoder.
        guidance_heads: S (paper: 2); 0 removes the united guidance network.
        guidance_dim: C_g, channels of each head's guidance (release: 128).
        use_fusion: the U-Net feature fusion.
        fusion_widths: U-Net widths from H/8 down.
        use_refiner: bring the stem's low-level features and the image back in the refiner.
        refiner_widths: refiner widths at H/4, H/2, H.
        refiner_convs: 3x3 convolutions per refiner stage.
        trimap_channels: C_tri.
        alpha_channels: C_alpha (release: 64).
        mask_position_channels, masked_attention, person_head: training aids of ours, off in the paper's
            experiments (PerceptionNetwork); mask_prior: ours, off (InstanceMattingNetwork).
        """
        super().__init__()
        validate_backbone(backbone)
        stem_widths = list(stem_widths)
        backbone_in = getattr(backbone, "in_channels", stem_widths[-1])
        if backbone_in != stem_widths[-1]:
            raise ValueError(
                f"backbone.in_channels={backbone_in} must equal the stem's H/4 width stem_widths[-1]="
                f"{stem_widths[-1]}"
            )
        self.stem = DeepStem(3, stem_widths)
        self.backbone = backbone
        self.perception = PerceptionNetwork(
            list(backbone.channels),
            hidden_dim=hidden_dim,
            num_queries=num_queries,
            enc_layers=enc_layers,
            dec_layers=dec_layers,
            nheads=nheads,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            class_hidden_dim=class_hidden_dim,
            kernel_hidden_dim=kernel_hidden_dim,
            kernel_layers=kernel_layers,
            decoder_blocks=decoder_blocks,
            mask_position_channels=mask_position_channels,
            masked_attention=masked_attention,
            person_head=person_head,
        )
        if guidance_heads < 0:
            raise ValueError(f"guidance_heads must be >= 0, got {guidance_heads}")
        self.guidance = None
        if guidance_heads > 0:
            self.guidance = UnitedGuidanceNetwork(
                guidance_heads,
                hidden_dim,
                guidance_dim,
                kernel_hidden_dim=kernel_hidden_dim,
                kernel_layers=kernel_layers,
            )
        self.matting = InstanceMattingNetwork(
            hidden_dim=hidden_dim,
            guidance_channels=guidance_heads * guidance_dim,
            stem_channels=self.stem.channels,
            use_fusion=use_fusion,
            fusion_widths=list(fusion_widths),
            use_refiner=use_refiner,
            refiner_widths=list(refiner_widths),
            refiner_convs=list(refiner_convs),
            trimap_channels=trimap_channels,
            alpha_channels=alpha_channels,
            kernel_hidden_dim=kernel_hidden_dim,
            kernel_layers=kernel_layers,
            mask_prior=mask_prior,
        )
        for part in (self.stem, self.perception, self.guidance, self.matting):
            if part is not None:
                kaiming_init(part)
        if self.perception.person_head is not None:  # starts near p = 0.5 everywhere
            nn.init.normal_(self.perception.person_head.weight, std=0.01)

    @property
    def num_queries(self) -> int:
        return self.perception.num_queries

    def alpha_only_parts(self) -> list[nn.Module]:
        """The sub-modules whose outputs reach alpha_pred only (not the class or trimap logits): the refiner's
        full-resolution stage and the projection to F_alpha."""
        refiner = self.matting.refiner
        return [refiner.stages[2], refiner.alpha_proj]

    def forward(self, image: torch.Tensor, keep_scores_above: float | None = None) -> dict[str, Any]:
        """image (B, 3, H, W), ImageNet-normalised, H and W multiples of 32 -> the outputs of
        docs/contracts.md section 3 (`pred_logits`, `pred_masks`, `aux_outputs`, `trimap_logits`,
        `alpha_pred`, `alpha_fin`, `context`, `detailed_context`, `guidance`, `guidance_attention`).

        `keep_scores_above`: at inference, decode trimaps and mattes only for queries whose p(human) can
        pass this post-processing threshold (zeros for the others; models/query_selection.py)."""
        h, w = image.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"E2EHIM needs H and W multiples of {SIZE_MULTIPLE}, got an input of {h}x{w}")
        half, quarter = self.stem(image)  # (B, 64, H/2, W/2), (B, 128, H/4, W/4)
        features = self.backbone(quarter)  # strides 4, 8, 16, 32
        perception = self.perception(features)
        codes, detailed = perception["codes"], perception["detailed_context"]
        guidance, attention = self.guidance(detailed, codes) if self.guidance is not None else (None, None)
        select = None
        if keep_scores_above is not None and not self.training:
            select = select_queries(perception["pred_logits"], keep_scores_above)
        matting = self.matting(
            image, (half, quarter), detailed, guidance, codes, select, perception["pred_masks"]
        )
        extra = {"pred_person": perception["pred_person"]} if "pred_person" in perception else {}
        return {
            **extra,
            "pred_logits": perception["pred_logits"],
            "pred_masks": perception["pred_masks"],
            "aux_outputs": perception["aux_outputs"],
            **matting,
            "context": perception["context"],
            "detailed_context": detailed,
            "guidance": guidance,
            "guidance_attention": attention,
        }
