"""Reading videos for predict: every stored frame decoded once, in order, with its presentation time (PyAV).

Nothing is resampled to a constant rate: a variable-frame-rate clip (phones record them) gives each stored
frame once, with its own timestamp. The display rotation of phone videos is applied, so frames come upright.
The length a video should have comes from its *video stream* (the frame count of the MP4 sample table, or the
stream's duration for Matroska / WebM), never from the container's duration, which includes the sound.
Problems are reported with the file's name: a file that cannot be opened, a video without frames, and a video
whose picture stops before its stream says it ends (the frames read so far are kept)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from e2e_him.data.io import ImageReadError

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


class VideoReadError(ImageReadError):
    """A video could not be read; the message names the file and the reason."""


class Frame(NamedTuple):
    """One decoded frame: its 0-based position among the video's stored frames, its presentation timestamp in
    units of the stream's time base, that time in seconds, and the picture (H, W, 3) uint8 RGB, upright."""

    index: int
    pts: int
    time: float
    image: np.ndarray


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _tag_seconds(value: str | None) -> float | None:
    """Seconds of a Matroska DURATION tag ('00:00:01.510000000'), or None."""
    match = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d*)?)", (value or "").strip())
    return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3]) if match else None


class VideoStream:
    """The frames of a video file, decoded one by one (memory does not grow with the video's length).

    Args:
        path: the video file.
        stride: keep every `stride`-th stored frame.
        max_frames: keep at most this many frames (None = all).

    Attributes:
        time_base: the unit of the timestamps (a Fraction of a second).
        fps: average frames per second of the stream (for information: timestamps are what counts).
        announced: frames the video stream says it holds, or None when it does not say (Matroska, WebM).
        stream_end: seconds at which the video stream says its picture ends, or None.
        frames_read: frames decoded so far (kept or not).
        end_pts: after iteration, where the kept frames' picture ends: the end of the last stored frame, or,
            when `max_frames` stopped early (`cut`), the timestamp of the next frame it would have kept.
        intervals: (shortest, longest) gap in seconds between consecutive stored frames seen so far.
        rotation: degrees the frames were turned (counter-clockwise) to display upright.
        damaged: packets the decoder rejected (skipped; named in `problem`).
        problem: None, or why the picture stopped before its stream's end (set once iteration stops).
    """

    def __init__(self, path: str | Path, stride: int = 1, max_frames: int | None = None) -> None:
        import av

        self.path = Path(path)
        if stride < 1:
            raise ValueError(f"video_stride must be >= 1, got {stride}")
        self.stride, self.max_frames = int(stride), max_frames
        if not self.path.is_file():
            raise VideoReadError(f"{self.path}: file not found")
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as err:
            raise VideoReadError(
                f"{self.path}: cannot open video (not a video file: {_one_line(err)})"
            ) from err
        if not self._container.streams.video:
            self._container.close()
            raise VideoReadError(f"{self.path}: cannot open video (no video stream in this file)")
        stream = self._container.streams.video[0]
        self._stream = (
            stream  # slice threads (PyAV's default): frame threads lose frames around a damaged packet
        )
        self.time_base = Fraction(stream.time_base or Fraction(1, 90000))
        self.fps = float(stream.average_rate or stream.guessed_rate or 25)
        self.announced: int | None = int(stream.frames) if stream.frames and stream.frames > 0 else None
        if stream.duration:
            self.stream_end: float | None = float(
                ((stream.start_time or 0) + stream.duration) * self.time_base
            )
        else:
            self.stream_end = _tag_seconds(stream.metadata.get("DURATION"))
        self.has_audio = bool(self._container.streams.audio)
        self.frames_read = 0
        self.damaged, self._damage = 0, ""
        self.cut = False
        self.end_pts: int | None = None
        self.intervals: tuple[float, float] | None = None
        self.rotation = 0
        self.problem: str | None = None

    @property
    def expected(self) -> int | None:
        """How many frames iteration should keep (for progress bars), or None when unknown."""
        stored = self.announced
        if stored is None and self.stream_end:
            stored = round(self.stream_end * self.fps)
        if stored is None:
            return self.max_frames
        count = len(range(0, stored, self.stride))
        return count if self.max_frames is None else min(count, self.max_frames)

    def _note_interval(self, gap: float) -> None:
        low, high = self.intervals or (gap, gap)
        self.intervals = (min(low, gap), max(high, gap))

    def __iter__(self) -> Iterator[Frame]:
        import av

        kept, last_pts, last_duration, gap = 0, None, 0, 0
        try:
            for frame in self._decoded():
                pts = frame.pts if frame.pts is not None else (last_pts or 0) + max(last_duration, 1)
                if last_pts is not None:
                    pts = max(pts, last_pts + 1)  # strictly increasing, as every writer needs
                    self._note_interval(float((pts - last_pts) * self.time_base))
                index = self.frames_read
                if not index % self.stride and self.max_frames is not None and kept >= self.max_frames:
                    self.end_pts = pts  # the kept picture ends where the next frame it would keep begins
                    self.cut = True
                    return
                self.frames_read += 1
                gap = pts - last_pts if last_pts is not None else 0
                last_duration = int(frame.duration or 0) or gap
                last_pts = pts
                if index % self.stride:
                    continue
                kept += 1
                image = frame.to_ndarray(format="rgb24")
                self.rotation = round((frame.rotation or 0) / 90.0) % 4 * 90
                if self.rotation:  # the display matrix turns it counter-clockwise (what players show)
                    image = np.ascontiguousarray(np.rot90(image, self.rotation // 90))
                yield Frame(index, int(pts), float(pts * self.time_base), image)
        except (av.FFmpegError, OSError, ValueError) as err:  # mid-way: keep what was read, say where
            self.problem = f"{self.path}: decoding stopped after {self.frames_read} frames ({_one_line(err)})"
        finally:
            self._container.close()  # and let go of the decoder: its threads end with it
            self._container = self._stream = None
        if self.frames_read == 0:
            raise VideoReadError(self.problem or f"{self.path}: the video has no frames")
        stream_end = None if self.stream_end is None else round(self.stream_end / self.time_base)
        if stream_end is not None and last_pts < stream_end <= last_pts + 2 * max(last_duration, gap, 1):
            last_duration = stream_end - last_pts  # the stream's own end (frame durations can be dts-based)
        self.end_pts = last_pts + max(last_duration, 1)
        self._check_length()
        if self.damaged:
            skipped = f"{self.damaged} damaged packet(s) skipped ({self._damage})"
            self.problem = f"{self.problem}; {skipped}" if self.problem else f"{self.path}: {skipped}"
        if self.problem:
            log.warning("%s", self.problem)

    def _decoded(self) -> Iterator[Any]:
        """The stream's frames in presentation order; a packet the decoder rejects as damaged is skipped and
        counted (players do the same), so one bad packet does not end the video."""
        import av

        for packet in self._container.demux(self._stream):
            try:
                yield from packet.decode()
            except av.InvalidDataError as err:
                self.damaged += 1
                self._damage = _one_line(err)

    def _check_length(self) -> None:
        """Set `problem` when the picture stopped early: fewer frames than the stream announces and (when the
        stream gives its duration) a picture that ends well before it. Sound longer than the picture is not a
        shortfall: neither count looks at it."""
        if self.problem is not None:
            return
        ended = float(self.end_pts * self.time_base)
        checks = []
        if self.announced is not None:
            checks.append(self.frames_read < 0.98 * self.announced - 1)
        if self.stream_end is not None:
            typical = self.intervals[1] if self.intervals else 0.0
            checks.append(ended < 0.98 * self.stream_end - 2 * typical)
        if checks and all(checks):
            announced = f"{self.announced} frames" if self.announced else f"{self.stream_end:.2f} s"
            self.problem = (
                f"{self.path}: the video ends early, after {self.frames_read} frames ({ended:.2f} s) of the "
                f"{announced} its video stream announces (the frames read were processed)"
            )


class FrameFolder:
    """A video given as a folder of frames (V-HIM60's `fgr/<video>/`), in the order of the numbers in their
    names; the same interface as `VideoStream`. A frame named by a number keeps that number as its index, and
    its time is that index / `fps` (a folder holds no timestamps)."""

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
        self.fps, self.time_base = fps, 1 / Fraction(fps).limit_denominator(1001)
        self.announced, self.stream_end, self.has_audio, self.rotation = None, None, False, 0
        self.frames_read, self.end_pts, self.problem, self.cut = 0, None, None, False
        self.intervals = (1 / fps, 1 / fps)
        self.expected = len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        from e2e_him.data.io import read_image

        for position, file in enumerate(self.files):
            try:
                image = read_image(file)
            except ImageReadError as err:
                self.problem = f"{err} (the frames before it were processed)"
                log.warning("%s", self.problem)
                return
            self.frames_read = position + 1
            index = int(file.stem) if file.stem.isdigit() else position
            self.end_pts = index + 1
            yield Frame(index, index, float(index * self.time_base), image)
