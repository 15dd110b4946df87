"""Tiny M-HIM2K and V-HIM60 trees on disk, with predictions in the layouts other methods write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from e2e_him.data.io import write_alpha

H, W = 40, 60


def box(r0: int, r1: int, c0: int, c1: int, value: float = 1.0, h: int = H, w: int = W) -> np.ndarray:
    a = np.zeros((h, w), np.float32)
    a[r0:r1, c0:c1] = value
    return a


def photo(path: Path, h: int = H, w: int = W, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


# M-HIM2K: image a has people 00 (rows 2-20, cols 2-25) and 01 (rows 20-38, cols 30-58); image b has 00.
PEOPLE = {"a": {"00": box(2, 20, 2, 25), "01": box(20, 38, 30, 58)}, "b": {"00": box(5, 35, 10, 40)}}


def mhim2k_tree(root: Path, pred: Path) -> None:
    """Split natural; mask sets m1 (every person), m2 (a/00 only, no folder for b), m3 (not predicted).

    Predictions: m1: a/00 exact, a/01 at 0.6, b/00 exact; m2 (folder named with the prefix): a/00 exact.
    """
    for stem, people in PEOPLE.items():
        photo(root / "images" / "natural" / f"{stem}.jpg")
        for name, a in people.items():
            write_alpha(root / "alphas" / "natural" / stem / f"{name}.png", a)
            write_alpha(root / "masks_matched_m1" / "natural" / stem / f"{name}.png", a)
            write_alpha(root / "masks_matched_m3" / "natural" / stem / f"{name}.png", a)
    write_alpha(root / "masks_matched_m2" / "natural" / "a" / "00.png", PEOPLE["a"]["00"])
    write_alpha(pred / "m1" / "natural" / "a" / "00.png", PEOPLE["a"]["00"])
    write_alpha(pred / "m1" / "natural" / "a" / "01.png", PEOPLE["a"]["01"] * 0.6)
    write_alpha(pred / "m1" / "natural" / "b" / "00.png", PEOPLE["b"]["00"])
    write_alpha(pred / "masks_matched_m2" / "natural" / "a" / "00.png", PEOPLE["a"]["00"])


FRAMES = 6
FLICKER = (3, box(22, 30, 35, 45))  # frame 3: person 01 drops to 0.5 on these 80 px


def person_frames(k: int) -> list[np.ndarray]:
    """Person 00 walks 2 px right per frame; person 01 stands still."""
    if k == 0:
        return [box(4, 18, 4 + 2 * t, 16 + 2 * t) for t in range(FRAMES)]
    return [box(20, 36, 30, 50) for _ in range(FRAMES)]


def vhim_tree(root: Path, pred: Path, swap_ids: bool = False) -> None:
    """Split comp_easy with videos 00000 (two people) and 00001 (one person, frames 0-3 predicted).

    Predictions of 00000 in our `predict` layout with unpadded frame and person names
    (`<pred>/comp_easy/pha/00000/<t>/<k>.png`), person 01 flickering in frame 3; 00001 in MaGGIe's
    eval_baseline layout (`<pred>/comp_easy/00001/<frame>/<k>.png`), exact, but frames 4 and 5 missing.
    `swap_ids` names the predicted people 1 and 0 instead of 0 and 1.
    """
    split = root / "comp_easy"
    for t in range(FRAMES):
        frame = f"{t:05d}"
        photo(split / "fgr" / "00000" / f"{frame}.jpg", seed=t)
        photo(split / "fgr" / "00001" / f"{frame}.jpg", seed=10 + t)
        for k in range(2):
            a = person_frames(k)[t]
            write_alpha(split / "pha" / "00000" / frame / f"{k:02d}.png", a)
            p = a.copy()
            if k == 1 and t == FLICKER[0]:
                p[FLICKER[1] > 0] = 0.5
            name = str(1 - k) if swap_ids else str(k)
            write_alpha(pred / "comp_easy" / "pha" / "00000" / str(t) / f"{name}.png", p)
        single = person_frames(1)[t]
        write_alpha(split / "pha" / "00001" / frame / "00.png", single)
        if t < 4:
            write_alpha(pred / "comp_easy" / "00001" / frame / "00.png", single)
