"""`SyntheticPeople`: the built-in default data (`data=synthetic`), procedural multi-person composites.

Each record shows 1 to 6 articulated people (`e2e_him.data.procedural`) with soft edges and hair strands,
overlapping one another (later people in front) over a background that is a random crop of a person-free photo
shipped with scikit-image / scikit-learn or a procedural texture. Every person's matte is its *visible* alpha,

    alpha_k_visible = alpha_k * prod_{j > k} (1 - alpha_j),

people whose visible area is below the minimum are removed from the scene (not only from the ground truth),
and the image is the composite of the people kept,

    image = sum_k alpha_k_visible * fg_k + (1 - sum_k alpha_k_visible) * bg.

Samples are made on the fly and depend only on (seed, index): `numpy.random.default_rng([seed, index])`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

from e2e_him.data.procedural import build_person, extent, noise_crop, paint, rasterise, translate

PROCEDURAL_KINDS = ("gradient", "noise", "stripes", "blobs")
SKIMAGE_PHOTOS = ("coffee", "rocket", "brick", "grass", "gravel", "hubble_deep_field")
GREY_PHOTOS = ("brick", "grass", "gravel")


@lru_cache(maxsize=1)
def background_photos() -> tuple[tuple[str, np.ndarray], ...]:
    """The person-free photos that ship inside the scikit-image and scikit-learn wheels, as (name, RGB uint8).

    Loaded once per process, on first use. Grey textures (brick, grass, gravel) are stacked to three channels
    and tinted when used.
    """
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = [(name, getattr(skimage.data, name)()) for name in SKIMAGE_PHOTOS]
    sample = load_sample_images()  # china.jpg, flower.jpg
    photos += [(Path(path).stem, img) for path, img in zip(sample.filenames, sample.images)]
    return tuple(
        (name, np.ascontiguousarray(np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img))
        for name, img in photos
    )


def crop_photo(
    rng: np.random.Generator, photo: np.ndarray, size: tuple[int, int], scale=(0.3, 1.0)
) -> np.ndarray:
    """A random crop of `photo` with the aspect of `size` (H, W), `scale` x the largest such crop, resized."""
    H, W = size
    h0, w0 = photo.shape[:2]
    ch, cw = (h0, h0 * W / H) if h0 / w0 <= H / W else (w0 * H / W, w0)  # largest crop with the target aspect
    s = rng.uniform(*scale)
    ch, cw = max(1, min(h0, round(ch * s))), max(1, min(w0, round(cw * s)))
    y, x = int(rng.integers(0, h0 - ch + 1)), int(rng.integers(0, w0 - cw + 1))
    crop = photo[y : y + ch, x : x + cw]
    interp = cv2.INTER_AREA if ch > H else cv2.INTER_LINEAR
    return cv2.resize(crop, (W, H), interpolation=interp)


def _jitter(rng: np.random.Generator, img: np.ndarray, grey: bool) -> np.ndarray:
    """Colour jitter of a float32 (H, W, 3) image in [0, 255], as one affine colour map: channel gains g (a
    tint for grey textures), contrast c and brightness b about the mean m, then saturation s.

    y = c g x + (b - c) m with m = mean(g x); z = s y + (1 - s) mean_channels(y).
    """
    g = rng.uniform(0.55, 1.25, 3) if grey else rng.uniform(0.88, 1.12, 3)
    c, b, s = rng.uniform(0.7, 1.2), rng.uniform(0.75, 1.2), rng.uniform(0.6, 1.3)
    mean = g * np.array(cv2.mean(img)[:3])
    sat = s * np.eye(3) + (1 - s) / 3  # (3, 3)
    matrix = np.concatenate([c * sat * g[None], ((b - c) * sat @ mean)[:, None]], 1)  # (3, 4)
    return cv2.transform(img, matrix.astype(np.float32))


def _procedural_background(rng: np.random.Generator, size: tuple[int, int], kind: str) -> np.ndarray:
    """A float32 (H, W, 3) texture: a two-colour gradient plus value noise, stripes or soft blobs."""
    H, W = size
    yy, xx = np.arange(H, dtype=np.float32)[:, None], np.arange(W, dtype=np.float32)[None]
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    t = (xx * math.cos(ang) + yy * math.sin(ang)) / max(H, W)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    if kind == "noise":
        for cells in (3, 7, 17):
            grid = rng.uniform(-1, 1, (cells, cells, 3)).astype(np.float32)
            img += cv2.resize(grid, (W, H), interpolation=cv2.INTER_CUBIC) * rng.uniform(15, 60) / cells**0.3
    elif kind == "stripes":
        period = rng.uniform(0.03, 0.2) * max(H, W)
        b = rng.uniform(0, math.pi)
        wave = np.sin((xx * math.cos(b) + yy * math.sin(b)) * (2 * math.pi / period))
        img += (rng.uniform(-70, 70, 3).astype(np.float32)) * (wave[..., None] > rng.uniform(-0.5, 0.5))
    elif kind == "blobs":
        layer = np.zeros((H, W, 3), np.float32)
        for _ in range(int(rng.integers(5, 25))):
            centre = (int(rng.integers(0, W)), int(rng.integers(0, H)))
            radius = int(rng.uniform(0.03, 0.2) * max(H, W))
            cv2.circle(layer, centre, radius, rng.uniform(-90, 90, 3).tolist(), -1, cv2.LINE_AA)
        img += cv2.GaussianBlur(layer, (0, 0), rng.uniform(1, 0.03 * max(H, W) + 1))
    return img + noise_crop(rng, H, W)[..., None] * rng.uniform(1, 6)


def make_background(
    rng: np.random.Generator, size: tuple[int, int], photo_prob: float
) -> tuple[np.ndarray, str]:
    """(float32 (H, W, 3) in [0, 255], its source): a jittered photo crop with probability `photo_prob`,
    else a procedural texture (source "procedural:<kind>"); sometimes defocused."""
    if rng.random() < photo_prob:
        photos = background_photos()
        name, photo = photos[int(rng.integers(len(photos)))]
        img = crop_photo(rng, photo, size).astype(np.float32)
        if rng.random() < 0.5:
            img = cv2.flip(img, 1)
        img = _jitter(rng, img, grey=name in GREY_PHOTOS)
    else:
        name = PROCEDURAL_KINDS[int(rng.integers(len(PROCEDURAL_KINDS)))]
        img = _procedural_background(rng, size, name)
        name = f"procedural:{name}"
    if rng.random() < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.5))
    return np.ascontiguousarray(np.clip(img, 0, 255), np.float32), name


@dataclass
class Layer:
    """One drawn person: its region's top-left (y0, x0), matte (h, w) float32 and colour (h, w, 3) float32."""

    origin: tuple[int, int]
    alpha: np.ndarray
    fg: np.ndarray

    def full(self, size: tuple[int, int]) -> np.ndarray:
        """The matte on an image-sized (H, W) canvas."""
        out = np.zeros(size, np.float32)
        (y, x), (h, w) = self.origin, self.alpha.shape
        out[y : y + h, x : x + w] = self.alpha
        return out


