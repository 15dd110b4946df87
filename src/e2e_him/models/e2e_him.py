"""`E2EHIM`: the end-to-end human instance matting network of Section III (Figure 2).

General perception network (deep stem, backbone, transformer encoder, perception decoder, heads, feature
decoder) -> united guidance network (S heads) -> instance matting network (fusion, refiner, dynamic trimap
and alpha decoders). Outputs follow docs/contracts.md, section 3.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from e2e_him.models.guidance import UnitedGuidanceNetwork
from e2e_him.models.init import kaiming_init
from e2e_him.models.layout import NetworkLayout
from e2e_him.models.matting_head import InstanceMattingNetwork
from e2e_him.models.perception import PerceptionNetwork
from e2e_him.models.query_selection import select_queries
from e2e_him.models.stem import DeepStem


class E2EHIM(NetworkLayout):
    """The E2E-HIM network: deep stem, backbone, general perception network, united guidance network (None
    without one) and instance matting network, built from their own config nodes by `from_config`.

    Table VII's variants (conf/experiment/var*.yaml): `guidance.num_heads` 0 (Var1, with
    `matting.use_fusion=false`) or 4 (Var2), `perception.num_queries` 10 or 50 (Var3 / Var4),
    `matting.use_fusion=false` (Var5), `matting.use_refiner=false` (Var6).
    """

    supports_band_tile = False  # forward has no `band_tile`: its refiner runs on every pixel

    def __init__(
        self,
        backbone: nn.Module,
        stem: DeepStem,
        perception: PerceptionNetwork,
        guidance: UnitedGuidanceNetwork | None,
        matting: InstanceMattingNetwork,
    ) -> None:
        """Args:
        backbone: a built backbone (models/backbones contract) reading the stem's H/4 map.
        stem: the deep stem, whose H/2 and H/4 maps the refiner reads back.
        perception: the general perception network over the backbone's maps (Section III-A).
        guidance: the united guidance network (Section III-B), or None (Table VII, Var1).
        matting: the instance matting network (Section III-C).

        The stem, perception, guidance and matting weights are (re)initialised here, Kaiming (Section IV-B);
        the backbone keeps its own.
        """
        backbone_in = getattr(backbone, "in_channels", stem.channels[1])
        if backbone_in != stem.channels[1]:
            raise ValueError(
                f"backbone.in_channels={backbone_in} must equal the stem's H/4 width {stem.channels[1]} "
                "(stem.widths[-1])"
            )
        super().__init__(backbone, stem, perception, guidance, matting)
        for part in (self.stem, self.perception, self.guidance, self.matting):
            if part is not None:
                kaiming_init(part)
        if self.perception.person_head is not None:  # starts near p = 0.5 everywhere
            nn.init.normal_(self.perception.person_head.weight, std=0.01)

    @classmethod
    def build_parts(
        cls, backbone: nn.Module, nodes: dict[str, dict[str, Any]], shared: dict[str, Any]
    ) -> tuple:
        """The sub-networks of `from_config` (conf/model/e2e_him.yaml). Defaults are the paper's (C = 256,
        N = 20, S = 2, fusion and refiner on); the widths the paper leaves open are chosen to match its Table
        II size with ResNet-50 (docs/architecture.md).

        Args:
            backbone: the built backbone.
            nodes: each sub-network's config node, by name:
                stem: `DeepStem` arguments (`widths`; release: 32, 32, 64 at H/2, 128 at H/4).
                perception: `PerceptionNetwork` arguments but its widths (`num_queries`, `enc_layers`,
                    `dec_layers`, `nheads`, `dim_feedforward`, `dropout`, `class_hidden_dim`, `decoder_blocks`
                    and the training aids `mask_position_channels`, `masked_attention`, `person_head`).
                guidance: `UnitedGuidanceNetwork` arguments but its widths (`num_heads` S, 0 for none;
                    `guidance_dim` C_g).
                matting: `InstanceMattingNetwork` arguments but its input widths (`use_fusion`,
                    `fusion_widths`, `use_refiner`, `refiner_widths`, `refiner_convs`, `trimap_channels`,
                    `alpha_channels`, `mask_prior`, `trimap_stride`).
            shared: C (`hidden_dim`) and the kernel MLPs' `kernel_hidden_dim`, `kernel_layers`.
        """
        guidance = dict(nodes["guidance"])
        built_stem = DeepStem(3, **nodes["stem"])
        built_perception = PerceptionNetwork(list(backbone.channels), **shared, **nodes["perception"])
        heads = guidance.pop("num_heads", 2)
        if heads < 0:
            raise ValueError(f"guidance.num_heads must be >= 0, got {heads}")
        built_guidance = None
        if heads > 0:
            built_guidance = UnitedGuidanceNetwork(heads, **shared, **guidance)
        guidance_channels = heads * (built_guidance.guidance_dim if built_guidance else 0)
        built_matting = InstanceMattingNetwork(
            guidance_channels=guidance_channels,
            stem_channels=built_stem.channels,
            **shared,
            **nodes["matting"],
        )
        return built_stem, built_perception, built_guidance, built_matting

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
        self.check_input(image)
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
