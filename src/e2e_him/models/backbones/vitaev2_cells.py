"""ViTAEv2 building blocks: the reduction cell (RC) and the normal cell (NC).

Zhang, Xu, Zhang, Tao, "ViTAEv2: Vision Transformer Advanced by Exploring Inductive Bias for Image Recognition
and Beyond" (arXiv 2202.10108, IJCV 2023), built on the cells of ViTAE (Xu et al., NeurIPS 2021):

- RC: a pyramid reduction module (PRM) embeds the input with several dilated convolutions that share a stride
  (the scale-invariance bias); attention runs on these multi-scale tokens while a parallel convolution module
  (PCM) takes the cell's input (the locality bias); their sum goes through an FFN.
- NC: attention and a PCM run side by side on the same tokens, their sum joins the residual, then an FFN.

ViTAEv2 runs window attention (no shift) in the early, high-resolution stages and full attention later. Tokens
travel channels-last, (B, H, W, C), so window attention can pad and crop the map for any H and W.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """Cut a padded map into non-overlapping windows: (B, Hp, Wp, C) -> (B * nW, ws * ws, C), batch-major."""
    b, hp, wp, c = x.shape
    x = x.view(b, hp // window_size, window_size, wp // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, c)


def window_unpartition(windows: torch.Tensor, window_size: int, batch: int, hp: int, wp: int) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nW, ws * ws, C) -> (B, Hp, Wp, C)."""
    c = windows.shape[-1]
    x = windows.view(batch, hp // window_size, wp // window_size, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(batch, hp, wp, c)


class CellAttention(nn.Module):
    """Multi-head self-attention over all tokens (`window_size=None`) or inside non-overlapping windows.

    Softmax(Q K^T / sqrt(d) + bias) V per head, with Q, K, V = LN(x) W_qkv projected to `out_dim` (the RC
    changes the width here). Window mode pads the map bottom/right to a multiple of the window, masks the
    padded keys (so results do not depend on the padding) and crops back; the optional relative position bias
    is indexed by offsets inside a window, so nothing depends on the input size. ViTAEv2 has no absolute
    position embedding: the PCM's convolutions carry position.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_heads: int,
        window_size: int | None = None,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        relative_pos: bool = False,
        value_skip: bool = False,
    ) -> None:
        """Args:
        in_dim: width of the incoming tokens.
        out_dim: width of Q, K, V and of the output; must be divisible by `num_heads`.
        num_heads: attention heads.
        window_size: side of the square attention windows; None for full (global) attention.
        qkv_bias: learn biases for the Q, K, V projection.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.
        relative_pos: add a learned relative position bias inside windows (Swin-style table).
        value_skip: add V to the output (T2T-style shortcut used where the width changes, i.e. the RC).
        """
        super().__init__()
        if out_dim % num_heads:
            raise ValueError(f"out_dim={out_dim} is not divisible by num_heads={num_heads}")
        self.out_dim = out_dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.value_skip = value_skip
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(in_dim, 3 * out_dim, bias=qkv_bias)
        self.proj = nn.Linear(out_dim, out_dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.relative_position_bias_table: nn.Parameter | None = None
        if relative_pos and window_size is not None:
            span = 2 * window_size - 1
            self.relative_position_bias_table = nn.Parameter(torch.zeros(span * span, num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            coords = torch.stack(
                torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
            ).flatten(1)  # (2, L) with L = ws * ws
            offsets = coords[:, :, None] - coords[:, None, :] + (window_size - 1)  # (2, L, L) in [0, 2ws-2]
            self.register_buffer("relative_position_index", offsets[0] * span + offsets[1], persistent=False)

    def _attend(self, qkv: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Batched attention: qkv (N, L, 3C), bias broadcastable to (N, h, L, L) -> (N, L, C)."""
        n, length, _ = qkv.shape
        head_dim = self.out_dim // self.num_heads
        q, k, v = qkv.view(n, length, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        dropout = self.attn_drop if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)  # (N, h, L, d)
        return out.transpose(1, 2).reshape(n, length, self.out_dim)

    def _window_bias(self, h: int, w: int, batch: int, ref: torch.Tensor) -> torch.Tensor | None:
        """Additive bias (B * nW | 1, h | 1, L, L): -inf on padded keys plus the relative position bias."""
        ws = self.window_size
        assert ws is not None
        pad_h, pad_w = (-h) % ws, (-w) % ws
        bias = None
        if pad_h or pad_w:
            valid = torch.zeros(h + pad_h, w + pad_w, 1, dtype=ref.dtype, device=ref.device)
            valid[:h, :w] = 1.0
            key_valid = window_partition(valid.unsqueeze(0), ws)[..., 0]  # (nW, L)
            key_bias = torch.zeros_like(key_valid).masked_fill(key_valid == 0, float("-inf"))
            bias = key_bias.repeat(batch, 1)[:, None, None, :]  # (B * nW, 1, 1, L)
        if self.relative_position_bias_table is not None:
            length = ws * ws
            rel = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # (L * L, h)
            rel = rel.view(length, length, self.num_heads).permute(2, 0, 1).unsqueeze(0).to(ref.dtype)
            bias = rel if bias is None else bias + rel  # (B * nW | 1, h, L, L)
        return bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention on tokens: x (B, H, W, in_dim) -> (B, H, W, out_dim)."""
        b, h, w, _ = x.shape
        qkv = self.qkv(x)  # (B, H, W, 3C); per-token, so it commutes with padding and partitioning
        if self.window_size is None:
            out = self._attend(qkv.reshape(b, h * w, -1), None).view(b, h, w, self.out_dim)
        else:
            ws = self.window_size
            pad_h, pad_w = (-h) % ws, (-w) % ws
            padded = F.pad(qkv, (0, 0, 0, pad_w, 0, pad_h))  # (B, Hp, Wp, 3C)
            windows = window_partition(padded, ws)  # (B * nW, L, 3C)
            out = self._attend(windows, self._window_bias(h, w, b, qkv))
            out = window_unpartition(out, ws, b, h + pad_h, w + pad_w)[:, :h, :w]  # (B, H, W, C)
        out = self.proj_drop(self.proj(out))
        if self.value_skip:
            out = out + qkv[..., 2 * self.out_dim :]
        return out


class PyramidReduction(nn.Module):
    """PRM: f_ms = Cat_j GELU(Conv_{k, r_j, stride s}(f)), dilated convolutions sharing kernel and stride.

    Padding ceil(((k - 1) r + 1 - s) / 2) gives every branch the same ceil(H / s) x ceil(W / s) output.
    """

    def __init__(
        self, in_chans: int, embed_dim: int, kernel_size: int, stride: int, dilations: Sequence[int]
    ):
        """Args:
        in_chans: input channels.
        embed_dim: output channels of each dilated branch (the RC's "embed dim").
        kernel_size: kernel of every branch.
        stride: the cell's downsampling ratio.
        dilations: one branch per dilation rate.
        """
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(
                    in_chans,
                    embed_dim,
                    kernel_size,
                    stride=stride,
                    padding=math.ceil(((kernel_size - 1) * d + 1 - stride) / 2),
                    dilation=d,
                ),
                nn.GELU(),
            )
            for d in dilations
        )
        self.out_chans = embed_dim * len(dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, len(dilations) * embed_dim, H/s, W/s), branches concatenated in order."""
        return torch.cat([conv(x) for conv in self.convs], dim=1)


def pcm_norm_layer(kind: str, channels: int) -> nn.Module:
    """Norm inside the PCM: "group" (GroupNorm, gcd(32, C) groups) or "batch" (BatchNorm2d, the original)."""
    if kind == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"pcm_norm must be 'group' or 'batch', got {kind!r}")


class ParallelConv(nn.Sequential):
    """PCM: Conv3x3 -> Norm -> SiLU -> Conv3x3 -> Norm -> SiLU -> Conv3x3 (grouped), beside the attention.

    The authors use BatchNorm here; we default to GroupNorm so that training with one image per GPU (the
    E2E-HIM recipe) does not depend on batch statistics. `norm="batch"` restores the original.
    """

    def __init__(
        self,
        channels: tuple[int, int, int, int],
        strides: tuple[int, int, int] = (1, 1, 1),
        groups: int = 1,
        norm: str = "group",
    ) -> None:
        """Args:
        channels: (in, hidden1, hidden2, out) widths of the three convolutions.
        strides: stride of each convolution (their product is the cell's downsampling ratio).
        groups: groups of every convolution.
        norm: "group" or "batch".
        """
        c0, c1, c2, c3 = channels
        super().__init__(
            nn.Conv2d(c0, c1, 3, stride=strides[0], padding=1, groups=groups),
            pcm_norm_layer(norm, c1),
            nn.SiLU(inplace=True),
            nn.Conv2d(c1, c2, 3, stride=strides[1], padding=1, groups=groups),
            pcm_norm_layer(norm, c2),
            nn.SiLU(inplace=True),
            nn.Conv2d(c2, c3, 3, stride=strides[2], padding=1, groups=groups),
        )


def pcm_strides(downsample: int) -> tuple[int, int, int]:
    """Split a downsampling ratio in {1, 2, 4, 8} over the PCM's three convolutions, stride 2 first."""
    if downsample not in (1, 2, 4, 8):
        raise ValueError(f"ViTAEv2 cells downsample by 1, 2, 4 or 8, got {downsample}")
    n_two = int(math.log2(downsample))
    return tuple(2 if i < n_two else 1 for i in range(3))  # type: ignore[return-value]


class ReductionCell(nn.Module):
    """RC: f_g = MHSA(LN(PRM(f))), f_lg = f_g + PCM(f), f_out = f_lg + FFN(LN(f_lg)) (ViTAE's RC)."""

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        token_dim: int,
        downsample: int,
        kernel_size: int,
        dilations: Sequence[int],
        num_heads: int,
        window_size: int | None,
        groups: int = 1,
        mlp_ratio: float = 1.0,
        qkv_bias: bool = True,
        relative_pos: bool = False,
        pcm_norm: str = "group",
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        """Args:
        in_chans: channels of the incoming map.
        embed_dim: width of each PRM branch and of the PCM's hidden layers.
        token_dim: width of the output tokens.
        downsample: stride of the cell (PRM stride; split over the PCM convolutions).
        kernel_size: PRM kernel.
        dilations: PRM dilation rates.
        num_heads: attention heads.
        window_size: window side, or None for full attention.
        groups: groups of the PCM convolutions.
        mlp_ratio: FFN hidden width / token_dim (1 in the authors' release).
        qkv_bias, relative_pos: see `CellAttention`.
        pcm_norm: "group" or "batch", see `ParallelConv`.
        drop, attn_drop, drop_path: dropout rates.
        """
        super().__init__()
        self.prm = PyramidReduction(in_chans, embed_dim, kernel_size, downsample, dilations)
        self.pcm = ParallelConv(
            (in_chans, embed_dim, embed_dim, token_dim), pcm_strides(downsample), groups, pcm_norm
        )
        self.norm1 = nn.LayerNorm(self.prm.out_chans, eps=1e-6)
        # The authors add V as a shortcut only in full-attention RCs (T2T's token transformer); so do we.
        self.attn = CellAttention(
            self.prm.out_chans,
            token_dim,
            num_heads,
            window_size,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop,
            proj_drop=drop,
            relative_pos=relative_pos,
            value_skip=window_size is None,
        )
        self.norm2 = nn.LayerNorm(token_dim, eps=1e-6)
        self.mlp = Mlp(token_dim, int(token_dim * mlp_ratio), drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W) -> tokens (B, H/s, W/s, token_dim)."""
        multi_scale = self.prm(x).permute(0, 2, 3, 1)  # (B, H/s, W/s, D * E)
        tokens = self.attn(self.norm1(multi_scale))
        tokens = tokens + self.drop_path(self.pcm(x).permute(0, 2, 3, 1))
        return tokens + self.drop_path(self.mlp(self.norm2(tokens)))


class NormalCell(nn.Module):
    """NC: f_lg = f + MHSA(LN(f)) + PCM(f), f_out = f_lg + FFN(LN(f_lg)) (ViTAE normal cell)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int | None,
        mlp_ratio: float = 4.0,
        groups: int = 1,
        qkv_bias: bool = True,
        relative_pos: bool = False,
        pcm_norm: str = "group",
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        """Args:
        dim: token width.
        num_heads: attention heads.
        window_size: window side, or None for full attention.
        mlp_ratio: FFN and PCM hidden width / dim.
        groups: groups of the PCM convolutions.
        qkv_bias, relative_pos: see `CellAttention`.
        pcm_norm: "group" or "batch", see `ParallelConv`.
        drop, attn_drop, drop_path: dropout rates.
        """
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = CellAttention(
            dim,
            dim,
            num_heads,
            window_size,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop,
            proj_drop=drop,
            relative_pos=relative_pos,
        )
        self.pcm = ParallelConv((dim, hidden, dim, dim), (1, 1, 1), groups, pcm_norm)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (B, H, W, dim) -> (B, H, W, dim)."""
        local = self.pcm(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = x + self.drop_path(self.attn(self.norm1(x))) + self.drop_path(local)
        return x + self.drop_path(self.mlp(self.norm2(x)))
