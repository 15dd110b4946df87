"""DETR-style post-norm transformer encoder and decoder with positional encodings added to queries and keys.

Tensors are batch-first: sequences (B, L, C). The encoder aggregates context over the H/16 features
(Section III-A, "transformer encoder [60]"); the decoder turns N learnable queries into latent codes X
(the perception decoder). Both follow DETR: positions are added to the attention queries and keys (not the
values), the decoder's target starts at zeros with learned query embeddings as its query positions, and the
decoder's final LayerNorm is applied to every layer's output for deep supervision.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _feed_forward(d_model: int, dim_feedforward: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_model, dim_feedforward),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(dim_feedforward, d_model),
    )


class EncoderLayer(nn.Module):
    """Post-norm self-attention + FFN: x = LN(x + SA(x + pos, x + pos, x)); x = LN(x + FFN(x))."""

    def __init__(self, d_model: int = 256, nhead: int = 8, dim_feedforward: int = 2048, dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.ffn = _feed_forward(d_model, dim_feedforward, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x, pos (B, L, C) -> (B, L, C)."""
        q = k = x + pos
        x = self.norm1(x + self.dropout1(self.self_attn(q, k, x, need_weights=False)[0]))
        return self.norm2(x + self.dropout2(self.ffn(x)))


class DecoderLayer(nn.Module):
    """Post-norm decoder layer: query self-attention, cross-attention to the memory, FFN.

    `explicit_attention` computes the attention as softmax(QK^T)V with explicit matrix products (what
    `nn.MultiheadAttention` does when asked for its weights) instead of the fused kernel: the same function,
    with the authors' release's rounding (the released layout uses it to reproduce their numbers).
    """

    def __init__(
        self,
        d_model: int = 256,
        nhead: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        explicit_attention: bool = False,
    ):
        super().__init__()
        self.explicit_attention = explicit_attention
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.ffn = _feed_forward(d_model, dim_feedforward, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        query_pos: torch.Tensor,
        pos: torch.Tensor | None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tgt, query_pos (B, N, C); memory, pos (B, L, C); memory_mask (B * heads, N, L) bool, True = not
        attended -> (B, N, C). `pos` None: keys without positions (the authors' release)."""
        q = k = tgt + query_pos
        weights = self.explicit_attention
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, k, tgt, need_weights=weights)[0]))
        keys = memory if pos is None else memory + pos
        if keys is memory and not self.explicit_attention:
            # a key that IS the value takes MultiheadAttention's packed key/value projection, which the
            # torchscript ONNX exporter traces with the example's memory length fixed; a copy keeps the
            # exported model's size dynamic (same function; release rounding keeps the release's aliasing)
            keys = memory.clone()
        attended = self.cross_attn(
            tgt + query_pos, keys, memory, attn_mask=memory_mask, need_weights=weights
        )[0]
        tgt = self.norm2(tgt + self.dropout2(attended))
        return self.norm3(tgt + self.dropout3(self.ffn(tgt)))


class TransformerEncoder(nn.Module):
    """A stack of `num_layers` post-norm encoder layers (no final norm, as DETR's post-norm encoder)."""

    def __init__(
        self,
        num_layers: int = 6,
        d_model: int = 256,
        nhead: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layer = EncoderLayer(d_model, nhead, dim_feedforward, dropout)
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x, pos (B, L, C) -> (B, L, C); the identity when num_layers = 0."""
        for layer in self.layers:
            x = layer(x, pos)
        return x


class TransformerDecoder(nn.Module):
    """A stack of post-norm decoder layers returning every layer's output after the shared final LayerNorm."""

    def __init__(
        self,
        num_layers: int = 6,
        d_model: int = 256,
        nhead: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        explicit_attention: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"the perception decoder needs at least one layer, got {num_layers}")
        layer = DecoderLayer(d_model, nhead, dim_feedforward, dropout, explicit_attention)
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        query_pos: torch.Tensor,
        pos: torch.Tensor | None,
        memory_mask_fn=None,
    ) -> torch.Tensor:
        """tgt, query_pos (B, N, C); memory, pos (B, L, C) or None -> normalised outputs (num_layers, B, N,
        C). `memory_mask_fn(codes)` gives each next layer's cross-attention mask from the previous layer's
        normalised output (masked attention); the first layer attends everywhere."""
        outputs = []
        mask = None
        for layer in self.layers:
            tgt = layer(tgt, memory, query_pos, pos, mask)
            outputs.append(self.norm(tgt))
            if memory_mask_fn is not None:
                mask = memory_mask_fn(outputs[-1])
        return torch.stack(outputs)
