"""Write any network this suite reads (a checkpoint of `e2e_him.train`, the authors' released file, a Hub
folder) as a Hub folder with its generated model card, and find what the card reports: the training step of
the checkpoint and the metrics of its run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from e2e_him.models.checkpoint import derives_from_release, load_module, read_plain
from e2e_him.models.hub import is_hub_reference, public_config, read_hub_config, write_hub_folder
from e2e_him.models.model_card import model_card


def checkpoint_facts(ref: str | Path) -> dict[str, Any]:
    """`global_step`, `epoch` and `checkpoint` (file name) of a checkpoint of `e2e_him.train`, the `training`
    entry of a Hub folder, or {} (the authors' file)."""
    if is_hub_reference(ref):
        return dict(read_hub_config(ref).get("training") or {})
    ckpt = read_plain(ref, mmap=True)
    if not isinstance(ckpt, Mapping) or "e2e_him_config" not in ckpt:
        return {}
    facts = {k: int(ckpt[k]) for k in ("global_step", "epoch") if k in ckpt}
    return {**facts, "checkpoint": Path(ref).name}


def run_metrics(
    ref: str | Path, metrics_path: str | Path | None = None
) -> tuple[dict[str, float] | None, str]:
    """The metrics a card reports and a sentence on where they come from.

    `metrics_path` if given; else the run's metrics.json beside a checkpoint in `<run>/checkpoints/`, which
    holds the test of the run's best checkpoint on its validation split: the sentence says when `ref` is
    another checkpoint of that run.
    """
    if metrics_path is not None:
        path = Path(metrics_path)
        return json.loads(path.read_text()), f"From `{path.name}` (given to the export)."
    if is_hub_reference(ref):
        config = read_hub_config(ref)
        return config.get("metrics"), config.get("metrics_note") or "Not given to the export."
    ckpt = Path(ref)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    path = run_dir / "metrics.json"
    if not path.is_file():
        return (
            None,
            "No metrics.json beside this checkpoint's run: export with hub.metrics=<file> to add some.",
        )
    summary_file = run_dir / "summary.json"
    best = json.loads(summary_file.read_text()).get("best_checkpoint") if summary_file.is_file() else None
    note = f"From the training run's metrics.json: the test of its best checkpoint (`{Path(best).name}`)"
    note = note if best else "From the training run's metrics.json: the test at the end of training"
    note += " on the run's validation split (the whole split, one device)."
    if best and Path(best).name != ckpt.name:
        note += (
            f" **They belong to `{Path(best).name}`, not to `{ckpt.name}`, which these weights come from.**"
        )
    return json.loads(path.read_text()), note


def save_as_hub(
    module,
    folder: str | Path,
    licence: str = "mit",
    metrics: Mapping[str, float] | None = None,
    metrics_note: str = "",
    training: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write the network of `module` (an `E2EHIMModule` with `run_config`) as a Hub folder; returns it."""
    if "model" not in (module.run_config or {}):
        raise ValueError("the module has no run config: build it from a checkpoint (load_module)")
    config = public_config(module.run_config)
    card = model_card(
        config,
        parameters=sum(p.numel() for p in module.net.parameters()),
        derived_from_release=derives_from_release(config.get("source")),
        licence=licence,
        metrics=metrics,
        metrics_note=metrics_note,
        training=training,
        repo_id=repo_id,
    )
    return write_hub_folder(folder, module.net, config, card, training, metrics, metrics_note)


def export_hub(
    ref: str | Path,
    folder: str | Path,
    licence: str = "mit",
    metrics_path: str | Path | None = None,
    repo_id: str | None = None,
) -> Path:
    """A checkpoint, the authors' file or a Hub folder (`ref`) as a Hub folder, with its run's metrics."""
    module = load_module(ref, map_location="cpu")
    metrics, note = run_metrics(ref, metrics_path)
    return save_as_hub(module, folder, licence, metrics, note, checkpoint_facts(ref), repo_id)
