"""The benchmark scripts run as docs/benchmarks.md calls them (small model and size; timings not checked)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load(name: str, monkeypatch: pytest.MonkeyPatch):
    """scripts/<name>.py as a module, with scripts/ importable (as when it runs as a script)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_infer_prints_a_row_per_variant_on_the_kept_queries(capsys, monkeypatch):
    bench = load("bench_infer", monkeypatch)
    bench.main(["experiment=quickstart", "--size", "64", "--rounds", "1", "--variants", "fp32,fp32-cl",
                "--keep-scores-above", "0.0", "--parts"])  # fmt: skip
    out = capsys.readouterr().out
    assert "10 of 10 queries above 0.0" in out
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines() if line.startswith("| fp32")}
    assert set(rows) == {"fp32", "fp32-cl"}
    assert rows["fp32"].split(" | ")[3] == "1.00"  # the baseline against itself
    # fp32 against its own reference: the decoded subset of queries rounds a little otherwise on 2 threads
    mad, largest, logits = (float(c) for c in rows["fp32"].strip("| ").split(" | ")[4:])
    assert mad < 1e-6 and largest < 1e-4 and logits == 0.0
    assert "per part" in out and "backbone" in out


def test_bench_infer_decodes_exactly_the_likeliest_queries(capsys, monkeypatch):
    bench = load("bench_infer", monkeypatch)
    bench.main(["experiment=quickstart", "--size", "64", "--rounds", "1", "--variants", "fp32",
                "--decode", "3"])  # fmt: skip
    assert "3 of 10 queries above" in capsys.readouterr().out
    logits = torch.tensor([[[0.0, 2.0], [0.0, -1.0], [0.0, 1.0], [0.0, 1.0]]]).repeat(2, 1, 1)  # (2, 4, 2)
    scores = logits.softmax(-1)[..., 1]
    for k in (1, 3):
        assert int((scores > bench.threshold_for(logits, k)).sum()) == 2 * k
    assert bench.threshold_for(logits, 4) < 0
    with pytest.raises(SystemExit, match="tie"):
        bench.threshold_for(logits, 2)
    with pytest.raises(SystemExit, match="1 to 4"):
        bench.threshold_for(logits, 0)


def test_bench_infer_variant_names(monkeypatch, tmp_path):
    bench = load("bench_infer", monkeypatch)

    class Banded(torch.nn.Conv2d):
        supports_band_tile = True

        def forward(self, x, keep_scores_above=None, band_tile=None):
            return super().forward(x)

    assert bench.variant("bf16+band", Banded(3, 2, 1), tmp_path, 32).band_tile == 32
    assert bench.variant("bf16", Banded(3, 2, 1), tmp_path, 32).band_tile is None
    for name in ("fp32+tiles", "onnx+band", "fp16"):
        with pytest.raises(ValueError, match="unknown variant"):
            bench.variant(name, Banded(3, 2, 1), tmp_path)


def test_bench_precision_puts_bf16_in_one_part_at_a_time(monkeypatch):
    bench = load("bench_precision", monkeypatch)
    table = {label: d for label, _, d in bench.main(["experiment=quickstart", "--size", "64"])}
    parts = ["stem", "backbone", "perception", "guidance", "matting"]  # the paper layout's children
    mixed = "precision=mixed (bf16 in the alpha-only parts)"
    expected = {"float32", "bf16 everywhere", mixed, *(f"bf16 in {p} only" for p in parts)}
    assert set(table) == expected
    assert all(v == 0.0 for v in table["float32"].values())  # float32 against itself
    assert table["bf16 everywhere"]["logits_max"] > 0.0  # bf16 really ran
    # predict's mixed precision: class and trimap logits of float32, the alphas moved by bf16 only
    assert table[mixed]["logits_max"] == 0.0 and table[mixed]["trimap_flips"] == 0.0
    assert table[mixed]["pred_mad"] > 0.0
    assert table["bf16 in matting only"]["logits_max"] == 0.0  # the class head ran in float32
    assert table["bf16 in perception only"]["logits_max"] > 0.0


