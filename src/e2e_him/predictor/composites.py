"""Per-person composites (the paper's Figs. 7 and 8): chosen people on a new background, and RGBA cut-outs.

The foreground colours F of I = alpha F + (1 - alpha) B are estimated by pymatting's multilevel
`estimate_foreground_ml` (Germer et al., "Fast Multi-Level Foreground Estimation", ICPR 2020) from the photo
and the union of the chosen people's mattes, on the bounding box of that union only; the composite is
alpha F + (1 - alpha) B_new. Every person's cut-out uses the same F with its own matte.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from e2e_him.data.io import read_image

COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "green": (0, 177, 64),  # chroma-key green
    "blue": (0, 71, 187),  # chroma-key blue
    "red": (255, 0, 0),
}


def parse_colour(spec: str) -> tuple[int, int, int] | None:
    """(r, g, b) of a colour name, '#rrggbb' or 'r,g,b'; None when `spec` is none of those."""
    text = spec.strip().lower()
    if text in COLOURS:
        return COLOURS[text]
    if re.fullmatch(r"#[0-9a-f]{6}", text):
        return tuple(int(text[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    parts = text.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
        values = tuple(int(p) for p in parts)
        if all(0 <= v <= 255 for v in values):
            return values  # type: ignore[return-value]
    return None


class Background:
    """A new background: a colour or a photo, given as the predict option `background=`.

    A photo is scaled to cover each frame and centre-cropped (kept for the last size asked).
    """

    def __init__(self, spec: str | Path) -> None:
        self.spec = str(spec)
        self.colour = parse_colour(self.spec)
        self.image: np.ndarray | None = None
        if self.colour is None:
            path = Path(self.spec)
            if not path.is_file():
                raise FileNotFoundError(
                    f"background={self.spec!r} is neither a colour (a name such as green, #00b140 or "
                    "0,177,64) nor an image file"
                )
            self.image = read_image(path)
        self._cache: tuple[tuple[int, int], np.ndarray] | None = None

    def at(self, size: tuple[int, int]) -> np.ndarray:
        """The background as (H, W, 3) uint8 for a frame of `size` (H, W)."""
        if self._cache is not None and self._cache[0] == size:
            return self._cache[1]
        h, w = size
        if self.image is None:
            out = np.empty((h, w, 3), dtype=np.uint8)
            out[:] = self.colour
        else:
            bh, bw = self.image.shape[:2]
            scale = max(h / bh, w / bw)
            nh, nw = max(h, round(bh * scale)), max(w, round(bw * scale))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            big = cv2.resize(self.image, (nw, nh), interpolation=interp)
            y0, x0 = (nh - h) // 2, (nw - w) // 2
            out = np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])
        self._cache = (size, out)
        return out


def chosen(ids: np.ndarray, wanted: Sequence[int] | None) -> np.ndarray:
    """Positions of the people to keep: all when `wanted` is None, else those whose id is in `wanted`."""
    ids = np.asarray(ids)
    if wanted is None:
        return np.arange(len(ids))
    return np.flatnonzero(np.isin(ids, np.asarray(list(wanted))))


@lru_cache(maxsize=1)
def foreground_ml() -> Callable[..., np.ndarray]:
    """pymatting's `estimate_foreground_ml`, loaded from its own module file.

    Importing the `pymatting` package compiles the numba kernels of all its modules (about 30, eagerly typed)
    the first time after installation; that one module holds the 3 kernels it needs, a small part of that
    time (docs/benchmarks.md). Falls back to the package import if a pymatting release moves the file.
    """
    spec = importlib.util.find_spec("pymatting")  # locates the package without running its __init__
    path = Path(spec.origin).parent / "foreground" / "estimate_foreground_ml.py" if spec else None
    if path is not None and path.is_file():
        name = "pymatting.foreground.estimate_foreground_ml"  # its own name: numba's on-disk cache is shared
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        # registered before it runs: numba's cache finds a kernel's module again by that name (and a later
        # `import pymatting` reuses this module)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module.estimate_foreground_ml
    from pymatting import estimate_foreground_ml

    return estimate_foreground_ml


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, margin: int = 16) -> np.ndarray:
    """Foreground colours F (H, W, 3) float32 in [0, 1] of `image` (H, W, 3) uint8 under matte `alpha` (H, W).

    pymatting's `estimate_foreground_ml` on the bounding box of alpha > 0 (plus `margin`); the photo itself
    elsewhere (where alpha is 0 F does not matter).
    """
    estimate_foreground_ml = foreground_ml()
    fg = image.astype(np.float32) / 255.0
    ys, xs = np.nonzero(alpha > 1e-3)
    if not len(ys):
        return fg
    h, w = alpha.shape
    y0, y1 = max(0, ys.min() - margin), min(h, ys.max() + 1 + margin)
    x0, x1 = max(0, xs.min() - margin), min(w, xs.max() + 1 + margin)
    crop = fg[y0:y1, x0:x1].astype(np.float64)
    a = np.clip(alpha[y0:y1, x0:x1], 0.0, 1.0).astype(np.float64)
    fg[y0:y1, x0:x1] = np.clip(estimate_foreground_ml(crop, a), 0.0, 1.0)
    return fg


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """alpha F + (1 - alpha) B: F (H, W, 3) float in [0, 1], alpha (H, W), B (H, W, 3) uint8 -> uint8."""
    a = np.clip(alpha, 0.0, 1.0)[..., None].astype(np.float32)
    out = a * foreground * 255.0 + (1.0 - a) * background.astype(np.float32)
    return np.round(out).clip(0, 255).astype(np.uint8)


def cutout(foreground: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """An RGBA cut-out (H, W, 4) uint8: colours F, opacity alpha."""
    rgb = np.round(foreground * 255.0).clip(0, 255).astype(np.uint8)
    a = np.round(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.concatenate([rgb, a[..., None]], axis=2)


def union(alphas: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The matte of several people together, (K, H, W) -> (H, W), clipped to [0, 1] (zeros when K = 0)."""
    if not len(alphas):
        return np.zeros(shape, dtype=np.float32)
    return np.clip(np.asarray(alphas, dtype=np.float32).sum(0), 0.0, 1.0)
