"""Training samples planned from the photos' sizes and decoded at the size they are resized to (JPEG's
reduced decoding, 8-bit mattes shrunk before compositing) equal those of decoding at full size, compositing
there and resizing after, within the resampling differences named in docs/data.md; compact batches are
completed on the device as a worker would have completed them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from e2e_him.data.collate import collate
from e2e_him.data.composite import area_from_reduced
from e2e_him.data.dataset import HIMDataset
from e2e_him.data.io import read_image, write_alpha
from e2e_him.data.readers import InstanceFolder
from e2e_him.data.synthetic import SyntheticPeople
from e2e_him.data.targets import compact_sample, complete_batch, complete_sample
from e2e_him.data.transforms import TrainTransform, normalize_image
from e2e_him.data.trimap import trimap_from_alpha

SIZES = [(300, 400), (420, 300), (320, 320), (280, 430), (360, 480), (400, 260)]


def write_photos(root: Path, suffix: str) -> Path:
    """Six photos of 260-480 px with 1-4 synthetic people each, in the instance-folder layout."""
    (root / "images").mkdir(parents=True)
    for i, size in enumerate(SIZES):
        scene = SyntheticPeople(1, size, 1 + i % 4, 1 + i % 4, seed=i, supersample=2).render(0)
        Image.fromarray(scene["image"]).save(root / "images" / f"p{i}{suffix}", quality=95)
        for k, alpha in enumerate(scene["alphas"]):
            write_alpha(root / "alphas" / f"p{i}" / f"{k:02d}.png", alpha)
    return root


class FullSize:
    """A source that can only decode whole records: the dataset then composites at full size and resizes
    after (the order of the pipeline before issue 27)."""

    def __init__(self, source):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        return self.source[index]


def both(root: Path, composite_prob: float, long_side: tuple[int, int], crop: int) -> list[tuple[dict, dict]]:
    """(planned, full-size) completed samples of every (index, epoch), epochs 0-2."""
    source = InstanceFolder(root)
    transform = TrainTransform((crop, crop), resize_long_side=long_side, trimap_kernel=(3, 9))
    options = {"composite_prob": composite_prob, "max_instances": 4, "on_too_many": "truncate",
               "min_visible_pixels": 20}  # fmt: skip
    planned, full = (
        HIMDataset(source, transform, **options),
        HIMDataset(FullSize(source), transform, **options),
    )
    assert planned._plans() and not full._plans()
    keys = [(i, e) for e in range(3) for i in range(len(source))]
    return [(complete_sample(planned[k]), complete_sample(full[k])) for k in keys]


def test_planned_samples_equal_the_full_size_order_within_resampling(tmp_path: Path):
    pairs = both(write_photos(tmp_path, ".jpg"), composite_prob=1.0, long_side=(96, 128), crop=112)
    image_mad, alpha_mad, off, trimap_off, same = [], [], [], [], 0
    for a, b in pairs:
        # the same draws: same photo, size, crop and trimap kernel
        for key in ("name", "orig_size", "input_size", "trimap_kernel"):
            assert a["meta"][key] == b["meta"][key], key
        image_mad.append(float((a["image"] - b["image"]).abs().mean()) * 0.226 * 255)  # ~ 8-bit levels
        if a["alphas"].shape == b["alphas"].shape:
            same += 1
        if a["alphas"].shape == b["alphas"].shape and len(a["alphas"]):
            d = (a["alphas"] - b["alphas"]).abs()
            alpha_mad.append(float(d.mean()))
            off.append(float((d > 0.1).float().mean()))
            trimap_off.append(float((a["trimaps"] != b["trimaps"]).float().mean()))
    assert same >= 0.9 * len(pairs)  # a person on the visibility bound may fall either side of it
    assert np.mean(image_mad) < 2.0 and np.mean(alpha_mad) < 0.005
    assert np.mean(off) < 0.01 and np.mean(trimap_off) < 0.01


def test_without_reduced_decoding_only_the_8bit_mattes_differ(tmp_path: Path):
    """PNG photos shrunk by less than 2: nothing decodes reduced, so the photos are identical and the mattes
    differ by their rounding to 8 bits before resizing (and after it)."""
    pairs = both(write_photos(tmp_path, ".png"), composite_prob=0.0, long_side=(240, 250), crop=224)
    for a, b in pairs:
        assert a["meta"] == b["meta"] and torch.equal(a["image"], b["image"])
        assert a["alphas"].shape == b["alphas"].shape
        assert (a["alphas"] - b["alphas"]).abs().max() <= 1.5 / 255
        assert (a["trimaps"] != b["trimaps"]).float().mean() < 0.002


def test_reduced_jpeg_decoding_covers_the_size_asked_for(tmp_path: Path):
    rgb = cv2.resize(np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8), (400, 300))
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    assert read_image(tmp_path / "a.jpg").shape == (300, 400, 3)
    small = read_image(tmp_path / "a.jpg", min_size=(70, 90))
    assert small.shape == (75, 100, 3)  # 1/4: the smallest JPEG scale that still covers 70 x 90
    assert read_image(tmp_path / "a.jpg", min_size=(80, 90)).shape == (150, 200, 3)  # 1/4 would not
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait (rotated 90 degrees)
    Image.fromarray(rgb).save(tmp_path / "r.jpg", quality=95, exif=exif)
    turned = read_image(tmp_path / "r.jpg", min_size=(90, 70))  # (h, w) as shown
    assert turned.shape == (100, 75, 3)
    assert np.abs(turned.astype(int) - np.rot90(small, -1)).mean() < 3


def test_area_from_reduced_keeps_the_full_size_geometry():
    """A map reduced by 4 (its last block partial) then resized: the edge stays where area averaging of the
    full-size map puts it; resizing the reduced map by its own ratio would move it."""
    full = np.zeros((401, 1001), np.uint8)
    full[:, 700:] = 255  # an edge at x = 700 of 1001
    reduced = np.asarray(Image.fromarray(full).reduce(4))  # 101 x 251, the last row and column of 1 pixel
    exact = cv2.resize(full.astype(np.float32), (100, 40), interpolation=cv2.INTER_AREA)[0]
    ours = area_from_reduced(reduced, (40, 100), (401, 1001)).astype(np.float32)[0]
    naive = cv2.resize(reduced, (100, 40), interpolation=cv2.INTER_AREA).astype(np.float32)[0]
    edge = lambda row: 100 - row.sum() / 255  # noqa: E731 - where the step from 0 to 1 is, in output px
    assert abs(edge(ours) - edge(exact)) < 0.02 < abs(edge(naive) - edge(exact))


def test_collate_gives_alpha_masks_to_compact_samples_without_given_masks():
    alphas = np.zeros((1, 8, 8), np.float32)
    alphas[0, 2:6, 2:6] = 0.6
    meta = {"input_size": (8, 8), "trimap_kernel": 3}
    given = compact_sample(np.zeros((8, 8, 3), np.uint8), alphas, np.zeros((1, 8, 8), bool), (8, 8), meta)
    derived = compact_sample(np.zeros((8, 8, 3), np.uint8), alphas, None, (8, 8), meta)
    batch = collate([given, derived])
    assert batch["masks"].dtype == torch.bool and not batch["masks"][0].any()
    assert torch.equal(batch["masks"][1, 0], torch.from_numpy(alphas[0] >= 0.5))


def test_complete_batch_uses_each_samples_kernel_and_size_and_leaves_evaluation_batches():
    rng = np.random.default_rng(0)
    samples = []
    for (h, w), kernel in (((20, 32), 3), ((32, 24), 9)):
        alphas = np.zeros((2, h, w), np.float32)
        alphas[0, 4:14, 4:12] = 1.0
        alphas[1, 6:16, 10:20] = rng.uniform(0, 1, (10, 10)).astype(np.float32)
        meta = {"input_size": (h, w), "trimap_kernel": kernel}
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        samples.append((image, alphas, compact_sample(image, alphas, None, (32, 32), meta)))
    batch = complete_batch(collate([s for _, _, s in samples]))
    for b, (image, alphas, sample) in enumerate(samples):
        h, w = sample["meta"]["input_size"]
        rounded = torch.from_numpy(np.round(alphas * 255) / 255).float()
        expected = trimap_from_alpha(rounded, sample["meta"]["trimap_kernel"])
        assert torch.equal(batch["trimaps"][b, :, :h, :w], expected) and not batch["trimaps"][b, :, h:].any()
        assert torch.allclose(batch["image"][b, :, :h, :w], normalize_image(image), atol=1e-6)
        assert not batch["image"][b, :, h:].any() and not batch["image"][b, :, :, w:].any()
        assert torch.equal(batch["masks"][b], (batch["alphas"][b] >= 0.5).float())
    assert complete_batch(batch) is batch  # complete already (evaluation batches): unchanged


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_loaded_record_has_the_size_asked_for(tmp_path: Path, suffix: str):
    source = InstanceFolder(write_photos(tmp_path, suffix))
    record = source.load(1, (105, 75))
    assert record["image"].shape == (105, 75, 3) and record["alphas"].shape[1:] == (105, 75)
    assert record["alphas"].dtype == np.float32 and source.image_size(1) == (420, 300)
    full = source[1]
    shrunk = cv2.resize(full["alphas"][0], (75, 105), interpolation=cv2.INTER_AREA)
    assert np.abs(record["alphas"][0] - shrunk).mean() < 0.01
