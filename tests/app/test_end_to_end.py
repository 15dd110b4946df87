"""The three apps as a user runs them: train -> eval -> predict, on CPU, in a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from app_runner import run_app
from PIL import Image
from wandb_records import logged_keys

from e2e_him.models.checkpoint import load_module

pytestmark = pytest.mark.slow

METRIC_KEYS = {f"{m}_{t}" for m in ("REC", "ACC", "EMSE", "EMAD") for t in ("0.5", "0.75")}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A 4-step training run of the smoke-sized model, with wandb (offline) and CSV logging."""
    run_dir = tmp_path_factory.mktemp("train_run")
    run_app("train", "debug=smoke", "logger=default", f"run_dir={run_dir}", "trainer.max_steps=4")
    return run_dir


def test_train_writes_checkpoints_metrics_and_pictures(trained_run: Path):
    ckpts = trained_run / "checkpoints"
    assert (ckpts / "last.ckpt").is_file()
    assert len(list(ckpts.glob("best-*.ckpt"))) == 1
    for ckpt in ckpts.glob("*.ckpt"):  # plain types only: loads without unpickling any code
        assert torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics) and all(np.isfinite(list(metrics.values())))
    assert 0.0 <= metrics["REC_0.5"] <= 1.0
    report = (trained_run / "metrics.md").read_text()
    assert report.count("|") > 8
    assert "4 images scored by the module's test metrics" in report  # debug=smoke validates on 4 images
    assert report.startswith("# quickstart (test on the val split)")  # synthetic_tiny has no test split
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["metrics_json"] == str(trained_run / "metrics.json")
    picture = Image.open(trained_run / "predictions.png")
    assert picture.size[0] > 400 and picture.size[1] > 200
    panels = sorted((trained_run / "val_panels").glob("*.png"))
    assert panels, "no validation image panel written"
    # input, truth, prediction, trimaps + (features, attention) per guidance head, 128 px each, 2 images
    assert np.asarray(Image.open(panels[0])).shape == (256, 128 * (4 + 2 * 2), 3)
    header = (trained_run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/IMQ_mse", "val/REC_0.5", "val/loss_tri", "train/loss_step", "test/EMAD_0.75"} <= set(header)


def test_wandb_offline_run_holds_metrics_config_and_images(trained_run: Path):
    runs = list((trained_run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "expected one offline wandb run"
    keys = logged_keys(next(runs[0].glob("run-*.wandb")))
    history = keys["history"]
    assert {"val/REC_0.5", "val/EMAD_0.75", "val/IMQ_mse", "val/loss_alpha", "train/loss_step"} <= history
    assert {
        "val/loss_tri",
        "val/loss_dice",
        "val/loss_cls",
        "val/loss_alpha_gu",
    } <= history  # every loss term
    assert any(k.startswith("lr-") for k in history), "learning rate not logged"
    assert "val/panel_0" in history
    assert list((runs[0] / "files" / "media" / "images" / "val").glob("panel_0_*.png"))
    assert {"model", "data", "trainer", "experiment_name", "seed"} <= keys["config"]


def test_checkpoint_loads_back_with_its_config(trained_run: Path):
    module = load_module(trained_run / "checkpoints" / "last.ckpt")
    assert module.run_config["model"]["net"]["hidden_dim"] == 64
    assert not module.training


def test_eval_scores_a_checkpoint_on_its_own_data_by_default(trained_run: Path, tmp_path: Path):
    proc = run_app("eval", f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}", f"run_dir={tmp_path}")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    rows = (tmp_path / "per_image.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 4  # header + the 4 validation images
    assert "REC_0.5" in proc.stdout


def _write_awkward_images(folder: Path) -> dict[str, tuple[int, int]]:
    """Photos of odd kinds; returns the (width, height) each output must have."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    sizes = {}
    Image.fromarray(rng.integers(0, 255, (77, 101, 3), dtype=np.uint8)).save(folder / "odd_size.jpg")
    sizes["odd_size"] = (101, 77)
    Image.fromarray(rng.integers(0, 255, (64, 80), dtype=np.uint8), mode="L").save(folder / "gray.png")
    sizes["gray"] = (80, 64)
    Image.fromarray(rng.integers(0, 255, (70, 60, 4), dtype=np.uint8), mode="RGBA").save(folder / "rgba.png")
    sizes["rgba"] = (60, 70)
    Image.fromarray(rng.integers(0, 65535, (50, 90), dtype=np.uint16)).save(folder / "deep16.png")
    sizes["deep16"] = (90, 50)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated by 90 degrees: portrait
    Image.fromarray(rng.integers(0, 255, (40, 96, 3), dtype=np.uint8)).save(folder / "rotated.jpg", exif=exif)
    sizes["rotated"] = (40, 96)
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    return sizes


def test_predict_folder_of_awkward_images(trained_run: Path, tmp_path: Path):
    sizes = _write_awkward_images(tmp_path / "in")
    out = tmp_path / "out"
    proc = run_app(
        "predict",
        f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
        f"input={tmp_path / 'in'}",
        f"output={out}",
        "score_threshold=0.0",  # keep every query: an untrained model is not confident
        "min_area=0",
        f"run_dir={tmp_path / 'run'}",
    )
    assert "broken.jpg" in (out / "failed.txt").read_text()
    assert "broken.jpg" in proc.stdout + proc.stderr
    for stem, size in sizes.items():
        mattes = sorted((out / stem).glob("*.png"))
        assert [p.name for p in mattes] == [f"{i:02d}.png" for i in range(len(mattes))] and mattes
        for path in mattes:
            matte = Image.open(path)
            assert matte.mode == "L" and matte.size == size, (path, matte.size, size)
        assert Image.open(out / f"{stem}_overlay.jpg").size == size
    assert not (out / "broken").exists()


def test_predict_on_the_demo_photos(trained_run: Path, demo_dir: Path, tmp_path: Path):
    photos = sorted(p for p in demo_dir.iterdir() if p.suffix.lower() == ".jpg")[:3]
    folder = tmp_path / "in"
    folder.mkdir()
    for p in photos:
        (folder / p.name).symlink_to(p)
    out = tmp_path / "out"
    run_app(
        "predict",
        f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
        f"input={folder}",
        f"output={out}",
        "eval_size=256",
        "score_threshold=0.0",
        "min_area=0",
        f"run_dir={tmp_path / 'run'}",
    )
    for p in photos:
        size = Image.open(p).size
        mattes = sorted((out / p.stem).glob("*.png"))
        assert mattes, f"no matte for {p.name}"
        for path in mattes:
            values = np.asarray(Image.open(path))
            assert values.dtype == np.uint8 and values.shape == size[::-1]
        assert Image.open(out / f"{p.stem}_overlay.jpg").size == size


def test_predict_video_keeps_track_ids(trained_run: Path, demo_dir: Path, tmp_path: Path):
    video = demo_dir / "video_test2.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is absent")
    out = tmp_path / "out"
    run_app(
        "predict",
        f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
        f"input={video}",
        f"output={out}",
        "eval_size=192",
        "video_stride=24",
        "max_frames=3",
        "score_threshold=0.0",
        "min_area=0",
        f"run_dir={tmp_path / 'run'}",
    )
    frames = sorted((out / "pha" / "video_test2").iterdir())  # V-HIM60's layout, frames by video index
    assert [f.name for f in frames] == ["00000", "00024", "00048"]
    mattes = list(frames[0].glob("*.png"))
    assert mattes and all(Image.open(p).size == (1280, 720) for p in mattes)
    assert sorted(p.name for p in (out / "fgr" / "video_test2").iterdir()) == [
        "00000.jpg",
        "00024.jpg",
        "00048.jpg",
    ]
    assert (out / "video_test2_overlay.mp4").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"][0]["frames"] == 3 and summary["videos"][0]["ids"] >= len(mattes)


def test_predict_folder_with_videos_and_clashing_names(trained_run: Path, tmp_path: Path):
    import imageio.v2 as imageio

    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(1)
    with imageio.get_writer(str(folder / "clip.mp4"), fps=5, codec="libx264", macro_block_size=1) as writer:
        for _ in range(3):
            writer.append_data(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(folder / "clip.jpg")
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    (folder / ".hidden.mp4").write_bytes(b"\x00")
    out = tmp_path / "out"
    run_app(
        "predict",
        f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
        f"input={folder}",
        f"output={out}",
        "score_threshold=0.0",
        "min_area=0",
        f"run_dir={tmp_path / 'run'}",
    )
    assert Image.open(next((out / "clip_jpg").glob("*.png"))).size == (40, 30)
    frames = sorted(p.name for p in (out / "pha" / "clip_mp4").iterdir())
    assert frames == ["00000", "00001", "00002"]
    assert Image.open(next((out / "pha" / "clip_mp4" / "00000").glob("*.png"))).size == (64, 48)
    assert (out / "clip_mp4_overlay.mp4").is_file()
    failed = (out / "failed.txt").read_text()
    assert "broken.mp4" in failed and "hidden" not in failed


def test_export_then_predict_with_onnxruntime_composites_and_a_large_photo(trained_run: Path, tmp_path: Path):
    onnx = tmp_path / "model.onnx"
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    proc = run_app("export", f"ckpt_path={ckpt}", f"output={onnx}", "exporter=torchscript",
                   "sample_size=[128,128]", f"run_dir={tmp_path / 'export'}")  # fmt: skip
    assert onnx.stat().st_size > 1e6 and "onnxruntime vs torch" in proc.stdout
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 255, (900, 1200, 3), dtype=np.uint8)).save(folder / "large.jpg")
    out = tmp_path / "out"
    run_app("predict", f"ckpt_path={onnx}", "backend=onnx", f"input={folder}", f"output={out}",
            "eval_size=256", "score_threshold=0.0", "min_area=0", "background=green", "cutout=true",
            "ids=[0,1]", f"run_dir={tmp_path / 'run'}")  # fmt: skip
    mattes = sorted((out / "large").glob("*.png"))
    assert mattes and all(Image.open(p).size == (1200, 900) for p in mattes)  # refined to full size
    assert Image.open(out / "composite" / "large.jpg").size == (1200, 900)
    cutouts = sorted(p.name for p in (out / "cutout" / "large").iterdir())
    assert cutouts == ["00.png", "01.png"][: len(mattes)]
    assert Image.open(out / "cutout" / "large" / "00.png").mode == "RGBA"


def test_predict_refuses_an_output_it_cannot_write_and_a_folder_of_folders(trained_run: Path, tmp_path: Path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    ckpt = f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}"
    proc = run_app("predict", ckpt, f"input={tmp_path / 'data'}", f"output={tmp_path / 'o'}", check=False)
    assert proc.returncode != 0 and "only 1 folder(s) (train)" in proc.stderr
    (tmp_path / "taken").write_text("x")
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(image)
    proc = run_app("predict", ckpt, f"input={image}", f"output={tmp_path / 'taken'}", check=False)
    assert proc.returncode != 0 and "is a file, not a folder" in proc.stderr


def test_fast_dev_run_trains_and_tests_without_writing_checkpoints(tmp_path: Path):
    run_app("train", "debug=fdr", "data=synthetic_tiny", "trainer=cpu", f"run_dir={tmp_path}",
            "model=e2e_him", "experiment=quickstart", "picture_images=0")  # fmt: skip
    assert not (tmp_path / "checkpoints").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["best_checkpoint"] is None
    assert METRIC_KEYS <= set(json.loads((tmp_path / "metrics.json").read_text()))  # the test stage ran


def test_a_config_mistake_fails_before_training_and_names_it(tmp_path: Path):
    proc = run_app("train", "debug=smoke", "model.net.hiden_dim=8", f"run_dir={tmp_path}", check=False)
    assert proc.returncode != 0 and "hiden_dim" in proc.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_eval_scores_a_prediction_folder_without_a_model(coco_persons: Path, tmp_path: Path):
    """`pred_dir=`: the ground truth scored as a prediction is perfect; one person removed lowers recall."""
    import shutil

    pred = tmp_path / "pred"
    shutil.copytree(coco_persons / "alphas", pred)
    run_app(
        "eval",
        f"pred_dir={pred}",
        "data=instance_folder",
        f"data.root={coco_persons}",
        f"run_dir={tmp_path / 'a'}",
        "metrics=[instance]",  # Eq. 20 only: IMQ and MaGGIe's errors have their own tests
    )
    perfect = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert perfect["REC_0.5"] == perfect["ACC_0.5"] == 1.0 and perfect["EMAD_0.5"] == 0.0
    first = sorted(pred.iterdir())[0]
    people = sorted(first.glob("*.png"))
    people[-1].unlink()
    run_app(
        "eval",
        f"pred_dir={pred}",
        "data=instance_folder",
        f"data.root={coco_persons}",
        f"run_dir={tmp_path / 'b'}",
        "metrics=[instance]",
    )
    missing = json.loads((tmp_path / "b" / "metrics.json").read_text())
    total = sum(len(list(d.glob("*.png"))) for d in (coco_persons / "alphas").iterdir())
    assert missing["REC_0.5"] == pytest.approx((total - 1) / total) and missing["ACC_0.5"] == 1.0
    rows = (tmp_path / "b" / "per_image.csv").read_text().splitlines()
    assert len(rows) == 1 + 4
