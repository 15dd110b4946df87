"""Data sets on disk as map-style sources of raw records (contracts section 1; layouts in docs/data.md).

- `InstanceFolder`: `images/<stem>.jpg` + `alphas/<stem>/NN.png` (HIM2K and most instance-matting tools),
  optionally split into `images/<split>/` + `alphas/<split>/<stem>/`.
- `HIM100K`: `<root>/{real,synthetic}/` parts, each an instance folder with optional `masks/` and
  `boxes.json`, and optional split lists `<root>/<split>.txt`.
- `SingleMatte`: one matte per image (P3M-10k, PPM-100, RWP-636 and `images/` + `alphas/<stem>.png`).

Sources only index file names when built; `checks.check_source` reads headers and the records are decoded on
demand in `__getitem__`, so that a data loader's workers do the decoding.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from e2e_him.data.checks import BadSampleError, Entry, Problem
from e2e_him.data.composite import resize_image, resize_stack
from e2e_him.data.io import IMAGE_SUFFIXES, image_size, list_images, read_alpha, read_alpha8, read_image

log = logging.getLogger(__name__)

# (image folder, matte folder) pairs of the single-matte benchmarks, tried in this order.
SINGLE_MATTE_LAYOUTS = (
    ("image", "alpha"),  # RWP-636 (RealWorldPortrait-636)
    ("image", "matte"),  # PPM-100
    ("images", "alphas"),  # p3m_pseudo fixture, generic
    ("images", "mattes"),
    ("blurred_image", "mask"),  # P3M-10k train/ and validation/P3M-500-P/
    ("original_image", "mask"),  # P3M-10k validation/P3M-500-NP/
    ("original", "mask"),  # AM-2k style
    ("image", "mask"),
    ("images", "masks"),
)


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: "2" < "10", "01" == position 1."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t)


def _files_by_stem(folder: Path, problems: list[Problem]) -> dict[str, Path]:
    """Image files directly in `folder` by stem; a second file with the same stem is reported."""
    found: dict[str, Path] = {}
    for path in list_images(folder):
        if path.stem in found:
            problems.append(
                Problem(path, f"two files with the same stem: {found[path.stem].name} and {path.name}")
            )
            continue
        found[path.stem] = path
    return found


def _matte_files(folder: Path) -> list[Path]:
    """The matte files of one image's folder, one per person, in natural order (0.png, 1.png, ..., 10.png)."""
    return sorted(list_images(folder), key=lambda p: natural_key(p.stem))


def _subdirs(folder: Path) -> list[Path]:
    return (
        sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if folder.is_dir()
        else []
    )


def load_entry(entry: Entry, size: tuple[int, int] | None = None) -> dict:
    """Decode one entry into a raw record; mattes must have the image's (EXIF-oriented) size.

    With `size` (h, w), the record comes at that size (the training path): the photo decoded at a reduced
    JPEG scale g that still covers it (`read_image`'s `min_size`), the 8-bit mattes box-reduced by the same
    g, then both area-averaged to `size` in the full-size frame (`resize_image`, `resize_stack`) before any
    float conversion; masks by nearest neighbour from full size. Without, at the photo's size with the
    mattes' full precision (16-bit files too).
    """
    if size is None:
        image = read_image(entry.image)
        h, w = image.shape[:2]
        alphas = _stack([_matte(read_alpha, p, (h, w), entry.image) for p in entry.alphas], (h, w))
    else:
        h, w = image_size(entry.image)
        image = read_image(entry.image, min_size=size)
        factor = round(h / image.shape[0])  # the photo's reduced decoding: its mattes are reduced alike
        image = resize_image(image, size, full_size=(h, w))
        read = functools.partial(_resized_matte, size=size, factor=factor)
        alphas = _stack([_matte(read, p, (h, w), entry.image) for p in entry.alphas], size)
        alphas = alphas.astype(np.float32) / 255.0
    masks = None
    if entry.masks is not None:
        if len(entry.masks) != len(entry.alphas):
            raise BadSampleError(f"{entry.image}: {len(entry.masks)} masks for {len(entry.alphas)} mattes")
        masks = _stack([_matte(read_alpha, p, (h, w), entry.image, "mask") for p in entry.masks], (h, w))
        masks = masks >= 0.5
        if size is not None:
            masks = resize_stack(masks, size, nearest=True)
    return {"image": image, "alphas": alphas, "masks": masks, "name": entry.name}


