"""The refiner of the instance matting network (Section III-C): upsampling convolutions that bring back the
stem's low-level features and the image, producing the trimap features F_tri and alpha features F_alpha."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from e2e_him.models.layers import ConvGNAct, cat_channels


class Refiner(nn.Module):
    """H/8 instance-aware features -> F_tri (B, C_tri, H/2, W/2) and F_alpha (B, C_alpha, H, W).

    Three 2x upsampling stages (H/4, H/2, H). With `use_low_level` each stage concatenates, after bilinear
    upsampling, the stem's H/4 features, the stem's H/2 features and finally the image itself (the authors'
    release), then applies `convs_per_stage` 3x3 conv-GN-ReLU layers. Without it (Table VII, Var6) the same
    upsampling convolutions see only the upsampled features. F_tri and F_alpha are 1x1 projections of the H/2
    and H stages.
    """

    def __init__(
        self,
        in_channels: int,
        widths: Sequence[int] = (256, 128, 64),
        skip_channels: Sequence[int] = (128, 64, 3),
        convs_per_stage: Sequence[int] = (2, 2, 2),
        trimap_channels: int = 32,
        alpha_channels: int = 64,
        use_low_level: bool = True,
    ) -> None:
        """Args:
        in_channels: channels of the H/8 input.
        widths: channels of the H/4, H/2 and H stages.
        skip_channels: channels of the stem's H/4 features, the stem's H/2 features and the image.
        convs_per_stage: 3x3 conv-GN-ReLU layers per stage.
        trimap_channels: C_tri; 0 = no F_tri (the matting network takes its trimap from H/8 instead).
        alpha_channels: C_alpha (release: 64).
        use_low_level: concatenate the low-level features (False: Table VII's Var6, "no refiner").
        """
        super().__init__()
        if not (len(widths) == len(skip_channels) == len(convs_per_stage) == 3):
            raise ValueError("refiner widths, skip_channels and convs_per_stage need 3 entries (H/4, H/2, H)")
        self.use_low_level = use_low_level
        stages = []
        prev = in_channels
        for width, skip, depth in zip(widths, skip_channels, convs_per_stage):
            first = prev + (skip if use_low_level else 0)
            stages.append(
                nn.Sequential(*(ConvGNAct(first if i == 0 else width, width, 3) for i in range(depth)))
            )
            prev = width
        self.stages = nn.ModuleList(stages)
        self.trimap_proj = nn.Conv2d(widths[1], trimap_channels, 1) if trimap_channels else None
        self.alpha_proj = nn.Conv2d(widths[2], alpha_channels, 1)

    def forward(
        self, x: torch.Tensor, low_level: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Args:
            x: instance-aware features (B, in_channels, H/8, W/8).
            low_level: [stem H/4 features, stem H/2 features, image (B, 3, H, W)] (ignored without
                `use_low_level`).

        Returns:
            F_tri (B, C_tri, H/2, W/2) (None with trimap_channels=0) and F_alpha (B, C_alpha, H, W).
        """
        outputs = []
        for stage, skip in zip(self.stages, low_level):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear")
            if self.use_low_level:
                x = cat_channels((x, skip))
            x = stage(x)
            outputs.append(x)
        trimap = None if self.trimap_proj is None else self.trimap_proj(outputs[1])
        return trimap, self.alpha_proj(outputs[2])
