"""A trained quickstart checkpoint as a Hub folder, as a user runs it: `export format=hub`, then `predict`,
`eval` and `train init_weights=` on the folder give what the checkpoint gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from app_runner import run_app
from PIL import Image

pytestmark = pytest.mark.slow

TINY = ["data.train.num_samples=8", "data.val.num_samples=4", "picture_images=0", "logger=csv"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(a 3-step quickstart run's last checkpoint, its Hub folder written by the export app)."""
    run_dir = tmp_path_factory.mktemp("quickstart")
    # 8 images at batch 8: one step per epoch, so 3 epochs for 3 steps
    run_app("train", "experiment=quickstart", "trainer.max_steps=3", "trainer.max_epochs=3", *TINY,
            f"run_dir={run_dir}")  # fmt: skip
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    folder = run_dir / "hub"
    run_app("export", f"ckpt_path={ckpt}", "format=hub", f"output={folder}", "hub.license=cc-by-4.0")
    return ckpt, folder


def mattes(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))}


def test_the_folder_and_its_card(trained):
    ckpt, folder = trained
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (folder / "README.md").read_text()
    assert (
        "license: cc-by-4.0" in card.split("---")[1] and "`cc-by-4.0`, as chosen by their publisher" in card
    )
    metrics = json.loads((ckpt.parent.parent / "metrics.json").read_text())
    assert f"| REC_0.5 | {metrics['REC_0.5']:.4f} |" in card  # the run's metrics.json
    assert "optimiser step 3" in card and "`last.ckpt`" in card


def test_predict_gives_the_same_mattes_from_the_folder(trained, tmp_path: Path):
    ckpt, folder = trained
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 130, 3), dtype=np.uint8)).save(photo)
    every_query = ["score_threshold=0", "min_area=0", "overlay=false", f"input={photo}"]
    run_app("predict", f"ckpt_path={ckpt}", *every_query, f"output={tmp_path / 'from_ckpt'}")
    run_app("predict", f"ckpt_path={folder}", *every_query, f"output={tmp_path / 'from_hub'}")
    a, b = mattes(tmp_path / "from_ckpt"), mattes(tmp_path / "from_hub")
    assert len(a) == 10 and a.keys() == b.keys()  # one matte per query of the quickstart's 10
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_eval_gives_the_same_metrics_from_the_folder(trained, tmp_path: Path):
    ckpt, folder = trained
    for name, ref in (("ckpt", ckpt), ("hub", folder)):  # on the data stored with the network
        run_app("eval", f"ckpt_path={ref}", f"run_dir={tmp_path / name}", "worst_images=0")
    a = json.loads((tmp_path / "ckpt" / "metrics.json").read_text())
    b = json.loads((tmp_path / "hub" / "metrics.json").read_text())
    assert a == b and "REC_0.5" in a


def test_training_starts_from_the_folder(trained, tmp_path: Path):
    _, folder = trained
    run_app(
        "train", "experiment=quickstart", f"init_weights={folder}", "trainer.max_steps=1", "test=false",
        *TINY, f"run_dir={tmp_path}",
    )  # fmt: skip
    log = (tmp_path / "train.log").read_text()
    assert f"init_weights: starting from {folder} (a Hub folder of this project)" in log