def _resized_matte(path: Path, size: tuple[int, int], factor: int) -> tuple[tuple[int, int], np.ndarray]:
    """(its size on disk, the 8-bit matte box-reduced by `factor` then resized to `size` by area averaging
    in the full-size frame, `resize_stack`): one matte at a time, no stack of full-size mattes."""
    stored = image_size(path, oriented=False)
    matte = read_alpha8(path, factor)
    return stored, resize_stack(matte[None], size, full_size=stored)[0]


def _matte(read, path: Path, size: tuple[int, int], image: Path, what: str = "matte") -> np.ndarray:
    """One matte or mask file read by `read`, which must have its image's size (H, W) on disk; `read`
    returns the map or (its size on disk, the map)."""
    matte = read(path)
    stored, matte = matte if isinstance(matte, tuple) else (matte.shape, matte)
    if tuple(stored) != tuple(size):
        raise BadSampleError(
            f"{path}: {what} is {stored[0]}x{stored[1]} but its image {image} is {size[0]}x{size[1]}"
        )
    return matte


def _stack(maps: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """(K, H, W) array of K maps of `size` (float32 [0, 1] or uint8), K >= 0."""
    return np.stack(maps) if maps else np.zeros((0, *size), np.float32)


class IndexedSource:
    """A map-style source over indexed `entries`; `problems` holds what indexing found wrong."""

    def __init__(self, desc: str):
        self.desc = desc
        self.entries: list[Entry] = []
        self.problems: list[Problem] = []

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        return load_entry(self.entries[index])

    def load(self, index: int, size: tuple[int, int] | None = None) -> dict:
        """The record of `index`, resized to `size` (h, w) when given (`load_entry`)."""
        return load_entry(self.entries[index], size)

    def image_size(self, index: int) -> tuple[int, int]:
        """(H, W) of the photo of `index` after EXIF orientation, from its header."""
        return image_size(self.entries[index].image)

    def num_people(self, index: int) -> int:
        """How many mattes the record of `index` holds."""
        return len(self.entries[index].alphas)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.desc!r}, {len(self)} images)"


def _read_boxes(path: Path, problems: list[Problem]) -> dict[str, list]:
    """`boxes.json`: {stem: [[x0, y0, x1, y1], ...]} (one box per matte, same order)."""
    if not path.is_file():
        return {}
    try:
        boxes = json.loads(path.read_text())
        if not isinstance(boxes, dict):
            raise ValueError("expected an object {stem: [[x0, y0, x1, y1], ...]}")
        return boxes
    except (ValueError, OSError) as err:
        problems.append(Problem(path, f"unreadable boxes file ({err})"))
        return {}


def index_instance_folder(
    root: str | Path, split: str | Sequence[str] | None = None, prefix: str = ""
) -> tuple[list[Entry], list[Problem]]:
    """Index an instance folder: `images/[<split>/]<stem>.*` + `alphas/[<split>/]<stem>/NN.png`.

    Args:
        root: folder holding `images/` and `alphas/` (and optionally `masks/`, `boxes.json`).
        split: a sub-folder name (or several) of `images/` and `alphas/`; None reads `images/` itself, or
            every sub-folder when `images/` holds folders only.
        prefix: prepended to every entry name.

    Returns:
        Entries sorted by name, and problems: images without mattes, mattes without images, duplicate stems.
    """
    root = Path(root)
    img_root, alpha_root, mask_root = root / "images", root / "alphas", root / "masks"
    if not img_root.is_dir():
        raise FileNotFoundError(
            f"{img_root}: no images folder; an instance folder holds images/<stem>.jpg and "
            "alphas/<stem>/NN.png"
        )
    if split is None:
        subs = _subdirs(img_root)
        splits: list[str | None] = [s.name for s in subs] if subs and not list_images(img_root) else [None]
    else:
        splits = [split] if isinstance(split, str) else list(split)
    problems: list[Problem] = []
    boxes = _read_boxes(root / "boxes.json", problems)
    entries: list[Entry] = []
    for sub in splits:
        img_dir = img_root / sub if sub else img_root
        alpha_dir = alpha_root / sub if sub else alpha_root
        mask_dir = mask_root / sub if sub else mask_root
        if not img_dir.is_dir():
            have = ", ".join(s.name for s in _subdirs(img_root)) or "none"
            raise FileNotFoundError(f"{img_dir}: split {sub!r} not found (sub-folders of {img_root}: {have})")
        name_prefix = prefix + (f"{sub}/" if len(splits) > 1 else "")
        images = _files_by_stem(img_dir, problems)
        for stem, image in sorted(images.items()):
            folder = alpha_dir / stem
            if folder.is_dir():
                alphas = _matte_files(folder)
            else:
                single = [
                    alpha_dir / f"{stem}{ext}"
                    for ext in IMAGE_SUFFIXES
                    if (alpha_dir / f"{stem}{ext}").is_file()
                ]
                if not single:
                    problems.append(
                        Problem(
                            image,
                            f"image without mattes: no folder {folder} (one NN.png per person)",
                            name_prefix + stem,
                        )
                    )
                    continue
                alphas = single[:1]
            masks = _matte_files(mask_dir / stem) if (mask_dir / stem).is_dir() else None
            box = boxes.get(stem, boxes.get(f"{sub}/{stem}") if sub else None)
            entries.append(Entry(name_prefix + stem, image, alphas, masks, box))
        if alpha_dir.is_dir():
            for path in sorted(alpha_dir.iterdir()):
                is_matte = path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES
                if (
                    is_matte
                    and not path.name.startswith(".")
                    and path.stem not in images
                    and path.name not in images
                ):
                    problems.append(
                        Problem(path, f"mattes without an image: no {img_dir}/{path.stem}.* for them")
                    )
    return entries, problems


