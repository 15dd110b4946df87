"""`ReleaseE2EHIM`: the authors' released Swin-T network (the "released layout"), any batch, any size / 32."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from e2e_him.models.init import kaiming_init
from e2e_him.models.layers import cat_channels
from e2e_him.models.layout import NetworkLayout
from e2e_him.models.query_selection import gather_queries, scatter_queries, select_queries
from e2e_him.models.release.guidance import ReleaseGuidance
from e2e_him.models.release.matting import ReleaseMatting
from e2e_him.models.release.perception import ReleasePerception
from e2e_him.models.stem import DeepStem

# Tensors of the release's state dict that its forward never reads (two 1x1 convs of F_dc). They are kept as
# buffers so that a converted checkpoint maps back onto the release's keys one to one.
UNUSED_RELEASE_TENSORS = {"conv1.weight": (1, 256, 1, 1), "conv1.bias": (1,), "conv2.weight": (1, 256, 1, 1),
                          "conv2.bias": (1,)}  # fmt: skip
# Checkpoints written before the network held its parts in sub-networks keep them at the top of its state
# dict (`net.refiner.*`): their first key part -> the sub-network that holds it now (`net.matting.refiner.*`).
_PERCEPTION_PARTS = ("context_proj", "query_embed", "decoder", "class_head", "perception_kernels",
                     "matting_kernels", "feature_decoder")  # fmt: skip
FLAT_LAYOUT_PARTS = {
    **dict.fromkeys(_PERCEPTION_PARTS, "perception"),
    **dict.fromkeys(("fusion", "trimap_features", "refiner"), "matting"),
}


def nest_flat_key(key: str) -> str:
    """A state-dict key of the flat layout (relative to the network) in today's: `refiner.x` ->
    `matting.refiner.x`; other keys unchanged."""
    head = key.split(".", 1)[0]
    return f"{FLAT_LAYOUT_PARTS[head]}.{key}" if head in FLAT_LAYOUT_PARTS else key


def _nest_flat_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """load_state_dict pre-hook: rename the flat layout's keys under `prefix` in place (`nest_flat_key`)."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        nested = prefix + nest_flat_key(key[len(prefix) :])
        if nested != key and nested not in state_dict:
            state_dict[nested] = state_dict.pop(key)


