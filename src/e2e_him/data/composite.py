"""Instance compositing of the training recipe (Sec. IV-B): paste the people of one image onto another.

Following the compositing of the matting literature that the paper cites ([13], [5]), the pasted photo is
blended onto the target with the total alpha of its people, I = F * A + I_target * (1 - A), with
A = sum_k alpha_k. The foreground colour F is estimated by the pasted photo itself: no separate foreground
layer exists for real photos, so the background colour mixed into soft edges (hair) comes along.
Pasted people occlude the target's: alpha_old *= (1 - A), so every pixel's alphas still sum to at most one.
"""

from __future__ import annotations

import cv2
import numpy as np


def resize_stack(stack: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize (K, H, W) maps to (K, h, w); area averaging when shrinking, bilinear when enlarging."""
    k, h0, w0 = stack.shape
    h, w = size
    out = np.zeros((k, h, w), stack.dtype)
    if k == 0:
        return out
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if h < h0 and w < w0 else cv2.INTER_LINEAR
    src = stack.astype(np.uint8) if stack.dtype == bool else stack
    # cv2 resizes up to 4 channels at once in an (H, W, C) array
    for start in range(0, k, 4):
        chunk = np.ascontiguousarray(src[start : start + 4].transpose(1, 2, 0))
        res = cv2.resize(chunk, (w, h), interpolation=interp).reshape(h, w, -1)
        out[start : start + 4] = res.transpose(2, 0, 1).astype(stack.dtype)
    return out


def visible_instances(
    areas: np.ndarray, areas_before: np.ndarray, min_visible_pixels: float, min_visible_fraction: float
) -> np.ndarray:
    """(K,) bool: people whose soft area (summed alpha) is at least `min_visible_pixels` and at least
    `min_visible_fraction` of their area before occlusion / cropping."""
    return (areas >= min_visible_pixels) & (areas >= min_visible_fraction * areas_before) & (areas > 0)


def largest_instances(alphas: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` people with the largest summed alpha, in their original order."""
    order = np.argsort(-alphas.sum((1, 2)), kind="stable")[:n]
    return np.sort(order)


def composite_instances(
    target: dict,
    paste: dict,
    rng: np.random.Generator,
    *,
    scale_range: tuple[float, float] = (0.5, 1.0),
    min_visible_pixels: float = 100.0,
    min_visible_fraction: float = 0.1,
    max_instances: int | None = None,
) -> dict:
    """Alpha-composite the people of record `paste` onto record `target` (Sec. IV-B; raw records, contract 1).

    The pasted photo is scaled to fit inside the target, times a random factor in `scale_range`, and placed
    at a random offset inside it. People are then dropped when they end up almost invisible (see
    `visible_instances`: occluded target people, tiny pasted ones). With `max_instances`, only the largest
    pasted people that fit in the remaining slots are pasted.

    Args:
        target: record {"image" (H, W, 3) uint8, "alphas" (K, H, W) float32, "masks" (K, H, W) bool | None,
            "name"}.
        paste: record whose people are pasted.
        rng: the sample's random generator.

    Returns:
        A new record with the target's people (reduced where occluded) followed by the pasted ones.
    """
    image, alphas, masks = target["image"], target["alphas"], target["masks"]
    H, W = image.shape[:2]
    p_alphas = paste["alphas"]
    slots = len(p_alphas) if max_instances is None else max(0, max_instances - len(alphas))
    if len(p_alphas) == 0 or slots == 0:
        return target
    keep = largest_instances(p_alphas, slots) if slots < len(p_alphas) else np.arange(len(p_alphas))
    p_alphas = p_alphas[keep]
    p_masks = paste["masks"][keep] if paste["masks"] is not None else None

    h0, w0 = paste["image"].shape[:2]
    s = min(H / h0, W / w0) * float(rng.uniform(*scale_range))
    h, w = min(H, max(1, round(h0 * s))), min(W, max(1, round(w0 * s)))
    y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    region = (slice(y0, y0 + h), slice(x0, x0 + w))

    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    fg = cv2.resize(paste["image"], (w, h), interpolation=interp).astype(np.float32)  # F: the photo itself
    pa = resize_stack(p_alphas, (h, w)).clip(0.0, 1.0)  # (Kp, h, w)
    pa /= np.maximum(pa.sum(0), 1.0)  # the pasted alphas must sum to <= 1: A is a blending weight
    A = pa.sum(0)  # (h, w) total pasted alpha

    out_image = image.copy()
    bg = image[region].astype(np.float32)
    out_image[region] = np.round(fg * A[..., None] + bg * (1.0 - A[..., None])).clip(0, 255).astype(np.uint8)

    old = alphas.copy()
    old[(slice(None), *region)] *= 1.0 - A  # occlusion: alpha_old *= (1 - A)
    new = np.zeros((len(pa), H, W), np.float32)
    new[(slice(None), *region)] = pa

    out_alphas = np.concatenate([old, new]).astype(np.float32)
    areas_before = np.concatenate([alphas.sum((1, 2)), new.sum((1, 2))])
    keep_all = visible_instances(
        out_alphas.sum((1, 2)), areas_before, min_visible_pixels, min_visible_fraction
    )

    out_masks = None
    if masks is not None or p_masks is not None:
        old_m = masks.copy() if masks is not None else alphas >= 0.5
        old_m[(slice(None), *region)] &= A < 0.5  # hidden behind a pasted person
        if p_masks is not None:
            pm = resize_stack(p_masks, (h, w), nearest=True)
        else:
            pm = pa >= 0.5
        new_m = np.zeros((len(pa), H, W), bool)
        new_m[(slice(None), *region)] = pm
        out_masks = np.concatenate([old_m, new_m])[keep_all]
    return {"image": out_image, "alphas": out_alphas[keep_all], "masks": out_masks, "name": target["name"]}
