"""Per-person composites (the paper's Figs. 7 and 8): chosen people on a new background, and RGBA cut-outs.

The foreground colours F of I = alpha F + (1 - alpha) B are estimated by pymatting's multilevel
`estimate_foreground_ml` (Germer et al., "Fast Multi-Level Foreground Estimation", ICPR 2020) from the photo
and the union of the chosen people's mattes, on the bounding box of that union only; the composite is
alpha F + (1 - alpha) B_new. Every person's cut-out uses the same F with its own matte.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np


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
