"""`E2EHIMModule`: the LightningModule that trains and evaluates E2E-HIM with the paper's objective."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from e2e_him.data.targets import complete_batch
from e2e_him.metrics.families import build_metrics, validation_kinds
from e2e_him.metrics.part_iou import PartIoU
from e2e_him.models.inference import postprocess
from e2e_him.models.optim import build_param_groups
from e2e_him.models.stored_configs import upgrade_run_config
from e2e_him.utils.config import plain_hparams

log = logging.getLogger(__name__)


class E2EHIMModule(L.LightningModule):
    """Wraps the network (general perception, united guidance, instance matting) and the objective.

    Args:
        net: the `E2EHIM` network (outputs as in docs/contracts.md).
        criterion: the `SetCriterion` (Eq. 9-19); returns a dict of loss terms with the total under `loss`.
        optimizer: a partial optimiser (`torch.optim.AdamW` with lr/betas in the config), called with the
            parameter groups.
        scheduler: a partial schedule factory called with `optimizer=` and `total_steps=`; stepped per step.
        weight_decay: decay for weights; norms, biases and embeddings get none.
        backbone_lr_mult: learning-rate multiplier of the backbone (1.0 = the paper's single learning rate).
        score_threshold: a query is a person when p(human) exceeds this (authors' release: 0.5).
        min_area: a matte is kept when its summed alpha at the original size exceeds this many pixels.
        metrics: the metric families of the test (`instance`, `imq`, `imq_lite`, `human`).
        val_metrics: those of every validation; None: `metrics` with IMQ as `imq_lite` (no Grad and Conn,
            the costly part), e.g. `[instance, imq]` for the full set at every validation.
        iou_thresholds: IoU thresholds of the instance metrics (paper: 0.5 and 0.75).
        alpha_levels: the kept mattes are rounded to multiples of 1 / alpha_levels before they are scored or
            returned (255: the 8-bit PNGs that predict writes and that HIM2K / InstMatt score); None keeps the
            float values.
        compile: compile the network's training forward with `torch.compile` (ours, off; docs/training.md):
            training crops have one size, so it compiles once; validation and inference run it eagerly.
        compile_options: keyword arguments of `torch.compile` (e.g. `mode`, `backend`).
        skip_nonfinite_steps: skip an optimiser step whose gradients hold NaN or inf (a non-finite matching
            cost makes them so on every process, `SetCriterion`), logged as `train/skipped_steps`; costs one
            wait for the device per step. With `16-mixed` the gradient scaler skips such steps itself.
    """

    def __init__(
        self,
        net: nn.Module,
        criterion: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        weight_decay: float = 5e-4,
        backbone_lr_mult: float = 1.0,
        score_threshold: float = 0.5,
        min_area: float = 1000.0,
        metrics: Sequence[str] = ("instance", "imq"),
        val_metrics: Sequence[str] | None = None,
        iou_thresholds: Sequence[float] = (0.5, 0.75),
        alpha_levels: int | None = 255,
        compile: bool = False,
        compile_options: Mapping[str, Any] | None = None,
        skip_nonfinite_steps: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "criterion", "optimizer", "scheduler"], logger=False)
        plain_hparams(self.hparams)  # checkpoints load with weights_only=True
        self.net = net
        self.criterion = criterion
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        val_kinds = validation_kinds(metrics) if val_metrics is None else list(val_metrics)
        # the same builder as `eval`'s (evaluation.runner.MetricSet): the same definitions and settings
        self.val_metrics = nn.ModuleDict(build_metrics(val_kinds, iou_thresholds))
        self.test_metrics = nn.ModuleDict(build_metrics(list(metrics), iou_thresholds))
        # a training diagnostic: IoU of the matched queries' masks, trimaps and mattes (val/iou_*)
        self.val_part_iou = PartIoU()
        # The resolved run config (plain dict), stored in checkpoints so that eval/predict rebuild the model.
        self.run_config: dict[str, Any] | None = None
        self.skipped_steps = 0

    def forward(self, image: torch.Tensor) -> dict[str, Any]:
        return self.net(image)

    # ---------------------------------------------------------------------------------------------- set-up
    def setup(self, stage: str) -> None:
        if stage == "fit":
            check_trainable(self.net, self.criterion)
            if self.hparams.compile:
                compiled = torch.compile(self.net, **dict(self.hparams.compile_options or {}))
                # kept outside the sub-modules, so that the state dict holds the network's keys once
                self.__dict__["_compiled_net"] = compiled

    def train_forward(self, image: torch.Tensor) -> dict[str, Any]:
        """The network's training forward: compiled after `setup("fit")` when `compile` is on."""
        return self.__dict__.get("_compiled_net", self.net)(image)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Training batches arrive compact (8-bit photo and mattes): their float targets and trimaps are made
        here, on the device (`data.targets.complete_batch`); evaluation batches pass through."""
        return complete_batch(batch) if isinstance(batch, dict) and "image" in batch else batch

    # ----------------------------------------------------------------------------------------------- steps
    def _log_losses(self, stage: str, losses: dict[str, torch.Tensor], batch_size: int) -> None:
        on_step = stage == "train"
        # a float count: Lightning's mean over processes floors an integer one (Lightning-AI/pytorch-lightning
        # issue 21859), which evaluation's shards of unequal length would meet under DDP
        batch_size = float(batch_size)
        self.log_dict(
            {f"{stage}/{k}": v.detach() for k, v in losses.items() if k != "loss"},
            on_step=on_step,
            on_epoch=True,
            batch_size=batch_size,
            sync_dist=not on_step,
            prog_bar=False,
        )
        self.log(f"{stage}/loss", losses["loss"].detach(), on_step=on_step, on_epoch=True, prog_bar=True,
                 batch_size=batch_size, sync_dist=not on_step)  # fmt: skip

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        outputs = self.train_forward(batch["image"])
        losses = self.criterion(outputs, batch)
        self._log_losses("train", losses, batch["image"].shape[0])
        return losses["loss"]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip the step when a gradient is NaN or inf (all gradients set to None: AdamW then leaves weights
        and moments as they are). Under DDP the gradients are all-reduced by now, so every process sees
        the same and every process skips. With 16-mixed the gradient scaler does this itself."""
        if not self.hparams.skip_nonfinite_steps or getattr(self.trainer.precision_plugin, "scaler", None):
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads and not finite_gradients(grads):
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None
            self.skipped_steps += 1
            log.warning(
                "step %d skipped: non-finite gradients (%d so far)", self.global_step, self.skipped_steps
            )
            # logged when it happens only: a number logged every step is one more wait for the device
            self.log("train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False)

    def _eval_step(self, stage: str, batch: dict[str, Any], metrics: nn.ModuleDict) -> dict[str, Any]:
        outputs = self.net(batch["image"])
        losses, indices = self.criterion.losses_and_indices(outputs, batch)
        self._log_losses(stage, losses, batch["image"].shape[0])
        preds = self.postprocess(outputs, batch["meta"])
        pred_alphas = [p["alphas"].float() for p in preds]
        targets = [m["orig_alphas"].to(self.device).float() / 255.0 for m in batch["meta"]]
        for metric in metrics.values():
            metric.update(pred_alphas, targets)
        return {"outputs": outputs, "preds": preds, "indices": indices}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Losses and metrics; returns the network outputs, kept people (callbacks/image_panels.py) and the
        final layer's assignment of the loss, which the part IoUs read."""
        result = self._eval_step("val", batch, self.val_metrics)
        self.val_part_iou.update(result["outputs"], batch, result["indices"])
        return result

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step("test", batch, self.test_metrics)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        return self.postprocess(self.net(batch["image"]), batch["meta"])

    def postprocess(self, outputs: dict[str, Any], metas: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """People kept by score and area, mattes at each image's original size (rounded to `alpha_levels`),
        sorted by score."""
        return postprocess(
            outputs,
            metas,
            score_threshold=self.hparams.score_threshold,
            min_area=self.hparams.min_area,
            alpha_levels=self.hparams.get("alpha_levels"),
        )

    def _log_metrics(self, stage: str, metrics: nn.ModuleDict) -> None:
        values: dict[str, torch.Tensor] = {}
        for metric in metrics.values():
            values.update(
                {f"{stage}/{k}": torch.as_tensor(v, dtype=torch.float32) for k, v in metric.compute().items()}
            )
            metric.reset()
        self.log_dict(values, sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", {**self.val_metrics, "part_iou": self.val_part_iou})

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    # ----------------------------------------------------------------------------------------- optimisation
    def build_optimizer(self) -> torch.optim.Optimizer:
        """The config's optimiser over the network's parameter groups (what `configure_optimizers` trains
        with; the benchmark scripts time it too)."""
        groups = build_param_groups(
            self.net, weight_decay=self.hparams.weight_decay, backbone_lr_mult=self.hparams.backbone_lr_mult
        )
        return self.optimizer_factory(params=groups)

    def configure_optimizers(self) -> Any:
        optimizer = self.build_optimizer()
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(
            optimizer=optimizer, total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    # ------------------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint["e2e_him_config"] = self.run_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # a run that resumes or fine-tunes keeps its own config (train.py warns about what changed)
        if self.run_config is None:
            self.run_config = upgrade_run_config(checkpoint.get("e2e_him_config"))


def finite_gradients(grads: list[torch.Tensor]) -> bool:
    """Whether every gradient is finite: one fused check (the gradient scaler's), one wait for the device."""
    found = torch.zeros(1, device=grads[0].device)
    try:
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found, torch.ones(1, device=found.device))
    except (RuntimeError, NotImplementedError):  # mixed devices or dtypes: one check per gradient
        return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
    return not bool(found.item())


def check_trainable(net: nn.Module, criterion: nn.Module) -> None:
    """Refuse a network and objective whose loss leaves trainable parameters without a gradient (DDP stops
    on those: "parameters that were not used in producing loss"), naming the keys to change."""
    person_head = getattr(getattr(net, "perception", None), "person_head", None)
    weight = float(getattr(criterion, "person_weight", 0.0))
    if person_head is not None and weight == 0.0:
        raise ValueError(
            "model.net.perception.person_head=true adds a dense person map that only its loss trains, but "
            "model.criterion.person_weight is 0: its weights would get no gradient (DDP stops on unused "
            "parameters). Give model.criterion.person_weight > 0 (e.g. 1.0) or set person_head=false."
        )
    if person_head is None and weight > 0.0:
        log.warning(
            "model.criterion.person_weight=%s has no effect without net.perception.person_head", weight
        )
