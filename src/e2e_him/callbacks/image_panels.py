"""`ValImagePanels`: a picture per validation batch (people, trimaps, guidance) for wandb and files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from PIL import Image

from e2e_him.visual.inspection import batch_panel

log = logging.getLogger(__name__)


class ValImagePanels(L.Callback):
    """Logs, for each of the first `max_batches` validation batches, one panel per image (up to
    `images_per_batch`): input, ground-truth people, predicted people in distinct colours, predicted trimaps,
    and each guidance head's features (PCA colours) and spatial attention.

    The panels go to every WandbLogger as images (`val/panel_<batch>`, one slider step per validation) and,
    as PNGs, to `<dirpath>/epoch<E>_step<S>_batch<B>.png` so that runs without wandb can be looked at too.

    Args:
        dirpath: folder of the PNGs (null: no files, wandb only).
        max_batches: validation batches drawn per validation run (null: all of them).
        images_per_batch: images of each batch stacked in its panel.
        max_side: panels whose tiles are taller than this many pixels are scaled down.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        max_batches: int | None = 4,
        images_per_batch: int = 2,
        max_side: int = 320,
    ) -> None:
        super().__init__()
        self.dirpath = Path(dirpath) if dirpath else None
        self.max_batches = max_batches
        self.images_per_batch = images_per_batch
        self.max_side = max_side

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if self.max_batches is not None and batch_idx >= self.max_batches:
            return
        if not isinstance(outputs, dict) or "outputs" not in outputs:
            raise TypeError(
                "ValImagePanels needs validation_step to return {'outputs': network outputs, 'preds': people}"
            )
        panel = batch_panel(outputs["outputs"], batch, outputs["preds"], self.images_per_batch, self.max_side)
        names = [str(m.get("name", "")) for m in batch["meta"][: self.images_per_batch]]
        caption = f"epoch {trainer.current_epoch}, step {trainer.global_step}: " + ", ".join(names)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=f"val/panel_{batch_idx}", images=[panel], caption=[caption])
        if self.dirpath is not None:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            name = f"epoch{trainer.current_epoch:03d}_step{trainer.global_step:06d}_batch{batch_idx:02d}.png"
            path = self.dirpath / name
            Image.fromarray(panel).save(path)
