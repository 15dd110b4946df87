"""`python -m e2e_him.train experiment=<name> [overrides]`: fit, test on val, write metrics and a picture."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig

from e2e_him import CONF_DIR
from e2e_him.evaluation.report import write_report
from e2e_him.models.backbones.hub_weights import start_model_config
from e2e_him.models.checkpoint import load_init_weights, stored_config
from e2e_him.utils.config import config_changes
from e2e_him.utils.devices import check_devices, check_launcher
from e2e_him.utils.fidelity import warn_paper_departures
from e2e_him.utils.instantiate import ConfigError, build, build_dict, build_loggers, plain_config
from e2e_him.visual.predictions import save_val_predictions

log = logging.getLogger(__name__)


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """`last` means this run dir's `checkpoints/last.ckpt` (give `run_dir=` of the run to resume)."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        last = output_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise ConfigError(
                f"ckpt_path=last: no {last}. Resume with the interrupted run's directory: "
                "`run_dir=<that run dir> ckpt_path=last`."
            )
        return str(last)
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: file not found")
    return str(ckpt_path)


def warn_config_changes(ckpt_path: str, current: dict[str, Any], shown: int = 20) -> list[str]:
    """Log a warning that lists what differs between the checkpoint's run config and this run's (which wins);
    returns the differences."""
    stored = stored_config(ckpt_path)
    if stored is None:
        return []
    changes = config_changes(stored, current)
    if changes:
        more = f"\n  ... and {len(changes) - shown} more" if len(changes) > shown else ""
        log.warning(
            "%s was written with another config; this run goes on with its own values (%d changed):\n  %s%s",
            ckpt_path, len(changes), "\n  ".join(changes[:shown]), more,
        )  # fmt: skip
    return changes


def flat_metrics(callback_metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """`{"test/REC_0.5": tensor}` -> `{"REC_0.5": float}` for the keys under `prefix`."""
    out = {}
    for key, value in callback_metrics.items():
        if key.startswith(prefix):
            out[key[len(prefix) :]] = float(torch.as_tensor(value).float().item())
    return dict(sorted(out.items()))


def in_sweep() -> bool:
    """Whether this run is one job of a Hydra multirun (`-m`, an Optuna search, a submitit launch)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test the model of `cfg`; returns the final metrics (flat keys such as `REC_0.5`).

    Under DDP every process runs this; rank 0 alone writes metrics.json, summary.json and the picture (the
    checkpoints and loggers are rank 0's through Lightning), and every process returns the same metrics.
    """
    check_devices(cfg.trainer, cfg.experiment_name, cfg.data.get("batch_size"))
    warn_paper_departures(cfg)
    # the backbone's ImageNet weights, fetched (or found in the cache) before anything else is built
    model_cfg = start_model_config(cfg.model, cfg.get("init_weights") or cfg.get("ckpt_path"))
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    # Build everything first, so that a config mistake fails here, not deep inside training.
    datamodule = build(cfg.data, "data")
    model = build(model_cfg, "model")
    model.run_config = {"model": plain_config(cfg.model), "data": plain_config(cfg.data)}
    if cfg.get("init_weights"):
        # where the weights come from travels on in the checkpoints (with the authors' terms, for theirs)
        model.run_config["source"] = load_init_weights(model, cfg.init_weights)
        log.info("init_weights: starting from %s (%s)", cfg.init_weights, model.run_config["source"]["kind"])
    callbacks = build_dict(cfg.get("callbacks"), "callbacks")
    loggers = build_loggers(cfg.get("logger"))
    if not loggers:  # `logger=none`: the learning-rate monitor has nowhere to write
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    check_launcher(trainer, in_sweep())
    for logger in loggers:
        logger.log_hyperparams(plain_config(cfg))
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir)
    if ckpt_path is not None and cfg.get("train", True):
        stored = stored_config(ckpt_path) or {}
        if stored.get("source") and "source" not in model.run_config:  # resumed: the weights' origin goes on
            model.run_config["source"] = stored["source"]
        warn_config_changes(ckpt_path, model.run_config)

    start = time.time()
    if cfg.get("train", True):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    train_seconds = time.time() - start

    ckpt_cb = trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.best_model_path else None
    last = output_dir / "checkpoints" / "last.ckpt"
    metrics: dict[str, float] = {}
    if cfg.get("test", True):
        if cfg.get("train", True):
            test_ckpt = best or (str(last) if last.is_file() else None)
        else:  # `train=false`: the given checkpoint, or the freshly initialised model (ckpt_path=null)
            test_ckpt = ckpt_path
        trainer.test(model=model, datamodule=datamodule, ckpt_path=test_ckpt, weights_only=True)
        metrics = flat_metrics(trainer.callback_metrics, "test/")
        if trainer.is_global_zero:
            loaders = trainer.test_dataloaders
            loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
            scored = sum(len(loader.dataset) for loader in loaders if loader is not None)
            notes = [f"{scored} images scored by the module's test metrics (per image: `eval ckpt_path=`)."]
            split = "test" if cfg.data.get("test") is not None else "val"  # the data module's fallback
            title = f"{cfg.experiment_name} (test on the {split} split)"
            write_report(output_dir, metrics, [], title=title, notes=notes)

    picture = None
    if cfg.get("picture_images", 0) and trainer.is_global_zero:
        picture = save_val_predictions(model, datamodule, output_dir / "predictions.png", cfg.picture_images)

    summary = {
        "experiment": cfg.experiment_name,
        "run_dir": str(output_dir),
        "best_checkpoint": best,
        "last_checkpoint": str(last) if last.is_file() else None,
        "metrics_json": str(output_dir / "metrics.json") if metrics else None,
        "predictions_picture": str(picture) if picture else None,
        "train_minutes": round(train_seconds / 60.0, 2),
    }
    if not trainer.is_global_zero:
        return metrics
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n=== E2E-HIM run finished ===")
    for key, value in summary.items():
        print(f"{key:>20}: {value}")
    if metrics:
        shown = {
            k: round(v, 4) for k, v in metrics.items() if k.split("_")[0] in ("REC", "ACC", "EMSE", "EMAD")
        }
        print(f"{'metrics':>20}: {shown}")
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    monitored = cfg.get("optimized_metric")  # e.g. val/IMQ_mse -> the test value IMQ_mse
    return metrics.get(monitored.split("/", 1)[-1]) if monitored else None


if __name__ == "__main__":
    main()
