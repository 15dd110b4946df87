"""Where Swin pads a feature map to whole windows: before or after the cyclic shift.

timm's `SwinTransformerBlock` shifts the map first and pads the shifted map to a multiple of the window size;
the Swin code for detection and segmentation (Swin-Transformer-Object-Detection, which the authors' release
uses) pads first, then shifts the padded map, and builds the shifted-window mask on the padded size. For maps
whose sides are not multiples of the window (160 x 160 tokens at 640 px with 7 x 7 windows) the two give
different numbers with the same weights. `PadThenShiftBlock` is timm's block with the detection code's order;
`use_pad_then_shift` converts a built timm Swin in place (no parameter changes: state dicts stay the same).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformerBlock, window_partition, window_reverse
from torch import nn

WINDOW_PADDINGS = ("shift_then_pad", "pad_then_shift")


class PadThenShiftBlock(SwinTransformerBlock):
    """timm's Swin block, attention part in the detection code's order: pad, shift, window attention with the
    mask of the padded map, unshift, crop."""

    def _attn(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, W, C), after norm1 -> window attention output (B, H, W, C)."""
        _, h, w, c = x.shape
        wh, ww = self.window_size
        x = F.pad(x, (0, 0, 0, (-w) % ww, 0, (-h) % wh))  # zeros on the bottom and right, (B, Hp, Wp, C)
        hp, wp = x.shape[1:3]
        shifted = any(self.shift_size)
        if shifted:
            x = torch.roll(x, shifts=(-self.shift_size[0], -self.shift_size[1]), dims=(1, 2))
        windows = window_partition(x, self.window_size).view(-1, self.window_area, c)
        mask = self.get_attn_mask(x) if shifted else None  # (nW, area, area), from the padded size
        out = window_reverse(self.attn(windows, mask=mask).view(-1, wh, ww, c), self.window_size, hp, wp)
        if shifted:
            out = torch.roll(out, shifts=self.shift_size, dims=(1, 2))
        return out[:, :h, :w, :].contiguous()


def use_pad_then_shift(model: nn.Module) -> int:
    """Turn every `SwinTransformerBlock` of `model` into a `PadThenShiftBlock`; returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is SwinTransformerBlock:
            module.__class__ = PadThenShiftBlock
            count += 1
    return count
