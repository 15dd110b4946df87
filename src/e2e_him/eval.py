"""`python -m e2e_him.eval ckpt_path=<file> data=<name>` or `... pred_dir=<folder> data=<name> data.root=...`.

With a checkpoint, the model is rebuilt from the config stored inside it and run on the chosen split; with
`pred_dir`, a folder of predicted mattes (any method's) is scored without a model: images in the
per-instance layout (`<stem>/NN.png`, data=instance_folder or him2k), once per guidance-mask set for
M-HIM2K (data=mhim2k), videos in the V-HIM60 layout (data=vhim60). Both write metrics.json, metrics.md
(tables laid out like E2E-HIM's Table I, InstMatt's IMQ, MaGGIe's Tables 5 and 7), per_image.csv,
skipped_files.tsv and worst_images.jpg in the run dir, and log the metrics (docs/metrics.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from e2e_him import CONF_DIR
from e2e_him.data.mask_sets import MaskSetFolder
from e2e_him.data.video_folder import VideoInstanceFolder
from e2e_him.evaluation.report import write_report
from e2e_him.evaluation.scoring import ScoreOptions
from e2e_him.evaluation.sources import score_folder, score_model, split_dataset
from e2e_him.models.checkpoint import load_module
from e2e_him.utils.instantiate import ConfigError, build, build_loggers
from e2e_him.visual.worst import save_worst_images

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """`device: auto` -> CUDA when available, else the CPU; any other name as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def check_checkpoint_data(data_cfg: DictConfig | None) -> None:
    """Mask-set and video folders are scored from prediction folders only: say so before loading a model."""
    target = data_cfg.get("_target_") if data_cfg is not None else None
    folder_only = {f"{c.__module__}.{c.__name__}": c.__name__ for c in (MaskSetFolder, VideoInstanceFolder)}
    if target in folder_only:
        raise ConfigError(
            f"data={folder_only[target]} is scored from prediction folders: run `e2e_him.predict` on it, "
            "then `e2e_him.eval pred_dir=<its output>` (M-HIM2K's masks are for mask-guided methods)"
        )


def metric_kinds(cfg: DictConfig, data: DictConfig) -> list[str]:
    """`metrics: auto` -> the data config's `eval_metrics` (human-matting errors for single-matte sets)."""
    if cfg.metrics != "auto":
        return list(cfg.metrics) if not isinstance(cfg.metrics, str) else [cfg.metrics]
    return list(data.get("eval_metrics") or ["instance", "imq"])


def score_options(cfg: DictConfig, kinds: list[str], mask_sets: bool, video: bool = False) -> ScoreOptions:
    """The scoring options of the config (`pairing: auto` pairs by name for mask sets, by IoU otherwise).

    Temporal metrics exist for videos only, whole-image errors for images only: the others are dropped.
    """
    pairing = cfg.get("pairing", "auto")
    if pairing == "auto":
        pairing = "name" if mask_sets else "iou"
    dropped = "human" if video else "temporal"
    return ScoreOptions(
        metrics=tuple(k for k in kinds if k != dropped),
        iou_thresholds=tuple(float(t) for t in cfg.get("iou_thresholds", [0.5, 0.75])),
        pairing=pairing,
        resize=cfg.get("resize", "bilinear"),
        grad_conn=bool(cfg.get("grad_conn", True)),
        video_protocol=cfg.get("maggie_video_protocol", "clip3"),
        messddt=bool(cfg.get("messddt", True)),
    )


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate a checkpoint or a prediction folder; returns the flat metrics."""
    if (cfg.ckpt_path is None) == (cfg.pred_dir is None):
        raise ConfigError(
            "give exactly one of ckpt_path=<checkpoint> or pred_dir=<folder of predicted mattes>"
        )
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    module = None
    if cfg.ckpt_path is not None:
        check_checkpoint_data(cfg.get("data"))
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
    data = build(data_cfg, "data")
    worst = int(cfg.get("worst_images", 10))

    if cfg.pred_dir is not None:
        pred_dir = Path(cfg.pred_dir)
        if not pred_dir.is_dir():
            raise ConfigError(f"pred_dir={pred_dir}: not a folder")
        video, mask_sets = isinstance(data, VideoInstanceFolder), bool(getattr(data, "mask_sets", None))
        options = score_options(cfg, kinds, mask_sets=mask_sets, video=video)
        workers, progress = cfg.get("workers", "auto"), bool(cfg.get("progress", True))
        scored, extra, views = score_folder(data, pred_dir, options, cfg.split, workers, progress, worst)
        title = f"{pred_dir} on {getattr(data, 'desc', cfg.split)}"
    else:
        if cfg.score_threshold is not None:
            module.hparams.score_threshold = float(cfg.score_threshold)
        if cfg.min_area is not None:
            module.hparams.min_area = float(cfg.min_area)
        split_dataset(data, cfg.split)
        loader = data.val_dataloader() if cfg.split == "val" else data.test_dataloader()
        options = score_options(cfg, kinds, mask_sets=False)
        scored, views = score_model(module, loader, options, worst)
        extra, title = {}, f"{Path(cfg.ckpt_path).name} on {cfg.split}"

    files = write_report(
        output_dir,
        scored.metrics,
        scored.rows,
        title=title,
        problems=scored.problems,
        video_rows=scored.video_rows,
        **extra,
    )
    picture = save_worst_images(views, output_dir / "worst_images.jpg")
    for logger in build_loggers(cfg.get("logger")):
        logger.log_metrics({f"eval/{k}": v for k, v in scored.metrics.items()})
        logger.save()
    print(f"\n=== {title}: {len(scored.rows)} images ===")
    print(Path(files["markdown"]).read_text())
    for p in scored.problems[:20]:
        print(f"  {p.path}: {p.reason} ({p.action})")
    if len(scored.problems) > 20:
        print(f"  ... {len(scored.problems) - 20} more in {files['problems']}")
    print(f"metrics: {files['json']}\nper image: {files['csv']}\nskipped files: {files['problems']}")
    if picture is not None:
        print(f"worst images: {picture}")
    return scored.metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
