"""Video streaming for predict: frames decoded one at a time (ffmpeg through imageio), mp4 writers opened
lazily and always closed, so memory does not grow with the video's length and a failure keeps what was
written. Problems are reported with the file's name: a file that cannot be opened, a video without frames,
and a video that ends before the length its header announces (the frames read so far are kept). A composite
takes the input's sound (`add_sound`)."""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from e2e_him.data.io import ImageReadError

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


class VideoReadError(ImageReadError):
    """A video could not be read; the message names the file and the reason."""


class VideoStream:
    """The frames of a video file, decoded one by one.

    Args:
        path: the video file.
        stride: keep every `stride`-th frame.
        max_frames: keep at most this many frames (None = all).

    Attributes:
        fps: frames per second of the kept frames.
        announced: frames the header announces (duration x fps), or None when it does not say.
        frames_read: frames decoded so far (kept or not).
        problem: None, or why the video ended before `announced` frames (set once iteration stops).
    """

    def __init__(self, path: str | Path, stride: int = 1, max_frames: int | None = None) -> None:
        import imageio.v2 as imageio

        self.path = Path(path)
        if stride < 1:
            raise ValueError(f"video_stride must be >= 1, got {stride}")
        self.stride, self.max_frames = int(stride), max_frames
        if not self.path.is_file():
            raise VideoReadError(f"{self.path}: file not found")
        try:
            self._reader = imageio.get_reader(str(self.path), format="FFMPEG")
            meta = self._reader.get_meta_data()
        except Exception as err:  # imageio raises OSError, RuntimeError, ... from ffmpeg's output
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise VideoReadError(
                f"{self.path}: cannot open video (not a video, no video stream, or no frames: {reason})"
            ) from err
        fps = float(meta.get("fps") or 25.0)
        duration = float(meta.get("duration") or 0.0)
        nframes = meta.get("nframes")
        if isinstance(nframes, (int, float)) and math.isfinite(nframes) and nframes > 0:
            self.announced: int | None = int(nframes)
        else:
            self.announced = round(duration * fps) if duration > 0 else None
        self.fps = fps / self.stride
        self.frames_read = 0
        self.problem: str | None = None

    @property
    def expected(self) -> int | None:
        """How many frames iteration should keep (for progress bars), or None when unknown."""
        if self.announced is None:
            return self.max_frames
        count = len(range(0, self.announced, self.stride))
        return count if self.max_frames is None else min(count, self.max_frames)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """(source frame index, uint8 RGB frame (H, W, 3)) of every kept frame."""
        kept = 0
        try:
            for index, frame in enumerate(self._reader):
                self.frames_read = index + 1
                if index % self.stride:
                    continue
                if self.max_frames is not None and kept >= self.max_frames:
                    return
                kept += 1
                yield index, np.ascontiguousarray(frame[..., :3])
        except Exception as err:  # a decoding error mid-way: keep what was read, say where it stopped
            self.problem = f"{self.path}: decoding stopped after {self.frames_read} frames ({err})"
        finally:
            self._reader.close()
        if self.frames_read == 0:
            raise VideoReadError(f"{self.path}: the video has no frames")
        if self.problem is None and self.announced and self.frames_read < 0.98 * self.announced - 1:
            self.problem = (
                f"{self.path}: the video ends early, after {self.frames_read} of the {self.announced} frames "
                "its header announces (the frames read were processed)"
            )
        if self.problem:
            log.warning("%s", self.problem)


class FrameFolder:
    """A video given as a folder of frames (V-HIM60's `fgr/<video>/`), in the order of the numbers in their
    names; the same interface as `VideoStream`. A frame named by a number keeps that number as its index."""

    def __init__(
        self, path: str | Path, stride: int = 1, max_frames: int | None = None, fps: float = 25.0
    ) -> None:
        from e2e_him.data.io import list_images
        from e2e_him.data.readers import natural_key

        self.path = Path(path)
        self.files = sorted(list_images(self.path), key=lambda p: natural_key(p.stem))[::stride]
        if max_frames is not None:
            self.files = self.files[:max_frames]
        if not self.files:
            raise VideoReadError(f"{self.path}: no frames (images) in this folder")
        self.fps, self.announced, self.frames_read, self.problem = fps / stride, None, 0, None
        self.expected = len(self.files)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        from e2e_him.data.io import read_image

        for position, file in enumerate(self.files):
            try:
                frame = read_image(file)
            except ImageReadError as err:
                self.problem = f"{err} (the frames before it were processed)"
                log.warning("%s", self.problem)
                return
            self.frames_read = position + 1
            yield (int(file.stem) if file.stem.isdigit() else position), frame


class LazyVideoWriter:
    """An H.264 .mp4 writer opened at the first frame (so an unreadable input leaves no empty file)."""

    def __init__(self, path: str | Path, fps: float, quality: int = 7) -> None:
        self.path, self.fps, self.quality = Path(path), fps, quality
        self._writer: Any = None
        self.frames = 0

    def append(self, frame: np.ndarray) -> None:
        """Add one uint8 (H, W, 3) frame."""
        if self._writer is None:
            import imageio.v2 as imageio

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = imageio.get_writer(
                str(self.path), fps=self.fps, codec="libx264", quality=self.quality, macro_block_size=1
            )
        self._writer.append_data(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def has_sound(path: str | Path) -> bool:
    """Whether the file at `path` holds an audio stream (ffmpeg's description of its streams)."""
    probe = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)],
                           capture_output=True, text=True, check=False)  # fmt: skip
    return re.search(r"Stream #\S+.*: Audio:", probe.stderr) is not None


def add_sound(video: str | Path, source: str | Path) -> bool:
    """Give the silent `video` the first audio stream of `source` (AAC; cut to the video's length, so a clip
    cut after N frames keeps the sound of those frames), in place. True when it has sound now; a source
    without sound, or an ffmpeg failure (logged), leaves `video` as it was."""
    video = Path(video)
    if not video.is_file() or not Path(source).is_file() or not has_sound(source):
        return False
    joined = video.with_name(f"{video.stem}.sound{video.suffix}")
    command = [_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(video),
               "-i", str(source), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac",
               "-shortest", str(joined)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not joined.is_file():
        log.warning("%s: kept without sound (ffmpeg: %s)", video.name, done.stderr.strip()[-300:])
        joined.unlink(missing_ok=True)
        return False
    os.replace(joined, video)
    return True
