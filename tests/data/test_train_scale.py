"""Real-data configs train at the scale they are evaluated at (augment.resize_long_side, docs/data.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_datasets import person, photo, write_instance_image

from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build


@pytest.mark.parametrize("data", ["him100k", "instance_folder"])
def test_real_data_configs_resize_photos_to_the_evaluation_scale(data: str, tmp_path: Path):
    cfg = compose_config("train", [f"data={data}"], output_dir=tmp_path)
    assert list(cfg.data.augment.resize_long_side) == [576, 704]
    assert cfg.data.eval_size == 640 and 576 <= cfg.data.eval_size <= 704


def test_a_large_photos_people_are_seen_at_their_evaluation_size(tmp_path: Path):
    """A 1,600 x 2,000 photo with one 800 px tall person: evaluation (long side 640) sees it 256 px tall;
    the training crops of `data=instance_folder` see it 184-352 px tall (resize to 576-704, affine scale
    0.75-1.25), not 800 px as the paper's crops at the photo's own size would."""
    big = (1600, 2000)
    write_instance_image(
        tmp_path, "big", [person(400, 900, 800, 200, big)], split="train", image=photo(0, big)
    )
    write_instance_image(tmp_path, "big", [person(400, 900, 800, 200, big)], split="val", image=photo(0, big))
    cfg = compose_config(
        "train", ["data=instance_folder", f"data.root={tmp_path}", "data.min_visible_fraction=0"], tmp_path
    )
    datamodule = build(cfg.data, "data")
    datamodule.setup("fit")
    heights = []
    for epoch in range(12):  # a sample is drawn from (seed, epoch, index): 12 different augmentations
        sample = datamodule.train_dataset[(0, epoch)]
        rows = np.nonzero(sample["alphas"].numpy().max(axis=(0, 2)) >= 0.5)[0]
        if len(rows):
            heights.append(rows.max() - rows.min() + 1)
    evaluated = datamodule.val_dataset[0]["alphas"].numpy()
    eval_rows = np.nonzero(evaluated.max(axis=(0, 2)) >= 0.5)[0]
    assert eval_rows.max() - eval_rows.min() + 1 == pytest.approx(256, abs=3)
    assert len(heights) >= 10 and len(set(heights)) > 3 and all(150 <= h <= 360 for h in heights), heights