class ReleaseE2EHIM(NetworkLayout):
    """The released E2E-HIM network with the output contract of `E2EHIM` (docs/contracts.md, section 3).

    Deep stem -> Swin-T -> `ReleasePerception` (no encoder; a decoder over the H/32 map, the codes with their
    class probabilities, every dynamic kernel, F_dc) -> `ReleaseGuidance` (S heads) -> `ReleaseMatting`
    (fusion U-Net, trimap logits at H/8, refiner; `alpha_pred` is the raw alpha clamped to [0, 1], the
    paper: a sigmoid; `alpha_raw` the value before the clamp).

    Built by `from_config`; defaults are the release's (C = 256, N = 20, S = 2, C_g = 128, C_tri = 256,
    C_alpha = 64). Loads the state dicts of checkpoints written before its parts were grouped
    (`FLAT_LAYOUT_PARTS`).
    """

    supports_band_tile = True  # forward takes `band_tile`: the refiner's last stage on the band's tiles only

    def __init__(
        self,
        backbone: nn.Module,
        stem: DeepStem,
        perception: ReleasePerception,
        guidance: ReleaseGuidance,
        matting: ReleaseMatting,
    ) -> None:
        """Args:
        backbone: a built backbone (models/backbones contract) reading the stem's H/4 map; the release: Swin-T
            with `out_norm_levels` [0, 1, 2, 3] and `window_padding` "pad_then_shift".
        stem: the deep stem (the release: biases, GroupNorms of 16, 16, 32, 32 groups).
        perception: the perception network over the backbone's maps.
        guidance: the united guidance (S >= 1 heads).
        matting: the instance matting network.

        Every part but the backbone is (re)initialised here, Kaiming (the learned queries keep N(0, 1)).
        """
        super().__init__(backbone, stem, perception, guidance, matting)
        self.unused = nn.Module()
        for key, shape in UNUSED_RELEASE_TENSORS.items():
            name, attr = key.split(".")
            if not hasattr(self.unused, name):
                self.unused.add_module(name, nn.Module())
            getattr(self.unused, name).register_buffer(attr, torch.zeros(shape))
        for part in (self.stem, self.perception, self.guidance, self.matting):
            kaiming_init(part)
        self.register_load_state_dict_pre_hook(_nest_flat_keys)

    @classmethod
    def build_parts(
        cls,
        backbone: nn.Module,
        nodes: dict[str, dict[str, Any]],
        shared: dict[str, Any],
        release_rounding: bool = False,
        straight_through_clamp: bool = False,
    ) -> tuple:
        """The parts of `from_config` (conf/model/release_swint.yaml).

        Args:
            backbone: the built backbone.
            nodes: each part's config node, by name:
                stem: `DeepStem` arguments (`widths`, `norm_groups`; biases always, as the release).
                perception: `ReleasePerception` arguments but its widths (`num_queries`, `dec_layers`,
                    `nheads`, `dim_feedforward`, `dropout`, `class_hidden_dim`).
                guidance: `num_heads` S (>= 1) and `guidance_dim` C_g.
                matting: `trimap_channels` C_tri (256, at H/8; the paper: H/2) and `alpha_channels` C_alpha.
            shared: C (`hidden_dim`) and the two kernel MLPs' `kernel_hidden_dim`, `kernel_layers`.
            release_rounding: compute the decoder's attention, the guidance and the dynamic convolutions in
                the release's float32 order, bit for bit (explicit attention products, `ReleaseGuidance`,
                `per_image_conv1x1`; for comparisons with the authors' network: slower, and the torchscript
                ONNX exporter cannot take it); off: the same function with fused attention and einsums.
            straight_through_clamp: in training, alpha_pred's gradient reaches alpha_raw also where the clamp
                cuts it (ours; `ReleaseMatting`); off: the release's clamp, whose zero gradient outside
                [0, 1] lets the alpha output die from random weights.
        """
        stem = {"norm_groups": (16, 16, 32, 32), **nodes["stem"]}
        guidance = {"num_heads": 2, "guidance_dim": 128, **nodes["guidance"]}
        matting = {"trimap_channels": 256, "alpha_channels": 64, **nodes["matting"]}
        heads, guidance_dim, c = guidance["num_heads"], guidance["guidance_dim"], shared["hidden_dim"]
        if heads < 1:
            raise ValueError(f"the released layout needs guidance.num_heads >= 1, got {heads}")
        if set(guidance) - {"num_heads", "guidance_dim"}:
            raise TypeError(
                f"guidance: unexpected argument(s) {sorted(set(guidance) - {'num_heads', 'guidance_dim'})}"
            )
        built_stem = DeepStem(3, conv_bias=True, **stem)
        built_perception = ReleasePerception(
            list(backbone.channels),
            **shared,
            guidance_heads=heads,
            trimap_channels=matting["trimap_channels"],
            alpha_channels=matting["alpha_channels"],
            release_rounding=release_rounding,
            **nodes["perception"],
        )
        built_guidance = ReleaseGuidance(heads, c, c + 2, guidance_dim, release_rounding)  # codes: X + p
        built_matting = ReleaseMatting(
            heads * guidance_dim + c + built_perception.num_queries,
            list(backbone.channels),
            built_stem.channels,
            release_rounding=release_rounding,
            straight_through_clamp=straight_through_clamp,
            **matting,
        )
        return built_stem, built_perception, built_guidance, built_matting

    def alpha_only_parts(self) -> list[nn.Module]:
        """The sub-modules whose outputs reach alpha_pred alone, not class or trimap logits: the refiner."""
        return [self.matting.refiner]

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
        self.check_input(image)
        half, quarter = self.stem(image)  # (B, 64, H/2, W/2), (B, 128, H/4, W/4)
        maps = self.backbone(quarter)  # strides 4, 8, 16, 32
        p = self.perception(*maps[1:])
        codes, logits, masks, detailed = p["codes"], p["logits"], p["masks"], p["detailed"]
        guidance, attention = self.guidance(detailed, codes[-1], p["affinity"])
        decoded, select = codes[-1], None  # the queries whose trimaps and mattes are decoded
        if keep_scores_above is not None and not self.training:
            select = select_queries(logits[-1], keep_scores_above)
            decoded = gather_queries(decoded, select)
        features = cat_channels((guidance, detailed, masks[-1].sigmoid()))  # (B, S * C_g + C + N, H/8, W/8)
        kernels = self.perception.matting_kernels(decoded)
        out = self.matting(features, p["f16"], maps, (half, quarter), image, kernels, band_tile)
        if select is not None:
            out = {k: scatter_queries(v, select, logits.shape[2]) for k, v in out.items()}
        return {
            "pred_logits": logits[-1],
            "pred_masks": masks[-1],
            "aux_outputs": [
                {"pred_logits": logits[i], "pred_masks": masks[i]} for i in range(len(masks) - 1)
            ],
            **out,
            "context": p["context"],
            "detailed_context": detailed,
            "guidance": guidance,
            "guidance_attention": attention,
        }
