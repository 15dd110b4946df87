"""From network outputs to the people of each photo: keep confident queries, undo the eval resize/pad."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F


def _size(value: Any, key: str) -> tuple[int, int]:
    """(h, w) from a tuple, list or tensor; a clear error for anything else."""
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"meta[{key!r}] must be an (h, w) pair, got {value!r}") from err
    return h, w


def quantise_alphas(alphas: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Alphas in [0, 1] rounded to the nearest multiple of 1 / `levels` (255: what an 8-bit PNG stores)."""
    return torch.round(alphas * levels) / levels


@torch.no_grad()
def postprocess(
    outputs: Mapping[str, Any],
    metas: Sequence[Mapping[str, Any]],
    score_threshold: float = 0.5,
    min_area: float = 1000.0,
    alpha_levels: int | None = None,
) -> list[dict[str, torch.Tensor]]:
    """The people of each image at its original size (the authors' release rule, docs/contracts.md section 3).

    A query is kept when p(human) = softmax(pred_logits)[..., 1] exceeds `score_threshold`; its `alpha_fin` is
    cropped to `meta["input_size"]` (the top-left region that holds the photo), resized bilinearly to
    `meta["orig_size"]`, and kept when its summed alpha exceeds `min_area` pixels. People are sorted by score,
    highest first. With `alpha_levels` = 255 the mattes are rounded to the values an 8-bit PNG holds, as
    predict writes them and as the benchmarks score them: an alpha below 0.5 / 255 becomes exactly 0, which
    matters to InstMatt's IMQ (it binarises at alpha > 0).

    Args:
        outputs: network outputs with `pred_logits` (B, N, 2) and `alpha_fin` (B, N, H, W).
        metas: one dict per image with `orig_size` (h0, w0) and `input_size` (h1, w1).
        score_threshold: minimum p(human) (release: 0.5).
        min_area: minimum summed alpha at the original size, in pixels (release: 1000).
        alpha_levels: round every kept alpha to a multiple of 1 / alpha_levels (255: 8-bit PNGs); None keeps
            the network's float values.

    Returns:
        One dict per image: `alphas` (K, h0, w0) float in [0, 1], `scores` (K,), `query_index` (K,) int64.
    """
    scores = outputs["pred_logits"].float().softmax(dim=-1)[..., 1]  # (B, N)
    alpha_fin = outputs["alpha_fin"]
    if len(metas) != alpha_fin.shape[0]:
        raise ValueError(f"postprocess got {len(metas)} metas for a batch of {alpha_fin.shape[0]} images")
    results = []
    for b, meta in enumerate(metas):
        h0, w0 = _size(meta["orig_size"], "orig_size")
        h1, w1 = _size(meta["input_size"], "input_size")
        index = torch.nonzero(scores[b] > score_threshold).flatten()
        alphas = alpha_fin[b, index, :h1, :w1].float()  # (K, h1, w1)
        if not index.numel():
            alphas = alphas.new_zeros((0, h0, w0))
        elif (h1, w1) != (h0, w0):
            alphas = F.interpolate(alphas[None], size=(h0, w0), mode="bilinear")[0].clamp_(0, 1)
        if alpha_levels:
            alphas = quantise_alphas(alphas, alpha_levels)
        large = alphas.sum(dim=(1, 2)) > min_area
        index, alphas = index[large], alphas[large]
        order = torch.argsort(scores[b, index], descending=True)
        results.append(
            {"alphas": alphas[order], "scores": scores[b, index[order]], "query_index": index[order]}
        )
    return results
