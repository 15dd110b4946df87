"""Every on-disk format loads from a tiny data set written here, and the ../shared fixtures load too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_datasets import person, photo, write_instance_image

from e2e_him.data.checks import check_source
from e2e_him.data.readers import HIM100K, InstanceFolder, SingleMatte, natural_key


def test_natural_order():
    names = ["10", "2", "0", "1", "person_10", "person_9"]
    assert sorted(names, key=natural_key) == ["0", "1", "2", "10", "person_9", "person_10"]


def test_instance_folder_flat(instance_root: Path):
    src = InstanceFolder(instance_root)
    assert [e.name for e in src.entries] == ["a", "b", "c"]
    assert src.problems == []
    rec = src[0]
    assert rec["image"].shape == (40, 48, 3) and rec["image"].dtype == np.uint8
    assert rec["alphas"].shape == (2, 40, 48) and rec["alphas"].dtype == np.float32
    # person(2, 2, 10, 8): opaque block rows 2..11, cols 2..9; soft rim 128/255 around it
    assert rec["alphas"][0, 2:12, 2:10].min() == 1.0
    assert rec["alphas"][0, 1, 5] == pytest.approx(128 / 255)
    assert rec["alphas"][0, 30, 40] == 0.0
    assert rec["masks"] is None and rec["name"] == "a"


def test_instance_folder_unpadded_indices_sort_numerically(tmp_path: Path):
    mattes = [person(0, i * 4, 3, 3) for i in range(11)]  # person k starts at column 4k
    write_instance_image(tmp_path, "x", mattes, padded=False)
    src = InstanceFolder(tmp_path)
    names = [p.name for p in src.entries[0].alphas]
    assert names[:3] == ["0.png", "1.png", "2.png"] and names[10] == "10.png"
    alphas = src[0]["alphas"]
    for k in range(11):  # matte k is the one whose block starts at column 4k
        assert alphas[k, 1, 4 * k] == 1.0


def test_instance_folder_sub_splits(tmp_path: Path):
    write_instance_image(tmp_path, "n1", [person(1, 1, 5, 5)], split="natural")
    write_instance_image(tmp_path, "n2", [person(1, 1, 5, 5)] * 2, split="natural")
    write_instance_image(tmp_path, "c1", [person(1, 1, 5, 5)], split="comp")
    natural = InstanceFolder(tmp_path, split="natural")
    assert [e.name for e in natural.entries] == ["n1", "n2"]
    both = InstanceFolder(tmp_path)  # images/ holds only folders: every split, names prefixed
    assert [e.name for e in both.entries] == ["comp/c1", "natural/n1", "natural/n2"]
    assert len(both[2]["alphas"]) == 2
    with pytest.raises(FileNotFoundError, match="split 'test' not found"):
        InstanceFolder(tmp_path, split="test")


def test_instance_folder_masks_and_single_matte_file(tmp_path: Path):
    write_instance_image(tmp_path, "m", [person(2, 2, 10, 8), person(20, 10, 15, 12)], masks=True)
    (tmp_path / "images" / "s.png").write_bytes((tmp_path / "images" / "m.png").read_bytes())
    Image.fromarray(person(3, 3, 4, 4)).save(tmp_path / "alphas" / "s.png")  # one person as a single file
    src = InstanceFolder(tmp_path)
    rec_m, rec_s = src[0], src[1]
    assert rec_m["masks"].dtype == bool and rec_m["masks"].shape == (2, 40, 48)
    assert rec_m["masks"][0, 1, 5] == False  # noqa: E712  soft rim (128 -> 0 in the given mask)
    assert rec_m["masks"][0, 5, 5] == True  # noqa: E712
    assert rec_s["alphas"].shape == (1, 40, 48) and rec_s["masks"] is None


def test_instance_folder_image_with_no_people(tmp_path: Path):
    write_instance_image(tmp_path, "empty", [])
    rec = InstanceFolder(tmp_path)[0]
    assert rec["alphas"].shape == (0, 40, 48)


def _him(root: Path) -> None:
    for part, stems in (("real", ["r1", "r2", "r3"]), ("synthetic", ["s1", "s2"])):
        for stem in stems:
            write_instance_image(root / part, stem, [person(2, 2, 10, 8), person(20, 10, 15, 12)], masks=True)
    (root / "real" / "boxes.json").write_text(json.dumps({"r1": [[2, 2, 10, 12], [10, 20, 22, 35]]}))


def test_him100k_split_list(tmp_path: Path):
    _him(tmp_path)
    (tmp_path / "train.txt").write_text("r1\nsynthetic/s2\n# a comment\n\nreal/images/r2.jpg\n")
    (tmp_path / "val.txt").write_text("r3\n")
    train = HIM100K(tmp_path, split="train")
    assert [e.name for e in train.entries] == ["real/r1", "real/r2", "synthetic/s2"]
    assert train.problems == []
    assert train.entries[0].boxes == [[2, 2, 10, 12], [10, 20, 22, 35]]
    rec = train[2]
    assert rec["alphas"].shape == (2, 40, 48) and rec["masks"].shape == (2, 40, 48)
    val = HIM100K(tmp_path, split="val", parts=["real"])
    assert [e.name for e in val.entries] == ["real/r3"]


def test_him100k_split_list_problems(tmp_path: Path):
    _him(tmp_path)
    (tmp_path / "train.txt").write_text("r1\nmissing\n")
    src = HIM100K(tmp_path, split="train")
    assert [e.name for e in src.entries] == ["real/r1"]
    assert len(src.problems) == 1 and "line 2: 'missing'" in src.problems[0].reason


def test_him100k_split_folders_and_everything(tmp_path: Path):
    for split, stems in (("train", ["t1", "t2"]), ("val", ["v1"])):
        for stem in stems:
            write_instance_image(tmp_path / "real", stem, [person(1, 1, 5, 5)], split=split)
    write_instance_image(tmp_path / "synthetic", "s1", [person(1, 1, 5, 5)], split="train")
    assert [e.name for e in HIM100K(tmp_path, split="train").entries] == [
        "real/t1",
        "real/t2",
        "synthetic/s1",
    ]
    assert [e.name for e in HIM100K(tmp_path, split="val").entries] == ["real/v1"]  # synthetic has no val
    assert len(HIM100K(tmp_path, split=None).entries) == 4


def test_him100k_boxes_count_checked(tmp_path: Path):
    _him(tmp_path)
    (tmp_path / "real" / "boxes.json").write_text(json.dumps({"r1": [[0, 0, 1, 1]]}))
    src = HIM100K(tmp_path, split=None, parts=["real"])
    report = check_source(src, workers=1)
    assert [str(p.path.name) for p in report.problems] == ["r1.png"]
    assert "1 boxes given for 2 mattes" in report.problems[0].reason


@pytest.mark.parametrize(
    ("split", "image_dir", "alpha_dir"),
    [
        (None, "image", "alpha"),  # RWP-636
        (None, "image", "matte"),  # PPM-100
        (None, "images", "alphas"),  # p3m_pseudo
        ("train", "blurred_image", "mask"),  # P3M-10k train
        ("validation/P3M-500-NP", "original_image", "mask"),  # P3M-500-NP
        (None, "original", "mask"),
    ],
)
def test_single_matte_layouts(tmp_path: Path, split, image_dir, alpha_dir):
    base = tmp_path / split if split else tmp_path
    (base / image_dir).mkdir(parents=True)
    (base / alpha_dir).mkdir(parents=True)
    for i, stem in enumerate(["p_1", "p_2"]):
        Image.fromarray(photo(i)).save(base / image_dir / f"{stem}.jpg")
        Image.fromarray(person(3, 3 + i, 20, 20)).save(base / alpha_dir / f"{stem}.png")
    src = SingleMatte(tmp_path, split=split)
    assert src.image_dir.name == image_dir and src.alpha_dir.name == alpha_dir
    assert [e.name for e in src.entries] == ["p_1", "p_2"] and src.problems == []
    rec = src[1]
    assert rec["alphas"].shape == (1, 40, 48) and rec["alphas"][0, 10, 10] == 1.0


def test_single_matte_explicit_dirs_and_errors(tmp_path: Path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "gt").mkdir()
    Image.fromarray(photo(0)).save(tmp_path / "pics" / "a.jpg")
    Image.fromarray(person(1, 1, 5, 5)).save(tmp_path / "gt" / "a.png")
    assert len(SingleMatte(tmp_path, image_dir="pics", alpha_dir="gt")) == 1
    with pytest.raises(FileNotFoundError, match="no known image/matte folder pair"):
        SingleMatte(tmp_path)
    write_instance_image(tmp_path / "inst", "x", [person(1, 1, 5, 5)])
    with pytest.raises(ValueError, match="use data=instance_folder"):
        SingleMatte(tmp_path / "inst")


def test_coco_persons_fixture_loads(coco_persons: Path):
    src = InstanceFolder(coco_persons)
    report = check_source(src, max_instances=20)
    assert report.problems == [] and report.too_many == []
    assert len(src) == 4 and sum(len(e.alphas) for e in src.entries) == 14
    rec = src[0]
    assert rec["alphas"].shape[1:] == rec["image"].shape[:2]
    assert set(np.unique(rec["alphas"])) <= {0.0, 1.0}  # binary COCO masks


def test_p3m_pseudo_fixture_loads(p3m_pseudo: Path):
    src = SingleMatte(p3m_pseudo)
    assert check_source(src).problems == []
    assert len(src) == 12
    rec = src[0]
    assert rec["alphas"].shape == (1, *rec["image"].shape[:2])
    assert 0.0 < rec["alphas"].mean() < 1.0
