"""The demo's photo tab without its page: predict's own path (`Predictor.forward` and `Predictor.people`,
`write_photo`) on uploaded photos, with caches so that a control re-runs only what it changes.

- the network's outputs per (photo, working size), every query decoded (`Predictor.forward` with no
  threshold; a kept query's matte is the same as predict's, models/query_selection.py): a new score threshold
  does not run the network again;
- the people per (photo, working size, threshold): the keep rule and the full-resolution refinement;
- the foreground colours per (photo, working size, threshold, people chosen): a new background only
  composites again.

What a set of photos and settings gives is written once, in predict's layout (predictor/outputs.py), to
`<output>/photos/<digest of photos and settings>/`, and packed as one zip beside it; the `keep_runs` newest
such folders are kept.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from e2e_him.data.io import ImageReadError
from e2e_him.data.transforms import prepare_eval_image
from e2e_him.predictor.backgrounds import Background, parse_colour
from e2e_him.predictor.mattes import Predictor
from e2e_him.predictor.outputs import Extras, write_photo
from e2e_him.web.cache import BytesLru
from e2e_him.web.results import ResultFolders
from e2e_him.web.uploads import Photo, UploadError, distinct, file_digest, load_photo, safe_stem

log = logging.getLogger(__name__)


@dataclass
class PhotoResult:
    """What the page shows for one run: gallery items (file, caption), the zip, and notes for the visitor."""

    overlays: list[tuple[str, str]] = field(default_factory=list)
    mattes: list[tuple[str, str]] = field(default_factory=list)
    composites: list[tuple[str, str]] = field(default_factory=list)
    archive: str | None = None
    notes: list[str] = field(default_factory=list)
    folder: str | None = None
    scores: dict[str, list[float]] = field(default_factory=dict)  # per photo name, people by rank

    def markdown(self) -> str:
        return "\n".join(f"- {note}" for note in self.notes) or "- upload photos to start"


def parse_people(text: str | None) -> tuple[list[int] | None, str | None]:
    """The people chosen for composites and cut-outs, as predict's `ids` (ranks): '0, 2' -> [0, 2]; blank:
    everyone. Returns (ranks or None, a note when the text could not be read)."""
    if text is None or not str(text).strip():
        return None, None
    try:
        ranks = sorted({int(part) for part in str(text).replace(";", ",").split(",") if part.strip()})
    except ValueError:
        return None, f"people {text!r}: not a list of ranks such as 0, 2; composited everyone"
    return ranks, None


def background_spec(colour: str | None, image: str | None) -> str | None:
    """predict's `background=` from the page: the uploaded image, else the colour ('#rrggbb', a name,
    'r,g,b' or CSS 'rgb(r, g, b)'/'rgba(...)' as colour pickers give it), else None (no composite)."""
    if image:
        return str(image)
    if not colour:
        return None
    text = str(colour).strip()
    if text.lower().startswith("rgb"):
        inside = text[text.index("(") + 1 : text.rindex(")")] if "(" in text else ""
        values = [v.strip() for v in inside.split(",")][:3]
        try:
            text = ",".join(str(round(float(v))) for v in values)
        except ValueError:
            return None
    return text if parse_colour(text) is not None else None


class PhotoDemo:
    """Photos in, predict's outputs and the page's galleries out (module doc).

    Args:
        predictor: predict's `Predictor` (its threshold is the page's default; its working size too).
        output: the demo's output folder; this tab writes only under `<output>/photos/`.
        max_side: photos larger than this on their long side are downscaled first (with a note).
        cache_mb: memory for the caches of network outputs, people and foreground colours together.
        keep_runs: result folders (and zips) kept under `<output>/photos/`, newest first.
    """

    def __init__(
        self,
        predictor: Predictor,
        output: Path,
        max_side: int = 4096,
        cache_mb: float = 1024,
        keep_runs: int = 20,
    ) -> None:
        self.predictor = predictor
        self.results = ResultFolders(Path(output) / "photos", "photos", keep_runs)
        self.max_side = int(max_side)
        budget = int(cache_mb * 2**20)
        self.photos = BytesLru(budget // 4)  # (upload path, mtime, bytes) -> Photo
        self.outputs = BytesLru(budget // 4)  # (photo, working size) -> network outputs, meta, seconds
        self.people = BytesLru(budget // 4)  # (photo, size, threshold) -> alphas, scores
        self.foregrounds = BytesLru(budget // 4)  # (photo, size, threshold, people) -> F (H, W, 3)
        self._background: tuple[str, Background] | None = None

    def _photo(self, path: Path, name: str) -> Photo:
        stat = path.stat()
        photo = self.photos.get_or_make(
            (str(path), stat.st_mtime_ns, stat.st_size), lambda: load_photo(path, name, self.max_side)
        )
        return Photo(name, photo.image, photo.key, photo.note)

    def _network(self, photo: Photo, size: int) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            start = time.perf_counter()
            tensor, meta = prepare_eval_image(photo.image, size, photo.name)
            outputs = self.predictor.forward(tensor[None], keep_scores_above=None)
            outputs = {k: v.cpu() for k, v in outputs.items()}
            return {"outputs": outputs, "meta": meta, "seconds": time.perf_counter() - start}

        return self.outputs.get_or_make((photo.key, size), run)

    def _people(self, photo: Photo, size: int, threshold: float) -> tuple[dict[str, np.ndarray], str]:
        """The people of a photo, and how they were found (for the notes)."""
        how = "cached"

        def run() -> dict[str, np.ndarray]:
            nonlocal how
            known = (photo.key, size) in self.outputs
            net = self._network(photo, size)
            how = "network outputs reused" if known else f"network {net['seconds']:.2f} s"
            return self.predictor.people(net["outputs"], [net["meta"]], [photo.image], threshold)[0]

        return self.people.get_or_make((photo.key, size, threshold), run), how

    def _background_of(self, spec: str | None) -> Background | None:
        if spec is None:
            return None
        if self._background is None or self._background[0] != spec:
            self._background = (spec, Background(spec))
        return self._background[1]

    def run(
        self,
        files: Sequence[str | Path] | None,
        score_threshold: float | None = None,
        eval_size: int | None = None,
        background: str | None = None,
        people: str | None = None,
    ) -> PhotoResult:
        """Predict `files` (upload paths) at `score_threshold` and working size `eval_size` (None: the
        predictor's), composite the chosen `people` (ranks as text, blank: all) on `background` (predict's
        `background=`: a colour or an image file; None: no composite). Files that cannot be used are named in
        the notes; the others are still predicted."""
        result = PhotoResult()
        paths = [Path(f) for f in files or []]
        if not paths:
            return result
        threshold = self.predictor.score_threshold if score_threshold is None else score_threshold
        threshold = round(float(threshold), 4)
        size = int(eval_size or self.predictor.eval_size or 640)
        ranks, note = parse_people(people)
        result.notes += [note] if note else []
        try:
            backdrop = self._background_of(background)
        except (FileNotFoundError, ImageReadError, OSError, ValueError) as err:
            result.notes.append(f"background: {err}; no composite")
            background, backdrop = None, None

        photos: list[Photo] = []
        for path, name in zip(paths, distinct([safe_stem(p.name) for p in paths])):
            try:
                photos.append(self._photo(path, name))
            except UploadError as err:
                result.notes.append(f"**skipped:** {err}")
        if not photos:
            return result

        extras = Extras(overlay=True, background=backdrop, ids=ranks, cutout=True)
        settings = {"score_threshold": threshold, "eval_size": size, "people": ranks,
                    "background": None if background is None else self._spec_key(background)}  # fmt: skip
        folder = self.results.folder([[p.key, p.name] for p in photos] + [settings])
        entries = []
        for photo in photos:
            found, how = self._people(photo, size, threshold)
            entries.append((photo, found))
            result.notes.append(f"{photo.name}: {len(found['alphas'])} people at p(human) > {threshold:g} "
                                f"({how}, working size {size} px)")  # fmt: skip
            if photo.note:
                result.notes.append(photo.note)
        if not self.results.ready(folder):
            self._write(folder, entries, extras, settings, threshold, size)
        for photo, found in entries:
            name = photo.name
            result.overlays.append((str(folder / f"{name}_overlay.jpg"), name))
            for rank, score in enumerate(found["scores"]):
                result.mattes.append((str(folder / name / f"{rank:02d}.png"),
                                      f"{name} #{rank:02d} · {score:.2f}"))  # fmt: skip
            if backdrop is not None:
                result.composites.append((str(folder / "composite" / f"{name}.jpg"), name))
            result.scores[name] = [round(float(s), 4) for s in found["scores"]]
        result.archive, result.folder = str(self.results.archive(folder)), str(folder)
        return result

    def _spec_key(self, spec: str) -> str:
        """A background's identity: the colour, or the digest of the image file's bytes."""
        return spec if parse_colour(spec) is not None else file_digest(spec)

    def _foreground(self, photo: Photo, size: int, threshold: float, extras: Extras, alphas: np.ndarray):
        key = (photo.key, size, threshold, None if extras.ids is None else tuple(extras.ids))
        return self.foregrounds.get_or_make(
            key, lambda: extras.foreground(photo.image, alphas, extras.people(np.arange(len(alphas))))
        )

    def _write(self, folder: Path, entries, extras: Extras, settings: dict, threshold: float, size: int):
        """predict's files for every photo and summary.json, written aside and moved in place, then zipped."""
        partial = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        summary: dict[str, Any] = {"settings": settings, "photos": []}
        for photo, found in entries:
            fg = self._foreground(photo, size, threshold, extras, found["alphas"])
            write_photo(partial, photo.name, photo.image, found["alphas"], extras, foreground=fg)
            summary["photos"].append({
                "name": photo.name,
                "size": list(photo.image.shape[1::-1]),
                "note": photo.note,
                "people": [{"rank": k, "score": round(float(s), 4), "matte": f"{photo.name}/{k:02d}.png"}
                           for k, s in enumerate(found["scores"])],
            })  # fmt: skip
        (partial / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
        self.results.pack(folder)