class InstanceFolder(IndexedSource):
    """Instance-matting data in `images/` + `alphas/<stem>/NN.png` (HIM2K, coco_persons); see docs/data.md.

    Args:
        root: the folder holding `images/` and `alphas/`.
        split: sub-folder of `images/` and `alphas/` to read (e.g. "natural" or "comp" for HIM2K), a list of
            them, or None (every sub-folder when `images/` holds only folders; names are then prefixed
            "<split>/").
    """

    def __init__(self, root: str | Path, split: str | Sequence[str] | None = None):
        super().__init__(f"instance_folder {root}" + (f" split {split}" if split else ""))
        self.root = Path(root)
        self.entries, self.problems = index_instance_folder(self.root, split)


def _read_split_list(
    path: Path, parts: Sequence[str], problems: list[Problem]
) -> list[tuple[str | None, str]]:
    """Lines of `<split>.txt`: "stem", "part/stem" or a relative image path; blanks and # comments skipped."""
    wanted: list[tuple[str | None, str]] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        bits = Path(line).parts
        part = bits[0] if len(bits) > 1 and bits[0] in parts else None
        wanted.append((part, Path(line).stem))
    if not wanted:
        problems.append(Problem(path, "split list is empty"))
    return wanted


class HIM100K(IndexedSource):
    """HIM-100K-style training data: real and synthetic parts, optional masks, boxes and split lists.

    Layout (docs/data.md): `<root>/<part>/images/<stem>.jpg`, `<root>/<part>/alphas/<stem>/NN.png`, optional
    `<root>/<part>/masks/<stem>/NN.png` and `<root>/<part>/boxes.json`, for each part in `parts`. A split is
    chosen by `<root>/<split>.txt` (one "stem" or "part/stem" per line) when it exists, else by the
    sub-folders `<part>/images/<split>/`; a part with flat `images/` and no list contributes every image.
    Names are "<part>/<stem>".

    Args:
        root: the data set's root folder.
        split: "train", "val", ... or None for every image.
        parts: the part folders to read; missing ones are skipped with a log line.
    """

    def __init__(
        self, root: str | Path, split: str | None = "train", parts: Sequence[str] = ("real", "synthetic")
    ):
        super().__init__(f"him100k {root}" + (f" split {split}" if split else ""))
        self.root = Path(root)
        parts = list(parts)
        present = [p for p in parts if (self.root / p / "images").is_dir()]
        if not present:
            raise FileNotFoundError(
                f"{self.root}: none of the parts {parts} has an images/ folder (see docs/data.md)"
            )
        for p in set(parts) - set(present):
            log.info("%s: part %s is absent, skipped", self.desc, p)
        listing = self.root / f"{split}.txt" if split else None
        if listing is not None and listing.is_file():
            self._index_listed(listing, present)
            return
        for part in present:
            img_root = self.root / part / "images"
            if split is not None and (img_root / split).is_dir():
                use: str | None = split
            elif split is not None and not list_images(img_root):
                log.info("%s: part %s has no images/%s/, skipped", self.desc, part, split)
                continue
            else:
                use = None
                if split is not None:
                    log.warning(
                        "%s: no %s and no %s/%s: every image of %s is used",
                        self.desc,
                        listing,
                        img_root,
                        split,
                        part,
                    )
            entries, problems = index_instance_folder(self.root / part, use, prefix=f"{part}/")
            self.entries += entries
            self.problems += problems
        if not self.entries and not self.problems:
            raise FileNotFoundError(f"{self.root}: no image found for split {split!r} in parts {present}")

    def _index_listed(self, listing: Path, parts: list[str]) -> None:
        wanted = _read_split_list(listing, parts, self.problems)
        by_stem: dict[str, list[tuple[str, Entry]]] = {}
        orphans: list[Problem] = []
        for part in parts:
            entries, problems = index_instance_folder(self.root / part, None, prefix=f"{part}/")
            for e in entries:
                by_stem.setdefault(Path(e.name).name, []).append((part, e))
            orphans += problems
        stems = {stem for _, stem in wanted}
        chosen: dict[str, Entry] = {}
        for lineno, (part, stem) in enumerate(wanted, 1):
            hits = [e for p, e in by_stem.get(stem, []) if part is None or p == part]
            if not hits:
                self.problems.append(
                    Problem(listing, f"line {lineno}: {stem!r} names no usable image in parts {parts}")
                )
            elif len(hits) > 1:
                self.problems.append(
                    Problem(listing, f"line {lineno}: {stem!r} is in several parts; write it as part/stem")
                )
            else:
                chosen[hits[0].name] = hits[0]
        self.entries = sorted(chosen.values(), key=lambda e: e.name)
        # indexing problems matter only for images of this split
        self.problems += [p for p in orphans if p.path.stem in stems or Path(p.name or "").name in stems]


