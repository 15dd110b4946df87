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
from collections.abc import Iterator
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from e2e_him import CONF_DIR
from e2e_him.data.mask_sets import MaskSetFolder
from e2e_him.data.video_folder import VideoInstanceFolder
from e2e_him.metrics import ImageTask, Scored, ScoreOptions, score_image, score_images, write_report
from e2e_him.metrics.offline import score_mask_sets, score_videos
from e2e_him.metrics.runner import Accumulator
from e2e_him.metrics.tasks import (
    entry_task,
    image_view,
    mask_set_tasks,
    row_title,
    video_frame_view,
    video_tasks,
)
from e2e_him.metrics.worst import rank_worst, save_worst_images
from e2e_him.utils.checkpoint import load_module
from e2e_him.utils.instantiate import ConfigError, build, build_loggers

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


def score_folder(cfg: DictConfig, data, pred_dir: Path, kinds: list[str]) -> tuple[Scored, dict, list]:
    """Score `pred_dir` against the data source; returns the scores, report arguments and picture views."""
    workers, progress = cfg.get("workers", "auto"), bool(cfg.get("progress", True))
    resize = cfg.get("resize", "bilinear")
    if isinstance(data, VideoInstanceFolder):
        options = score_options(cfg, kinds, mask_sets=False, video=True)
        tasks, problems = video_tasks(data, pred_dir)
        scored = score_videos(tasks, options, workers, progress)
        by_name = {t.name: t for t in tasks}

        def view(row):
            return video_frame_view(by_name[row["video"]], row["frame"], row_title(row), resize)

        groups = [s for s in data.splits if s] if len(data.splits) > 1 else []
        extra = {
            "groups": groups,
            "notes": [f"MaGGIe's video protocol: {options.video_protocol}; pairing: {options.pairing}."],
        }
    elif isinstance(data, MaskSetFolder):
        options = score_options(cfg, kinds, mask_sets=bool(data.mask_sets))
        per_set, problems = mask_set_tasks(data, pred_dir)
        if not per_set:
            raise ConfigError(f"pred_dir={pred_dir}: no prediction folder for any mask set of {data.root}")
        scored = score_mask_sets(per_set, options, workers, progress)
        by_name = {(s, t.name): t for s, ts in per_set.items() for t in ts}

        def view(row):
            return image_view(by_name[(row["mask_set"], row["name"])], row_title(row), resize)

        extra = {"mask_sets": list(per_set), "notes": [f"Pairing for MaGGIe's errors: {options.pairing}."]}
    else:
        options = score_options(cfg, kinds, mask_sets=False)
        dataset = split_dataset(data, cfg.split)
        source = dataset.source
        if hasattr(source, "entries"):
            tasks = [entry_task(e, pred_dir) for e in source.entries]
        else:  # a source without files (e.g. synthetic): its ground truth in memory
            tasks = [
                ImageTask(n, pred_dir / n, gt=g, size=tuple(g.shape[-2:])) for n, g in ground_truth(dataset)
            ]
        problems = []
        scored = score_images(tasks, options, workers, progress)
        by_name = {t.name: t for t in tasks}

        def view(row):
            return image_view(by_name[row["name"]], row_title(row), resize)

        extra = {"notes": [f"Pairing for MaGGIe's errors: {options.pairing}."] if "maggie" in kinds else []}
    scored.problems = problems + scored.problems
    n = int(cfg.get("worst_images", 10))
    views = [view(scored.rows[i]) for i in rank_worst(scored.rows, n)] if n > 0 else []
    return scored, extra, views


@torch.no_grad()
def evaluate_checkpoint(module, loader, options: ScoreOptions, worst: int = 10) -> tuple[Scored, list]:
    """Run `module` over `loader` and score its outputs in this process; returns the scores and the views
    of the `worst` worst images (only their arrays are kept while going)."""
    acc, rows, problems, kept = Accumulator(options), [], [], {}
    for batch in tqdm(loader, desc="eval", unit="batch"):
        outputs = module(batch["image"].to(module.device))
        preds = module.postprocess(outputs, batch["meta"])
        for pred, meta in zip(preds, batch["meta"]):
            gt = meta["orig_alphas"].float().numpy() / 255.0
            task = ImageTask(
                meta["name"], pred=pred["alphas"].float().cpu().numpy(), gt=gt, size=gt.shape[-2:]
            )
            result = score_image(task, options)
            acc.add(result)
            rows.append(result.row)
            problems += result.problems
            if worst > 0:
                kept[len(rows) - 1] = task
                if len(kept) > 2 * worst:  # keep the current worst only
                    ranked = rank_worst([rows[i] for i in kept], worst)
                    kept = {i: kept[i] for i in [list(kept)[j] for j in ranked]}
    order = [list(kept)[j] for j in rank_worst([rows[i] for i in kept], worst)] if kept else []
    views = [image_view(kept[i], row_title(rows[i]), "error") for i in order]
    return Scored(dict(acc.compute()[""]), rows, problems), views


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

    if cfg.pred_dir is not None:
        pred_dir = Path(cfg.pred_dir)
        if not pred_dir.is_dir():
            raise ConfigError(f"pred_dir={pred_dir}: not a folder")
        scored, extra, views = score_folder(cfg, data, pred_dir, kinds)
        title = f"{pred_dir} on {getattr(data, 'desc', cfg.split)}"
    else:
        if cfg.score_threshold is not None:
            module.hparams.score_threshold = float(cfg.score_threshold)
        if cfg.min_area is not None:
            module.hparams.min_area = float(cfg.min_area)
        split_dataset(data, cfg.split)
        loader = data.val_dataloader() if cfg.split == "val" else data.test_dataloader()
        options = score_options(cfg, kinds, mask_sets=False)
        scored, views = evaluate_checkpoint(module, loader, options, int(cfg.get("worst_images", 10)))
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
