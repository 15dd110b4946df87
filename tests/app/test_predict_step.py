"""`E2EHIMModule.predict_step` through Lightning's `trainer.predict`, as users of Lightning call it: the
people of every image of every batch, the same as the module's own forward and post-processing."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build


def test_trainer_predict_returns_the_people_of_each_image(tmp_path: Path):
    cfg = compose_config("train", ["debug=smoke", "model.score_threshold=0.0", "model.min_area=0"], tmp_path)
    torch.manual_seed(0)
    module, datamodule = build(cfg.model, "model"), build(cfg.data, "data")
    datamodule.setup("validate")
    loader = datamodule.val_dataloader()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    predicted = trainer.predict(module, dataloaders=loader)
    batches = list(loader)
    assert len(predicted) == len(batches) and sum(len(p) for p in predicted) == len(datamodule.val_dataset)
    module.eval()
    with torch.no_grad():
        for people, batch in zip(predicted, batches):
            expected = module.postprocess(module(batch["image"]), batch["meta"])
            assert len(people) == len(batch["meta"])
            for got, want, meta in zip(people, expected, batch["meta"]):
                assert set(got) == {"alphas", "scores", "query_index"}
                assert got["alphas"].shape == (module.net.num_queries, *meta["orig_size"])  # threshold 0
                for key in got:
                    torch.testing.assert_close(got[key], want[key])


def test_evaluation_scores_the_mattes_as_written(tmp_path: Path):
    """Validation, test and `eval ckpt_path=` score what `postprocess` returns: 8-bit values by default
    (`model.alpha_levels: 255`), the network's floats with `model.alpha_levels=null`."""
    overrides = ["debug=smoke", "model.score_threshold=0.0", "model.min_area=0"]
    cfg = compose_config("train", overrides, tmp_path)
    torch.manual_seed(0)
    module, datamodule = build(cfg.model, "model").eval(), build(cfg.data, "data")
    datamodule.setup("validate")
    batch = next(iter(datamodule.val_dataloader()))
    with torch.no_grad():
        outputs = module(batch["image"])
    written = module.postprocess(outputs, batch["meta"])
    module.hparams.alpha_levels = None
    floats = module.postprocess(outputs, batch["meta"])
    for w, f in zip(written, floats):
        assert torch.equal(torch.round(w["alphas"] * 255), w["alphas"] * 255)
        assert not torch.equal(f["alphas"], w["alphas"])  # random weights leave non-8-bit values
        torch.testing.assert_close(w["alphas"], f["alphas"], atol=0.5 / 255 + 1e-6, rtol=0)
