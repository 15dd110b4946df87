"""Training augmentation keeps photo and mattes aligned; eval resize/pad and the way back to the photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from e2e_him.data.targets import complete_sample, to_uint8
from e2e_him.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    normalize_image,
    prepare_eval_image,
)
from e2e_him.data.trimap import trimap_from_alpha
from e2e_him.models.inference import postprocess

NO_COLOUR = {"contrast_prob": 0.0, "gamma_prob": 0.0, "saturation_prob": 0.0}


def _blobs(size=(60, 80), k=2, seed=0) -> np.ndarray:
    """K smooth mattes: blurred random rectangles, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    out = np.zeros((k, *size), np.float32)
    for i in range(k):
        t, l = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
        out[i, t : t + size[0] // 3, l : l + size[1] // 3] = 1.0
    x = torch.from_numpy(out)[:, None]
    return F.avg_pool2d(x, 5, 1, 2, count_include_pad=False)[:, 0].numpy()


def _unnormalise_red(image: torch.Tensor) -> torch.Tensor:
    return image[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]


def _record_red_is_matte(size=(60, 80)) -> dict:
    alphas = _blobs(size, k=1)
    image = np.zeros((*size, 3), np.uint8)
    image[..., 0] = np.round(alphas[0] * 255).astype(np.uint8)  # red channel = the matte
    image[..., 1] = 40
    return {"image": image, "alphas": alphas, "masks": None, "name": "red"}


@pytest.mark.parametrize("seed", range(6))
def test_flip_and_affine_keep_photo_and_matte_aligned(seed: int):
    tf = TrainTransform(
        (48, 64),
        flip_prob=0.5,
        affine_prob=1.0,
        rotate=(-30, 30),
        shear=(-10, 10),
        min_visible_pixels=0,
        min_visible_fraction=0.0,
        **NO_COLOUR,
    )
    sample = complete_sample(tf(_record_red_is_matte(), np.random.default_rng(seed)))
    assert sample["image"].shape == (3, 48, 64) and sample["alphas"].shape[1:] == (48, 64)
    red = _unnormalise_red(sample["image"])
    alpha = sample["alphas"][0] if len(sample["alphas"]) else torch.zeros(48, 64)
    # both went through the same bilinear warp; photo and matte were rounded to 8 bits once more each
    assert (red - alpha).abs().max() < 3 / 255


def test_flip_is_applied_to_both():
    record = _record_red_is_matte()
    tf = TrainTransform((60, 80), flip_prob=1.0, affine_prob=0.0, min_visible_pixels=0, **NO_COLOUR)
    sample = complete_sample(tf(record, np.random.default_rng(0)))
    flipped = torch.from_numpy(record["alphas"][0, :, ::-1].copy())
    assert torch.allclose(sample["alphas"][0], flipped, atol=0.5 / 255)  # mattes travel as 8-bit values
    assert (_unnormalise_red(sample["image"]) - flipped).abs().max() < 1 / 255


def test_small_photo_is_padded_bottom_right_and_targets_are_complete():
    record = {
        "image": np.full((30, 20, 3), 255, np.uint8),
        "alphas": _blobs((30, 20), 2),
        "masks": None,
        "name": "s",
    }
    tf = TrainTransform(
        (64, 64), flip_prob=0, affine_prob=0, min_visible_pixels=1, trimap_kernel=(5, 5), **NO_COLOUR
    )
    compact = tf(record, np.random.default_rng(0))
    # the loader's sample: 8-bit photo and mattes, the kernel to make the trimaps with on the device
    assert compact["image"].dtype == compact["alphas"].dtype == torch.uint8 and "trimaps" not in compact
    assert compact["meta"]["trimap_kernel"] == 5 and "masks" not in compact
    assert torch.equal(compact["alphas"][:, :30, :20], torch.from_numpy(to_uint8(record["alphas"])))
    s = complete_sample(compact)
    assert s["image"].shape == (3, 64, 64) and s["meta"]["input_size"] == (30, 20)
    assert s["meta"]["orig_size"] == (30, 20) and s["meta"]["orig_alphas"] is None
    assert (s["image"][:, 30:] == 0).all() and (s["image"][:, :, 20:] == 0).all()
    assert torch.allclose(s["image"][:, :30, :20], normalize_image(record["image"]))
    assert torch.allclose(s["alphas"][:, :30, :20], torch.from_numpy(record["alphas"]), atol=0.5 / 255)
    assert s["alphas"][:, 30:].abs().sum() == 0
    assert s["masks"].dtype == torch.float32 and torch.equal(s["masks"], (s["alphas"] >= 0.5).float())
    assert s["trimaps"].dtype == torch.long and s["trimaps"][:, 30:].abs().sum() == 0
    rounded = torch.from_numpy(to_uint8(record["alphas"])).float() / 255
    assert torch.equal(s["trimaps"][:, :30, :20], trimap_from_alpha(rounded, 5))
    assert s["labels"].tolist() == [1, 1]


def test_given_masks_follow_the_geometry():
    record = _record_red_is_matte()
    record["masks"] = record["alphas"] > 0.9  # a given mask that differs from alpha >= 0.5
    tf = TrainTransform((60, 80), flip_prob=1.0, affine_prob=0.0, min_visible_pixels=0, **NO_COLOUR)
    s = tf(record, np.random.default_rng(0))
    assert s["masks"].dtype == torch.bool  # given masks travel as they are
    assert torch.equal(s["masks"][0], torch.from_numpy(record["masks"][0, :, ::-1].copy()))
    assert torch.equal(complete_sample(s)["masks"][0].bool(), s["masks"][0])


def test_people_too_small_are_dropped():
    alphas = np.zeros((2, 40, 40), np.float32)
    alphas[0, 10:30, 10:30] = 1.0  # 400 px
    alphas[1, 0:2, 0:2] = 1.0  # 4 px
    record = {"image": np.zeros((40, 40, 3), np.uint8), "alphas": alphas, "masks": None, "name": "x"}
    tf = TrainTransform((40, 40), flip_prob=0, affine_prob=0, min_visible_pixels=10, **NO_COLOUR)
    s = complete_sample(tf(record, np.random.default_rng(0)))
    assert s["alphas"].shape == (1, 40, 40) and s["alphas"][0].sum() == 400
    assert s["labels"].shape == (1,) and s["trimaps"].shape == (1, 40, 40)


def test_no_people_gives_empty_targets():
    record = {
        "image": np.zeros((40, 40, 3), np.uint8),
        "alphas": np.zeros((0, 40, 40), np.float32),
        "masks": None,
        "name": "e",
    }
    s = complete_sample(TrainTransform((32, 32))(record, np.random.default_rng(0)))
    assert (
        s["alphas"].shape == (0, 32, 32) and s["trimaps"].shape == (0, 32, 32) and s["labels"].shape == (0,)
    )


def test_same_rng_seed_same_sample_and_colour_ops_change_the_photo():
    record = _record_red_is_matte()
    tf = TrainTransform((48, 64), contrast_prob=1.0, gamma_prob=1.0, saturation_prob=1.0)
    a, b = tf(record, np.random.default_rng(5)), tf(record, np.random.default_rng(5))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["alphas"], b["alphas"])
    c = tf(record, np.random.default_rng(6))
    assert not torch.equal(a["image"], c["image"])


