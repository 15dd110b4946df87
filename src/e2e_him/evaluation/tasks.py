"""Turning a data set on disk and a prediction folder into scoring tasks.

Where a prediction is looked for (the first folder that exists; names are the ground truth's):

- images (`InstanceFolder`, HIM2K): `<pred>/<name>/` (name "<split>/<stem>" with several splits), else
  `<pred>/<split>/<stem>/`, else `<pred>/<stem>/`;
- M-HIM2K mask set S (`MaskSetFolder`): `<pred>/S/` or `<pred>/<S without "masks_matched_">/`, then as above
  inside it, `<split>/<stem>/` or `<stem>/`;
- videos (`VideoInstanceFolder.prediction_dir`): `<pred>/<split>/pha/<video>/`, `<pred>/<split>/<video>/`,
  `<pred>/pha/<video>/`, `<pred>/<video>/`; frames matched by name (numbers by value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from e2e_him.data.checks import Entry
from e2e_him.data.checks import Problem as DataProblem
from e2e_him.data.io import ImageReadError, image_size
from e2e_him.data.mask_sets import MaskSetFolder, image_split, mask_stems
from e2e_him.data.video_folder import VideoInstanceFolder
from e2e_him.evaluation.folders import Problem
from e2e_him.evaluation.scoring import ImageTask
from e2e_him.evaluation.video import VideoTask


def as_problems(problems: Sequence[DataProblem], action: str) -> list[Problem]:
    """Indexing problems of a data source as scoring problems."""
    return [Problem(str(p.path), p.reason, action) for p in problems]


def group_of(name: str) -> str:
    """The split of an image name "<split>/<stem>" ("" for a plain stem)."""
    return name.split("/", 1)[0] if "/" in name else ""


def pred_folder(root: Path, name: str, split: str | None = None) -> Path:
    """The first existing of `root/<name>`, `root/<split>/<stem>`, `root/<stem>`; else `root/<name>`."""
    stem = name.rsplit("/", 1)[-1]
    candidates = [Path(root) / name] + ([Path(root) / split / stem] if split else []) + [Path(root) / stem]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _size(entry: Entry) -> tuple[int, int] | None:
    try:
        return image_size(entry.image)
    except ImageReadError:
        return None


def entry_task(entry: Entry, pred_root: Path, subset: tuple[str, ...] | None = None) -> ImageTask:
    """The scoring task of one indexed image (photo + matte files)."""
    return ImageTask(
        entry.name,
        pred_folder=pred_folder(pred_root, entry.name, image_split(entry)),
        gt_files=tuple(Path(a) for a in entry.alphas),
        size=_size(entry) if not entry.alphas else None,
        subset=subset,
        group=group_of(entry.name),
        image=Path(entry.image),
    )


def mask_set_root(pred_dir: Path, mask_set: str, prefix: str) -> Path | None:
    """The prediction folder of one mask set: `<pred>/<set>` or `<pred>/<set without prefix>`."""
    for c in (Path(pred_dir) / mask_set, Path(pred_dir) / mask_set.removeprefix(prefix)):
        if c.is_dir():
            return c
    return None


def mask_set_tasks(source: MaskSetFolder, pred_dir: Path) -> tuple[dict[str, list[ImageTask]], list[Problem]]:
    """Tasks per mask set (sets without a prediction folder are left out and reported).

    Each task carries its image's mask files in the set (none when the set has no folder for it) and, as
    the people MaGGIe's errors score, their stems; whether the masks are all empty (MaGGIe then skips the
    image) is decided in the scoring workers, which decode them.
    """
    problems = as_problems(source.problems, "image not scored")
    per_set: dict[str, list[ImageTask]] = {}
    for s in source.mask_sets:
        root = mask_set_root(pred_dir, s, source.mask_prefix)
        if root is None:
            problems.append(
                Problem(str(Path(pred_dir) / s), "no prediction folder for this mask set", "set left out")
            )
            continue
        tasks = []
        for entry in source.entries:
            files, found = source.mask_files(s, entry)  # listed only: the workers decode them
            problems += as_problems(found, "mask ignored")
            files = files or ()
            tasks.append(replace(entry_task(entry, root, mask_stems(files)), masks=files))
        per_set[s] = tasks
    return per_set, problems


def video_tasks(source: VideoInstanceFolder, pred_dir: Path) -> tuple[list[VideoTask], list[Problem]]:
    """One task per video, with its prediction folder (None when none of the layouts exists) and the folders
    that were looked in (`VideoInstanceFolder.prediction_candidates`)."""
    problems = as_problems(source.problems, "frame not scored")
    tasks = []
    for v in source.videos:
        frames = tuple((f.name, dict(f.alphas), f.image) for f in v.frames)
        looked_in = tuple(source.prediction_candidates(pred_dir, v))
        tasks.append(VideoTask(v.name, v.split or "", frames, source.prediction_dir(pred_dir, v), looked_in))
    return tasks, problems