def test_bench_band_times_the_stage_on_the_tiles_of_real_bands(shared_data, monkeypatch):
    bench = load("bench_band", monkeypatch)
    alphas = shared_data / "coco_persons" / "alphas"
    table = bench.main(["--alphas", str(alphas), "--size", "128", "--photos", "2", "--rounds", "1",
                        "--kernels", "3,15", "--tiles", "16,32"])  # fmt: skip
    fp32 = [row for row in table if row["precision"] == "fp32"]
    assert len(fp32) == 2 * 2 * 2  # photos x kernels x tiles
    for row in fp32:
        assert 0.0 < row["share"] < 1.0 and row["whole"] > 0 and row["band"] > 0
    share = {(r["photo"], r["kernel"], r["tile"]): r["share"] for r in fp32}
    for (photo, kernel, tile), value in share.items():
        if kernel == 3:  # a wider band touches at least as many tiles
            assert share[photo, 15, tile] >= value


def test_bench_band_random_bands_touch_the_asked_share_of_tiles(shared_data, monkeypatch):
    bench = load("bench_band", monkeypatch)
    alphas = shared_data / "coco_persons" / "alphas"
    table = bench.main(["--alphas", str(alphas), "--size", "128", "--photos", "0", "--rounds", "1",
                        "--tiles", "16", "--shares", "0.25,0.75"])  # fmt: skip
    assert [(row["photo"], row["share"]) for row in table if row["precision"] == "fp32"] == [
        ("random 25%", 0.25),
        ("random 75%", 0.75),
    ]


@pytest.mark.parametrize(
    "args,precision",
    [
        (["--precision", "32-true"], "32-true"),
        (["--precision", "bf16-mixed"], "bf16-mixed"),
        (["trainer.precision=bf16-mixed"], "bf16-mixed"),  # by default the experiment's trainer.precision
    ],
)
def test_bench_step_runs_forward_and_loss_under_the_asked_precision(args, precision, capsys, monkeypatch):
    from e2e_him.losses import SetCriterion
    from e2e_him.models.module import E2EHIMModule

    bench = load("bench_step", monkeypatch)
    seen = {"forward": [], "loss": []}

    def recording(cls, method, part):
        original = getattr(cls, method)

        def record(self, *a, **k):
            seen[part].append(
                torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
            )
            return original(self, *a, **k)

        monkeypatch.setattr(cls, method, record)

    recording(E2EHIMModule, "train_forward", "forward")
    recording(SetCriterion, "forward", "loss")
    bench.main(["experiment=quickstart", "data.batch_size=2", "--steps", "1", *args])
    expected = [precision == "bf16-mixed"] * (1 + bench.WARMUP)
    assert seen == {"forward": expected, "loss": expected}
    out = capsys.readouterr().out
    assert f"{precision}, 1 steps:" in out and "backward" in out


def test_bench_data_stage_clock_counts_each_functions_own_time(monkeypatch):
    import time

    bench = load("bench_data", monkeypatch)
    clock = bench.StageClock()
    inner = clock.wrap(lambda: time.sleep(0.02), "decode")
    outer = clock.wrap(lambda: (time.sleep(0.01), inner()), "composite")
    outer()
    assert 0.02 <= clock.totals["decode"] < 0.05
    assert 0.01 <= clock.totals["composite"] < 0.02  # without the nested decode


def test_bench_data_differences_of_two_dumps(monkeypatch, tmp_path):
    import numpy as np

    bench = load("bench_data", monkeypatch)
    for name, shift in (("a", 0), ("b", 4)):
        (tmp_path / name).mkdir()
        alphas = np.zeros((2, 8, 8), np.float32)
        alphas[:, 2:6, 2:6] = 1.0
        alphas[0, 0, 0] += shift / 40  # 0.1 at one pixel in b
        trimaps = (alphas > 0.5).astype(np.uint8) * 2
        np.savez(tmp_path / name / "000.npz", image=np.full((8, 8, 3), 10 + shift, np.uint8), alphas=alphas,
                 trimaps=trimaps)  # fmt: skip
    diff = bench.differences(tmp_path / "a", tmp_path / "b")
    assert diff["samples"] == diff["same people"] == 1 and diff["image MAD (8-bit levels)"] == 4
    assert diff["alpha max"] == pytest.approx(0.1) and diff["alpha pixels off by > 0.05"] == 1 / 128
    assert diff["trimap pixels that differ"] == 0


