"""Robust reading and writing of photos and mattes, with errors that name the file.

Every image reader in the suite goes through `read_image` and every matte through `read_alpha`, so that the
odd files of real data sets are handled in one place:

- photos: EXIF orientation is applied; grayscale, palette, CMYK, RGBA (composited on black: the colour of a
  transparent pixel carries no information) and 16-bit files all come back as 8-bit RGB;
- mattes: 8-bit and 16-bit single-channel files; RGB(A) mattes use the alpha channel when it is not constant,
  otherwise the first channel; values come back as float32 in [0, 1] (`read_alpha`) or uint8 (`read_alpha8`).

The training path reads photos that it will shrink with `min_size`: a JPEG is then decoded at 1/2, 1/4 or 1/8
of its size in the DCT domain (libjpeg's scaled decoding, through PIL's `draft`) when that still covers the
size asked for, several times faster than a full decode, and what is left to shrink by an integer factor of 2
or more (other formats) is box-averaged by PIL's `reduce` before the pixels reach NumPy (`reduce_to`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(RuntimeError):
    """A file could not be read as an image; the message names the file and the reason."""


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation tag of an opened image, 1 when absent or unreadable. For a PNG, PIL decodes the
    whole file to find an EXIF chunk that may follow the pixels: only photos need their orientation."""
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not make the photo unreadable
        return 1


def _open(path: str | Path, decode: bool = True, min_size: tuple[int, int] | None = None) -> Image.Image:
    """Open an image file; `decode` decodes it now, at a reduced JPEG scale still covering `min_size` (h, w)
    after EXIF orientation when that is given."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    try:
        img = Image.open(path)
        if min_size is not None and img.format == "JPEG":
            h, w = min_size
            if _orientation(img) in (5, 6, 7, 8):  # stored transposed
                h, w = w, h
            img.draft(None, (max(1, int(w)), max(1, int(h))))  # the smallest scale whose size covers (w, h)
        if decode:
            img.load()  # decode now so that truncated files fail here, not later
    # DecompressionBombError: more pixels than PIL's limit (Image.MAX_IMAGE_PIXELS x 2), refused unread
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot read image ({err})") from err
    return img


def reduce_to(img: Image.Image, min_size: tuple[int, int] | None, orientation: int = 1) -> Image.Image:
    """`img` box-averaged by the largest integer factor (2 or more) that keeps it at least `min_size` (h,
    w, in the frame of EXIF `orientation`), PIL's `reduce` (partial blocks at the right and bottom edges
    averaged as they are); as it is when no such factor exists."""
    if min_size is None or img.mode not in ("L", "RGB"):
        return img
    h, w = min_size
    if orientation in (5, 6, 7, 8):  # stored transposed
        h, w = w, h
    factor = min(img.size[0] // max(1, int(w)), img.size[1] // max(1, int(h)))
    return img.reduce(factor) if factor >= 2 else img


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale 16-bit or float data to 8 bits; 8-bit data is returned as it is."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16 or (np.issubdtype(arr.dtype, np.integer) and arr.max(initial=0) > 255):
        return np.round(arr.astype(np.float64) / 65535.0 * 255.0).clip(0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        return np.round(arr.astype(np.float64) * scale).clip(0, 255).astype(np.uint8)
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    return arr.clip(0, 255).astype(np.uint8)


def read_image(path: str | Path, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a photo as RGB uint8 (H, W, 3), EXIF orientation applied.

    With `min_size` (h, w), the photo may come back smaller than stored (a JPEG decoded at 1/2, 1/4 or 1/8
    scale, then `reduce_to`), but never below (h, w) (unless the photo itself is smaller): for callers that
    resize it down to (h, w).
    """
    img = _open(path, min_size=min_size)
    if min_size is not None:
        img = reduce_to(img, min_size, _orientation(img))
    try:
        ImageOps.exif_transpose(img, in_place=True)  # not a copy when there is nothing to turn
    except Exception:  # a broken EXIF block must not make the photo unreadable
        pass
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = _to_uint8(np.asarray(img))
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA")).astype(np.float32)
        rgb = rgba[..., :3] * (rgba[..., 3:] / 255.0)
        return np.round(rgb).astype(np.uint8)
    # a writable copy (torch.from_numpy warns on read-only arrays); an RGB photo is copied once, not twice
    return np.array(img if img.mode == "RGB" else img.convert("RGB"))


