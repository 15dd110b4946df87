"""Turning a data set on disk and a prediction folder into scoring tasks, and scored rows back into pictures.

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
from e2e_him.data.video_folder import VideoInstanceFolder, frame_key
from e2e_him.metrics.folders import Problem, read_mattes
from e2e_him.metrics.scoring import ImageTask, read_ground_truth
from e2e_him.metrics.video import VideoTask
from e2e_him.metrics.worst import View


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


def image_view(task: ImageTask, title: str, resize: str) -> View:
    """The picture data of one image task: its photo, ground truth and (resized) prediction."""
    gt, _, problems = read_ground_truth(task)
    if problems:
        gt = gt.reshape(0, 1, 1)
    size = gt.shape[-2:]
    if task.pred is not None:
        pred = task.pred
    elif task.pred_folder is not None and Path(task.pred_folder).is_dir():
        pred = read_mattes(Path(task.pred_folder), size, resize).alphas
    else:
        pred = gt[:0]
    return View(title, task.image, gt, pred)


def video_frame_view(task: VideoTask, frame: str, title: str, resize: str) -> View:
    """The picture data of one frame of a video task."""
    name, files, photo = next(f for f in task.frames if f[0] == frame)
    gt_task = ImageTask(name, gt_files=tuple(files[k] for k in sorted(files, key=frame_key)), image=photo)
    view = image_view(gt_task, title, resize)
    if task.pred_dir is not None:
        folder = Path(task.pred_dir)
        match = next(
            (d for d in folder.iterdir() if d.is_dir() and frame_key(d.name) == frame_key(frame)), None
        )
        if match is not None:
            view.pred = read_mattes(match, view.gt.shape[-2:], resize).alphas
    return view


def row_title(row: dict) -> str:
    """A picture title from a per_image.csv row: name, mask set, failures and error."""
    bits = [str(row.get("mask_set", "")), str(row["name"])]
    if "fn_0.5" in row:
        bits.append(f"missed {row['fn_0.5']}, wrong {row['fp_0.5']} @0.5")
    if row.get("MAD_x1e3") is not None:
        bits.append(f"MAD x1e3 {row['MAD_x1e3']:.2f}")
    return " | ".join(b for b in bits if b)