def test_normalize_image():
    x = normalize_image(np.full((2, 2, 3), 255, np.uint8))
    # (1 - 0.485) / 0.229 = 2.2489
    assert x.shape == (3, 2, 2) and x[0, 0, 0].item() == pytest.approx((1 - 0.485) / 0.229)


def back_to_photo(maps: torch.Tensor, meta: dict) -> torch.Tensor:
    """(K, H, W) network-input-sized maps the way the suite takes them back to the photo
    (`models.inference.postprocess`: crop `input_size`, resize to `orig_size`), every map kept, in order."""
    scores = torch.arange(len(maps), 0, -1, dtype=torch.float32)  # decreasing: the order is kept
    logits = torch.stack([torch.zeros_like(scores), scores], dim=-1)[None]  # (1, K, 2)
    return postprocess({"pred_logits": logits, "alpha_fin": maps[None]}, [meta], 0.5, min_area=-1.0)[0][
        "alphas"
    ]


def test_eval_resize_pad_and_round_trip():
    alphas = _blobs((50, 70), k=2, seed=3)
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    record = {"image": image, "alphas": alphas, "masks": None, "name": "ev"}
    s = EvalTransform(eval_size=64, trimap_kernel=3)(record)
    # long side 70 -> 64: scale 64/70, 50 * 64/70 = 45.7 -> 46; padded to multiples of 32: 64 x 64
    assert s["meta"]["input_size"] == (46, 64) and s["meta"]["orig_size"] == (50, 70)
    assert s["image"].shape == (3, 64, 64) and s["alphas"].shape == (2, 64, 64)
    assert (s["image"][:, 46:] == 0).all() and (s["alphas"][:, 46:] == 0).all()
    assert s["meta"]["orig_alphas"].dtype == torch.uint8 and s["meta"]["orig_alphas"].shape == (2, 50, 70)
    assert torch.equal(s["meta"]["orig_alphas"], torch.from_numpy(np.round(alphas * 255).astype(np.uint8)))
    back = back_to_photo(s["alphas"], s["meta"])
    assert back.shape == (2, 50, 70)
    assert (back - torch.from_numpy(alphas)).abs().mean() < 0.01  # interpolation error only
    assert (back - torch.from_numpy(alphas)).abs().max() < 0.15


def test_eval_keeps_size_when_eval_size_is_none():
    record = {
        "image": np.zeros((40, 40, 3), np.uint8),
        "alphas": _blobs((40, 40), 1),
        "masks": None,
        "name": "k",
    }
    s = EvalTransform(eval_size=None)(record)
    assert s["image"].shape == (3, 64, 64) and s["meta"]["input_size"] == (40, 40)
    assert torch.equal(back_to_photo(s["alphas"], s["meta"]), torch.from_numpy(record["alphas"]))


def test_prepare_eval_image_is_the_eval_preprocessing():
    image = np.random.default_rng(1).integers(0, 256, (100, 37, 3), dtype=np.uint8)
    tensor, meta = prepare_eval_image(image, 80, name="p")
    # long side 100 -> 80: 37 * 0.8 = 29.6 -> 30; padded to 96 x 32
    assert tensor.shape == (3, 96, 32) and meta == {
        "name": "p",
        "orig_size": (100, 37),
        "input_size": (80, 30),
        "orig_alphas": None,
    }
    record = {"image": image, "alphas": np.zeros((0, 100, 37), np.float32), "masks": None, "name": "p"}
    assert torch.equal(EvalTransform(80)(record)["image"], tensor)
