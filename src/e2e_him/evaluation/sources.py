"""Scoring a data source against predictions: a prediction folder for a data module's split, M-HIM2K's mask
sets or V-HIM60's videos (in worker processes), or a model's outputs on a split (in this process); each
returns the scores, the report's extra arguments and the views of the worst images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from e2e_him.data.mask_sets import MaskSetFolder
from e2e_him.data.video_folder import VideoInstanceFolder
from e2e_him.evaluation.offline import Scored, score_images, score_mask_sets, score_videos
from e2e_him.evaluation.runner import Accumulator
from e2e_him.evaluation.scoring import ImageTask, ScoreOptions, score_image
from e2e_him.evaluation.tasks import entry_task, mask_set_tasks, video_tasks
from e2e_him.evaluation.worst import image_view, rank_worst, row_title, video_frame_view
from e2e_him.utils.instantiate import ConfigError
from e2e_him.visual.worst import View


def split_dataset(datamodule, split: str):
    """The data set of `split` ("val" or "test") after `setup`."""
    if split not in ("val", "test"):
        raise ConfigError(f"split={split}: choose val or test")
    datamodule.setup("validate" if split == "val" else "test")
    return datamodule.val_dataset if split == "val" else datamodule.test_dataset


def ground_truth(dataset) -> Iterator[tuple[str, np.ndarray]]:
    """(image name, (K, H, W) float mattes at the original size) for every image of an eval data set."""
    for index in range(len(dataset)):
        meta = dataset[index]["meta"]
        yield meta["name"], meta["orig_alphas"].numpy().astype(np.float32) / 255.0


def score_folder(
    data,
    pred_dir: Path,
    options: ScoreOptions,
    split: str = "val",
    workers: int | str | None = "auto",
    progress: bool = True,
    worst: int = 10,
) -> tuple[Scored, dict[str, Any], list[View]]:
    """Score `pred_dir` against `data`: a `VideoInstanceFolder`, a `MaskSetFolder`, or a data module whose
    `split` is read. Returns the scores, the extra arguments of `write_report` and the `worst` worst views."""
    if isinstance(data, VideoInstanceFolder):
        tasks, problems = video_tasks(data, pred_dir)
        scored = score_videos(tasks, options, workers, progress)
        by_name = {t.name: t for t in tasks}

        def view(row):
            return video_frame_view(by_name[row["video"]], row["frame"], row_title(row), options.resize)

        groups = [s for s in data.splits if s] if len(data.splits) > 1 else []
        extra = {
            "groups": groups,
            "notes": [f"MaGGIe's video protocol: {options.video_protocol}; pairing: {options.pairing}."],
        }
    elif isinstance(data, MaskSetFolder):
        per_set, problems = mask_set_tasks(data, pred_dir)
        if not per_set:
            raise ConfigError(f"pred_dir={pred_dir}: no prediction folder for any mask set of {data.root}")
        scored = score_mask_sets(per_set, options, workers, progress)
        by_name = {(s, t.name): t for s, ts in per_set.items() for t in ts}

        def view(row):
            return image_view(by_name[(row["mask_set"], row["name"])], row_title(row), options.resize)

        extra = {"mask_sets": list(per_set), "notes": [f"Pairing for MaGGIe's errors: {options.pairing}."]}
    else:
        dataset = split_dataset(data, split)
        source = dataset.source
        if hasattr(source, "entries"):
            tasks = [entry_task(e, pred_dir) for e in source.entries]
        else:  # a source without files (e.g. synthetic): its ground truth in memory
            tasks = [
                ImageTask(n, pred_dir / n, gt=g, size=tuple(g.shape[-2:])) for n, g in ground_truth(dataset)
            ]
        problems = []
        scored = score_images(tasks, options, workers, progress)
        by_name = {t.name: t for t in tasks}

        def view(row):
            return image_view(by_name[row["name"]], row_title(row), options.resize)

        maggie = "maggie" in options.metrics
        extra = {"notes": [f"Pairing for MaGGIe's errors: {options.pairing}."] if maggie else []}
    scored.problems = problems + scored.problems
    views = [view(scored.rows[i]) for i in rank_worst(scored.rows, worst)] if worst > 0 else []
    return scored, extra, views


@torch.no_grad()
def score_model(module, loader, options: ScoreOptions, worst: int = 10) -> tuple[Scored, list[View]]:
    """Run `module` (an `E2EHIMModule`) over `loader` and score its kept people in this process, with the
    metric objects training's test builds too (`metrics.build_metrics`); returns the scores and the views of
    the `worst` worst images (only their arrays are kept while going)."""
    acc, rows, problems, kept = Accumulator(options), [], [], {}
    for batch in tqdm(loader, desc="eval", unit="batch"):
        outputs = module(batch["image"].to(module.device))
        preds = module.postprocess(outputs, batch["meta"])
        for pred, meta in zip(preds, batch["meta"]):
            gt = meta["orig_alphas"].float().numpy() / 255.0
            task = ImageTask(
                meta["name"], pred=pred["alphas"].float().cpu().numpy(), gt=gt, size=gt.shape[-2:]
            )
            result = score_image(task, options)
            acc.add(result)
            rows.append(result.row)
            problems += result.problems
            if worst > 0:
                kept[len(rows) - 1] = task
                if len(kept) > 2 * worst:  # keep the current worst only
                    ranked = rank_worst([rows[i] for i in kept], worst)
                    kept = {i: kept[i] for i in [list(kept)[j] for j in ranked]}
    order = [list(kept)[j] for j in rank_worst([rows[i] for i in kept], worst)] if kept else []
    views = [image_view(kept[i], row_title(rows[i]), "error") for i in order]
    return Scored(dict(acc.compute()[""]), rows, problems), views
