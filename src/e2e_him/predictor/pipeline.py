"""The two loops of predict: a folder of photos (background loading, batches, a progress bar in images/s)
and a video, streamed in small batches of frames with ids that follow each person."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from e2e_him.data.transforms import prepare_eval_image
from e2e_him.predictor.loading import batches, prepared_photos, stack
from e2e_him.predictor.mattes import Predictor
from e2e_him.predictor.outputs import Extras, VideoOutputs, write_photo
from e2e_him.predictor.tracking import IoUTracker
from e2e_him.predictor.video import FrameFolder, VideoStream

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
    on_frame: Any = None,
) -> dict[str, Any]:
    """Mattes of every kept frame of a video file, or of a folder of frames, with track ids
    (predictor.outputs' video layout), streamed: at most `batch_size` frames are in memory at once.
    Returns {"video", "mattes", "frames", "ids", "problem", "sound"} (sound: the composite has the input's).

    Args:
        on_frame: optional callable(frame index), called after each frame is written (tests, progress).
    """
    stem = stem or path.stem
    stream = FrameFolder(path, stride, max_frames) if path.is_dir() else VideoStream(path, stride, max_frames)
    tracker = tracker or IoUTracker()
    writers = VideoOutputs(output, stem, stream.fps, extras, sound=None if path.is_dir() else path)
    frames = 0

    def flush(pending: list[tuple[int, np.ndarray]]) -> None:
        nonlocal frames
        prepared = [prepare_eval_image(frame, predictor.eval_size) for _, frame in pending]
        tensors = torch.stack([t for t, _ in prepared])
        people = predictor.predict_batch(tensors, [m for _, m in prepared], [f for _, f in pending])
        for (index, frame), person in zip(pending, people):
            ids = tracker.update(person["alphas"])
            writers.write(index, frame, person["alphas"], ids)
            frames += 1
            if on_frame is not None:
                on_frame(index)

    try:
        pending: list[tuple[int, np.ndarray]] = []
        for item in tqdm(stream, total=stream.expected, desc=path.name, unit="frame"):
            pending.append(item)
            if len(pending) >= max(1, int(batch_size)):
                flush(pending)
                pending = []
        if pending:
            flush(pending)
    finally:
        writers.close()
    return {
        "video": str(path),
        "mattes": str(writers.mattes),
        "frames": frames,
        "ids": tracker.ids_issued,
        "problem": stream.problem,
        "sound": writers.sound,
    }
