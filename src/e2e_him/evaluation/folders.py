"""Reading one image's per-person mattes from a folder, robustly: what cannot be used is reported, not fatal.

A folder `<stem>/` holds one grayscale image per person (`00.png, 01.png, ...` or `0.png, ..., 10.png`, sorted
by number; other names after them, by name). Files of another size than the ground truth are resized to it
when only the scale differs (`RESIZE_RULES`); a file that cannot be decoded, or whose aspect ratio differs,
is left out and reported as a `Problem`, so the person it held counts as missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from e2e_him.data.io import ImageReadError, list_images, read_alpha

RESIZE_RULES = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA}
ASPECT_TOLERANCE = 0.01  # relative difference of H/W below which a size difference is a pure rescale


@dataclass(frozen=True)
class Problem:
    """A file that was skipped or changed while scoring: path, what was wrong, what was done."""

    path: str
    reason: str
    action: str


@dataclass
class Mattes:
    """One image's mattes read from a folder: (K, H, W) float32, file stems, and what went wrong."""

    alphas: np.ndarray
    names: list[str]
    problems: list[Problem] = field(default_factory=list)


def matte_order(path: Path) -> tuple[int, float, str]:
    """Sort key: numbered files by number (0, 1, 2, ..., 10), then any others by name."""
    stem = path.stem
    return (0, float(int(stem)), stem) if stem.isdigit() else (1, 0.0, stem)


def matte_files(folder: Path) -> list[Path]:
    """The matte files of a folder in person order (hidden and non-image files are ignored)."""
    return sorted(list_images(folder), key=matte_order)


def same_aspect(size: Sequence[int], target: Sequence[int], tolerance: float = ASPECT_TOLERANCE) -> bool:
    """Whether (h, w) rescales (H, W): H/W equal up to `tolerance`, or h, w both round(s * H, s * W)."""
    h, w = size
    th, tw = target
    if min(h, w, th, tw) <= 0:
        return False
    if abs(h * tw - th * w) <= tolerance * th * w:
        return True
    # a scale s with |h - s H| <= 1/2 and |w - s W| <= 1/2 (each side rounded to whole pixels)
    low = max((h - 0.5) / th, (w - 0.5) / tw)
    high = min((h + 0.5) / th, (w + 0.5) / tw)
    return low < high


def fit_to(
    alpha: np.ndarray, size: Sequence[int], rule: str, path: Path
) -> tuple[np.ndarray | None, Problem | None]:
    """`alpha` at `size` (H, W): unchanged, resized by `rule`, or None and the reason when it is unusable."""
    size = (int(size[0]), int(size[1]))
    if alpha.shape == size:
        return alpha, None
    have = f"{alpha.shape[0]}x{alpha.shape[1]}"
    want = f"{size[0]}x{size[1]}"
    if rule == "error":
        raise ValueError(
            f"{path}: matte size {have} (HxW) differs from the ground truth's {want} (resize=error)"
        )
    if not same_aspect(alpha.shape, size):
        return None, Problem(
            str(path), f"size {have} is not a rescale of the ground truth's {want}", "skipped"
        )
    if rule not in RESIZE_RULES:
        raise ValueError(f"resize rule {rule!r}: choose from {[*RESIZE_RULES, 'error']}")
    out = cv2.resize(alpha, (size[1], size[0]), interpolation=RESIZE_RULES[rule])
    note = Problem(str(path), f"size {have} differs from the ground truth's {want}", f"resized ({rule})")
    return np.clip(out, 0.0, 1.0).astype(np.float32), note


def read_mattes(
    folder: Path, size: Sequence[int], resize: str = "bilinear", files: Sequence[Path] | None = None
) -> Mattes:
    """Read a folder of per-person mattes at the ground truth's size.

    Args:
        folder: the image's folder of mattes.
        size: (H, W) of the ground truth.
        resize: "bilinear" (default), "nearest" or "area" for files of another scale; "error" raises.
        files: the files to read (default: every matte file of `folder`, in person order).

    Returns:
        `Mattes` with (K, H, W) float32 in [0, 1] for the usable files, their stems, and the problems.
    """
    files = matte_files(folder) if files is None else list(files)
    alphas, names, problems = [], [], []
    for f in files:
        try:
            a = read_alpha(f)
        except ImageReadError as err:
            problems.append(Problem(str(f), f"unreadable ({err})", "skipped"))
            continue
        a, problem = fit_to(a, size, resize, f)
        if problem is not None:
            problems.append(problem)
        if a is not None:
            alphas.append(a)
            names.append(f.stem)
    stack = np.stack(alphas) if alphas else np.zeros((0, int(size[0]), int(size[1])), np.float32)
    return Mattes(stack, names, problems)


def read_instance_folder(folder: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read one image's per-person mattes, strictly: every file must decode and have one size.

    Args:
        folder: `<root>/<stem>/` holding one matte file per person (hidden and non-image files ignored).
        size: the expected (H, W); needed when the folder is empty, checked against every file otherwise.

    Returns:
        (K, H, W) float32 in [0, 1], people in numeric file order; (0, H, W) for an empty folder.

    Raises:
        ValueError: a file's size differs from `size` or from the folder's first file (the message names it),
            or the folder is empty and no size is given.
    """
    folder = Path(folder)
    files = matte_files(folder)
    if not files:
        if size is None:
            raise ValueError(f"{folder}: no mattes and no image size given, cannot build a (0, H, W) array")
        return np.zeros((0, *size), dtype=np.float32)
    alphas = []
    for f in files:
        a = read_alpha(f)
        expected = tuple(size) if size is not None else alphas[0].shape if alphas else a.shape
        if a.shape != tuple(expected):
            raise ValueError(
                f"{f}: matte size {a.shape[0]}x{a.shape[1]} (HxW) differs from the expected "
                f"{expected[0]}x{expected[1]}"
            )
        alphas.append(a)
    return np.stack(alphas)
