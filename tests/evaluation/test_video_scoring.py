"""Video sets in the V-HIM60 layout: reading, prediction layouts and names, per-frame and temporal metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from benchmark_trees import FLICKER, FRAMES, H, W, box, vhim_tree

from e2e_him.data.io import write_alpha
from e2e_him.data.video_folder import VideoInstanceFolder, frame_key, index_frames
from e2e_him.evaluation import ScoreOptions, score_videos, write_report
from e2e_him.evaluation.tasks import video_tasks

N_FLICKER = int(FLICKER[1].sum())  # 80 px at 0.5 instead of 1 in frame 3
Q = 1 - np.round(0.5 * 255) / 255  # the flicker's error once written as an 8-bit PNG


@pytest.fixture
def tree(tmp_path):
    root, pred = tmp_path / "V-HIM60", tmp_path / "pred"
    vhim_tree(root, pred)
    return root, pred


def test_reader_indexes_videos_frames_and_people(tree):
    root, pred = tree
    source = VideoInstanceFolder(root)
    assert source.splits == ["comp_easy"] and [v.name for v in source.videos] == ["00000", "00001"]
    v = source.videos[0]
    assert [f.name for f in v.frames] == [f"{t:05d}" for t in range(FRAMES)] and v.people() == ["00", "01"]
    assert v.frames[0].image.name == "00000.jpg" and not source.problems
    # predictions: our predict layout for 00000 (unpadded names), MaGGIe's eval_baseline layout for 00001
    assert source.prediction_dir(pred, v) == pred / "comp_easy" / "pha" / "00000"
    assert source.prediction_dir(pred, source.videos[1]) == pred / "comp_easy" / "00001"
    frames = index_frames(pred / "comp_easy" / "pha" / "00000")
    assert list(frames) == [str(t) for t in range(FRAMES)] and frame_key("3") == frame_key("00003")
    assert VideoInstanceFolder(root, split="comp_easy").videos[0].name == "00000"
    with pytest.raises(FileNotFoundError, match="comp_hard"):
        VideoInstanceFolder(root, split="comp_hard")


def _score(root, pred, **kwargs):
    tasks, problems = video_tasks(VideoInstanceFolder(root), pred)
    options = ScoreOptions(metrics=("instance", "maggie", "temporal"), grad_conn=False, **kwargs)
    scored = score_videos(tasks, options, workers=0, progress=False)
    return scored, problems


def test_per_frame_and_temporal_metrics_by_hand(tree, tmp_path):
    root, pred = tree
    scored, _ = _score(root, pred, pairing="name")
    m = scored.metrics
    # 12 frames x 2 people + 6 frames x 1 person = 18 people-frames; video 00001 misses frames 4 and 5
    assert m["REC_0.5"] == pytest.approx(16 / 18) and m["ACC_0.5"] == 1.0
    # dtSSD (usual): person pairs: 00000: 2 people x 5 pairs, 00001: 5 pairs = 15 values; the flicker of
    # video 00000 gives sqrt(0.25 * 80 / HW) * 100 in pairs (2, 3) and (3, 4); 00001's missing frames 4 and 5
    # give a drop to zero at pair (3, 4): sqrt(n / HW) * 100 with n the person's pixels
    flick = np.sqrt(Q**2 * N_FLICKER / (H * W)) * 100
    drop = np.sqrt(320 / (H * W)) * 100  # person 01 is 16 x 20 = 320 px
    assert m["dtSSD_x1e2"] == pytest.approx((2 * flick + drop) / 15, rel=1e-5)
    # MaGGIe's dtSSD, clip3 groups for 6 frames: [0, 1], [1, 2], [2, 3, 4, 5]; 3 people x 3 groups = 9 values
    maggie = 0.1 * np.sqrt(2 * Q**2 * N_FLICKER) + 0.1 * np.sqrt(320)
    assert m["dtSSD_maggie"] == pytest.approx(maggie / 9, rel=1e-5)
    assert m["MESSDdt_x1e3"] > 0 and m["MESSDdt_maggie"] > 0
    video_rows = {r["name"]: r for r in scored.video_rows}
    assert video_rows["00001"]["frames_without_prediction"] == 2 and video_rows["00000"]["missed_people"] == 0
    assert any("no prediction for 2 frames" in p.reason for p in scored.problems)
    # the whole video as one group (MaGGIe's tools/eval_baseline.py): 3 values, sqrt over all pairs
    whole, _ = _score(root, pred, pairing="name", video_protocol="video")
    assert whole.metrics["dtSSD_maggie"] == pytest.approx(maggie / 3, rel=1e-5)
    assert whole.metrics["dtSSD_x1e2"] == pytest.approx(m["dtSSD_x1e2"])  # the usual one has no groups
    files = write_report(tmp_path / "run", m, scored.rows, "video", scored.problems, scored.video_rows)
    md = files["markdown"].read_text()
    assert "Table 7 layout" in md and "| all: MAD | all: Grad | all: Conn | all: dtSSD | all: MESSDdt |" in md
    assert files["video_csv"].read_text().count("\n") == 3 and "12 frames of 2 videos scored" in md


def test_iou_pairing_finds_people_whatever_their_ids(tmp_path):
    root, pred = tmp_path / "V-HIM60", tmp_path / "pred"
    vhim_tree(root, pred, swap_ids=True)  # predicted person "1" is ground-truth person "00"
    by_name, _ = _score(root, pred, pairing="name")
    by_iou, _ = _score(root, pred, pairing="iou")
    assert by_iou.metrics["REC_0.5"] == by_name.metrics["REC_0.5"]  # per frame: matched by IoU anyway
    # MAD over 18 person-frames: 00001's two unpredicted frames (320 px each) and the flicker
    assert by_iou.metrics["MAD_x1e3"] == pytest.approx(
        (2 * 320 + Q * N_FLICKER) / (H * W) * 1e3 / 18, rel=1e-5
    )
    assert by_name.metrics["MAD_x1e3"] > 5 * by_iou.metrics["MAD_x1e3"]  # each person got the other's matte
    flick = np.sqrt(Q**2 * N_FLICKER / (H * W)) * 100
    drop = np.sqrt(320 / (H * W)) * 100
    assert by_iou.metrics["dtSSD_x1e2"] == pytest.approx((2 * flick + drop) / 15, rel=1e-5)


def test_unreadable_ground_truth_is_listed_and_the_video_left_out(tree):
    root, pred = tree
    (root / "comp_easy" / "pha" / "00001" / "00002" / "00.png").write_bytes(b"broken")
    scored, _ = _score(root, pred, pairing="name")
    assert any(p.action == "video not scored" for p in scored.problems)
    assert [r["scored"] for r in scored.video_rows] == [True, False]
    assert scored.metrics["REC_0.5"] == 1.0  # video 00000 alone: every person found in every frame


def test_prediction_videos_and_frames_without_ground_truth_are_listed(tree):
    root, pred = tree
    before, _ = _score(root, pred, pairing="name")
    assert not [p for p in before.problems if p.action == "ignored"]  # both layouts of the tree are read
    person = box(4, 18, 4, 16)
    write_alpha(pred / "comp_easy" / "pha" / "00007" / "0" / "0.png", person)  # no video 00007
    write_alpha(pred / "comp_hard" / "pha" / "00000" / "0" / "0.png", person)  # no split comp_hard
    write_alpha(pred / "comp_easy" / "pha" / "00000" / "99" / "0.png", person)  # video 00000 has no frame 99
    after, _ = _score(root, pred, pairing="name")
    base = pred.resolve()
    ignored = {
        (Path(p.path).resolve().relative_to(base).as_posix(), p.reason)
        for p in after.problems
        if p.action == "ignored"
    }
    assert ignored == {
        ("comp_easy/pha/00007", "prediction folder without ground truth"),
        ("comp_hard", "prediction folder without ground truth"),
        ("comp_easy/pha/00000", "1 predicted frames without ground truth (99)"),
    }
    assert after.metrics == before.metrics