@pytest.mark.slow
def test_bench_data_times_generated_photos_against_a_git_revision(capsys, monkeypatch, tmp_path):
    bench = load("bench_data", monkeypatch)
    monkeypatch.setattr(bench, "photo_size", lambda rng: (300, 400))  # small photos: a test, not a benchmark
    bench.main(["--photos", "3", "--data-dir", str(tmp_path / "photos"), "--samples", "3", "--warmup", "1",
                "--compare", "2", "--baseline", "HEAD"])  # fmt: skip
    out = capsys.readouterr().out
    assert (tmp_path / "photos" / "train.txt").read_text().split() == ["00000", "00001", "00002"]
    assert len(list((tmp_path / "photos" / "real" / "alphas").iterdir())) == 5  # + 2 validation photos
    assert "this tree / baseline:" in out and "x in samples per CPU second" in out
    assert "samples against the baseline's: samples 2" in out
    assert out.count("per sample (ms): ") == 2 and "decode" in out and "on the device" in out


@pytest.mark.slow
def test_bench_video_times_decoding_and_predict_on_a_generated_clip(tmp_path, capsys, monkeypatch):
    bench = load("bench_video", monkeypatch)
    rows = bench.main(["--frames", "8", "--size", "64x36", "--rows", "decode", "predict",
                       "--workdir", str(tmp_path)])  # fmt: skip
    assert [(r["row"], r["frames"]) for r in rows] == [("decode", 8), ("predict", 8)]
    assert rows[1]["audio"] == "copied (aac)" and rows[1]["variable"] and rows[1]["videos"] == 1
    assert all(r["fps"] > 0 and r["peak_mib"] >= r["start_mib"] > 0 for r in rows)
    out = capsys.readouterr().out
    assert "| 8 | decode |" in out and "| 1.00 |" in out


def test_grid_ceiling_keeps_what_the_grid_can_draw_and_loses_what_it_cannot(monkeypatch):
    grid = load("grid_ceiling", monkeypatch)
    alphas = torch.zeros(1, 3, 64, 64)
    alphas[0, 0, 8:56, 16:48] = 1.0  # whole cells: drawn but for its corners (bilinear rounds them)
    alphas[0, 1, :, 30:33] = 1.0  # a 3-pixel stripe inside one column of cells: averages to 3/8, lost
    alphas[0, 2, 4:12, 4:12] = 1.0  # 8 x 8 across four cells: a quarter of each, lost
    valid = torch.tensor([[True, True, False]])
    ious = grid.grid_ious(alphas, valid)
    assert ious.shape == (2,)  # the padded third person is not counted
    assert 0.98 < ious[0] < 1.0 and ious[1] == 0.0
    assert grid.grid_ious(alphas, torch.ones(1, 3, dtype=torch.bool), stride=1).tolist() == [1.0] * 3
    assert grid.ceiling(torch.tensor([1.0, 0.0])) == {
        "people": 2.0,
        "mean_iou": 0.5,
        "share_0.5": 0.5,
        "share_0.75": 0.5,
    }
    assert grid.ceiling(torch.tensor([0.6, 0.8]))["share_0.75"] == 0.5


def test_grid_ceiling_reads_an_experiments_validation_people(capsys, monkeypatch):
    grid = load("grid_ceiling", monkeypatch)
    result = grid.main(["debug=smoke"])
    out = capsys.readouterr().out
    assert f"{int(result['people'])} people" in out and "grid" in out
    assert result["people"] > 0 and 0 < result["mean_iou"] <= 1
    assert result["share_0.75"] <= result["share_0.5"]


def test_bench_configs_times_each_config_against_the_first(capsys, monkeypatch, tmp_path):
    bench = load("bench_configs", monkeypatch)
    small = "debug=smoke data.train.image_size=[64,64] data.crop_size=[64,64]"
    out = tmp_path / "out.json"
    rows = bench.main([small, f"{small} model.net.perception.num_queries=5", "--rounds", "1", "--steps", "1",
                       "--json", str(out)])  # fmt: skip
    printed = capsys.readouterr().out.splitlines()
    assert len(rows) == len(printed) == 2 and rows[0]["ratio"] == 1.0
    assert all(r["step_s"] > 0 for r in rows) and "num_queries=5" in printed[1]
    assert json.loads(out.read_text()) == rows
