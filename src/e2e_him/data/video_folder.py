"""Video instance matting sets on disk: V-HIM60 (MaGGIe) and any set in its layout, for evaluation.

    <root>/<split>/fgr/<video>/<frame>.jpg              the frames (optional: only pictures need them)
    <root>/<split>/pha/<video>/<frame>/<inst>.png       one matte per person and frame
    <root>/<split>/pha/<video>/<frame>.png              or one matte per frame (single-person sets)

V-HIM60 (MaGGIe's `tools/synthesize_video_him.py`) names videos and frames by 5-digit zero-padded 0-based
numbers (`00000`, `00000.jpg`) and people by 2-digit numbers (`00.png`), with splits `comp_easy`,
`comp_medium`, `comp_hard` and 30 frames a video. Nothing here assumes those names: frames and people are
whatever the folders hold, ordered by the numbers in their names (`natural_key`), and a prediction is
matched to a frame by the frame's name, numbers compared by value (`frame_key`: "7" is frame "00007").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from e2e_him.data.checks import Problem
from e2e_him.data.io import list_images
from e2e_him.data.readers import natural_key

SINGLE = "00"  # the person name of a one-matte-per-frame layout


def frame_key(stem: str) -> int | str:
    """How frames (and people) are matched across trees: numeric names by value, others as they are."""
    return int(stem) if stem.isdigit() else stem


def _subdirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )


def index_frames(video_dir: Path) -> dict[str, dict[str, Path]]:
    """{frame stem: {person stem: matte file}} of one video's matte folder, in frame order.

    A frame is a sub-folder of per-person mattes, or a single image file (one person, named `SINGLE`).
    """
    frames: dict[str, dict[str, Path]] = {}
    if not video_dir.is_dir():
        return frames
    for sub in _subdirs(video_dir):
        frames[sub.name] = {f.stem: f for f in sorted(list_images(sub), key=lambda p: natural_key(p.stem))}
    for f in list_images(video_dir):
        frames.setdefault(f.stem, {SINGLE: f})
    return dict(sorted(frames.items(), key=lambda kv: natural_key(kv[0])))


@dataclass
class Frame:
    """One frame of a video: its name, its photo (None if absent) and its people's matte files."""

    name: str
    image: Path | None
    alphas: dict[str, Path]


@dataclass
class Video:
    """One video: name in reports ("<split>/<video>" when several splits are read), split, frames in order."""

    name: str
    split: str | None
    folder: str
    frames: list[Frame] = field(default_factory=list)

    def people(self) -> list[str]:
        """Every person name that appears in some frame, in natural order."""
        names = {p for f in self.frames for p in f.alphas}
        return sorted(names, key=natural_key)


class VideoInstanceFolder:
    """Videos with per-frame, per-person mattes in the V-HIM60 layout (see the module doc).

    Args:
        root: the data set folder holding the split folders (or `fgr/` and `pha/` itself).
        split: a split folder ("comp_medium"), a list, or None for every sub-folder holding `alpha_dir`.
        frame_dir: folder of the frames ("fgr").
        alpha_dir: folder of the mattes ("pha").
        eval_metrics: metric families `e2e_him.eval` uses with `metrics=auto`.

    Attributes:
        videos: the videos, sorted by split then name.
        problems: frames without mattes, matte frames without a photo.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | Sequence[str] | None = None,
        frame_dir: str = "fgr",
        alpha_dir: str = "pha",
        eval_metrics: Sequence[str] | None = None,
    ):
        self.root = Path(root)
        self.frame_dir, self.alpha_dir = frame_dir, alpha_dir
        self.eval_metrics = list(eval_metrics) if eval_metrics else None
        self.desc = f"video folder {self.root}" + (f" split {split}" if split else "")
        if split is None:
            splits: list[str | None] = [s.name for s in _subdirs(self.root) if (s / alpha_dir).is_dir()]
            if not splits and (self.root / alpha_dir).is_dir():
                splits = [None]
        else:
            splits = [split] if isinstance(split, str) else list(split)
        if not splits:
            raise FileNotFoundError(f"{self.root}: no split folder holding {alpha_dir}/ (V-HIM60 layout)")
        self.splits = splits
        self.videos: list[Video] = []
        self.problems: list[Problem] = []
        for s in splits:
            base = self.root / s if s else self.root
            if not (base / alpha_dir).is_dir():
                raise FileNotFoundError(f"{base / alpha_dir}: split {s!r} has no {alpha_dir}/ folder")
            for vdir in _subdirs(base / alpha_dir):
                self.videos.append(self._video(base, s, vdir.name, multi=len(splits) > 1))

    def _video(self, base: Path, split: str | None, name: str, multi: bool) -> Video:
        video = Video(f"{split}/{name}" if multi and split else name, split, name)
        photos = (
            {p.stem: p for p in list_images(base / self.frame_dir / name)}
            if (base / self.frame_dir / name).is_dir()
            else {}
        )
        for stem, people in index_frames(base / self.alpha_dir / name).items():
            photo = photos.get(stem)
            if photo is None and photos:
                self.problems.append(
                    Problem(base / self.alpha_dir / name / stem, "mattes without a frame image", video.name)
                )
            video.frames.append(Frame(stem, photo, people))
        have = {f.name for f in video.frames}
        for stem in sorted(set(photos) - have, key=natural_key):
            self.problems.append(Problem(photos[stem], "frame without mattes: not scored", video.name))
        return video

    def __len__(self) -> int:
        return len(self.videos)

    def __repr__(self) -> str:
        return f"VideoInstanceFolder({self.desc!r}, {len(self)} videos)"

    def prediction_candidates(self, pred_root: Path, video: Video) -> list[Path]:
        """The folders where a video's predicted mattes may be, in the order they are tried.

        `<pred>/<split>/pha/<video>` (the same tree as the ground truth), `<pred>/<split>/<video>` (MaGGIe's
        `tools/eval_baseline.py`), `<pred>/pha/<video>` (our `predict` on one split), `<pred>/<video>`.
        """
        pred_root = Path(pred_root)
        candidates = []
        if video.split:
            candidates += [
                pred_root / video.split / self.alpha_dir / video.folder,
                pred_root / video.split / video.folder,
            ]
        return [*candidates, pred_root / self.alpha_dir / video.folder, pred_root / video.folder]

    def prediction_dir(self, pred_root: Path, video: Video) -> Path | None:
        """The first of `prediction_candidates` that exists (the video's predicted mattes), or None."""
        return next((c for c in self.prediction_candidates(pred_root, video) if c.is_dir()), None)