class SingleMatte(IndexedSource):
    """One matte per image (K = 1): P3M-10k, PPM-100, RWP-636, `images/` + `alphas/<stem>.png`.

    Args:
        root: the data set's root folder.
        split: sub-path below `root` holding the image and matte folders, e.g. "train" or
            "validation/P3M-500-NP" for P3M-10k; None for `root` itself.
        image_dir, alpha_dir: folder names below `root[/split]`; None detects the first pair of
            `SINGLE_MATTE_LAYOUTS` that exists (image/alpha, image/matte, images/alphas,
            blurred_image/mask, ...).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        image_dir: str | None = None,
        alpha_dir: str | None = None,
    ):
        super().__init__(f"single_matte {root}" + (f" split {split}" if split else ""))
        self.root = Path(root)
        base = self.root / split if split else self.root
        if not base.is_dir():
            raise FileNotFoundError(f"{base}: folder not found")
        if image_dir is None or alpha_dir is None:
            pairs = [(i, a) for i, a in SINGLE_MATTE_LAYOUTS if (base / i).is_dir() and (base / a).is_dir()]
            pairs = [(i, a) for i, a in pairs if (image_dir in (None, i)) and (alpha_dir in (None, a))]
            if not pairs:
                have = ", ".join(p.name for p in _subdirs(base)) or "none"
                known = ", ".join(f"{i}/+{a}/" for i, a in SINGLE_MATTE_LAYOUTS)
                raise FileNotFoundError(
                    f"{base}: no known image/matte folder pair (found: {have}; known: {known}); "
                    "give data.<split>.image_dir and alpha_dir, or a split such as validation/P3M-500-NP"
                )
            image_dir, alpha_dir = pairs[0]
        img_dir, matte_dir = base / image_dir, base / alpha_dir
        for folder in (img_dir, matte_dir):
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: folder not found")
        if _subdirs(matte_dir) and not list_images(matte_dir):
            raise ValueError(
                f"{matte_dir} holds one folder per image: that is the instance layout, "
                "use data=instance_folder"
            )
        self.image_dir, self.alpha_dir = img_dir, matte_dir
        images = _files_by_stem(img_dir, self.problems)
        mattes = _files_by_stem(matte_dir, self.problems)
        for stem, image in sorted(images.items()):
            if stem in mattes:
                self.entries.append(Entry(stem, image, [mattes[stem]]))
            else:
                self.problems.append(Problem(image, f"image without a matte: no {matte_dir}/{stem}.*", stem))
        for stem in sorted(set(mattes) - set(images)):
            self.problems.append(Problem(mattes[stem], f"matte without an image: no {img_dir}/{stem}.*"))
