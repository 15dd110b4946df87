"""`python -m e2e_him.eval ckpt_path=<file> data=<name>` or `... pred_dir=<folder> data=<name> data.root=...`.

With a checkpoint, the model is rebuilt from the config stored inside it and run on the chosen split; with
`pred_dir`, a folder of predicted mattes in the per-instance layout (`<stem>/NN.png`) is scored without any
model, so the outputs of any method can be compared. Both write `metrics.json`, `metrics.md` (a row laid out
like the paper's Table I) and `per_image.csv` in the run dir, and log the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from e2e_him import CONF_DIR
from e2e_him.metrics import match_image, per_image_row, score_prediction_dir, write_report
from e2e_him.models.module import build_metrics
from e2e_him.predict import resolve_device
from e2e_him.utils.checkpoint import load_module
from e2e_him.utils.instantiate import ConfigError, build, build_loggers

log = logging.getLogger(__name__)


def metric_kinds(cfg: DictConfig, data: DictConfig) -> list[str]:
    """`metrics: auto` -> the data config's `eval_metrics` (human-matting errors for single-matte sets)."""
    if cfg.metrics != "auto":
        return list(cfg.metrics) if not isinstance(cfg.metrics, str) else [cfg.metrics]
    return list(data.get("eval_metrics") or ["instance", "imq"])


def split_dataset(datamodule, split: str):
    """The data set of `split` ("val" or "test") after `setup`."""
    if split not in ("val", "test"):
        raise ConfigError(f"split={split}: choose val or test")
    datamodule.setup("validate" if split == "val" else "test")
    return datamodule.val_dataset if split == "val" else datamodule.test_dataset


def ground_truth(dataset) -> Iterator[tuple[str, np.ndarray]]:
    """(image name, (K, H, W) float mattes at the original size) for every image of an eval data set."""
    for index in range(len(dataset)):
        meta = dataset[index]["meta"]
        yield meta["name"], meta["orig_alphas"].numpy().astype(np.float32) / 255.0


@torch.no_grad()
def evaluate_checkpoint(
    module, loader, kinds: Sequence[str], iou_thresholds: Sequence[float]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Run `module` over `loader`; returns flat metrics and one row per image."""
    metrics = build_metrics(kinds, iou_thresholds)
    rows = []
    for batch in tqdm(loader, desc="eval", unit="batch"):
        outputs = module(batch["image"].to(module.device))
        preds = module.postprocess(outputs, batch["meta"])
        for pred, meta in zip(preds, batch["meta"]):
            alphas = pred["alphas"].float().cpu()
            target = meta["orig_alphas"].float() / 255.0
            for metric in metrics.values():
                metric.update([alphas], [target])
            rows.append(per_image_row(meta["name"], match_image(alphas, target), iou_thresholds))
    values: dict[str, float] = {}
    for metric in metrics.values():
        values.update({k: float(v) for k, v in metric.compute().items()})
    return values, rows


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate a checkpoint or a prediction folder; returns the flat metrics."""
    if (cfg.ckpt_path is None) == (cfg.pred_dir is None):
        raise ConfigError(
            "give exactly one of ckpt_path=<checkpoint> or pred_dir=<folder of predicted mattes>"
        )
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    thresholds = list(cfg.get("iou_thresholds", [0.5, 0.75]))
    module = None
    if cfg.ckpt_path is not None:
        module = load_module(cfg.ckpt_path, map_location=resolve_device(cfg.get("device", "auto")))
    data_cfg = cfg.get("data")
    if data_cfg is None:
        if module is None or not (module.run_config or {}).get("data"):
            raise ConfigError("give the data to score on: data=<name> [data.root=<path>]")
        # the data the checkpoint was validated on during training
        data_cfg = OmegaConf.create(module.run_config["data"])
        data_cfg.skip_list_path = str(output_dir / "skipped_files.txt")  # not into the training run's dir
        log.info("data: the checkpoint's own (%s)", data_cfg.get("_target_"))
    kinds = metric_kinds(cfg, data_cfg)
    datamodule = build(data_cfg, "data")
    dataset = split_dataset(datamodule, cfg.split)

    if cfg.pred_dir is not None:
        pred_dir = Path(cfg.pred_dir)
        if not pred_dir.is_dir():
            raise ConfigError(f"pred_dir={pred_dir}: not a folder")
        metrics, rows = score_prediction_dir(
            pred_dir, ground_truth(dataset), metrics=kinds, iou_thresholds=thresholds
        )
        title = f"{pred_dir} on {cfg.split}"
    else:
        if cfg.score_threshold is not None:
            module.hparams.score_threshold = float(cfg.score_threshold)
        if cfg.min_area is not None:
            module.hparams.min_area = float(cfg.min_area)
        loader = datamodule.val_dataloader() if cfg.split == "val" else datamodule.test_dataloader()
        metrics, rows = evaluate_checkpoint(module, loader, kinds, thresholds)
        title = f"{Path(cfg.ckpt_path).name} on {cfg.split}"

    files = write_report(output_dir, metrics, rows, title=title)
    for logger in build_loggers(cfg.get("logger")):
        logger.log_metrics({f"eval/{k}": v for k, v in metrics.items()})
        logger.save()
    print(f"\n=== {title}: {len(rows)} images ===")
    print(Path(files["markdown"]).read_text())
    print(f"metrics: {files['json']}\nper image: {files['csv']}")
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
