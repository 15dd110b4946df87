"""What predict writes for a video, and where (V-HIM60's layout, so that `eval pred_dir=` scores it).

- `<output>/pha/<video>/<frame>/<id>.png`: one 8-bit matte per person (frame = 5-digit 0-based index of the
  frame among the video's stored frames, id = track id), and the frame itself as
  `<output>/fgr/<video>/<frame>.jpg`;
- `<output>/<video>_timestamps.csv`: `frame,pts,time_s` of every frame written (its presentation timestamp in
  the stream's time base, and in seconds), so variable frame rates are kept on record;
- `<output>/<video>_overlay.mp4` (people in colour, with the input's sound); with `background=`:
  `<output>/<video>_composite.mp4` (with the sound); with `alpha_video=`: `<output>/<video>_alpha_<id>.mp4`,
  one greyscale matte video per person, as long as the input (black while the person is absent); with
  `cutout=true`: `<output>/cutout/<video>/<frame>/<id>.png` (RGBA). All videos keep the input's frame times
  and size (predictor.encoding).

Ids are written with 2 digits (00-99); a video that issues more than 100 ids has every id name of that video
widened at its end to the digits of its largest id (000-123), so that names sort in id order.

A file that cannot be written stops the run with an `OutputWriteError` naming it; a video whose encoder fails
is an output problem (`problems`): that video keeps its frames so far and everything else goes on."""

from __future__ import annotations

import csv
from array import array
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from e2e_him.predictor.composites import composite, cutout, union
from e2e_him.predictor.encoding import VideoWriter
from e2e_him.predictor.outputs import Extras, OutputWriteError, saving, write_image, write_people
from e2e_him.predictor.video import Frame
from e2e_him.visual.overlays import overlay_instances


