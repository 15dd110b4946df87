"""Tiny data sets written on disk by the data tests (a few 40 x 48 px images each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

H, W = 40, 48


def person(top: int, left: int, height: int, width: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """A uint8 matte: an opaque rectangle with a one-pixel soft (128) rim."""
    a = np.zeros(size, np.uint8)
    a[max(top - 1, 0) : top + height + 1, max(left - 1, 0) : left + width + 1] = 128
    a[top : top + height, left : left + width] = 255
    return a


def photo(seed: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def write_instance_image(
    root: Path,
    stem: str,
    mattes: list[np.ndarray],
    split: str | None = None,
    padded: bool = True,
    image: np.ndarray | None = None,
    suffix: str = ".png",
    masks: bool = False,
) -> Path:
    """images/[split/]<stem><suffix> + alphas/[split/]<stem>/NN.png (+ masks/...)."""
    sub = Path(split) if split else Path()
    img_path = root / "images" / sub / f"{stem}{suffix}"
    img_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image if image is not None else photo(len(stem))).save(img_path)
    folders = ["alphas", "masks"] if masks else ["alphas"]
    for folder in folders:
        d = root / folder / sub / stem
        d.mkdir(parents=True, exist_ok=True)
        for k, m in enumerate(mattes):
            name = f"{k:02d}.png" if padded else f"{k}.png"
            Image.fromarray(m if folder == "alphas" else np.where(m > 128, 255, 0).astype(np.uint8)).save(
                d / name
            )
    return img_path


def three_people() -> list[np.ndarray]:
    return [person(2, 2, 10, 8), person(20, 10, 15, 12), person(5, 30, 30, 15)]
