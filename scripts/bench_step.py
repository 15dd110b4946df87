"""Time the parts of a training step (data, forward, loss, backward, optimiser) of any experiment's model.

    python scripts/bench_step.py                          # the quickstart model on its data, CPU
    python scripts/bench_step.py experiment=paper_r50 debug=smoke --steps 5
    python scripts/bench_step.py --device cuda --profile   # plus the torch profiler's top operators
    python scripts/bench_step.py --precision bf16-mixed    # forward and loss under bf16 autocast
    python scripts/bench_step.py experiment=release_synthetic   # its trainer.precision: bf16-mixed

Arguments with "=" are Hydra overrides of conf/train.yaml. Prints the median seconds of each part over
`--steps` steps after 2 warm-up steps (docs/benchmarks.md), in float32 or under bf16 autocast as Lightning's
`trainer.precision` 32-true / bf16-mixed runs them (`--precision`, by default the experiment's).
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch

from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build

PRECISIONS = ("32-true", "bf16-mixed")  # as Lightning's trainer.precision
WARMUP = 2  # untimed steps first


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true", help="also print the profiler's top 15 operators")
    parser.add_argument(
        "--precision",
        default=None,
        choices=PRECISIONS,
        help="bf16-mixed: forward and loss under bf16 autocast; default: trainer.precision",
    )
    args, overrides = parser.parse_known_args(argv)
    # timing does not depend on the weights: the backbone's pretrained ones are never fetched
    cfg = compose_config("train", [*overrides, "model.net.backbone.pretrained=null"])
    precision = args.precision or str(cfg.trainer.precision)
    if precision not in PRECISIONS:
        raise SystemExit(f"trainer.precision {precision} is not timed here: pass --precision {PRECISIONS}")
    torch.manual_seed(0)
    module = build(cfg.model, "model").to(args.device)
    datamodule = build(cfg.data, "data")
    datamodule.setup("fit")
    batches = iter(datamodule.train_dataloader())
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    device_type = torch.device(args.device).type
    autocast = partial(torch.autocast, device_type, torch.bfloat16, enabled=precision == "bf16-mixed")

    def step(batch):
        times = {}
        t = time.perf_counter()
        with autocast():
            outputs = module(batch["image"])
        sync()
        times["forward"] = time.perf_counter() - t
        t = time.perf_counter()
        with autocast():
            losses = module.criterion(outputs, batch)
        sync()
        times["loss"] = time.perf_counter() - t
        t = time.perf_counter()
        optimizer.zero_grad()
        losses["loss"].backward()
        sync()
        times["backward"] = time.perf_counter() - t
        t = time.perf_counter()
        optimizer.step()
        sync()
        times["optimiser"] = time.perf_counter() - t
        return times

    rows = []
    for i in range(args.steps + WARMUP):
        t = time.perf_counter()
        batch = next(batches)
        batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        data = time.perf_counter() - t
        times = {"data": data, **step(batch)}
        if i >= WARMUP:
            rows.append(times)
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    median["step"] = sum(median.values())
    print(f"{cfg.experiment_name}, batch {cfg.data.batch_size}, device {args.device}, {precision}, "
          f"{args.steps} steps:")  # fmt: skip
    print("  ".join(f"{k} {v:.3f}s" for k, v in median.items()))
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(batch)
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
