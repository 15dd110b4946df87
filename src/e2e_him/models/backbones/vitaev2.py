"""ViTAEv2 (Zhang et al., arXiv 2202.10108, IJCV 2023): the multi-stage ViTAE with window attention.

Four stages, each a reduction cell (RC, downsampling 4, 2, 2, 2) followed by normal cells (NC); window
attention (7 x 7, no shift) in stages 1-2, full attention in stages 3-4. `ViTAEv2` is the ImageNet classifier
(mean of the last tokens -> linear head); `ViTAEv2Backbone` is the E2E-HIM backbone: it takes the deep stem's
H/4 features, so its first RC keeps the resolution (stride 1), and it returns four NCHW maps at strides 4-32.

ViTAEv2-S as in the authors' release (the paper's ViTAEv2-S: 19.2 M parameters, 5.7 G FLOPs at 224):

| stage | RC stride | PRM kernel / dilations | PRM width | tokens | NCs | NC heads | RC heads | attention |
|-------|-----------|------------------------|-----------|--------|-----|----------|----------|-----------|
| 1     | 4         | 7 / 1, 2, 3, 4         | 64        | 64     | 2   | 1        | 1        | window 7  |
| 2     | 2         | 3 / 1, 2, 3            | 64        | 128    | 2   | 2        | 1        | window 7  |
| 3     | 2         | 3 / 1, 2               | 128       | 256    | 8   | 4        | 2        | full      |
| 4     | 2         | 3 / 1, 2               | 256       | 512    | 2   | 8        | 4        | full      |

PCM groups: NC 1, 32, 64, 128 and RC 1, 16, 32, 64; FFN ratio 4 in NCs and 1 in RCs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from timm.layers import trunc_normal_
from torch import nn

from e2e_him.models.backbones.hub_weights import resolve_pretrained
from e2e_him.models.backbones.vitaev2_cells import NormalCell, ReductionCell
from e2e_him.models.layers import nchw_from_tokens

log = logging.getLogger(__name__)

# Per-variant widths, depths and heads (the authors' release; -S is the paper's 19.2 M model).
VARIANTS: dict[str, dict[str, tuple[int, ...]]] = {
    "s": {
        "embed_dims": (64, 64, 128, 256),
        "token_dims": (64, 128, 256, 512),
        "depths": (2, 2, 8, 2),
        "nc_heads": (1, 2, 4, 8),
        "rc_heads": (1, 1, 2, 4),
    },
    "48m": {
        "embed_dims": (64, 64, 192, 384),
        "token_dims": (96, 192, 384, 768),
        "depths": (2, 2, 11, 2),
        "nc_heads": (1, 2, 4, 8),
        "rc_heads": (1, 1, 2, 4),
    },
    "b": {
        "embed_dims": (96, 96, 256, 512),
        "token_dims": (128, 256, 512, 1024),
        "depths": (2, 2, 12, 2),
        "nc_heads": (1, 4, 8, 16),
        "rc_heads": (1, 1, 4, 8),
    },
}
DEFAULT_DILATIONS: tuple[tuple[int, ...], ...] = ((1, 2, 3, 4), (1, 2, 3), (1, 2), (1, 2))


class ViTAEv2Stage(nn.Module):
    """One stage: a reduction cell then `depth` normal cells, all with the same attention kind."""

    def __init__(self, rc: ReductionCell, ncs: Sequence[NormalCell]) -> None:
        super().__init__()
        self.rc = rc
        self.ncs = nn.ModuleList(ncs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W) -> tokens (B, H/s, W/s, C)."""
        x = self.rc(x)
        for nc in self.ncs:
            x = nc(x)
        return x