def read_alpha8(path: str | Path, factor: int = 1) -> np.ndarray:
    """Read a matte as uint8 (H, W) in [0, 255]: 8-bit files as stored, others rounded from `read_alpha`.

    `factor` > 1: an 8-bit matte comes back box-averaged by that integer factor (PIL's `reduce`, partial
    blocks at the right and bottom averaged as they are), as `reduce_to` and JPEG's scaled decoding shrink
    its photo; other mattes at their size.
    """
    img = _open(path)
    if img.mode == "L":
        return np.asarray(img.reduce(factor) if factor > 1 else img)
    return np.round(_alpha_values(img) * 255.0).astype(np.uint8)


def read_alpha(path: str | Path) -> np.ndarray:
    """Read a matte as float32 (H, W) in [0, 1]; 16-bit and RGBA files are handled (see module doc)."""
    return _alpha_values(_open(path))


def _alpha_values(img: Image.Image) -> np.ndarray:
    """An opened matte as float32 (H, W) in [0, 1] (see the module doc)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.float64)
        peak = 65535.0 if arr.max(initial=0) > 255 or img.mode.startswith("I;16") else 255.0
        return (arr / peak).clip(0, 1).astype(np.float32)
    if img.mode == "F":
        arr = np.asarray(img).astype(np.float32)
        return (arr / 255.0 if arr.max(initial=0) > 1.0 else arr).clip(0, 1)
    if img.mode in ("RGBA", "LA"):
        arr = np.asarray(img)
        alpha = arr[..., -1]
        chan = alpha if alpha.min() != alpha.max() else arr[..., 0]
        return chan.astype(np.float32) / 255.0
    if img.mode == "1":
        return np.asarray(img).astype(np.float32)
    if img.mode != "L":
        img = img.convert("RGB")
        arr = np.asarray(img)[..., 0]
    else:
        arr = np.asarray(img)
    return arr.astype(np.float32) / 255.0


def image_size(path: str | Path, oriented: bool = True) -> tuple[int, int]:
    """(H, W) of an image file, after EXIF orientation unless `oriented=False` (mattes: the stored size, read
    from the header alone; see `_orientation`)."""
    img = _open(path, decode=False)
    w, h = img.size
    return (w, h) if oriented and _orientation(img) in (5, 6, 7, 8) else (h, w)


def write_alpha(path: str | Path, alpha: np.ndarray) -> None:
    """Write a matte in [0, 1] (H, W) as an 8-bit grayscale PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8), mode="L").save(path)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside a folder, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


@dataclass(frozen=True)
class ImageHeader:
    """What the header of an image file says, read without decoding the pixels."""

    path: Path
    size: tuple[int, int]  # (H, W) after EXIF orientation: the frame the mattes must be in
    stored_size: tuple[int, int]  # (H, W) of the pixels as stored in the file
    mode: str  # PIL mode: "RGB", "L", "CMYK", "RGBA", "I;16", "P", ...
    format: str | None  # "JPEG", "PNG", ...
    orientation: int  # EXIF orientation tag, 1 when absent


def read_header(path: str | Path, oriented: bool = True) -> ImageHeader:
    """Read an image's size, mode and EXIF orientation from its header only (PIL opens files lazily);
    `oriented=False` (mattes, masks) takes orientation 1 without reading EXIF, which for a PNG would decode
    the whole file (see `_orientation`)."""
    img = _open(path, decode=False)
    orientation = _orientation(img) if oriented else 1
    w, h = img.size
    size = (w, h) if orientation in (5, 6, 7, 8) else (h, w)
    return ImageHeader(Path(path), size, (h, w), img.mode, img.format, orientation)


def is_truncated(path: str | Path, image_format: str | None) -> bool:
    """Whether a JPEG or PNG file is cut short, decided without decoding it unless its tail looks wrong.

    A JPEG must end with its end-of-image marker and a PNG with its IEND chunk. Some cameras append data after
    the marker, so a missing marker is confirmed by a full decode before the file is called truncated.
    """
    path = Path(path)
    markers = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND"}
    marker = markers.get(image_format or "")
    if marker is None:
        return False
    with path.open("rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 4096))
        tail = fh.read()
    if marker in tail:
        return False
    try:
        _open(path, decode=True)
    except ImageReadError:
        return True
    return False
