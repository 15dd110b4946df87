"""Odd and bad files: each loads correctly, or is reported with its path ("error") or skipped ("skip")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_datasets import person, photo, three_people, write_instance_image

from e2e_him.data.checks import BadDataError, SkipLog, TooManyInstancesError
from e2e_him.data.datamodule import HIMDataModule
from e2e_him.data.io import ImageReadError
from e2e_him.data.readers import InstanceFolder
from e2e_him.data.targets import complete_sample


def _dm(root: Path, tmp_path: Path, **kw) -> HIMDataModule:
    kw.setdefault("crop_size", (32, 32))
    kw.setdefault("eval_size", None)
    kw.setdefault("skip_list_path", str(tmp_path / "skipped.txt"))
    return HIMDataModule(train=lambda: InstanceFolder(root), check_workers=2, **kw)


def _good(root: Path) -> None:
    write_instance_image(root, "good1", [person(2, 2, 10, 8)])
    write_instance_image(root, "good2", [person(5, 5, 20, 20), person(20, 30, 10, 10)])


# ------------------------------------------------------------------------------------ files that load fine
def test_cmyk_jpeg_loads_as_rgb(tmp_path: Path):
    rgb = np.zeros((40, 48, 3), np.uint8)
    rgb[:, :24] = (200, 40, 40)
    rgb[:, 24:] = (30, 160, 220)
    write_instance_image(tmp_path, "x", [person(2, 2, 10, 8)])
    (tmp_path / "images" / "x.png").unlink()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "images" / "x.jpg", quality=95)
    assert Image.open(tmp_path / "images" / "x.jpg").mode == "CMYK"
    dm = _dm(tmp_path, tmp_path)
    dm.setup("fit")
    rec = dm.train_dataset.source[0]
    # away from the colour edge, the CMYK round trip is within JPEG error of the RGB colours
    assert np.abs(rec["image"][:, 2:20].astype(int) - (200, 40, 40)).max() <= 12
    assert np.abs(rec["image"][:, 28:46].astype(int) - (30, 160, 220)).max() <= 12


def test_rgba_photo_and_grayscale_photo_load(tmp_path: Path):
    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 255
    rgba[:, :10, 3] = 0  # transparent strip: composited on black
    write_instance_image(tmp_path, "rgba", [person(2, 2, 10, 8)], image=rgba)
    write_instance_image(tmp_path, "gray", [person(2, 2, 10, 8)], image=np.full((40, 48), 90, np.uint8))
    dm = _dm(tmp_path, tmp_path)
    dm.setup("fit")
    gray, rgba_rec = dm.train_dataset.source[0], dm.train_dataset.source[1]
    assert gray["image"].shape == (40, 48, 3) and (gray["image"] == 90).all()
    assert (rgba_rec["image"][:, :10] == 0).all() and (rgba_rec["image"][:, 10:] == 200).all()


def test_16bit_and_rgba_mattes_load(tmp_path: Path):
    write_instance_image(tmp_path, "x", [person(2, 2, 10, 8), person(20, 10, 15, 12)])
    m16 = np.zeros((40, 48), np.uint16)
    m16[5:10, 5:10] = 65535
    m16[20:22, 20:22] = 32768  # 32768 / 65535 = 0.500008
    Image.fromarray(m16).save(tmp_path / "alphas" / "x" / "00.png")
    assert Image.open(tmp_path / "alphas" / "x" / "00.png").mode.startswith("I")
    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[..., 3] = person(20, 10, 15, 12)
    Image.fromarray(rgba).save(tmp_path / "alphas" / "x" / "01.png")
    dm = _dm(tmp_path, tmp_path)
    dm.setup("fit")
    alphas = dm.train_dataset.source[0]["alphas"]
    assert alphas[0, 5, 5] == 1.0 and alphas[0, 20, 20] == pytest.approx(32768 / 65535)
    assert alphas[1, 25, 15] == 1.0 and alphas[1, 19, 15] == pytest.approx(128 / 255)  # the alpha channel


def _exif_jpeg(path: Path, displayed: np.ndarray, orientation: int = 6) -> None:
    """Save `displayed` as a JPEG of rotated pixels, with the EXIF tag that rotates them back."""
    stored = np.rot90(
        displayed, k=1
    )  # orientation 6 = rotate the stored pixels 90 degrees clockwise to display
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=95, exif=exif)


def test_exif_rotated_photo_with_matte_in_rotated_frame(tmp_path: Path):
    displayed = np.zeros((40, 48, 3), np.uint8)
    displayed[5:15, 8:30] = 255  # a white block, top-left of the displayed photo
    matte = np.zeros((40, 48), np.uint8)
    matte[5:15, 8:30] = 255
    write_instance_image(tmp_path, "rot", [matte])
    (tmp_path / "images" / "rot.png").unlink()
    _exif_jpeg(tmp_path / "images" / "rot.jpg", displayed)
    assert Image.open(tmp_path / "images" / "rot.jpg").size == (40, 48)  # stored (W, H) = 40 x 48
    dm = _dm(tmp_path, tmp_path)
    dm.setup("fit")
    rec = dm.train_dataset.source[0]
    assert rec["image"].shape == (40, 48, 3)
    bright = rec["image"][..., 0] > 128
    assert (bright == (rec["alphas"][0] > 0.5)).mean() > 0.99  # image and matte still agree


def test_exif_rotated_photo_with_matte_in_stored_frame_is_reported(tmp_path: Path):
    displayed = photo(1)
    write_instance_image(
        tmp_path, "rot", [np.zeros((48, 40), np.uint8)]
    )  # matte in the stored (unrotated) frame
    (tmp_path / "images" / "rot.png").unlink()
    _exif_jpeg(tmp_path / "images" / "rot.jpg", displayed)
    with pytest.raises(BadDataError, match="EXIF orientation 6") as err:
        _dm(tmp_path, tmp_path).setup("fit")
    assert str(tmp_path / "alphas" / "rot" / "00.png") in str(err.value)


# ------------------------------------------------------------------------------------------ bad files
def _truncated_jpeg(root: Path) -> Path:
    write_instance_image(root, "trunc", [person(2, 2, 10, 8)])
    (root / "images" / "trunc.png").unlink()
    path = root / "images" / "trunc.jpg"
    Image.fromarray(photo(3)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage(root: Path) -> Path:
    write_instance_image(root, "garbage", [person(2, 2, 10, 8)])
    path = root / "images" / "garbage.png"
    path.write_bytes(b"this is not an image")
    return path


def _size_mismatch(root: Path) -> Path:
    write_instance_image(root, "small", [person(2, 2, 10, 8)])
    path = root / "alphas" / "small" / "00.png"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(path)
    return path


def _image_without_mattes(root: Path) -> Path:
    path = root / "images" / "lonely.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo(4)).save(path)
    return path


def _mattes_without_image(root: Path) -> Path:
    path = root / "alphas" / "ghost"
    path.mkdir(parents=True)
    Image.fromarray(person(1, 1, 4, 4)).save(path / "00.png")
    return path


def _truncated_matte(root: Path) -> Path:
    write_instance_image(root, "tmatte", [person(2, 2, 10, 8)])
    path = root / "alphas" / "tmatte" / "00.png"
    Image.fromarray(photo(5)[..., 0]).save(
        path
    )  # noise: compresses badly, so half the file is half the pixels
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


BAD = {
    "truncated_jpeg": (_truncated_jpeg, "truncated"),
    "garbage": (_garbage, "unreadable image"),
    "size_mismatch": (_size_mismatch, "matte is 20x20 but its image"),
    "image_without_mattes": (_image_without_mattes, "image without mattes"),
    "mattes_without_image": (_mattes_without_image, "mattes without an image"),
    "truncated_matte": (_truncated_matte, "truncated matte"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_error_names_the_path(tmp_path: Path, case: str):
    root = tmp_path / "d"
    _good(root)
    make, reason = BAD[case]
    path = make(root)
    with pytest.raises(BadDataError) as err:
        _dm(root, tmp_path).setup("fit")
    msg = str(err.value)
    assert f"{path}: " in msg and reason in msg and "1 problem(s)" in msg and "on_bad_file=skip" in msg


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_skip_lists_it_and_keeps_the_good_images(tmp_path: Path, case: str):
    root = tmp_path / "d"
    _good(root)
    make, reason = BAD[case]
    path = make(root)
    dm = _dm(root, tmp_path, on_bad_file="skip")
    with pytest.warns(UserWarning, match=r"skipped 1 bad file\(s\)"):
        dm.setup("fit")
    assert [e.name for e in dm.train_dataset.source.entries] == ["good1", "good2"]
    rows = SkipLog(tmp_path / "skipped.txt").read()
    assert len(rows) == 1 and rows[0][0] == str(path) and reason in rows[0][1]
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (1, 3, 32, 32)


def test_one_error_lists_every_problem(tmp_path: Path):
    root = tmp_path / "d"
    _good(root)
    paths = [make(root) for make, _ in BAD.values()]
    with pytest.raises(BadDataError) as err:
        _dm(root, tmp_path).setup("fit")
    msg = str(err.value)
    assert f"{len(BAD)} problem(s)" in msg
    assert all(str(p) in msg for p in paths)


# --------------------------------------------------------------------------------------- too many people
def test_too_many_people_error_at_setup(tmp_path: Path):
    write_instance_image(tmp_path, "crowd", three_people())
    write_instance_image(tmp_path, "duo", three_people()[:2])
    with pytest.raises(TooManyInstancesError, match=r"crowd: 3 people") as err:
        _dm(tmp_path, tmp_path, max_instances=2).setup("fit")
    assert "duo" not in str(err.value) and "model's 2 queries" in str(err.value)


def test_too_many_people_truncate_keeps_the_largest(tmp_path: Path):
    write_instance_image(tmp_path, "crowd", three_people())
    no_aug = {"affine_prob": 0.0, "flip_prob": 0.0}
    dm = _dm(tmp_path, tmp_path, max_instances=2, on_too_many="truncate", crop_size=(40, 48), augment=no_aug)
    dm.composite_prob, dm.min_visible_pixels = 0.0, 1.0
    with pytest.warns(UserWarning, match="crowd holds 3 people"):
        dm.setup("fit")
    sample = complete_sample(dm.train_dataset[0])
    # areas: 10x8 (+rim), 15x12 (+rim), 30x15 (+rim): the two largest are people 1 and 2, in their order
    areas = sample["alphas"].sum((1, 2))
    assert len(areas) == 2 and areas[0] == pytest.approx(15 * 12 + 128 / 255 * (17 * 14 - 15 * 12), abs=0.01)


# ----------------------------------------------------------------------------------- failures at load time
def test_file_broken_after_setup_error_mode_names_it(tmp_path: Path):
    _good(tmp_path)
    dm = _dm(tmp_path, tmp_path)
    dm.setup("fit")
    bad = tmp_path / "images" / "good1.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(ImageReadError, match=str(bad)):
        dm.train_dataset[(0, 0)]


def test_file_broken_after_setup_skip_mode_substitutes_deterministically(tmp_path: Path):
    for i in range(4):
        write_instance_image(tmp_path, f"g{i}", [person(2 + i, 2, 10, 8)])
    dm = _dm(tmp_path, tmp_path, on_bad_file="skip", composite_prob=0.0)
    dm.setup("fit")
    # a second copy, as each data-loader worker holds one
    dm2 = _dm(
        tmp_path, tmp_path, on_bad_file="skip", composite_prob=0.0, skip_list_path=str(tmp_path / "s2.txt")
    )
    dm2.setup("fit")
    bad = tmp_path / "images" / "g1.png"
    bad.write_bytes(bad.read_bytes()[:60])
    first = dm.train_dataset[(1, 0)]
    assert first["meta"]["name"] != "g1"
    rows = SkipLog(tmp_path / "skipped.txt").read()
    assert len(rows) == 1 and rows[0][0] == str(bad) and "truncated" in rows[0][1]
    second = dm2.train_dataset[(1, 0)]
    assert second["meta"]["name"] == first["meta"]["name"]
    assert (second["image"] == first["image"]).all()
