"""Photos in predict: background loading and batches, composites and cut-outs, and bad inputs and outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stub_network import stub_predictor

from e2e_him.predict import find_inputs
from e2e_him.predictor.backgrounds import Background, parse_colour
from e2e_him.predictor.composites import composite, estimate_foreground
from e2e_him.predictor.loading import batches, prepared_photos
from e2e_him.predictor.outputs import Extras, OutputWriteError, check_output_folder
from e2e_him.predictor.pipeline import predict_photos


def _photos(folder: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(sizes):
        paths.append(folder / f"p{i}.png")
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def test_background_workers_keep_order_and_batches_group_equal_sizes(tmp_path: Path):
    paths = _photos(tmp_path / "in", [(60, 80), (60, 80), (80, 60), (60, 80), (60, 80), (60, 80)])
    paths.insert(3, tmp_path / "in" / "broken.jpg")
    paths[3].write_bytes(b"no image")
    items = list(prepared_photos(paths, eval_size=64, workers=2))
    assert [item["index"] for item in items] == list(range(7))
    assert "broken.jpg" in items[3]["error"]
    groups = [[item["index"] for item in batch] for batch in batches(items, batch_size=2)]
    assert groups == [[0, 1], [2], [3], [4, 5], [6]]  # sizes never mixed, the broken file alone, in order


def test_batched_and_single_predictions_agree(tmp_path: Path):
    paths = _photos(tmp_path / "in", [(60, 80)] * 3 + [(80, 60)])
    stems = [p.stem for p in paths]
    predictor = stub_predictor()
    for batch_size, workers, out in ((1, 0, "one"), (3, 1, "three")):
        done, failed = predict_photos(predictor, paths, stems, tmp_path / out, Extras(), batch_size, workers)
        assert (done, failed) == (4, [])
    assert predictor.backend.calls == 4 + 2  # 4 single passes, then batches [0, 1, 2] and [3]
    for stem in stems:
        for name in ("00.png", "01.png"):
            a = np.asarray(Image.open(tmp_path / "one" / stem / name))
            np.testing.assert_array_equal(a, np.asarray(Image.open(tmp_path / "three" / stem / name)))
    assert Image.open(tmp_path / "one" / "p3" / "00.png").size == (60, 80)


def test_composites_and_cutouts_of_chosen_people(tmp_path: Path):
    (tmp_path / "in").mkdir()
    paths = [tmp_path / "in" / "p0.png"]
    smooth = np.stack(
        [*np.meshgrid(np.linspace(60, 200, 96), np.linspace(40, 220, 48)), np.full((48, 96), 90)], 2
    )
    Image.fromarray(smooth.astype(np.uint8)).save(paths[0])
    extras = Extras(overlay=False, background=Background("#0000ff"), ids=[0], cutout=True)
    predict_photos(stub_predictor(eval_size=None), paths, ["p0"], tmp_path / "out", extras)
    picture = np.asarray(Image.open(tmp_path / "out" / "composite" / "p0.jpg"))
    photo = np.asarray(Image.open(paths[0]))
    assert np.abs(picture[:, -10:].astype(int) - [0, 0, 255]).mean() < 8  # person 1 not chosen: background
    assert np.abs(picture[:, :10].astype(int) - photo[:, :10]).mean() < 12  # person 0 kept (JPEG)
    assert [p.name for p in (tmp_path / "out" / "cutout" / "p0").iterdir()] == ["00.png"]
    assert not (tmp_path / "out" / "p0_overlay.jpg").exists()


def test_colours_backgrounds_and_foreground_estimate(tmp_path: Path):
    assert parse_colour("green") == (0, 177, 64) and parse_colour("#FF8000") == (255, 128, 0)
    assert parse_colour("10, 20,30") == (10, 20, 30) and parse_colour("300,0,0") is None
    Image.fromarray(np.zeros((10, 40, 3), dtype=np.uint8)).save(tmp_path / "wide.png")
    assert Background(tmp_path / "wide.png").at((20, 20)).shape == (20, 20, 3)  # cover + centre crop
    with pytest.raises(FileNotFoundError, match="neither a colour"):
        Background("no-such-colour")
    # a red person half-transparent over blue: I = 0.5 F + 0.5 B; the estimate must find F = red again
    alpha = np.zeros((32, 32), dtype=np.float32)
    alpha[8:24, 8:24] = 1.0
    alpha[8:24, 14:18] = 0.5
    red, blue = np.array([230, 20, 20]), np.array([20, 20, 230])
    image = np.round(alpha[..., None] * red + (1 - alpha[..., None]) * blue).astype(np.uint8)
    fg = estimate_foreground(image, alpha)
    assert np.abs(fg[10:22, 15:17] * 255 - red).max() < 25
    out = composite(fg, alpha, np.full((32, 32, 3), 255, dtype=np.uint8))
    assert np.abs(out[10:22, 15:17].astype(int) - (0.5 * red + 0.5 * 255)).max() < 15


def test_foreground_estimation_loads_only_pymattings_foreground_module():
    """pymatting's foreground module is loaded from its file (3 numba kernels to compile after installation),
    not through its package (about 30 kernels, docs/benchmarks.md)."""
    code = (
        "import sys; from e2e_him.predictor.composites import foreground_ml; f = foreground_ml(); "
        "print(f.__module__, f.__name__, 'pymatting' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["pymatting.foreground.estimate_foreground_ml", "estimate_foreground_ml", "False"]


def test_a_folder_of_folders_and_missing_inputs_are_explained(tmp_path: Path):
    for sub in ("train", "val"):
        (tmp_path / "data" / sub).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"only 2 folder\(s\) \(train, val\).*input=.*train"):
        find_inputs(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        find_inputs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not found"):
        find_inputs(tmp_path / "nothing")


def test_output_folders_that_cannot_be_written_are_named(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputWriteError, match="is a file"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(OutputWriteError, match="cannot write"):
        check_output_folder(tmp_path / "file" / "below")
    if sys.platform.startswith("linux"):  # /proc refuses new folders even to root
        with pytest.raises(OutputWriteError, match="/proc/e2e_him_out"):
            check_output_folder(Path("/proc/e2e_him_out"))
    assert check_output_folder(tmp_path / "new" / "deep").is_dir()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_refused(tmp_path: Path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputWriteError, match="ro"):
            check_output_folder(folder)
    finally:
        folder.chmod(0o700)


def test_a_write_failure_mid_run_names_the_file_and_keeps_what_was_written(tmp_path: Path):
    paths = _photos(tmp_path / "in", [(40, 40), (40, 40)])
    out = tmp_path / "out"
    (out / "p1").parent.mkdir(parents=True)
    (out / "p1").write_text("a file where the second photo's folder must go")
    with pytest.raises(OutputWriteError, match="p1"):
        predict_photos(stub_predictor(), paths, ["p0", "p1"], out, Extras())
    assert sorted(p.name for p in (out / "p0").iterdir()) == ["00.png", "01.png"]
    assert (out / "p0_overlay.jpg").is_file()


def test_a_photo_without_people_gets_an_empty_folder(tmp_path: Path):
    paths = _photos(tmp_path / "in", [(40, 40)])
    predictor = stub_predictor()
    predictor.score_threshold = 1.0  # nobody passes
    assert predict_photos(predictor, paths, ["p0"], tmp_path / "out", Extras()) == (1, [])
    assert (tmp_path / "out" / "p0").is_dir() and not list((tmp_path / "out" / "p0").iterdir())


def test_large_photos_are_refined_to_full_size_with_or_without_people():
    photo = np.random.default_rng(3).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    predictor = stub_predictor(eval_size=64)  # 300 px photo, 64 px network input: refine=auto refines
    people = predictor(photo)
    assert people["alphas"].shape == (2, 200, 300) and people["alphas"].dtype == np.float32
    plain = stub_predictor(eval_size=64, refine="none")(photo)
    assert np.abs(people["alphas"] - plain["alphas"]).max() > 0  # the band was refined
    predictor.score_threshold = 1.0
    assert predictor(photo)["alphas"].shape == (0, 200, 300)
