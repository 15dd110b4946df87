"""Instance compositing of the training recipe (Sec. IV-B): paste the people of one image onto another.

Following the compositing of the matting literature that the paper cites ([13], [5]), the pasted photo is
blended onto the target with the total alpha of its people, I = F * A + I_target * (1 - A), with
A = sum_k alpha_k. The foreground colour F is estimated by the pasted photo itself: no separate foreground
layer exists for real photos, so the background colour mixed into soft edges (hair) comes along.
Pasted people occlude the target's: alpha_old *= (1 - A), so every pixel's alphas still sum to at most one.

The random draws (`paste_geometry`) and the pixels (`paste_instances`) are apart, so that the training path
can draw the geometry from the photos' sizes alone, decode both photos already shrunk to the size training
resizes them to, and paste there (`scale_region`) instead of at the photos' own 1-2k px.
"""

from __future__ import annotations

import cv2
import numpy as np


def resize_image(
    image: np.ndarray, size: tuple[int, int], full_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Resize an (H, W, C) photo to `size` (h, w): area averaging when shrinking, bilinear otherwise.

    `full_size` (H0, W0): the photo was decoded reduced by an integer factor from that size (JPEG's scaled
    decoding, `io.reduce_to`); see `area_from_reduced`.
    """
    h, w = size
    full = tuple(full_size) if full_size is not None else image.shape[:2]
    if full == (h, w) and image.shape[:2] == (h, w):
        return image
    if h <= full[0] and w <= full[1]:
        return area_from_reduced(image, size, full)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


def area_from_reduced(x: np.ndarray, size: tuple[int, int], full_size: tuple[int, int]) -> np.ndarray:
    """Area averaging of an (H, W[, C]) array to `size` (h, w), with the scale of `full_size` (H0, W0).

    `x` is the full-size map reduced by an integer factor g (H = ceil(H0 / g), the last row and column
    covering what was left; g = 1: `x` is the full-size map). Each output pixel averages `x` over the area
    it covers in the full-size frame (OpenCV's area resampling with the scale h * g / H0), not with x's own
    ratio h / H, which would stretch it by up to (g - 1) / H0 and shift its far edges by a fraction of a
    pixel against maps reduced by another factor.
    """
    h, w = size
    H, W = x.shape[:2]
    if (H, W) == tuple(full_size):
        return cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA)
    gy, gx = round(full_size[0] / H), round(full_size[1] / W)
    out = cv2.resize(
        x, (0, 0), fx=w * gx / full_size[1], fy=h * gy / full_size[0], interpolation=cv2.INTER_AREA
    )
    if out.shape[0] < h or out.shape[1] < w:  # not a reduction of full_size: its own ratio
        return cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out[:h, :w])


def resize_record(record: dict, size: tuple[int, int]) -> dict:
    """A raw record (contract 1) with its photo, mattes and masks resized to `size` (h, w)."""
    masks = record["masks"]
    return {
        **record,
        "image": resize_image(record["image"], size),
        "alphas": resize_stack(record["alphas"], size),
        "masks": resize_stack(masks, size, nearest=True) if masks is not None else None,
    }


def resize_stack(
    stack: np.ndarray,
    size: tuple[int, int],
    nearest: bool = False,
    full_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Resize (K, H, W) maps to (K, h, w); area averaging when shrinking, bilinear when enlarging.

    `full_size`: the maps were reduced by an integer factor from that size (`area_from_reduced`).
    """
    k, h0, w0 = stack.shape
    h, w = size
    full = (h0, w0) if full_size is None else tuple(full_size)
    if (h0, w0) == (h, w) == full:
        return stack
    out = np.zeros((k, h, w), stack.dtype)
    if k == 0:
        return out
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        shrink = h < full[0] and w < full[1] if full_size is None else h <= full[0] and w <= full[1]
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    src = stack.astype(np.uint8) if stack.dtype == bool else stack
    # cv2 resizes up to 4 channels at once in an (H, W, C) array
    for start in range(0, k, 4):
        chunk = np.ascontiguousarray(src[start : start + 4].transpose(1, 2, 0))
        if interp == cv2.INTER_AREA:
            res = area_from_reduced(chunk, size, full)
        else:
            res = cv2.resize(chunk, (w, h), interpolation=interp)
        out[start : start + 4] = res.reshape(h, w, -1).transpose(2, 0, 1).astype(stack.dtype)
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


def paste_geometry(
    target_size: tuple[int, int],
    paste_size: tuple[int, int],
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.5, 1.0),
) -> tuple[int, int, int, int]:
    """Where the pasted photo goes (Sec. IV-B): scaled to fit inside the target times a random factor in
    `scale_range`, at a random offset inside it.

    Args:
        target_size, paste_size: (H, W) of the two photos.
        rng: the sample's generator (three draws).

    Returns:
        The region (y0, x0, h, w) of the target that the pasted photo covers.
    """
    H, W = target_size
    h0, w0 = paste_size
    s = min(H / h0, W / w0) * float(rng.uniform(*scale_range))
    h, w = min(H, max(1, round(h0 * s))), min(W, max(1, round(w0 * s)))
    y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    return y0, x0, h, w


def scale_region(
    region: tuple[int, int, int, int], scale: tuple[float, float], size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """A region (y0, x0, h, w) of a photo in the same photo resized by `scale` (sy, sx) to `size` (H, W):
    its edges rounded to the nearest pixel (so within half a pixel of where they fall), at least 1 x 1."""
    y0, x0, h, w = region
    sy, sx = scale
    H, W = size
    top, left = min(round(y0 * sy), H - 1), min(round(x0 * sx), W - 1)
    bottom, right = min(round((y0 + h) * sy), H), min(round((x0 + w) * sx), W)
    return top, left, max(1, bottom - top), max(1, right - left)


def pasted_slots(target_people: int, paste_people: int, max_instances: int | None) -> int:
    """How many people of the pasted photo can be pasted: all of them, or those that fit `max_instances`."""
    if max_instances is None:
        return paste_people
    return min(paste_people, max(0, max_instances - target_people))


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

    The pasted photo is placed by `paste_geometry` and blended by `paste_instances`. With `max_instances`,
    only the largest pasted people that fit in the remaining slots are pasted; when none fits, nothing is
    drawn from `rng` and `target` comes back as it is.

    Args:
        target: record {"image" (H, W, 3) uint8, "alphas" (K, H, W) float32, "masks" (K, H, W) bool | None,
            "name"}.
        paste: record whose people are pasted.
        rng: the sample's random generator.

    Returns:
        A new record with the target's people (reduced where occluded) followed by the pasted ones.
    """
    slots = pasted_slots(len(target["alphas"]), len(paste["alphas"]), max_instances)
    if slots == 0:
        return target
    region = paste_geometry(target["image"].shape[:2], paste["image"].shape[:2], rng, scale_range)
    return paste_instances(
        target,
        largest_record(paste, slots),
        region,
        min_visible_pixels=min_visible_pixels,
        min_visible_fraction=min_visible_fraction,
    )


def largest_record(record: dict, n: int) -> dict:
    """`record` with only its `n` largest people (by summed alpha), in their original order."""
    if n >= len(record["alphas"]):
        return record
    keep = largest_instances(record["alphas"], n)
    masks = record["masks"][keep] if record["masks"] is not None else None
    return {**record, "alphas": record["alphas"][keep], "masks": masks}


def paste_instances(
    target: dict,
    paste: dict,
    region: tuple[int, int, int, int],
    *,
    min_visible_pixels: float = 100.0,
    min_visible_fraction: float = 0.1,
    area_scale: float = 1.0,
) -> dict:
    """Blend the photo of record `paste`, resized to `region` (y0, x0, h, w) of `target`, with its people.

    I = F * A + I_target * (1 - A) with A the summed pasted alphas (made to sum to at most 1); the target's
    alphas are multiplied by 1 - A; people that end up almost invisible are dropped (`visible_instances`;
    `area_scale` converts this record's pixel areas to those `min_visible_pixels` counts, e.g. 1 / s^2 for
    a record shrunk by s).

    Returns:
        A new record with the target's people followed by the pasted ones.
    """
    image, alphas, masks = target["image"], target["alphas"], target["masks"]
    H, W = image.shape[:2]
    y0, x0, h, w = region
    region_slice = (slice(y0, y0 + h), slice(x0, x0 + w))
    fg = resize_image(paste["image"], (h, w)).astype(np.float32)  # F: the photo itself
    pa = resize_stack(paste["alphas"], (h, w)).clip(0.0, 1.0)  # (Kp, h, w)
    pa /= np.maximum(pa.sum(0), 1.0)  # the pasted alphas must sum to <= 1: A is a blending weight
    A = pa.sum(0)  # (h, w) total pasted alpha

    out_image = image.copy()
    bg = image[region_slice].astype(np.float32)
    blended = np.round(fg * A[..., None] + bg * (1.0 - A[..., None])).clip(0, 255)
    out_image[region_slice] = blended.astype(np.uint8)

    old = alphas.copy()
    old[(slice(None), *region_slice)] *= 1.0 - A  # occlusion: alpha_old *= (1 - A)
    new = np.zeros((len(pa), H, W), np.float32)
    new[(slice(None), *region_slice)] = pa

    out_alphas = np.concatenate([old, new]).astype(np.float32)
    areas_before = np.concatenate([alphas.sum((1, 2)), pa.sum((1, 2))])
    keep_all = visible_instances(
        out_alphas.sum((1, 2)), areas_before, min_visible_pixels * area_scale, min_visible_fraction
    )

    out_masks = None
    p_masks = paste["masks"]
    if masks is not None or p_masks is not None:
        old_m = masks.copy() if masks is not None else alphas >= 0.5
        old_m[(slice(None), *region_slice)] &= A < 0.5  # hidden behind a pasted person
        pm = resize_stack(p_masks, (h, w), nearest=True) if p_masks is not None else pa >= 0.5
        new_m = np.zeros((len(pa), H, W), bool)
        new_m[(slice(None), *region_slice)] = pm
        out_masks = np.concatenate([old_m, new_m])[keep_all]
    return {"image": out_image, "alphas": out_alphas[keep_all], "masks": out_masks, "name": target["name"]}
