"""Files a visitor uploads: photos read within the demo's size limit (huge ones downscaled, with a note),
videos and other files told apart, and safe, distinct names for what is written about them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from e2e_him.data.io import ImageReadError, read_image
from e2e_him.predictor.video import VIDEO_SUFFIXES


class UploadError(ValueError):
    """An uploaded file the demo cannot use; the message says which and why, for the page."""


@dataclass
class Photo:
    """An uploaded photo as the demo predicts it.

    Attributes:
        name: a safe output name (`safe_stem` of the file name, made distinct among the upload's files).
        image: (H, W, 3) uint8 RGB, at most `max_side` pixels on its long side.
        key: a digest of the file's bytes and the size limit (what the caches are keyed on).
        note: why the photo was changed (downscaled), or None.
    """

    name: str
    image: np.ndarray
    key: str
    note: str | None = None


def safe_stem(name: str | Path) -> str:
    """A file name's stem reduced to letters, digits, '.', '_' and '-' (never empty, never hidden)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name)).stem).strip("._")
    return stem or "upload"


def distinct(names: Sequence[str]) -> list[str]:
    """`names` with repeats numbered (`a`, `a_2`, `a_3`), so that two uploads never share an output."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def file_digest(path: str | Path, extra: str = "") -> str:
    """A short SHA-1 of a file's bytes (and `extra`): the same photo uploaded twice has the same key."""
    digest = hashlib.sha1(extra.encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def load_photo(path: str | Path, name: str, max_side: int) -> Photo:
    """Read an upload as a photo; one longer than `max_side` pixels is downscaled (INTER_AREA) with a note.

    Raises:
        UploadError: a video (for the Video tab) or a file that is not an image the suite can read.
    """
    path = Path(path)
    shown = path.name
    if is_video(path):
        raise UploadError(f"{shown} is a video: use the Video tab")
    try:
        image = read_image(path)
    except ImageReadError as err:
        reason = str(err).split(": ", 1)[-1].replace(str(path), shown)  # its temporary folder means nothing
        raise UploadError(f"{shown} is not a photo this demo can read ({reason})") from err
    h, w = image.shape[:2]
    note = None
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        note = (
            f"{shown}: {w} x {h} px is larger than the demo's limit of {max_side} px: downscaled to "
            f"{size[0]} x {size[1]} (`max_side` in conf/demo.yaml)"
        )
    return Photo(name, image, file_digest(path, f"max_side={max_side}"), note)