def visible_alphas(alphas: np.ndarray) -> np.ndarray:
    """alpha_k_visible = alpha_k * prod_{j > k} (1 - alpha_j): people later in the list are in front.

    Args:
        alphas: (K, H, W) float32 mattes before occlusion, back to front.

    Returns:
        (K, H, W) float32; their sum per pixel is 1 - prod_k (1 - alpha_k) <= 1.
    """
    out = np.empty_like(alphas)
    cover = np.zeros(alphas.shape[1:], np.float32)  # 1 - prod_{j > k} (1 - alpha_j)
    for k in range(len(alphas) - 1, -1, -1):
        out[k] = alphas[k] * (1 - cover)
        cover += out[k]
    return out


def composite(layers: Sequence[Layer], alphas_visible: np.ndarray, background: np.ndarray) -> np.ndarray:
    """image = sum_k alpha_k_visible * fg_k + (1 - sum_k alpha_k_visible) * bg, rounded to uint8 (H, W, 3)."""
    image = background * (1 - alphas_visible.sum(0))[..., None]
    for layer, vis in zip(layers, alphas_visible):
        (y, x), (h, w) = layer.origin, layer.alpha.shape
        image[y : y + h, x : x + w] += vis[y : y + h, x : x + w, None] * layer.fg
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


