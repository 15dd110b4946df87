"""Time the training step of several configs against the first, alternating in one process.

    python scripts/bench_configs.py "" "data.train.image_size=[128,128] data.crop_size=[128,128]"
    python scripts/bench_configs.py "" "model.net.perception.num_queries=5" --rounds 5 --json out.json

Each argument is one config: Hydra overrides of conf/train.yaml separated by spaces ("" is the default
experiment, the quickstart). Every config's model, optimiser and a few batches of its own data are built
first; then each round times `--steps` steps of every config in turn (forward, loss, backward, AdamW step,
under the config's precision as scripts/bench_step.py runs them; the data made beforehand), so that the
machine's load changes less between configs than between separate runs (docs/benchmarks.md). Prints the
median step of each config and its ratio to the first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

import torch
from bench_step import model_and_data

from e2e_him.data.targets import complete_batch
from e2e_him.utils.config import compose_config


def prepare(overrides: list[str], batches: int) -> dict:
    """The config's module (set up for fit), its optimiser, `batches` completed batches and its autocast."""
    # timing does not depend on the weights: the backbone's pretrained ones are never fetched
    cfg = compose_config("train", [*overrides, "model.net.backbone.pretrained=null"])
    module, datamodule = model_and_data(cfg)
    loader = iter(datamodule.train_dataloader())
    bf16 = str(cfg.trainer.precision) == "bf16-mixed"
    return {
        "module": module,
        "optimizer": module.build_optimizer(),
        "batches": [complete_batch(next(loader)) for _ in range(batches)],
        "autocast": partial(torch.autocast, "cpu", torch.bfloat16, enabled=bf16),
        "times": [],
    }


def train_step(setup: dict, batch: dict) -> float:
    """One training step of a prepared config; its seconds."""
    module, optimizer = setup["module"], setup["optimizer"]
    t = time.perf_counter()
    with setup["autocast"]():
        losses = module.criterion(module.train_forward(batch["image"]), batch)
    optimizer.zero_grad()
    losses["loss"].backward()
    optimizer.step()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("configs", nargs="+", help='one config\'s Hydra overrides ("": defaults)')
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each config per round")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    setups = [prepare(spec.split(), args.steps) for spec in args.configs]
    for setup in setups:  # one untimed step each: allocations, oneDNN's kernels
        train_step(setup, setup["batches"][0])
    for _ in range(args.rounds):
        for setup in setups:
            setup["times"] += [train_step(setup, batch) for batch in setup["batches"]]
    first = statistics.median(setups[0]["times"])
    rows = []
    for spec, setup in zip(args.configs, setups):
        step = statistics.median(setup["times"])
        rows.append({"config": spec, "step_s": step, "ratio": step / first})
        print(f"{step:.3f} s a step  {step / first:.2f}x the first  {spec or '(defaults)'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
