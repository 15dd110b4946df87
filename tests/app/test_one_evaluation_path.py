"""Training's test and `eval ckpt_path=` are one evaluation: the same checkpoint on the same data gives the
same numbers, every metric, through the one metric builder (`metrics.build_metrics`) that both use."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
import torch

from e2e_him.eval import evaluate
from e2e_him.models.module import E2EHIMModule
from e2e_him.train import train
from e2e_him.utils.config import compose_config

pytestmark = pytest.mark.slow


def near_truth(self, outputs, metas):
    """`E2EHIMModule.postprocess` replaced by people made from each image's ground truth: all but its last
    person, each matte dimmed by its own seeded noise, plus one stray blob; so that matches, misses, false
    positives and errors of every size reach both evaluations (an untrained network would score zeros)."""
    people = []
    for meta in metas:
        gt = meta["orig_alphas"].float() / 255.0  # (K, H, W)
        gen = torch.Generator().manual_seed(zlib.crc32(str(meta["name"]).encode()))
        kept = gt[: max(len(gt) - 1, 1)] * (0.8 + 0.2 * torch.rand(gt[:1].shape, generator=gen))
        stray = torch.zeros_like(gt[:1])
        stray[:, : gt.shape[1] // 4, : gt.shape[2] // 4] = 0.7
        alphas = torch.cat([kept, stray]).to(outputs["alpha_fin"].device)
        people.append({"alphas": alphas, "scores": torch.linspace(0.9, 0.6, len(alphas)),
                       "query_index": torch.arange(len(alphas))})  # fmt: skip
    return people


@pytest.mark.parametrize("people", ["network", "near_truth"])
def test_train_test_and_eval_give_the_same_numbers_on_one_checkpoint(
    people: str, tmp_path: Path, monkeypatch
):
    if people == "near_truth":
        monkeypatch.setattr(E2EHIMModule, "postprocess", near_truth)
    run_dir = tmp_path / "train"
    overrides = ["debug=smoke", "logger=none", "picture_images=0", "model.min_area=0",
                 f"run_dir={run_dir}"]  # fmt: skip
    trained = train(compose_config("train", overrides, output_dir=run_dir))
    tested = json.loads((run_dir / "summary.json").read_text())["best_checkpoint"]
    eval_dir = tmp_path / "eval"
    cfg = compose_config(
        "eval",
        [f"ckpt_path={tested}", "split=val", "logger=none", "workers=0", f"run_dir={eval_dir}"],
        eval_dir,
    )
    evaluated = evaluate(cfg)  # the checkpoint's own data: the validation split that training tested on
    # the test logs the criterion's terms too: its losses and `nonfinite_cost` (1 where a cost was NaN)
    metrics = {k: v for k, v in trained.items() if not k.startswith("loss") and k != "nonfinite_cost"}
    assert set(evaluated) == set(metrics) and len(metrics) == 8 + 9 * 2  # Eq. 20 and IMQ at 0.5 and 0.75
    for key, value in metrics.items():
        assert evaluated[key] == pytest.approx(value, abs=1e-6), key
    if people == "near_truth":
        assert 0 < trained["REC_0.5"] < 1 and 0 < trained["ACC_0.5"] < 1 and 0 < trained["EMAD_0.5"] < 0.2
        assert 0 < trained["IMQ_mse"] < 1 and 0 < trained["IMQ_grad"] < 1
