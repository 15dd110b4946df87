"""The general perception network after the backbone (Section III-A): context encoder, perception decoder,
class and segmentation heads, feature decoder."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from e2e_him.models.dynamic import KernelMLP
from e2e_him.models.feature_decoder import FeatureDecoder
from e2e_him.models.layers import MLP, ConvGNAct
from e2e_him.models.position_encoding import PositionEmbeddingSine
from e2e_him.models.transformer import TransformerDecoder, TransformerEncoder


class PerceptionNetwork(nn.Module):
    """Backbone maps -> context F_c, latent codes X, class logits, masks M_pred, detailed context F_dc.

    - Semantic encoder (its transformer part): the H/16 backbone map, projected to C (1x1 conv + GN), goes
      through `enc_layers` post-norm encoder layers with sine positions -> F_c (B, C, H/16, W/16).
    - Perception decoder: N learnable queries, a DETR decoder over the flattened F_c (positions on the keys)
      -> latent codes X (B, N, C) after the final LayerNorm, one per decoder layer.
    - Heads (applied to every decoder layer's output, DETR's deep supervision): class MLP C -> 128 -> 2
      (index 1 = human) and a segmentation kernel MLP giving k_seg, b_seg; M_pred = Conv(F_dc, k_seg) + b_seg.
    - Feature decoder: backbone H/32, H/16, H/8 maps + F_c -> F_dc (B, C, H/8, W/8).
    """

    def __init__(
        self,
        backbone_channels: list[int],
        hidden_dim: int = 256,
        num_queries: int = 20,
        enc_layers: int = 6,
        dec_layers: int = 6,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        class_hidden_dim: int = 128,
        kernel_hidden_dim: int = 512,
        kernel_layers: int = 3,
        decoder_blocks: int = 1,
        mask_position_channels: int = 0,
        masked_attention: bool = False,
        person_head: bool = False,
    ) -> None:
        """Args:
        backbone_channels: widths of the backbone's maps at strides 4, 8, 16, 32.
        hidden_dim: C (paper: 256).
        num_queries: N (paper: 20; Table VII: 10, 50).
        enc_layers: transformer encoder layers over the H/16 context features.
        dec_layers: perception decoder layers (paper: 6).
        nheads: attention heads (release: 8).
        dim_feedforward: FFN width (release: 2048).
        dropout: transformer dropout (release: 0.1).
        class_hidden_dim: hidden width of the class MLP (release: 128).
        kernel_hidden_dim: hidden width of the kernel MLP (release: 512).
        kernel_layers: depth of the kernel MLP (release: 3).
        decoder_blocks: residual bottleneck blocks per level of the feature decoder.
        mask_position_channels: ours, 0 in the paper: P fixed sine position channels appended to F_dc where
            the dynamic kernels of Eq. 2 read it, so that a query can place its mask (CondInst's coordinates).
        masked_attention: ours, off in the paper: Mask2Former's masked cross-attention, each decoder layer
            attending only where the previous layer's mask of that query is foreground.
        person_head: ours, off in the paper: a dense "any person" logit map from F_dc (`pred_person`,
            supervised by the union of the people's masks in the criterion).
        """
        super().__init__()
        if hidden_dim % 2 or hidden_dim % nheads:
            raise ValueError(f"hidden_dim={hidden_dim} must be even and divisible by nheads={nheads}")
        self.num_queries = num_queries
        self.input_proj = ConvGNAct(backbone_channels[2], hidden_dim, 1, act=False)
        self.position = PositionEmbeddingSine(hidden_dim // 2)
        transformer = dict(d_model=hidden_dim, nhead=nheads, dim_feedforward=dim_feedforward, dropout=dropout)
        self.encoder = TransformerEncoder(enc_layers, **transformer)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.decoder = TransformerDecoder(dec_layers, **transformer)
        self.class_head = MLP(hidden_dim, class_hidden_dim, 2, num_layers=2)
        self.mask_position_channels = mask_position_channels
        self.mask_position = (
            PositionEmbeddingSine(mask_position_channels // 2) if mask_position_channels else None
        )
        self.mask_kernels = KernelMLP(
            hidden_dim, hidden_dim + mask_position_channels, 1, kernel_hidden_dim, kernel_layers
        )
        self.masked_attention = masked_attention
        self.nheads = nheads
        self.person_head = nn.Conv2d(hidden_dim, 1, 1) if person_head else None
        self.feature_decoder = FeatureDecoder(
            (backbone_channels[1], backbone_channels[2], backbone_channels[3]), hidden_dim, decoder_blocks
        )

    def encode_context(self, features16: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context features F_c (B, C, H/16, W/16) and their positions (B, H/16 * W/16, C)."""
        x = self.input_proj(features16)
        b, c, h, w = x.shape
        pos = self.position(x).flatten(2).transpose(1, 2)  # (B, L, C)
        tokens = self.encoder(x.flatten(2).transpose(1, 2), pos)  # (B, L, C)
        return tokens.transpose(1, 2).reshape(b, c, h, w), pos

    def predict_masks(self, codes: torch.Tensor, detailed: torch.Tensor) -> torch.Tensor:
        """Instance masks M_pred = Conv(F_dc, k_seg) + B(b_seg) (Eq. 2).

        Args:
            codes: latent codes (..., B, N, C), e.g. one set per decoder layer.
            detailed: F_dc (B, C, H/8, W/8).

        Returns:
            Mask logits (..., B, N, H/8, W/8).
        """
        kernels, biases = self.mask_kernels(codes)  # (..., B, N, 1, C + P), (..., B, N, 1)
        if self.mask_position is not None:
            detailed = torch.cat((detailed, self.mask_position(detailed)), dim=1)  # (B, C + P, h, w)
        masks = torch.einsum("...bnc,bchw->...bnhw", kernels.squeeze(-2), detailed)
        return masks + biases[..., None]

    def _memory_mask(self, detailed: torch.Tensor, size: tuple[int, int]):
        """Masked attention (Mask2Former): a function of a decoder layer's codes (B, N, C) giving the next
        layer's cross-attention mask (B * heads, N, L), True where a query's mask is background at the
        memory's size; a query whose mask is empty everywhere attends everywhere."""

        def memory_mask(codes: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                masks = F.interpolate(self.predict_masks(codes, detailed), size=size, mode="bilinear")
                blocked = (masks < 0).flatten(2)  # (B, N, L)
                blocked &= ~blocked.all(-1, keepdim=True)
            return blocked.repeat_interleave(self.nheads, dim=0)

        return memory_mask

    def forward(self, features: list[torch.Tensor]) -> dict[str, Any]:
        """Backbone maps at strides 4-32 -> dict of `context`, `detailed_context`, `codes` (B, N, C),
        `pred_logits` (B, N, 2), `pred_masks` (B, N, H/8, W/8), `aux_outputs` (dec_layers - 1 dicts)."""
        context, pos = self.encode_context(features[2])
        memory = context.flatten(2).transpose(1, 2)  # F_f, (B, L, C)
        b = memory.shape[0]
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)  # (B, N, C)
        tgt = torch.zeros_like(query_pos)
        detailed = self.feature_decoder([features[1], features[2], features[3]], context)
        memory_mask = self._memory_mask(detailed, context.shape[-2:]) if self.masked_attention else None
        codes = self.decoder(tgt, memory, query_pos, pos, memory_mask)  # (D, B, N, C)
        d = codes.shape[0]
        logits = self.class_head(codes)  # (D, B, N, 2)
        masks = self.predict_masks(codes, detailed)  # (D, B, N, H/8, W/8)
        out = {"pred_person": self.person_head(detailed)[:, 0]} if self.person_head is not None else {}
        return {
            **out,
            "context": context,
            "detailed_context": detailed,
            "codes": codes[-1],
            "pred_logits": logits[-1],
            "pred_masks": masks[-1],
            "aux_outputs": [{"pred_logits": logits[i], "pred_masks": masks[i]} for i in range(d - 1)],
        }
