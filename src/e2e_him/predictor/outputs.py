"""What predict writes, and where.

Photos (HIM2K's per-instance layout): `<output>/<stem>/NN.png` one 8-bit matte per person (NN = rank by
score), `<output>/<stem>_overlay.jpg`; with `background=`: `<output>/composite/<stem>.jpg`; with
`cutout=true`: `<output>/cutout/<stem>/NN.png` (RGBA).

Videos (V-HIM60's layout, so that `eval pred_dir=` scores them): `<output>/pha/<video>/<frame>/<id>.png`
(frame = 5-digit 0-based index of the frame in the video, id = 2-digit track id) and the frame itself as
`<output>/fgr/<video>/<frame>.jpg`; `<output>/<video>_overlay.mp4`; with `background=`:
`<output>/<video>_composite.mp4` (with the input's sound); with `cutout=true`:
`<output>/cutout/<video>/<frame>/<id>.png`; with `alpha_videos=true`: `<output>/<video>_alpha_<id>.mp4`, each
person's matte as a grey video over every frame (black where the person is absent).

A file that cannot be written stops the run with an `OutputWriteError` naming it; what was written stays.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from e2e_him.data.io import write_alpha
from e2e_him.predictor.composites import Background, chosen, composite, cutout, estimate_foreground, union
from e2e_him.predictor.video import LazyVideoWriter, add_sound
from e2e_him.visual.overlays import overlay_instances


class OutputWriteError(OSError):
    """An output file or folder could not be written; the message names it."""


def check_output_folder(output: Path) -> Path:
    """Create `output` if needed and prove that a file can be written in it (before any work is done)."""
    try:
        if output.exists() and not output.is_dir():
            raise OutputWriteError(f"output={output} is a file, not a folder")
        output.mkdir(parents=True, exist_ok=True)
        probe = output / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OutputWriteError:
        raise
    except OSError as err:
        raise OutputWriteError(f"output={output}: cannot write there ({err.strerror or err})") from err
    return output


def _saving(path: Path, save) -> None:
    """Run `save(path)` after creating its folder; an OSError becomes an OutputWriteError naming `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save(path)
    except OSError as err:
        raise OutputWriteError(f"{path}: cannot write ({err.strerror or err})") from err


def write_people(folder: Path, alphas: np.ndarray, ids: np.ndarray | None = None) -> None:
    """One 8-bit PNG per person: `folder/NN.png` (NN = position, or the track id when `ids` is given); the
    folder is made even for no people (an empty folder: nobody found)."""
    _saving(folder, lambda p: p.mkdir(exist_ok=True))
    names = range(len(alphas)) if ids is None else ids
    for name, alpha in zip(names, alphas):
        _saving(folder / f"{int(name):02d}.png", lambda p, a=alpha: write_alpha(p, a))


def write_image(path: Path, image: np.ndarray, quality: int = 90) -> None:
    """An RGB(A) uint8 image as JPEG or PNG by suffix."""
    options = {"quality": quality} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    _saving(path, lambda p: Image.fromarray(image).save(p, **options))


@dataclass
class Extras:
    """What predict writes besides the mattes (options of conf/predict.yaml)."""

    overlay: bool = True
    background: Background | None = None
    ids: Sequence[int] | None = None  # people of the composites and cut-outs (None = all)
    cutout: bool = False
    alpha_videos: bool = False  # videos: one grey matte video per track id

    @property
    def needs_foreground(self) -> bool:
        return self.background is not None or self.cutout

    def foreground(self, image: np.ndarray, alphas: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, list]:
        """Foreground colours for the chosen people and their positions in `alphas`."""
        keep = list(chosen(ids, self.ids))
        return estimate_foreground(image, union(alphas[keep], image.shape[:2])), keep


def write_photo(
    output: Path,
    stem: str,
    image: np.ndarray,
    alphas: np.ndarray,
    extras: Extras,
    foreground: tuple[np.ndarray, list] | None = None,
) -> None:
    """Everything predict writes for one photo (module doc); `foreground`: `extras.foreground`'s result when
    the caller has it already (the web demo keeps it while only the background changes)."""
    write_people(output / stem, alphas)
    ids = np.arange(len(alphas))
    if extras.overlay:
        write_image(output / f"{stem}_overlay.jpg", overlay_instances(image, alphas))
    if not extras.needs_foreground:
        return
    fg, keep = foreground if foreground is not None else extras.foreground(image, alphas, ids)
    if extras.background is not None:
        picture = composite(fg, union(alphas[keep], image.shape[:2]), extras.background.at(image.shape[:2]))
        write_image(output / "composite" / f"{stem}.jpg", picture)
    if extras.cutout:
        for k in keep:
            write_image(output / "cutout" / stem / f"{k:02d}.png", cutout(fg, alphas[k]))


class VideoOutputs:
    """The per-frame files and the .mp4 files of one video (module doc); `close` finishes the videos."""

    def __init__(
        self, output: Path, stem: str, fps: float, extras: Extras, sound: Path | None = None
    ) -> None:
        self.output, self.stem, self.extras = output, stem, extras
        self.sound_source, self.sound = sound, False  # the composite takes `sound`'s audio at `close`
        self.fps, self.frames, self.size = fps, [], (0, 0)  # frame names written, (H, W)
        self.overlay = LazyVideoWriter(output / f"{stem}_overlay.mp4", fps) if extras.overlay else None
        self.composite = None
        if extras.background is not None:
            self.composite = LazyVideoWriter(output / f"{stem}_composite.mp4", fps)

    @property
    def mattes(self) -> Path:
        return self.output / "pha" / self.stem

    def write(self, index: int, frame: np.ndarray, alphas: np.ndarray, ids: np.ndarray) -> None:
        """Outputs of frame `index` (0-based in the video) with its people's mattes and track ids."""
        name = f"{index:05d}"
        write_people(self.mattes / name, alphas, ids)
        self.frames.append(name)
        self.size = frame.shape[:2]
        write_image(self.output / "fgr" / self.stem / f"{name}.jpg", frame)
        if self.overlay is not None:
            self.overlay.append(overlay_instances(frame, alphas, ids=ids))
        if not self.extras.needs_foreground:
            return
        fg, keep = self.extras.foreground(frame, alphas, ids)
        if self.composite is not None:
            background = self.extras.background.at(frame.shape[:2])
            self.composite.append(composite(fg, union(alphas[keep], frame.shape[:2]), background))
        if self.extras.cutout:
            for k in keep:
                write_image(self.output / "cutout" / self.stem / name / f"{int(ids[k]):02d}.png",
                            cutout(fg, alphas[k]))  # fmt: skip

    def close(self) -> None:
        for writer in (self.overlay, self.composite):
            if writer is not None:
                writer.close()
        if self.composite is not None and self.composite.frames and self.sound_source is not None:
            self.sound = add_sound(self.composite.path, self.sound_source)
            self.sound_source = None
        if self.extras.alpha_videos and self.frames:
            write_alpha_videos(self.mattes, self.frames, self.size, self.output / self.stem, self.fps)
            self.frames = []


def write_alpha_videos(
    mattes: Path, frames: Sequence[str], size: tuple[int, int], prefix: Path, fps: float
) -> list[Path]:
    """`<prefix>_alpha_<id>.mp4` for every track id under `mattes/<frame>/<id>.png`: the person's matte as a
    grey video over all `frames`, black where they are absent; one video at a time, read back from the PNGs
    (so memory does not grow with the clip). Returns the videos, by id."""
    ids = sorted({int(p.stem) for frame in frames for p in (mattes / frame).glob("*.png")})
    videos = []
    for track in ids:
        writer = LazyVideoWriter(prefix.with_name(f"{prefix.name}_alpha_{track:02d}.mp4"), fps)
        try:
            for frame in frames:
                png = mattes / frame / f"{track:02d}.png"
                alpha = np.asarray(Image.open(png)) if png.is_file() else np.zeros(size, np.uint8)  # (H, W)
                writer.append(np.repeat(alpha[..., None], 3, axis=2))  # (H, W, 3) grey
        finally:
            writer.close()
        videos.append(writer.path)
    return videos