def build_stages(
    in_chans: int,
    embed_dims: Sequence[int],
    token_dims: Sequence[int],
    depths: Sequence[int],
    nc_heads: Sequence[int],
    rc_heads: Sequence[int],
    downsample_ratios: Sequence[int] = (4, 2, 2, 2),
    kernel_sizes: Sequence[int] = (7, 3, 3, 3),
    dilations: Sequence[Sequence[int]] = DEFAULT_DILATIONS,
    window_stages: Sequence[bool] = (True, True, False, False),
    window_size: int = 7,
    nc_groups: Sequence[int] = (1, 32, 64, 128),
    rc_groups: Sequence[int] = (1, 16, 32, 64),
    mlp_ratio: float = 4.0,
    rc_mlp_ratio: float = 1.0,
    qkv_bias: bool = True,
    relative_pos: bool = False,
    pcm_norm: str = "group",
    drop_rate: float = 0.0,
    attn_drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> nn.ModuleList:
    """The four ViTAEv2 stages; stochastic depth grows linearly from 0 to `drop_path_rate` over the NCs."""
    num_stages = len(token_dims)
    per_stage = [embed_dims, depths, nc_heads, rc_heads, downsample_ratios, kernel_sizes, dilations]
    per_stage += [window_stages, nc_groups, rc_groups]
    if any(len(v) != num_stages for v in per_stage):
        raise ValueError(f"every per-stage argument needs {num_stages} entries (one per stage)")
    rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
    stages, first = [], 0
    for i in range(num_stages):
        window = window_size if window_stages[i] else None
        rc = ReductionCell(
            in_chans,
            embed_dims[i],
            token_dims[i],
            downsample_ratios[i],
            kernel_sizes[i],
            dilations[i],
            rc_heads[i],
            window,
            groups=rc_groups[i],
            mlp_ratio=rc_mlp_ratio,
            qkv_bias=qkv_bias,
            relative_pos=relative_pos,
            pcm_norm=pcm_norm,
            drop=drop_rate,
            attn_drop=attn_drop_rate,
        )
        ncs = [
            NormalCell(
                token_dims[i],
                nc_heads[i],
                window,
                mlp_ratio=mlp_ratio,
                groups=nc_groups[i],
                qkv_bias=qkv_bias,
                relative_pos=relative_pos,
                pcm_norm=pcm_norm,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=rates[first + j],
            )
            for j in range(depths[i])
        ]
        stages.append(ViTAEv2Stage(rc, ncs))
        first += depths[i]
        in_chans = token_dims[i]
    return nn.ModuleList(stages)


def init_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) linear layers with zero bias, unit LayerNorms (the ViT recipe)."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class ViTAEv2(nn.Module):
    """ViTAEv2 classifier: four stages, token mean, linear head (no final norm, as the authors)."""

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, variant: str = "s", **stage_kwargs
    ) -> None:
        """Args:
        num_classes: head outputs; 0 gives pooled features.
        in_chans: image channels.
        variant: preset widths/depths/heads ("s", "48m", "b"); explicit `stage_kwargs` override it.
        **stage_kwargs: any argument of `build_stages` (window_size, drop_path_rate, pcm_norm, ...).
        """
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown ViTAEv2 variant {variant!r}; choose from {sorted(VARIANTS)}")
        kwargs = {**VARIANTS[variant], **stage_kwargs}
        self.layers = build_stages(in_chans, **kwargs)
        self.num_features = kwargs["token_dims"][-1]
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, C, H, W) -> pooled features (B, token_dims[-1])."""
        for stage in self.layers:
            x = stage(x).permute(0, 3, 1, 2)  # (B, C_i, H_i, W_i) for the next RC
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, C, H, W) -> logits (B, num_classes)."""
        return self.head(self.forward_features(x))


def vitaev2_s(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> ViTAEv2:
    """ViTAEv2-S classifier (paper: 19.2 M parameters with the 1000-class head)."""
    return ViTAEv2(num_classes=num_classes, in_chans=in_chans, variant="s", **kwargs)


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Load a local checkpoint non-strictly, logging what did not match; raise if nothing matched.

    Accepts a .safetensors file, or a torch file with a plain state dict or one under "state_dict" / "model";
    strips a DistributedDataParallel "module." prefix. Entries whose shape differs from the model's (e.g. the
    first RC's input convolutions when a 3-channel classifier checkpoint meets the 128-channel backbone) are
    skipped and logged.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"ViTAEv2 pretrained weights not found: {file}")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        checkpoint = load_file(str(file))
    else:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(torch.is_tensor(v) for v in checkpoint.values()):
        raise ValueError(f"{file}: expected a state dict (or one under 'state_dict' / 'model')")
    state = {k.removeprefix("module."): v for k, v in checkpoint.items()}
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    mismatched = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    if not matched:
        example = ", ".join(sorted(state)[:3])
        raise RuntimeError(
            f"{file}: none of its {len(state)} entries matches a ViTAEv2 parameter (e.g. {example})"
        )
    result = model.load_state_dict(matched, strict=False)
    unexpected = sorted(k for k in state if k not in own)
    log.info("ViTAEv2: loaded %d/%d tensors from %s", len(matched), len(own), file)
    if result.missing_keys:
        log.warning(
            "ViTAEv2: %d keys missing from %s: %s", len(result.missing_keys), file, result.missing_keys
        )
    if unexpected:
        log.warning("ViTAEv2: %d unexpected keys in %s: %s", len(unexpected), file, unexpected)
    if mismatched:
        log.warning(
            "ViTAEv2: %d keys skipped for a shape mismatch in %s: %s", len(mismatched), file, mismatched
        )