class SyntheticPeople(torch.utils.data.Dataset):
    """Procedural multi-person images with one visible alpha matte per person (a raw-record source).

    Args:
        num_samples: length of the source.
        image_size: (H, W) of every image.
        min_people, max_people: people per image, drawn uniformly (after dropping hidden ones at least
            `min_people` remain: extra people are added until they do).
        seed: with the index, the only source of randomness.
        min_visible_fraction: a person whose visible soft area (summed alpha) is below this fraction of the
            image, or below `min_visible_pixels`, is removed from the scene.
        strand_prob: probability that a person has thin semi-transparent hair strands.
        photo_background_prob: probability of a photo background (else a procedural texture).
        height_range: people's standing height as fractions of the image height.
        group_prob: probability that the people stand side by side in a row (overlapping), like a group photo,
            rather than at independent random places and scales.
        min_visible_pixels: absolute visibility minimum, pixels.
        supersample: sub-pixels per pixel side used to anti-alias the silhouettes.
    """

    def __init__(
        self,
        num_samples: int = 2000,
        image_size: tuple[int, int] | list[int] = (256, 256),
        min_people: int = 1,
        max_people: int = 6,
        seed: int = 0,
        min_visible_fraction: float = 0.01,
        strand_prob: float = 0.5,
        photo_background_prob: float = 0.7,
        height_range: tuple[float, float] | list[float] = (0.25, 0.9),
        group_prob: float = 0.5,
        min_visible_pixels: float = 0.0,
        supersample: int = 4,
    ) -> None:
        super().__init__()
        if not 0 <= min_people <= max_people:
            raise ValueError(
                f"SyntheticPeople: need 0 <= min_people <= max_people, got {min_people}, {max_people}"
            )
        if len(image_size) != 2 or min(image_size) < 8:
            raise ValueError(
                f"SyntheticPeople: image_size must be (H, W) of at least 8 pixels, got {image_size}"
            )
        self.num_samples = int(num_samples)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.min_people, self.max_people = int(min_people), int(max_people)
        self.seed = int(seed)
        self.min_visible_fraction = float(min_visible_fraction)
        self.min_visible_pixels = float(min_visible_pixels)
        self.strand_prob = float(strand_prob)
        self.photo_background_prob = float(photo_background_prob)
        self.height_range = (float(height_range[0]), float(height_range[1]))
        self.group_prob = float(group_prob)
        self.supersample = int(supersample)

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        H, W = self.image_size
        return (
            f"SyntheticPeople(num_samples={self.num_samples}, image_size=({H}, {W}), "
            f"people={self.min_people}..{self.max_people}, seed={self.seed})"
        )

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"SyntheticPeople: index {index} out of range for {self.num_samples} samples")
        index %= self.num_samples
        scene = self.render(index)
        return {"image": scene["image"], "alphas": scene["alphas"], "masks": None, "name": scene["name"]}

    def render(self, index: int) -> dict:
        """The record plus its layers: `background` (H, W, 3) float32, `layers` (list of `Layer`, back to
        front, only the people kept) and `background_source`."""
        rng = np.random.default_rng([self.seed, index])
        H, W = self.image_size
        background, source = make_background(rng, self.image_size, self.photo_background_prob)
        n = int(rng.integers(self.min_people, self.max_people + 1))
        layers = [lay for lay in self._people(rng, n) if lay is not None]
        min_area = max(self.min_visible_pixels, self.min_visible_fraction * H * W, 1e-6)
        for attempt in range(200):
            alphas = visible_alphas(
                np.stack([lay.full((H, W)) for lay in layers]) if layers else np.zeros((0, H, W), np.float32)
            )
            keep = alphas.sum((1, 2)) >= min_area
            if keep.all() and len(layers) >= self.min_people:
                break
            layers = [lay for lay, k in zip(layers, keep) if k]  # fewer occluders: the others only gain
            if len(layers) < self.min_people:
                # one more, well inside the frame: behind the others (nobody loses), after 20 tries in front
                extra = self._person(rng, *self._placement(rng, 1, inside=True)[0])
                if extra is not None:
                    layers.insert(0 if attempt < 20 else len(layers), extra)
        else:
            raise RuntimeError(
                f"SyntheticPeople(seed={self.seed})[{index}]: could not keep {self.min_people} visible "
                f"people; lower min_people or min_visible_fraction ({self.min_visible_fraction})"
            )
        return {
            "image": composite(layers, alphas, background),
            "alphas": alphas,
            "name": f"synthetic_{self.seed}_{index:06d}",
            "background": background,
            "layers": layers,
            "background_source": source,
        }

    def _placement(
        self, rng: np.random.Generator, n: int, inside: bool = False
    ) -> list[tuple[float, float, float]]:
        """(height px, centre x, top y) of `n` people, back to front."""
        H, W = self.image_size
        lo, hi = self.height_range
        if inside:
            h = rng.uniform(max(lo, 0.4 * hi), hi) * H
            return [(h, rng.uniform(0.2, 0.8) * W, rng.uniform(0.0, max(0.0, H - h)))]
        if n >= 2 and rng.random() < self.group_prob:  # a row of people side by side, overlapping
            h0 = rng.uniform(lo, hi) * H
            heights = h0 * rng.uniform(0.85, 1.15, n)
            span = min(W * 1.1, n * h0 * rng.uniform(0.12, 0.3))
            xs = W / 2 + rng.uniform(-0.2, 0.2) * W + np.sort(rng.uniform(-span / 2, span / 2, n))
            top = rng.uniform(-0.04 * h0, 0.6 * H)
            tops = top + (h0 - heights) * 0.3 + rng.normal(0, 0.03 * h0, n)
            order = np.argsort(heights + rng.normal(0, 0.05 * h0, n))  # taller (nearer) ones in front
            return [(heights[i], xs[i], tops[i]) for i in order]
        heights = rng.uniform(lo, hi, n) * H
        xs = rng.uniform(-0.1, 1.1, n) * W
        tops = [rng.uniform(-0.06 * h, H - 0.35 * h) for h in heights]  # heads (~0.13 h) mostly in view
        return list(zip(heights, xs, tops))

    def _person(self, rng: np.random.Generator, height: float, cx: float, top: float) -> Layer | None:
        """Draw one person with its bounding box centred at `cx` and its top at `top`; None if off-image."""
        shapes, look = build_person(rng, height, self.strand_prob)
        x_min, y_min, x_max, _ = extent(shapes)
        shapes = translate(shapes, np.array([cx - (x_min + x_max) / 2, top - y_min]))
        drawn = rasterise(shapes, self.image_size, look.blur, self.supersample)
        if drawn is None:
            return None
        origin, alpha, labels = drawn
        if not alpha.any():
            return None
        return Layer(origin, alpha.astype(np.float32) / 255, paint(rng, labels, alpha, look))

    def _people(self, rng: np.random.Generator, n: int) -> list[Layer | None]:
        return [self._person(rng, *p) for p in self._placement(rng, n)]
