"""More people in an image than the model has queries (Table VII's Var3 on HIM-100K): training keeps the
largest that fit, with one warning and a count in the log; evaluation scores every person."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from tiny_datasets import write_instance_image

from e2e_him.data.checks import TooManyInstancesError
from e2e_him.data.datamodule import HIMDataModule
from e2e_him.data.readers import InstanceFolder
from e2e_him.data.targets import complete_sample


def write_crowds(root: Path, people: list[int], size: int = 64) -> None:
    """One image per entry of `people`, holding that many people: columns 2, 3 or 4 px wide."""
    for i, k in enumerate(people):
        mattes = []
        for j in range(k):
            a = np.zeros((size, size), np.uint8)
            left = 2 + j * (size - 4) // max(k, 1)
            a[4 : size - 4, left : left + 2 + j % 3] = 255
            mattes.append(a)
        write_instance_image(root, f"crowd{i}", mattes, image=np.full((size, size, 3), 40 * i, np.uint8))


def module(root: Path, tmp_path: Path, on_too_many: str) -> HIMDataModule:
    return HIMDataModule(
        train=lambda: InstanceFolder(root),
        val=lambda: InstanceFolder(root),
        crop_size=(64, 64),
        eval_size=None,
        composite_prob=0.0,
        augment={"affine_prob": 0.0, "flip_prob": 0.0},
        min_visible_pixels=1,
        max_instances=10,
        on_too_many=on_too_many,
        skip_list_path=str(tmp_path / "skipped.txt"),
        check_workers=1,
    )


def test_training_keeps_the_largest_that_fit_and_evaluation_every_person(tmp_path: Path, caplog):
    write_crowds(tmp_path, [12, 11, 4])
    with pytest.raises(TooManyInstancesError, match="2 image"):
        module(tmp_path, tmp_path, "error").setup("fit")
    dm = module(tmp_path, tmp_path, "truncate")
    with caplog.at_level(logging.WARNING, logger="e2e_him.data.checks"), pytest.warns(UserWarning) as warned:
        dm.setup("fit")
    logged = [r.getMessage() for r in caplog.records if "queries" in r.getMessage()]
    # one warning for the data set, not one per image
    assert len(logged) == 1 and len([w for w in warned if "queries" in str(w.message)]) == 1
    assert "2 of 3 image(s) hold more people than the model's 10 queries (up to 12)" in logged[0]
    assert "crowd0 holds 12 people; crowd1 holds 11 people" in logged[0]
    kept = [dm.train_dataset[(i, 0)]["alphas"].shape[0] for i in range(3)]
    scored = [dm.val_dataset[(i, 0)]["meta"]["orig_alphas"].shape[0] for i in range(3)]
    assert kept == [10, 10, 4] and scored == [12, 11, 4]
    # the kept ones are the largest: of the 12 columns (56 px tall, 2, 3, 4, 2, 3, ... px wide) two of the
    # narrowest go
    areas = sorted(complete_sample(dm.train_dataset[(0, 0)])["alphas"].sum((1, 2)).tolist())
    assert areas == [112.0] * 2 + [168.0] * 4 + [224.0] * 4