class VideoOutputs:
    """The per-frame files and the videos of one input video (module doc); `close` finishes them.

    Args:
        output: the output folder.
        stem: the video's output name.
        time_base: the unit of the frames' timestamps.
        extras: what to write besides the mattes.
        sound: the input file whose sound the overlay and composite carry (None: no sound).
    """

    def __init__(
        self, output: Path, stem: str, time_base: Fraction, extras: Extras, sound: Path | None = None
    ) -> None:
        self.output, self.stem, self.time_base, self.extras = output, stem, time_base, extras
        colour = {"overlay": extras.overlay, "composite": extras.background is not None}
        self.videos = {
            name: VideoWriter(output / f"{stem}_{name}.mp4", time_base, sound=sound)
            for name, wanted in colour.items()
            if wanted
        }
        self.alphas: dict[int, VideoWriter] = {}
        self.timestamps = output / f"{stem}_timestamps.csv"
        self._csv: Any = None
        self._pts = array("q")  # every frame's timestamp so far: a person's matte video starts black
        self._start: float | None = None

    @property
    def mattes(self) -> Path:
        return self.output / "pha" / self.stem

    def write(self, frame: Frame, alphas: np.ndarray, ids: np.ndarray) -> None:
        """Outputs of `frame` with its people's mattes (K, H, W) and track ids (K,)."""
        name = f"{frame.index:05d}"
        image = frame.image
        write_people(self.mattes / name, alphas, ids)
        write_image(self.output / "fgr" / self.stem / f"{name}.jpg", image)
        self._stamp(frame)
        if "overlay" in self.videos:
            self.videos["overlay"].append(overlay_instances(image, alphas, ids=ids), frame.pts)
        keep = self.extras.people(ids)
        if self.extras.alpha_video is not None:
            self._write_alphas(frame, alphas, ids, keep)
            self._pts.append(frame.pts)
        if not self.extras.needs_foreground:
            return
        fg = self.extras.foreground(image, alphas, keep)
        if "composite" in self.videos:
            background = self.extras.background.at(image.shape[:2], frame.time - self._start)
            picture = composite(fg, union(alphas[keep], image.shape[:2]), background)
            self.videos["composite"].append(picture, frame.pts)
        if self.extras.cutout:
            for k in keep:
                write_image(self.output / "cutout" / self.stem / name / f"{int(ids[k]):02d}.png",
                            cutout(fg, alphas[k]))  # fmt: skip

    def _stamp(self, frame: Frame) -> None:
        """The frame's row of the timestamps file."""
        if self._csv is None:
            self._start = frame.time
            self._file = _open_csv(self.timestamps)
            self._csv = csv.writer(self._file)
            self._csv.writerow(["frame", "pts", "time_s"])
        self._csv.writerow([frame.index, frame.pts, f"{frame.time:.6f}"])

    def _write_alphas(self, frame: Frame, alphas: np.ndarray, ids: np.ndarray, keep: list[int]) -> None:
        """This frame of every person's matte video; a person seen for the first time gets a video that is
        black on every earlier frame."""
        blank = np.zeros(frame.image.shape[:2], dtype=np.uint8)
        mattes = {int(ids[k]): np.round(np.clip(alphas[k], 0, 1) * 255).astype(np.uint8) for k in keep}
        for person in sorted(set(mattes) - set(self.alphas)):
            path = self.output / f"{self.stem}_alpha_{person:02d}.mp4"
            self.alphas[person] = writer = VideoWriter(path, self.time_base, alpha=self.extras.alpha_video)
            for pts in self._pts:
                writer.append(blank, pts)
        for person, writer in self.alphas.items():
            writer.append(mattes.get(person, blank), frame.pts)

    def close(self, end_pts: int | None, cut_sound: bool = False, ids_issued: int = 0) -> dict[str, Any]:
        """Finish every video (the last frame lasts until `end_pts`; with `cut_sound` the sound ends there
        too), widen the id names when more than 100 ids were issued, and say what was written: {"timestamps",
        "videos": {name: path}, "alpha_videos": {id: path}, "audio", "id_digits", "problems"}."""
        for writer in self.videos.values():
            writer.close(end_pts, cut_sound)
        for writer in self.alphas.values():
            writer.close(end_pts)
        if self._csv is not None:
            self._file.close()
        digits = max(2, len(str(max(ids_issued - 1, 0))))
        if digits > 2:
            self._widen(digits)
        written = {name: w for name, w in self.videos.items() if w.frames}
        sound = [w.audio for w in written.values() if w.audio]
        return {
            "timestamps": str(self.timestamps) if self._csv is not None else None,
            "videos": {name: str(w.path) for name, w in written.items()},
            "alpha_videos": {f"{i:0{digits}d}": str(w.path) for i, w in self.alphas.items() if w.frames},
            "audio": sound[0] if sound else "not written (no overlay or composite video)",
            "id_digits": digits,
            "problems": [w.problem for w in [*self.videos.values(), *self.alphas.values()] if w.problem],
        }

    def _widen(self, digits: int) -> None:
        """Rename this video's id files and matte videos to `digits`-digit ids (module doc)."""
        folders = [self.mattes, self.output / "cutout" / self.stem]
        files = [f for folder in folders if folder.is_dir() for f in folder.glob("*/*.png")]
        for f in files:
            if f.stem.isdigit() and len(f.stem) < digits:
                _rename(f, f.with_name(f"{int(f.stem):0{digits}d}.png"))
        for person, writer in self.alphas.items():
            target = self.output / f"{self.stem}_alpha_{person:0{digits}d}.mp4"
            if writer.path.exists() and writer.path != target:
                _rename(writer.path, target)
            writer.path = target


def _open_csv(path: Path) -> Any:
    handle: list[Any] = []
    saving(path, lambda p: handle.append(p.open("w", newline="")))
    return handle[0]


def _rename(source: Path, target: Path) -> None:
    try:
        source.rename(target)
    except OSError as err:
        raise OutputWriteError(f"{source}: cannot rename to {target.name} ({err.strerror or err})") from err
