"""New backgrounds for composites (the predict option `background=`): a colour, a photo or a video.

A photo, or a video's frame, is scaled to cover the frame it goes behind and centre-cropped. A background
video follows the foreground's clock: at time t of the output (0 = the first frame predict keeps) it shows its
own frame of time t, so a variable-frame-rate input and a constant-rate background stay in step. A background
shorter than the input loops (`loop=True`) or holds its last frame; a longer one is cut to the input's length.
Photos take the background video's first frame. It is decoded as it is used: two frames in memory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from e2e_him.data.io import read_image
from e2e_him.predictor.video import VIDEO_SUFFIXES, VideoReadError, VideoStream

COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "green": (0, 177, 64),  # chroma-key green
    "blue": (0, 71, 187),  # chroma-key blue
    "red": (255, 0, 0),
}


def parse_colour(spec: str) -> tuple[int, int, int] | None:
    """(r, g, b) of a colour name, '#rrggbb' or 'r,g,b'; None when `spec` is none of those."""
    text = spec.strip().lower()
    if text in COLOURS:
        return COLOURS[text]
    if re.fullmatch(r"#[0-9a-f]{6}", text):
        return tuple(int(text[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    parts = text.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
        values = tuple(int(p) for p in parts)
        if all(0 <= v <= 255 for v in values):
            return values  # type: ignore[return-value]
    return None


def cover(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` (h, w, 3) scaled to cover `size` (H, W) and centre-cropped to it."""
    h, w = size
    bh, bw = image.shape[:2]
    scale = max(h / bh, w / bw)
    nh, nw = max(h, round(bh * scale)), max(w, round(bw * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    big = cv2.resize(image, (nw, nh), interpolation=interp)
    y0, x0 = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])


class BackgroundVideo:
    """The frames of a background video by time (module doc): `at(t)` is its frame shown at t seconds."""

    def __init__(self, path: Path, loop: bool = True) -> None:
        self.path, self.loop = path, loop
        self._rewind()

    def _rewind(self) -> None:
        self._frames = self._timeline()
        self.current = next(self._frames)  # (time, image); VideoReadError when it has no frame
        self.upcoming = next(self._frames, None)

    def _timeline(self) -> Iterator[tuple[float, np.ndarray]]:
        """(time from its first frame, image) of every frame, again and again when looping."""
        offset = 0.0
        while True:
            stream = VideoStream(self.path)
            start = None
            for frame in stream:
                start = frame.time if start is None else start
                yield offset + frame.time - start, frame.image
            length = float(stream.end_pts * stream.time_base) - (start or 0.0)
            if not self.loop or length <= 0:
                return
            offset += length

    def at(self, time: float) -> np.ndarray:
        if time < self.current[0]:  # a new input starts again at 0
            self._rewind()
        while self.upcoming is not None and self.upcoming[0] <= time:
            self.current, self.upcoming = self.upcoming, next(self._frames, None)
        return self.current[1]


class Background:
    """A new background: a colour, a photo or a video, given as the predict option `background=`.

    Args:
        spec: a colour (a name such as green, #00b140 or 0,177,64), an image file or a video file.
        loop: a background video shorter than the input starts again (else its last frame stays).
    """

    def __init__(self, spec: str | Path, loop: bool = True) -> None:
        self.spec = str(spec)
        self.colour = parse_colour(self.spec)
        self.image: np.ndarray | None = None
        self.video: BackgroundVideo | None = None
        if self.colour is None:
            path = Path(self.spec)
            if not path.is_file():
                raise FileNotFoundError(
                    f"background={self.spec!r} is neither a colour (a name such as green, #00b140 or "
                    "0,177,64) nor an image or video file"
                )
            if path.suffix.lower() in VIDEO_SUFFIXES:
                try:
                    self.video = BackgroundVideo(path, loop)
                except VideoReadError as err:
                    raise FileNotFoundError(f"background={self.spec!r}: {err}") from err
            else:
                self.image = read_image(path)
        self._cache: tuple[tuple[int, int], np.ndarray | None, np.ndarray] | None = None

    def at(self, size: tuple[int, int], time: float = 0.0) -> np.ndarray:
        """The background as (H, W, 3) uint8 for a frame of `size` (H, W) shown at `time` seconds."""
        source = self.image if self.video is None else self.video.at(time)
        if self._cache is not None and self._cache[0] == size and self._cache[1] is source:
            return self._cache[2]
        if source is None:
            out = np.empty((*size, 3), dtype=np.uint8)
            out[:] = self.colour
        else:
            out = cover(source, size)
        self._cache = (size, source, out)  # holds `source`: its id is not reused
        return out
