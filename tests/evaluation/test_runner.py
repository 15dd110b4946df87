"""Worker processes give the same numbers as one process; the worst-images picture; the real COCO photos."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from e2e_him.data.io import write_alpha
from e2e_him.data.readers import InstanceFolder
from e2e_him.evaluation import ScoreOptions, score_images
from e2e_him.evaluation.runner import resolve_workers
from e2e_him.evaluation.tasks import entry_task
from e2e_him.evaluation.worst import image_view, rank_worst, row_title
from e2e_him.visual.worst import View, colour_order, save_worst_images

ALL = ScoreOptions(metrics=("instance", "imq", "maggie", "human"))


def _shifted_copy(src, dst, shift: int, half_size_first: bool = False):
    """Copy a folder of per-person mattes, each moved right by `shift` px (the first one at half size)."""
    for folder in sorted(p for p in src.iterdir() if p.is_dir()):
        for k, f in enumerate(sorted(folder.glob("*.png"))):
            a = np.asarray(Image.open(f), dtype=np.float32) / 255.0
            a = np.roll(a, shift, axis=1)
            if half_size_first and k == 0:
                a = cv2.resize(a, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_AREA)
            write_alpha(dst / folder.name / f.name, a)


def test_resolve_workers():
    assert resolve_workers(0) == 0 and resolve_workers(3) == 3 and resolve_workers("auto") >= 1
    with pytest.raises(ValueError, match="workers"):
        resolve_workers(-1)


def test_coco_photos_two_workers_equal_one_process(coco_persons, tmp_path):
    pred = tmp_path / "pred"
    _shifted_copy(coco_persons / "alphas", pred, 4, half_size_first=True)
    first = sorted(p.name for p in pred.iterdir())[0]
    shutil.rmtree(pred / first)  # one image without predictions
    tasks = [entry_task(e, pred) for e in InstanceFolder(coco_persons).entries]
    one = score_images(tasks, ALL, workers=0, progress=False)
    two = score_images(tasks, ALL, workers=2, progress=False)
    assert one.metrics == two.metrics  # results come back in task order: identical sums
    assert [r["name"] for r in one.rows] == [r["name"] for r in two.rows] == [t.name for t in tasks]
    reasons = sorted(p.action for p in one.problems)
    assert reasons.count("its people count as missed") == 1 and reasons.count("resized (bilinear)") == 3
    people = sum(len(t.gt_files) for t in tasks)
    missed = len(tasks[0].gt_files)
    assert one.metrics["REC_0.5"] <= (people - missed) / people
    assert 0 < one.metrics["MAD_x1e3"] and 0 < one.metrics["Grad_x1e-3"] and 0 < one.metrics["IMQ_mad"] < 1


def test_rank_worst_and_picture(coco_persons, tmp_path):
    pred = tmp_path / "pred"
    _shifted_copy(coco_persons / "alphas", pred, 40)
    tasks = [entry_task(e, pred) for e in InstanceFolder(coco_persons).entries]
    scored = score_images(tasks, ALL, workers=0, progress=False)
    order = rank_worst(scored.rows, 3)
    keys = [(r["fn_0.5"] + r["fp_0.5"], r["MAD_x1e3"]) for r in (scored.rows[i] for i in order)]
    assert keys == sorted(keys, reverse=True) and len(order) == 3
    views = [image_view(tasks[i], row_title(scored.rows[i]), "bilinear") for i in order]
    path = save_worst_images(views, tmp_path / "worst.jpg")
    w, h = Image.open(path).size
    assert w > 400 and h > 3 * 200
    assert save_worst_images([], tmp_path / "none.jpg") is None


def test_prediction_colours_follow_the_paired_person():
    a = np.zeros((2, 10, 10), np.float32)
    a[0, :5], a[1, 5:] = 1.0, 1.0
    pred = np.stack([a[1], np.zeros((10, 10), np.float32) + (np.arange(10) == 0)[None], a[0]])
    out = colour_order(a, pred)
    # person 0's matte first, person 1's second, the unpaired one last
    np.testing.assert_array_equal(out[0], a[0])
    np.testing.assert_array_equal(out[1], a[1])
    assert out.shape == (3, 10, 10) and out[2].sum() == 10
    view = View("t", None, a, pred)
    assert view.gt.shape == (2, 10, 10)
