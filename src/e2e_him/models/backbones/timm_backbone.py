"""timm ResNets and Swin Transformers behind the backbone contract, fed by the deep stem's H/4 features.

Both wrappers build the timm model with `pretrained=False`, drop the parts that the deep stem replaces, and
load ImageNet weights from a file, non-strictly, logging what did not match: a local file, or one that
`hub_weights` fetches into (or finds in) the Hugging Face cache (`pretrained=timm`: timm's weights of the tag
pinned in the config, `pretrained_tag`; `pretrained=hf-hub:<org>/<repo>`).

- ResNet: conv1 / bn1 / act1 / maxpool and the classifier are dropped; a 1x1 conv-GN-ReLU adapter maps the
  stem's 128 channels to the 64 that layer1 expects. `norm` picks GroupNorm (default: the paper trains with
  one image per GPU), BatchNorm, or frozen BatchNorm. GroupNorm keeps BatchNorm's affine parameters under the
  same names, so ImageNet BN weights load into it (running statistics are dropped).
- Swin: the 4x4 patch embedding convolution becomes a 1x1 conv from the stem's features (the authors'
  release), the patch embedding's LayerNorm and all stages keep their pretrained weights, the classifier
  and final norm are dropped, and the returned maps get their own LayerNorm (Mask2Former's Swin habit; by
  default not the stride-4 map, which E2E-HIM does not read).
  `always_partition=True` keeps 7x7 windows with shifts in every stage whatever the input size
  (timm would otherwise shrink a stage's window to the construction-time grid), and `strict_img_size=False`
  builds the attention masks per forward and pads to whole windows, so any multiple of 32 works.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import timm
import torch
from timm.layers import freeze_batch_norm_2d
from timm.models import load_state_dict
from timm.models.swin_transformer import checkpoint_filter_fn as swin_checkpoint_filter
from torch import nn

from e2e_him.models.backbones import STRIDES, Backbone
from e2e_him.models.backbones.hub_weights import check_widths_take_weights, resolve_pretrained
from e2e_him.models.backbones.swin_windows import WINDOW_PADDINGS, use_pad_then_shift
from e2e_him.models.init import kaiming_init
from e2e_him.models.layers import ConvGNAct, nchw_from_tokens

log = logging.getLogger(__name__)

NORMS = ("gn", "bn", "frozen_bn")


def load_local_weights(
    model: nn.Module,
    path: str | Path,
    dropped_prefixes: Iterable[str] = (),
    dropped_suffixes: Iterable[str] = (),
    filter_fn: Callable[[dict, nn.Module], dict] | None = None,
) -> list[str]:
    """Load a local timm/torch checkpoint into `model` non-strictly and report what did not match.

    Entries under `dropped_prefixes` (parts replaced by design, e.g. the ResNet stem or the classifier) and
    entries whose shape differs are skipped; they and the model's missing keys are logged (by-design drops
    and the new layers under those prefixes at INFO, the rest as a WARNING listing the keys).

    Args:
        model: the timm model body.
        path: .pth / .pt / .bin / .safetensors file; a plain state dict or one under "state_dict" / "model".
        dropped_prefixes: key prefixes that the wrapper replaced or removed on purpose.
        dropped_suffixes: key suffixes without a counterpart on purpose (BN statistics under GroupNorm).
        filter_fn: timm's checkpoint converter for the architecture (e.g. Swin's original-format keys).

    Returns:
        The loaded keys.

    Raises:
        FileNotFoundError: `path` is not a file.
        RuntimeError: no entry of the file matches a parameter of `model`.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"pretrained backbone weights not found: {file}")
    state = load_state_dict(str(file), use_ema=False)
    prefixes, suffixes = tuple(dropped_prefixes), tuple(dropped_suffixes)
    by_design = sorted(k for k in state if k.startswith(prefixes) or k.endswith(suffixes))
    state = {k: v for k, v in state.items() if not (k.startswith(prefixes) or k.endswith(suffixes))}
    if filter_fn is not None:
        state = filter_fn(state, model)
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    mismatched = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    unexpected = sorted(k for k in state if k not in own)
    if not matched:
        example = ", ".join(sorted(state)[:3]) or "nothing"
        raise RuntimeError(
            f"{file}: none of its entries matches a parameter of {type(model).__name__} "
            f"(it has e.g. {example})"
        )
    missing = model.load_state_dict(matched, strict=False).missing_keys
    replaced = [k for k in missing if k.startswith(prefixes)]  # new layers in place of dropped ones
    missing = [k for k in missing if not k.startswith(prefixes)]
    log.info("backbone: loaded %d/%d tensors from %s", len(matched), len(own), file)
    if by_design or replaced:
        log.info("backbone: by design, %s entries unused: %s; new layers: %s", file, by_design, replaced)
    for what, keys in (
        ("missing from", missing),
        ("unexpected in", unexpected),
        ("shape-mismatched in", mismatched),
    ):
        if keys:
            log.warning("backbone: %d keys %s %s: %s", len(keys), what, file, keys)
    return sorted(matched)


