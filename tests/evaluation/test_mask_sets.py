"""M-HIM2K: one score per guidance-mask set, mean and standard deviation over the sets (MaGGIe's Table 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from benchmark_trees import PEOPLE, H, W, mhim2k_tree

from e2e_him.data.io import write_alpha
from e2e_him.data.mask_sets import MaskSetFolder
from e2e_him.evaluation import ScoreOptions, score_mask_sets, write_report
from e2e_him.evaluation.tasks import mask_set_tasks


@pytest.fixture
def tree(tmp_path):
    root, pred = tmp_path / "M-HIM2K", tmp_path / "pred"
    mhim2k_tree(root, pred)
    return root, pred


def test_mask_set_folder_finds_sets_and_the_people_maggie_scores(tree):
    root, _ = tree
    source = MaskSetFolder(root, split="natural")
    assert source.mask_sets == ["masks_matched_m1", "masks_matched_m2", "masks_matched_m3"]
    a, b = source.entries
    assert source.masks_for("masks_matched_m1", a)[0] == ("00", "01")
    assert source.masks_for("masks_matched_m2", a)[0] == ("00",)
    assert source.masks_for("masks_matched_m2", b)[0] is None  # no folder: MaGGIe skips the image
    assert MaskSetFolder(root, mask_sets=["m2"]).mask_sets == ["masks_matched_m2"]
    with pytest.raises(FileNotFoundError, match="m9"):
        MaskSetFolder(root, mask_sets=["m9"])


def test_scores_per_set_then_mean_and_std(tree, tmp_path):
    root, pred = tree
    per_set, problems = mask_set_tasks(MaskSetFolder(root), pred)
    assert list(per_set) == ["masks_matched_m1", "masks_matched_m2"]  # m3 has no prediction folder
    assert any("masks_matched_m3" in p.path and p.action == "set left out" for p in problems)
    options = ScoreOptions(metrics=("instance", "maggie"), pairing="name", grad_conn=False)
    scored = score_mask_sets(per_set, options, workers=0, progress=False)
    m = scored.metrics
    # m1: all 3 people found (a/01 at 0.6 > 0.5): REC 1; m2: a/00 only, b has no folder: REC 1/3
    assert m["masks_matched_m1/REC_0.5"] == 1.0 and m["masks_matched_m2/REC_0.5"] == pytest.approx(1 / 3)
    assert m["REC_0.5"] == pytest.approx(2 / 3) and m["REC_0.5_std"] == pytest.approx(1 / 3)
    # MaGGIe's errors score a set's people only: m1: a/00 0, a/01 0.4 on its 18 x 28 px, b/00 0; m2: a/00 0
    mad_a01 = 0.4 * PEOPLE["a"]["01"].sum() / (H * W) * 1e3
    assert m["masks_matched_m1/MAD_x1e3"] == pytest.approx(mad_a01 / 3, rel=1e-5)
    assert m["masks_matched_m2/MAD_x1e3"] == 0.0
    assert m["MAD_x1e3"] == pytest.approx(mad_a01 / 6, rel=1e-5)
    assert m["MAD_x1e3_std"] == pytest.approx(mad_a01 / 6, rel=1e-5)  # |x - 0| / 2 (numpy's std, ddof 0)
    rows = {(r["mask_set"], r["name"]): r for r in scored.rows}
    assert (
        rows[("masks_matched_m2", "b")]["maggie_people"] == 0
        and rows[("masks_matched_m2", "b")]["prediction_missing"]
    )
    files = write_report(tmp_path / "run", m, scored.rows, "tiny", scored.problems, mask_sets=list(per_set))
    md = files["markdown"].read_text()
    assert "mean (std) over the sets" in md
    assert f"{m['REC_0.5']:.4f} ({m['REC_0.5_std']:.4f})" in md  # Table I row with the std
    assert f"| {m['MAD_x1e3']:.2f} ({m['MAD_x1e3_std']:.2f}) |" in md  # Table 5 layout at the usual scale
    assert "masks_matched_m1/REC_0.5" not in md and "masks_matched_m1/REC_0.5" in files["json"].read_text()


def test_maggie_pairing_by_name_versus_iou(tree):
    root, pred = tree
    per_set, _ = mask_set_tasks(MaskSetFolder(root, mask_sets=["m1"]), pred)
    # swap the file names of image a's predictions: by name each person gets the other's matte
    folder = pred / "m1" / "natural" / "a"
    (folder / "00.png").rename(folder / "tmp.png")
    (folder / "01.png").rename(folder / "00.png")
    (folder / "tmp.png").rename(folder / "01.png")
    by = {}
    for pairing in ("name", "iou"):
        options = ScoreOptions(metrics=("maggie",), pairing=pairing, grad_conn=False)
        by[pairing] = score_mask_sets(per_set, options, workers=0, progress=False).metrics["MAD_x1e3"]
    assert by["iou"] == pytest.approx(0.4 * PEOPLE["a"]["01"].sum() / (H * W) * 1e3 / 3, rel=1e-5)
    assert by["name"] > 5 * by["iou"]
    assert np.isfinite(list(by.values())).all()


def test_masks_are_decoded_by_the_workers_and_skipped_images_listed(tree, monkeypatch):
    root, pred = tree
    source = MaskSetFolder(root, mask_sets=["m1"])
    m1 = root / "masks_matched_m1" / "natural"
    write_alpha(m1 / "b" / "00.png", np.zeros((H, W), np.float32))  # b's only mask: empty -> MaGGIe skips b
    (m1 / "a" / "00.png").write_bytes(b"broken")  # a/00's mask does not decode; a/01's is drawn
    write_alpha(m1 / "a" / "07.png", PEOPLE["a"]["00"])  # no matte 07: reported while listing

    def no_decoding(*args, **kwargs):
        raise AssertionError("a mask was decoded while building the tasks")

    with monkeypatch.context() as m:
        m.setattr("e2e_him.data.mask_sets.read_alpha", no_decoding)
        per_set, problems = mask_set_tasks(source, pred)
    a_task, b_task = per_set["masks_matched_m1"]
    assert [f.name for f in a_task.masks] == ["00.png", "01.png"] and a_task.subset == ("00", "01")
    assert [f.name for f in b_task.masks] == ["00.png"]
    assert [(Path(p.path).name, p.action) for p in problems] == [("07.png", "mask ignored")]
    options = ScoreOptions(metrics=("instance", "maggie"), pairing="name", grad_conn=False)
    scored = score_mask_sets(per_set, options, workers=0, progress=False)
    rows = {r["name"]: r for r in scored.rows}
    assert rows["a"]["maggie_people"] == 2 and rows["a"]["maggie_skipped"] is None
    assert rows["b"]["maggie_people"] == 0 and rows["b"]["maggie_skipped"] == "every guidance mask is empty"
    assert [Path(p.path).name for p in scored.problems if "unreadable mask" in p.reason] == ["00.png"]
    assert scored.metrics["REC_0.5"] == 1.0  # Eq. 20 still counts every person
    # MaGGIe's errors: a/00 exact, a/01 at 0.6; b is skipped
    mad_a01 = 0.4 * PEOPLE["a"]["01"].sum() / (H * W) * 1e3
    assert scored.metrics["MAD_x1e3"] == pytest.approx(mad_a01 / 2, rel=1e-5)
