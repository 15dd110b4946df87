"""The two loops of predict: a folder of photos (background loading, batches, a progress bar in images/s)
and a video, streamed in small batches of frames with ids that follow each person."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from e2e_him.data.transforms import prepare_eval_image
from e2e_him.predictor.loading import batches, prepared_photos, stack
from e2e_him.predictor.mattes import Predictor
from e2e_him.predictor.outputs import Extras, write_photo
from e2e_him.predictor.tracking import IoUTracker
from e2e_him.predictor.video import Frame, FrameFolder, VideoStream
from e2e_him.predictor.video_outputs import VideoOutputs

log = logging.getLogger(__name__)


def predict_photos(
    predictor: Predictor,
    paths: Sequence[Path],
    stems: Sequence[str],
    output: Path,
    extras: Extras,
    batch_size: int = 1,
    workers: int = 1,
) -> tuple[int, list[str]]:
    """Predict every photo into `output` (predictor.outputs layout); returns (photos done, failures as
    'path: reason' lines). Unreadable photos are skipped and named; the others are still processed."""
    failed: list[str] = []
    done = 0
    items = prepared_photos(paths, predictor.eval_size, workers)
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not paths) as bar:
        for batch in batches(items, max(1, int(batch_size))):
            if "error" in batch[0]:
                log.error("skipped %s", batch[0]["error"])
                failed.append(batch[0]["error"])
                bar.update(1)
                continue
            people = predictor.predict_batch(
                stack(batch), [b["meta"] for b in batch], [b["image"] for b in batch]
            )
            for item, person in zip(batch, people):
                write_photo(output, stems[item["index"]], item["image"], person["alphas"], extras)
                log.info("%s: %d people", item["path"].name, len(person["alphas"]))
            done += len(batch)
            bar.update(len(batch))
    return done, failed


@dataclass
class VideoProgress:
    """Where a video's prediction stands, after each frame (for progress bars and GUIs)."""

    frame: int  # index of the frame just written (0-based among the video's stored frames)
    time: float  # its presentation time in seconds
    done: int  # frames written so far
    expected: int | None  # frames predict expects to write (an estimate for streams that do not say)
    seconds: float  # since the video was opened
    fps: float  # frames written per second so far


def open_video(path: Path, stride: int = 1, max_frames: int | None = None) -> VideoStream | FrameFolder:
    """The frames of a video file, or of a folder of frames (predictor.video)."""
    return FrameFolder(path, stride, max_frames) if path.is_dir() else VideoStream(path, stride, max_frames)


def frame_rate(stream: VideoStream | FrameFolder, first: Frame | None) -> dict[str, Any]:
    """summary.json's `frame_rate` of a read video: the average over the frames read, the shortest and longest
    gap between stored frames, and whether the rate is variable (gaps differing by more than 1 %)."""
    span = float((stream.end_pts - first.pts) * stream.time_base) if first and stream.end_pts else 0.0
    low, high = stream.intervals or (0.0, 0.0)
    return {
        "average": round(stream.frames_read / span, 3) if span > 0 else None,
        "shortest_interval_s": round(low, 6),
        "longest_interval_s": round(high, 6),
        "variable": high - low > max(0.01 * high, float(stream.time_base)),
    }


def predict_video(
    predictor: Predictor,
    path: Path,
    output: Path,
    extras: Extras,
    stem: str | None = None,
    stride: int = 1,
    max_frames: int | None = None,
    batch_size: int = 1,
    tracker: IoUTracker | None = None,
    progress: Callable[[VideoProgress], None] | None = None,
) -> dict[str, Any]:
    """Mattes of every kept frame of a video file, or of a folder of frames, with track ids, and the videos of
    predictor.video_outputs, streamed: at most `batch_size` frames are in memory at once.

    Args:
        progress: optional callable(VideoProgress), called after each frame is written; an exception it raises
            stops the video (what was written stays, the videos are finished).

    Returns:
        The video's entry of summary.json (docs/inference.md, "Videos"): "video", "mattes", "frames",
        "frames_read", "frames_expected", "size", "rotation", "frame_rate", "time_base", "timestamps",
        "videos", "alpha_videos", "audio", "ids", "id_digits", "problem", "output_problems".
    """
    stem = stem or path.stem
    stream = open_video(path, stride, max_frames)
    tracker = tracker or IoUTracker()
    sound = path if stream.has_audio else None
    writers = VideoOutputs(output, stem, stream.time_base, extras, sound)
    started, frames, first, size = time.perf_counter(), 0, None, None

    def flush(pending: list[Frame]) -> None:
        nonlocal frames
        prepared = [prepare_eval_image(f.image, predictor.eval_size) for f in pending]
        tensors = torch.stack([t for t, _ in prepared])
        people = predictor.predict_batch(tensors, [m for _, m in prepared], [f.image for f in pending])
        for frame, person in zip(pending, people):
            ids = tracker.update(person["alphas"])
            writers.write(frame, person["alphas"], ids)
            frames += 1
            if progress is not None:
                seconds = time.perf_counter() - started
                progress(VideoProgress(frame.index, frame.time, frames, stream.expected, seconds,
                                       frames / max(seconds, 1e-9)))  # fmt: skip

    try:
        pending: list[Frame] = []
        for frame in tqdm(stream, total=stream.expected, desc=path.name, unit="frame"):
            first = frame if first is None else first
            size = frame.image.shape[1::-1]
            pending.append(frame)
            if len(pending) >= max(1, int(batch_size)):
                flush(pending)
                pending = []
        if pending:
            flush(pending)
    finally:
        written = writers.close(stream.end_pts, cut_sound=stream.cut, ids_issued=tracker.ids_issued)
    return {
        "video": str(path),
        "mattes": str(writers.mattes),
        "frames": frames,
        "frames_read": stream.frames_read,
        "frames_expected": stream.announced,
        "size": list(size) if size else None,
        "rotation": stream.rotation,
        "frame_rate": frame_rate(stream, first),
        "time_base": str(stream.time_base),
        "timestamps": written["timestamps"],
        "videos": written["videos"],
        "alpha_videos": written["alpha_videos"],
        "audio": written["audio"] if sound else "none (the input has no sound)",
        "ids": tracker.ids_issued,
        "id_digits": written["id_digits"],
        "problem": stream.problem,
        "output_problems": written["problems"],
    }