def convert_batchnorm(module: nn.Module, norm: str, gn_groups: int = 32) -> nn.Module:
    """Replace every BatchNorm2d of `module` by GroupNorm ("gn"), keep it ("bn") or freeze it ("frozen_bn").

    GroupNorm takes the BatchNorm's affine parameters (same names `weight`, `bias`), so ImageNet weights
    still load into them; the running statistics have no counterpart and are dropped.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown backbone norm {norm!r}; choose from {list(NORMS)}")
    if norm == "bn":
        return module
    if norm == "frozen_bn":
        return freeze_batch_norm_2d(module)
    if isinstance(module, nn.BatchNorm2d):
        gn = nn.GroupNorm(gn_groups, module.num_features, eps=module.eps)
        with torch.no_grad():
            gn.weight.copy_(module.weight)
            gn.bias.copy_(module.bias)
        return gn
    for name, child in module.named_children():
        new = convert_batchnorm(child, norm, gn_groups)
        if new is not child:
            setattr(module, name, new)
    return module


class TimmResNetBackbone(Backbone):
    """timm ResNet stages 1-4 on the stem's H/4 features -> 4 NCHW maps at strides 4, 8, 16, 32."""

    def __init__(
        self,
        name: str = "resnet50",
        in_channels: int = 128,
        pretrained: str | None = None,
        norm: str = "gn",
        gn_groups: int = 32,
        drop_path_rate: float = 0.0,
        pretrained_tag: str | None = None,
        channels: Sequence[int] | None = None,
    ) -> None:
        """Args:
        name: a timm ResNet (resnet18, resnet50, resnet101, ...).
        in_channels: stem channels at H/4 (128).
        pretrained: ImageNet weights of the timm model: a local file, "timm" (timm's `<name>.<pretrained_tag>`
            from the Hugging Face Hub cache), "hf-hub:<org>/<repo>", or None (random; hub_weights.py).
        norm: "gn" (GroupNorm, default), "bn" (BatchNorm), "frozen_bn" (FrozenBatchNorm2d).
        gn_groups: GroupNorm groups when norm="gn".
        drop_path_rate: stochastic depth in the residual blocks (timm's; 0 = none).
        pretrained_tag: timm's pretrained tag that `pretrained="timm"` fetches (e.g. tv_in1k).
        channels: ours, off (None): the four stages' widths instead of timm's 64, 128, 256, 512 (timm's
            `channels`; a bottleneck ResNet outputs 4x), e.g. half of them for a CPU run at a larger image
            size (MACs scale with width^2); random weights only, since ImageNet's do not fit other widths.
        """
        super().__init__()
        widths = {}
        if channels is not None:
            if len(channels) != 4:
                raise ValueError(f"backbone channels {list(channels)}: give the widths of the 4 stages")
            check_widths_take_weights(channels, pretrained)
            # stem_width is layer1's input width (the stem is replaced): the adapter maps to it directly
            widths = {"channels": tuple(channels), "stem_width": channels[0]}
        body = timm.create_model(
            name, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate, **widths
        )
        if not hasattr(body, "layer4"):
            raise ValueError(f"timm model {name!r} is not a ResNet (no layer1..layer4)")
        for part in ("conv1", "bn1", "act1", "maxpool"):
            setattr(body, part, nn.Identity())  # the deep stem does this job
        self.body = convert_batchnorm(body, norm, gn_groups)
        self.adapter = ConvGNAct(in_channels, body.layer1[0].conv1.in_channels, 1)
        kaiming_init(self.adapter)  # new layer, never pretrained
        self.channels = [info["num_chs"] for info in body.feature_info[1:]]
        self.strides = list(STRIDES)
        self.in_channels = in_channels
        if pretrained is not None:
            statistics = {
                "gn": ("running_mean", "running_var", "num_batches_tracked"),
                "frozen_bn": ("num_batches_tracked",),
            }
            load_local_weights(
                self.body,
                resolve_pretrained(pretrained, name, pretrained_tag),
                dropped_prefixes=("conv1.", "bn1.", "fc."),
                dropped_suffixes=statistics.get(norm, ()),
            )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stem features (B, in_channels, H/4, W/4) -> [(B, C_i, H/s, W/s) for s in 4, 8, 16, 32]."""
        x = self.adapter(x)
        features = []
        for layer in (self.body.layer1, self.body.layer2, self.body.layer3, self.body.layer4):
            x = layer(x)
            features.append(x)
        return features


class TimmSwinBackbone(Backbone):
    """timm Swin Transformer stages on the stem's H/4 features -> 4 NCHW maps at strides 4, 8, 16, 32."""

    def __init__(
        self,
        name: str = "swin_tiny_patch4_window7_224",
        in_channels: int = 128,
        pretrained: str | None = None,
        drop_path_rate: float = 0.3,
        out_norm_levels: Sequence[int] = (1, 2, 3),
        window_padding: str = "shift_then_pad",
        pretrained_tag: str | None = None,
    ) -> None:
        """Args:
        name: a timm Swin (v1) with patch size 4, e.g. swin_tiny_patch4_window7_224,
            swin_base_patch4_window7_224.
        in_channels: stem channels at H/4 (128).
        pretrained: ImageNet weights: a local file (timm's or the original Microsoft checkpoint), "timm"
            (timm's `<name>.<pretrained_tag>` from the Hugging Face Hub cache), "hf-hub:<org>/<repo>", or
            None (random; hub_weights.py).
        drop_path_rate: stochastic depth (Mask2Former's Swin setting 0.3; the paper gives none).
        out_norm_levels: indices of the returned maps that get their own LayerNorm. E2E-HIM reads only the
            stride 8-32 maps, and a norm on the stride-4 map would be a parameter without a gradient (which
            DistributedDataParallel rejects unless told to look for unused parameters).
        window_padding: "shift_then_pad" (timm's order) or "pad_then_shift" (the Swin detection code's order,
            which the authors' release uses; backbones/swin_windows.py). Same parameters either way.
        pretrained_tag: timm's pretrained tag that `pretrained="timm"` fetches (e.g. ms_in1k).
        """
        super().__init__()
        body = timm.create_model(
            name, pretrained=False, num_classes=0, strict_img_size=False, always_partition=True,
            drop_path_rate=drop_path_rate,
        )  # fmt: skip
        if not hasattr(body, "patch_embed") or not hasattr(body, "layers"):
            raise ValueError(f"timm model {name!r} is not a Swin Transformer (no patch_embed / layers)")
        if window_padding not in WINDOW_PADDINGS:
            raise ValueError(f"window_padding={window_padding!r}: choose from {list(WINDOW_PADDINGS)}")
        if window_padding == "pad_then_shift":
            use_pad_then_shift(body)
        embed_dim = body.patch_embed.proj.out_channels
        # The patch embedding's 4x4 stride-4 conv becomes a 1x1 conv from the stem; its LayerNorm stays.
        body.patch_embed.proj = nn.Conv2d(in_channels, embed_dim, 1)
        kaiming_init(body.patch_embed.proj)  # new layer, never pretrained
        body.patch_embed.patch_size = (1, 1)
        body.norm = nn.Identity()  # the classifier's final norm; each output gets its own below
        self.body = body
        self.channels = [info["num_chs"] for info in body.feature_info]
        self.strides = list(STRIDES)
        self.in_channels = in_channels
        levels = set(out_norm_levels)
        self.out_norms = nn.ModuleList(
            nn.LayerNorm(c) if i in levels else nn.Identity() for i, c in enumerate(self.channels)
        )
        if pretrained is not None:
            load_local_weights(
                self.body,
                resolve_pretrained(pretrained, name, pretrained_tag),
                dropped_prefixes=("patch_embed.proj.", "head.", "norm."),
                filter_fn=swin_checkpoint_filter,
            )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stem features (B, in_channels, H/4, W/4) -> [(B, C_i, H/s, W/s) for s in 4, 8, 16, 32]."""
        stem = x
        x = self.body.patch_embed(x)  # (B, H/4, W/4, C_0), NHWC as timm's Swin works
        features = []
        for stage, norm in zip(self.body.layers, self.out_norms):
            x = stage(x)
            features.append(nchw_from_tokens(norm(x), like=stem))  # NHWC -> NCHW, once
        return features