class ViTAEv2Backbone(nn.Module):
    """ViTAEv2 on the deep stem's features: (B, in_channels, H/4, W/4) -> 4 NCHW maps at strides 4, 8, 16, 32.

    The first RC keeps the resolution (stride 1, PRM kernel `first_kernel_size`, dilations 1-4) because the
    stem already did the 4x reduction. Each output passes a LayerNorm over channels (`out_norm`). H/4 and
    W/4 may be any size; window attention pads internally.
    """

    def __init__(
        self,
        in_channels: int = 128,
        pretrained: str | None = None,
        variant: str = "s",
        window_size: int = 7,
        first_kernel_size: int = 3,
        drop_path_rate: float = 0.1,
        relative_pos: bool = False,
        pcm_norm: str = "group",
        out_norm: bool = True,
        out_norm_levels: Sequence[int] = (1, 2, 3),
        pretrained_tag: str | None = None,
    ) -> None:
        """Args:
        in_channels: channels of the stem's H/4 features (128 in E2E-HIM).
        pretrained: local checkpoint path (classifier or backbone keys; see `load_pretrained`),
            "hf-hub:<org>/<repo>" (a model.safetensors on the Hugging Face Hub), or None. No copy of ViTAEv2
            in timm or on the Hub is known, so "timm" stops and says where its authors publish it.
        variant: "s" (the paper's ViTAEv2-S), "48m" or "b".
        window_size: attention window of stages 1-2.
        first_kernel_size: PRM kernel of the stride-1 first RC (the classifier's stride-4 RC uses 7).
        drop_path_rate: stochastic depth at the last NC (0.1: our choice, the papers give no figure for it).
        relative_pos: relative position bias in the window attention (off in the authors' ViTAEv2-S).
        pcm_norm: "group" (default, batch-size-1 safe) or "batch" (the original) in the PCMs.
        out_norm: LayerNorm on the returned maps of `out_norm_levels`.
        out_norm_levels: indices (0 = stride 4) of the maps that get a LayerNorm. E2E-HIM reads only the
            stride 8, 16 and 32 maps, so a norm on the stride-4 one would hold parameters that never get a
            gradient.
        pretrained_tag: a timm tag for `pretrained="timm"`; None, as timm has no ViTAEv2.
        """
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown ViTAEv2 variant {variant!r}; choose from {sorted(VARIANTS)}")
        cfg = VARIANTS[variant]
        self.layers = build_stages(
            in_channels,
            **cfg,
            downsample_ratios=(1, 2, 2, 2),
            kernel_sizes=(first_kernel_size, 3, 3, 3),
            window_size=window_size,
            drop_path_rate=drop_path_rate,
            relative_pos=relative_pos,
            pcm_norm=pcm_norm,
        )
        self.channels: list[int] = list(cfg["token_dims"])
        self.strides: list[int] = [4, 8, 16, 32]
        levels = set(out_norm_levels) if out_norm else set()
        self.norms = nn.ModuleList(
            nn.LayerNorm(c, eps=1e-6) if i in levels else nn.Identity() for i, c in enumerate(self.channels)
        )
        self.apply(init_weights)
        if pretrained is not None:
            load_pretrained(self, resolve_pretrained(pretrained, None, pretrained_tag, type(self).__name__))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stem features (B, in_channels, H/4, W/4) -> [(B, C_i, H/s_i, W/s_i) for s_i in 4, 8, 16, 32]."""
        stem, features = x, []
        for stage, norm in zip(self.layers, self.norms):
            tokens = stage(x)  # (B, h, w, C_i)
            features.append(nchw_from_tokens(norm(tokens), like=stem))
            x = tokens.permute(0, 3, 1, 2)  # the un-normalised stream feeds the next stage
        return features
