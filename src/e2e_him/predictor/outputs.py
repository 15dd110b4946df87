"""What predict writes, and where.

Photos (HIM2K's per-instance layout): `<output>/<stem>/NN.png` one 8-bit matte per person (NN = rank by
score), `<output>/<stem>_overlay.jpg`; with `background=`: `<output>/composite/<stem>.jpg`; with
`cutout=true`: `<output>/cutout/<stem>/NN.png` (RGBA).

Videos (V-HIM60's layout, so that `eval pred_dir=` scores them): predictor.video_outputs.

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
from e2e_him.predictor.backgrounds import Background
from e2e_him.predictor.composites import chosen, composite, cutout, estimate_foreground, union
from e2e_him.predictor.encoding import ALPHA
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


def saving(path: Path, save) -> None:
    """Run `save(path)` after creating its folder; an OSError becomes an OutputWriteError naming `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save(path)
    except OSError as err:
        raise OutputWriteError(f"{path}: cannot write ({err.strerror or err})") from err


def write_people(folder: Path, alphas: np.ndarray, ids: np.ndarray | None = None) -> None:
    """One 8-bit PNG per person: `folder/NN.png` (NN = position, or the track id when `ids` is given); the
    folder is made even for no people (an empty folder: nobody found)."""
    saving(folder, lambda p: p.mkdir(exist_ok=True))
    names = range(len(alphas)) if ids is None else ids
    for name, alpha in zip(names, alphas):
        saving(folder / f"{int(name):02d}.png", lambda p, a=alpha: write_alpha(p, a))


def write_image(path: Path, image: np.ndarray, quality: int = 90) -> None:
    """An RGB(A) uint8 image as JPEG or PNG by suffix."""
    options = {"quality": quality} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    saving(path, lambda p: Image.fromarray(image).save(p, **options))


@dataclass
class Extras:
    """What predict writes besides the mattes (options of conf/predict.yaml)."""

    overlay: bool = True
    background: Background | None = None
    ids: Sequence[int] | None = None  # people of the composites, cut-outs and alpha videos (None = all)
    cutout: bool = False
    alpha_video: str | None = None  # videos: one matte video per person, "near_lossless" or "lossless"

    def __post_init__(self) -> None:
        if self.alpha_video is not None and self.alpha_video not in ALPHA:
            raise ValueError(
                f"alpha_video={self.alpha_video!r}: use one of {', '.join(ALPHA)}, or null (none)"
            )

    @property
    def needs_foreground(self) -> bool:
        return self.background is not None or self.cutout

    def people(self, ids: np.ndarray) -> list[int]:
        """Positions of the people of the composites, cut-outs and alpha videos among `ids`."""
        return [int(k) for k in chosen(ids, self.ids)]

    def foreground(self, image: np.ndarray, alphas: np.ndarray, keep: list[int]) -> np.ndarray:
        """Foreground colours of the people at positions `keep` of `alphas` (predictor.composites)."""
        return estimate_foreground(image, union(alphas[keep], image.shape[:2]))


def write_photo(
    output: Path,
    stem: str,
    image: np.ndarray,
    alphas: np.ndarray,
    extras: Extras,
    foreground: np.ndarray | None = None,
) -> None:
    """Everything predict writes for one photo (module doc); `foreground`: `extras.foreground`'s colours of
    `extras.people` when the caller has them already (the web demo keeps them while only the background
    changes)."""
    write_people(output / stem, alphas)
    ids = np.arange(len(alphas))
    if extras.overlay:
        write_image(output / f"{stem}_overlay.jpg", overlay_instances(image, alphas))
    if not extras.needs_foreground:
        return
    keep = extras.people(ids)
    fg = foreground if foreground is not None else extras.foreground(image, alphas, keep)
    if extras.background is not None:
        picture = composite(fg, union(alphas[keep], image.shape[:2]), extras.background.at(image.shape[:2]))
        write_image(output / "composite" / f"{stem}.jpg", picture)
    if extras.cutout:
        for k in keep:
            write_image(output / "cutout" / stem / f"{k:02d}.png", cutout(fg, alphas[k]))
