"""M-HIM2K (MaGGIe, CVPR 2024): HIM2K's photos and mattes plus the guidance masks of ten Mask R-CNN models.

Layout (MaGGIe's `HIM2K_M-HIM2K`, docs/data.md):

    <root>/images/<split>/<stem>.jpg
    <root>/alphas/<split>/<stem>/NN.png                      one matte per person
    <root>/masks_matched_<model>/<split>/<stem>/NN.png       <model>'s mask of person NN (same file name)

with splits `comp` and `natural` and models r50_c4_3x, r50_dc5_3x, r50_fpn_3x, r101_fpn_3x, r101_c4_3x,
x101_fpn_3x, r50_fpn_400e, regnetx_400e, regnety_400e, r101_fpn_400e (MaGGIe's `tools/gen_mask`). A mask
set is a guidance input of mask-guided methods; a method is run once per set and scored on each. MaGGIe's
loader scores, for a set, the people that have a mask file in it, and skips an image whose set folder is
missing or whose masks are all empty (`masks_for`; when scoring, the main process only lists the masks,
`mask_files`, and the workers decode them, `any_mask_drawn`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from e2e_him.data.checks import Entry, Problem
from e2e_him.data.io import ImageReadError, list_images, read_alpha
from e2e_him.data.readers import index_instance_folder, natural_key

MASK_PREFIX = "masks_matched_"


def image_split(entry: Entry) -> str | None:
    """The split folder of an indexed image: `images/<split>/<stem>.jpg` -> "<split>" (None for `images/`)."""
    parent = Path(entry.image).parent
    return parent.name if parent.parent.name == "images" else None


class MaskSetFolder:
    """HIM2K-style instance folder plus mask sets `<root>/<prefix><model>/<split>/<stem>/NN.png`.

    Args:
        root: the folder holding `images/`, `alphas/` and the mask-set folders.
        split: a sub-folder of `images/` (e.g. "natural"), a list, or None for every sub-folder (names are
            then "<split>/<stem>").
        mask_sets: "all" (every `<prefix>*` folder of root), a list of names (with or without the prefix),
            or an empty list (no mask sets: plain HIM2K).
        mask_prefix: the mask-set folders' prefix.
        eval_metrics: metric families `e2e_him.eval` uses with `metrics=auto`.

    Attributes:
        entries: one `Entry` per image (photo, mattes), sorted by name.
        problems: what indexing found wrong (images without mattes, mattes without images).
        mask_sets: the mask-set folder names, sorted.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | Sequence[str] | None = None,
        mask_sets: str | Sequence[str] = "all",
        mask_prefix: str = MASK_PREFIX,
        eval_metrics: Sequence[str] | None = None,
    ):
        self.root = Path(root)
        self.desc = f"mask sets {self.root}" + (f" split {split}" if split else "")
        self.entries, problems = index_instance_folder(self.root, split)
        self.problems: list[Problem] = list(problems)
        self.split = split
        self.mask_prefix = mask_prefix
        self.eval_metrics = list(eval_metrics) if eval_metrics else None
        found = sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name.startswith(mask_prefix))
        if mask_sets == "all":
            self.mask_sets = found
        else:
            wanted = [mask_sets] if isinstance(mask_sets, str) else list(mask_sets)
            names = [w if w.startswith(mask_prefix) else mask_prefix + w for w in wanted]
            absent = [n for n in names if n not in found]
            if absent:
                raise FileNotFoundError(
                    f"{self.root}: mask sets {absent} not found (present: {', '.join(found) or 'none'})"
                )
            self.mask_sets = names

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"MaskSetFolder({self.desc!r}, {len(self)} images, {len(self.mask_sets)} mask sets)"

    def mask_folder(self, mask_set: str, entry: Entry) -> Path:
        """`<root>/<mask_set>/<split>/<stem>` of an entry."""
        split = image_split(entry)
        stem = entry.name.rsplit("/", 1)[-1]
        base = self.root / mask_set
        return base / split / stem if split else base / stem

    def mask_files(self, mask_set: str, entry: Entry) -> tuple[tuple[Path, ...] | None, list[Problem]]:
        """The guidance-mask files `mask_set` has for an image, listed but not decoded (cheap).

        Returns (files, problems): files sorted like MaGGIe (`sorted(os.listdir(...))`), None when the set has
        no folder for the image; a mask file without a matte of the same name is reported and left out.
        Whether the masks are all empty is decided by `any_mask_drawn`, in the scoring workers.
        """
        folder = self.mask_folder(mask_set, entry)
        if not folder.is_dir():
            return None, []
        mattes = {Path(a).stem for a in entry.alphas}
        files, problems = [], []
        for f in sorted(list_images(folder), key=lambda p: p.name):
            if f.stem in mattes:
                files.append(f)
            else:
                problems.append(
                    Problem(f, f"mask without a matte of the same name in {entry.name}", entry.name)
                )
        return tuple(files), problems

    def masks_for(self, mask_set: str, entry: Entry) -> tuple[tuple[str, ...] | None, list[Problem]]:
        """The people (matte file stems) `mask_set` gives masks for, as MaGGIe's loader selects them.

        Returns (stems, problems): stems in natural order (`mask_stems`); None when MaGGIe skips the image:
        no folder for it in the set, or every mask empty (`any_mask_drawn`, which decodes them).
        """
        files, problems = self.mask_files(mask_set, entry)
        if files is None:
            return None, problems
        drawn, unreadable = any_mask_drawn(files, entry.name)
        return (mask_stems(files) if drawn else None), problems + unreadable


def mask_stems(files: Sequence[Path]) -> tuple[str, ...]:
    """The people (file stems) of an image's guidance-mask files, in natural order."""
    return tuple(sorted((Path(f).stem for f in files), key=natural_key))


def any_mask_drawn(files: Sequence[Path], name: str | None = None) -> tuple[bool, list[Problem]]:
    """Whether some guidance mask of an image has a non-zero pixel; MaGGIe's loader skips the image when
    none has (`batch['mask'].sum() == 0`).

    Decodes the files in order until one has a non-zero pixel; a file that does not decode is reported
    (`name`: the image's) and counts as empty.
    """
    problems = []
    for f in files:
        try:
            if np.any(read_alpha(f) > 0):
                return True, problems
        except ImageReadError as err:
            problems.append(Problem(Path(f), f"unreadable mask ({err})", name))
    return False, problems
