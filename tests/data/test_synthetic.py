"""Built-in synthetic people (`data=synthetic`): records, determinism, occlusion, visibility, compositing."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from e2e_him.data.procedural import build_person, rasterise, translate
from e2e_him.data.synthetic import (
    PROCEDURAL_KINDS,
    Layer,
    SyntheticPeople,
    background_photos,
    composite,
    crop_photo,
    visible_alphas,
)

PHOTO_NAMES = {"coffee", "rocket", "brick", "grass", "gravel", "hubble_deep_field", "china", "flower"}


def _source(**kwargs) -> SyntheticPeople:
    kwargs = {"num_samples": 12, "image_size": (64, 64), "seed": 0, **kwargs}
    return SyntheticPeople(**kwargs)


def test_record_format():
    rec = _source(image_size=(48, 80))[3]
    assert set(rec) == {"image", "alphas", "masks", "name"}
    assert rec["image"].dtype == np.uint8 and rec["image"].shape == (48, 80, 3)
    assert rec["alphas"].dtype == np.float32 and rec["alphas"].shape[1:] == (48, 80)
    assert rec["masks"] is None
    assert rec["name"] == "synthetic_0_000003"


def test_same_seed_and_index_give_identical_samples():
    a, b = _source(seed=5), _source(seed=5)
    for i in (0, 7):
        ra, rb, ra2 = a[i], b[i], a[i]
        assert np.array_equal(ra["image"], rb["image"]) and np.array_equal(ra["alphas"], rb["alphas"])
        assert np.array_equal(ra["image"], ra2["image"]) and ra["name"] == rb["name"]
    assert np.array_equal(a[-1]["image"], a[11]["image"])  # negative indices count from the end
    other = _source(seed=6)[0]
    assert not np.array_equal(a[0]["image"], other["image"])
    assert not np.array_equal(a[0]["image"], a[1]["image"])


def test_samples_are_identical_in_another_process():
    code = (
        "from e2e_him.data.synthetic import SyntheticPeople; import hashlib; "
        "r = SyntheticPeople(num_samples=4, image_size=(40, 56), seed=3)[2]; "
        "print(hashlib.md5(r['image'].tobytes() + r['alphas'].tobytes()).hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    r = SyntheticPeople(num_samples=4, image_size=(40, 56), seed=3)[2]
    assert out == hashlib.md5(r["image"].tobytes() + r["alphas"].tobytes()).hexdigest()


def test_index_out_of_range_raises():
    with pytest.raises(IndexError, match="out of range"):
        _source()[12]


@pytest.mark.parametrize(("lo", "hi"), [(1, 1), (2, 4), (1, 6)])
def test_people_counts_within_bounds(lo, hi):
    source = _source(min_people=lo, max_people=hi, num_samples=15)
    counts = [len(source[i]["alphas"]) for i in range(len(source))]
    assert min(counts) >= lo and max(counts) <= hi


def test_no_people():
    source = _source(min_people=0, max_people=0)
    scene = source.render(0)
    assert scene["alphas"].shape == (0, 64, 64)
    assert np.array_equal(scene["image"], np.rint(scene["background"]).astype(np.uint8))


def test_bad_people_bounds_raise():
    with pytest.raises(ValueError, match="min_people"):
        SyntheticPeople(min_people=3, max_people=2)


def test_alphas_are_valid_visible_mattes():
    source = _source(min_people=3, max_people=6)
    for i in range(8):
        alphas = source[i]["alphas"]
        assert alphas.min() >= 0.0 and alphas.max() <= 1.0
        assert (alphas.sum(0) <= 1.0 + 1e-6).all()
        assert (alphas.max((1, 2)) > 0.5).all()  # every person has a solid part


def test_mattes_have_a_transition_band():
    source = _source(image_size=(96, 96), strand_prob=1.0)
    for i in range(6):
        for alpha in source[i]["alphas"]:
            soft = ((alpha > 0) & (alpha < 1)).sum()
            assert soft >= 0.03 * (alpha > 0).sum()  # anti-aliased / defocused edges and hair strands


def test_hair_strands_are_semi_transparent():
    # the same person with and without strands: the strands add only partly covered pixels, outside the body
    size = (128, 96)
    drawn = []
    for prob in (0.0, 1.0):
        rng = np.random.default_rng([0, 1])  # the same person: the strands have their own generator
        shapes, _ = build_person(rng, 110.0, strand_prob=prob)
        drawn.append(rasterise(translate(shapes, np.array([48.0, 60.0])), size, blur=0.0))
    (o0, a0, _), (o1, a1, _) = drawn
    canvas = [np.zeros(size, np.uint8), np.zeros(size, np.uint8)]
    for c, (y, x), a in zip(canvas, (o0, o1), (a0, a1)):
        c[y : y + a.shape[0], x : x + a.shape[1]] = a
    extra = (canvas[1] > 0) & (canvas[0] == 0)  # pixels only the strands cover
    assert extra.sum() >= 20
    assert np.median(canvas[1][extra]) < 128  # thin wisps: well under half covered


def test_occlusion_reduces_the_earlier_person():
    # person 0: alpha 0.8 in columns 0..5; person 1 (in front): alpha 0.5 in columns 3..8
    alphas = np.zeros((2, 4, 10), np.float32)
    alphas[0, :, 0:6] = 0.8
    alphas[1, :, 3:9] = 0.5
    vis = visible_alphas(alphas)
    assert vis[0, 0, 1] == pytest.approx(0.8)  # not covered
    assert vis[0, 0, 4] == pytest.approx(0.4)  # 0.8 * (1 - 0.5)
    assert vis[1, 0, 4] == pytest.approx(0.5)  # the front person is not reduced
    assert vis.sum(0)[0, 4] == pytest.approx(0.9)  # 1 - (1 - 0.8) * (1 - 0.5)
    # three layers: alpha_0 * (1 - alpha_1) * (1 - alpha_2) = 1.0 * 0.5 * 0.75 = 0.375
    three = visible_alphas(np.array([1.0, 0.5, 0.25], np.float32).reshape(3, 1, 1))
    assert three[:, 0, 0] == pytest.approx([0.375, 0.375, 0.25])


def test_drawn_people_are_occluded_by_later_ones():
    source = _source(image_size=(96, 96), min_people=4, max_people=6, group_prob=1.0)
    checked = 0
    for i in range(6):
        scene = source.render(i)
        raw = np.stack([layer.full((96, 96)) for layer in scene["layers"]])
        front = 1 - np.cumprod((1 - raw)[::-1], 0)[::-1]  # front[k] = 1 - prod_{j >= k} (1 - alpha_j)
        expected = raw * np.concatenate([1 - front[1:], np.ones_like(raw[:1])])
        np.testing.assert_allclose(scene["alphas"], expected, atol=1e-5)
        checked += int((scene["alphas"] < raw - 0.1).any())
    assert checked >= 3  # the people do overlap


def test_hardly_visible_people_are_removed():
    source = _source(image_size=(80, 80), min_people=3, max_people=6, min_visible_fraction=0.05)
    for i in range(10):
        areas = source[i]["alphas"].sum((1, 2))
        assert (areas >= 0.05 * 80 * 80).all()


def test_image_is_the_composite_of_the_people_kept():
    source = _source(image_size=(72, 88), min_people=2, max_people=6, min_visible_fraction=0.03)
    for i in range(4):
        scene = source.render(i)
        H, W = 72, 88
        fg = np.zeros((len(scene["layers"]), H, W, 3), np.float32)
        for k, layer in enumerate(scene["layers"]):
            (y, x), (h, w) = layer.origin, layer.alpha.shape
            fg[k, y : y + h, x : x + w] = layer.fg
        a = scene["alphas"][..., None]
        expected = (a * fg).sum(0) + (1 - a.sum(0)) * scene["background"]
        assert np.abs(scene["image"].astype(np.float32) - expected).max() <= 0.5 + 1e-3
        assert np.array_equal(scene["image"], source[i]["image"])


def test_composite_formula_by_hand():
    # background 100; person 0 (fg 200) alpha 1 at (0, 0); person 1 (fg 50) alpha 0.5 over both pixels
    background = np.full((1, 2, 3), 100, np.float32)
    layers = [
        Layer((0, 0), np.array([[1.0, 0.0]], np.float32), np.full((1, 2, 3), 200, np.float32)),
        Layer((0, 0), np.array([[0.5, 0.5]], np.float32), np.full((1, 2, 3), 50, np.float32)),
    ]
    vis = visible_alphas(np.stack([layer.full((1, 2)) for layer in layers]))
    image = composite(layers, vis, background)
    # pixel 0: 0.5 * 200 + 0.5 * 50 + 0 * 100 = 125; pixel 1: 0.5 * 50 + 0.5 * 100 = 75
    assert image[0, 0].tolist() == [125] * 3 and image[0, 1].tolist() == [75] * 3


def test_photo_backgrounds_ship_with_the_wheels():
    photos = dict(background_photos())
    assert set(photos) == PHOTO_NAMES
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for p in photos.values())
    coffee = photos["coffee"]
    assert np.array_equal(crop_photo(np.random.default_rng(0), coffee, coffee.shape[:2], (1, 1)), coffee)


def test_photo_background_probability():
    photo = _source(photo_background_prob=1.0, num_samples=30, min_people=0, max_people=1)
    sources = [photo.render(i)["background_source"] for i in range(30)]
    assert set(sources) <= PHOTO_NAMES and len(set(sources)) >= 4
    procedural = _source(photo_background_prob=0.0, num_samples=10, min_people=0, max_people=1)
    kinds = {procedural.render(i)["background_source"] for i in range(10)}
    assert kinds <= {f"procedural:{k}" for k in PROCEDURAL_KINDS}


def test_instantiates_from_a_hydra_config():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "_target_": "e2e_him.data.synthetic.SyntheticPeople",
            "num_samples": 3,
            "image_size": [32, 48],
            "seed": 2,
        }
    )
    source = instantiate(cfg)
    assert len(source) == 3 and source[0]["image"].shape == (32, 48, 3)
