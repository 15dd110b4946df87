"""The authors' weights run through every entry point: predict (photo, video), eval, train (fine-tune), the
guidance notebook. The fixture's deterministic weights stand in for their file (same format, same keys)."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v2 as imageio
import nbformat
import numpy as np
import pytest
import torch
from app_runner import run_app
from nbclient import NotebookClient

from e2e_him.convert_release import convert
from e2e_him.data.io import read_image
from e2e_him.data.transforms import prepare_eval_image
from e2e_him.export import export_onnx
from e2e_him.models.checkpoint import load_module
from e2e_him.models.matting_head import trimap_regions
from e2e_him.models.release.band import MAX_TILE_SHARE, band_tiles
from e2e_him.predictor.backends import OnnxBackend
from e2e_him.predictor.mattes import build_backend
from e2e_him.predictor.precision import native_bf16

pytestmark = pytest.mark.slow  # the released network is 70 M parameters
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def converted(release_weights: Path, tmp_path_factory) -> Path:
    return convert(release_weights, tmp_path_factory.mktemp("converted") / "release_swint.ckpt")


def test_predict_takes_the_release_file_itself_for_photos_and_videos(release_weights: Path, tmp_path: Path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    photo = (np.random.default_rng(0).random((200, 300, 3)) * 255).astype(np.uint8)
    imageio.imwrite(inputs / "photo.png", photo)
    with imageio.get_writer(inputs / "clip.mp4", fps=5, macro_block_size=1) as writer:
        for _ in range(2):
            writer.append_data(photo)
    out = tmp_path / "out"
    run_app("predict", f"ckpt_path={release_weights}", f"input={inputs}", f"output={out}",
            "eval_size=256", "min_area=0", "score_threshold=0.0")  # fmt: skip
    mattes = sorted((out / "photo").glob("*.png"))
    assert len(mattes) == 20  # every query kept (threshold 0): one matte per query at the photo's size
    assert imageio.imread(mattes[0]).shape == (200, 300)
    assert (out / "photo_overlay.jpg").is_file()
    assert len(list((out / "pha" / "clip").glob("*/*.png"))) == 2 * 20


@torch.no_grad()
def test_predict_gives_the_same_mattes_with_and_without_band_only_refinement(
    converted: Path, official_swint: Path
):
    """predict's backend with its default band_tile=16 against band_tile=null, in float32 and with
    precision=mixed, on the fixture's photo at 448 px (where the fixture's weights leave a fifth of the tiles
    to compute)."""
    photo = read_image(official_swint / "input_640.png")
    tensor, _ = prepare_eval_image(photo, 448)
    outputs, ran = {}, {}
    for name, precision, tile in (("whole", "fp32", None), ("band", "fp32", 16), ("mixed", "mixed", 16)):
        backend, _ = build_backend(converted, precision=precision, band_tile=tile)
        outputs[name], ran[name] = backend(tensor[None], keep_scores_above=0.0), backend.precision
    assert ran["mixed"] == ("mixed" if native_bf16(torch.device("cpu")) else "fp32")  # what was compared
    net = backend.net
    band = trimap_regions(net(tensor[None])["trimap_logits"], tensor.shape[-2:])[0].any(dim=1)
    assert len(band_tiles(band, 16)) <= MAX_TILE_SHARE * band[:, ::16, ::16].numel()  # tiles, not the whole
    whole = outputs["whole"]["alpha_fin"]
    torch.testing.assert_close(outputs["band"]["alpha_fin"], whole, rtol=0, atol=1e-4)
    assert torch.equal(outputs["mixed"]["pred_logits"], outputs["band"]["pred_logits"])
    assert (outputs["mixed"]["alpha_fin"] - whole).abs().mean() < 1 / 255


def test_eval_scores_the_converted_checkpoint(converted: Path, coco_persons: Path, tmp_path: Path):
    run_app("eval", f"ckpt_path={converted}", "data=instance_folder", f"data.root={coco_persons}",
            "data.eval_size=256", f"run_dir={tmp_path}", "metrics=[instance]")  # fmt: skip
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert any(k.startswith("REC_0.5") for k in metrics) and all(np.isfinite(v) for v in metrics.values())


def test_fine_tuning_starts_from_the_release_weights(release_weights: Path, tmp_path: Path):
    """experiment=release_swint init_weights=<the release file>: the objective of Eq. 9-19 with the trimap
    loss at the layout's H/8, two steps; the buffers that training never changes still hold the release's."""
    run_app("train", "experiment=release_swint", "debug=smoke_release", f"init_weights={release_weights}",
            f"run_dir={tmp_path}", "trainer.max_steps=2", "test=false", "picture_images=0")  # fmt: skip
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    release = torch.load(release_weights, map_location="cpu", weights_only=True)
    assert torch.equal(ckpt["state_dict"]["net.unused.conv2.weight"], release["conv2.weight"])
    assert ckpt["global_step"] == 2
    moved = (
        ckpt["state_dict"]["net.perception.class_head.layers.1.weight"]
        - release["globalfcnum.layers.1.weight"]
    )
    assert 0 < moved.abs().max() < 0.1  # trained a little, from the release's weights
    log = (tmp_path / "csv" / "metrics.csv").read_text()
    assert "train/loss_tri" in log


def test_guidance_notebook_runs_with_the_converted_checkpoint(converted: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("E2E_HIM_CKPT", str(converted))
    book = nbformat.read(REPO_ROOT / "notebooks" / "inspect_guidance.ipynb", as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    images = [
        o for c in book.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
    ]
    assert not errors and len(images) >= 3


@torch.no_grad()
def test_the_converted_checkpoint_exports_to_onnx_with_dynamic_sizes(converted: Path, tmp_path: Path):
    """What `python -m e2e_him.export ckpt_path=<converted> exporter=torchscript` does: onnxruntime gives
    PyTorch's numbers at sizes and batches other than the traced (2, 256, 256)."""
    net = load_module(converted).net.eval()
    engine = OnnxBackend(export_onnx(net, tmp_path / "release.onnx", (256, 256), exporter="torchscript"))
    for b, h, w in [(1, 256, 320), (2, 256, 256)]:
        image = torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(h * w + b))
        ref, got = net(image), engine(image)
        assert got["alpha_fin"].shape == (b, net.num_queries, h, w)
        np.testing.assert_allclose(got["pred_logits"], ref["pred_logits"], atol=1e-4, rtol=0)
        flipped = ((got["alpha_fin"] - ref["alpha_fin"]).abs() > 1e-4).float().mean()
        assert flipped <= 1e-4, f"{flipped:.2e} of the mattes differ"  # Eq. 8's argmax at near-ties
