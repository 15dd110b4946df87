"""Where bfloat16 moves the mattes: bf16 autocast in one part of the network at a time, against float32.

    python scripts/bench_precision.py experiment=release_swint --ckpt checkpoints/release_swint.ckpt
    python scripts/bench_precision.py experiment=backbone_swin_tiny --threads 2      # random weights

Arguments with "=" are Hydra overrides of conf/train.yaml, or `--ckpt` loads a checkpoint (as
scripts/bench_infer.py). Each row runs the forward once with bf16 autocast in the named direct children of
the network and float32 in the others (a child in float32 gets float32 inputs); what the network's forward
computes outside its children (dynamic convolutions, Eq. 8) runs under bf16 autocast in every bf16 row, except
the precision=mixed row: bf16 in the network's alpha-only parts, float32 everywhere else, as predict runs it.
Printed per row: seconds of that one forward, and against the float32 output: `alpha_fin` MAD and max,
`alpha_pred` MAD, the fraction of trimap pixels whose argmax (Eq. 8's region) changes, and the largest
class-logit difference. With random weights alpha_pred is mostly 0 or 1 and the trimap logits are near ties
everywhere, so `alpha_fin` moves by flipped trimap pixels rather than by alpha values; run it on trained
weights to judge bf16 (issue 14's bound: MAD 1/255). `--keep-scores-above T` compares the mattes of
the people predict would keep (float32 p(human) > T) only, not every query. `--synthetic N` runs N images of
the built-in synthetic validation data instead of a photo (the domain of the quickstart's trained
checkpoint) and prints the mean MADs and flips and the largest maxima over them:

    python scripts/bench_precision.py --ckpt <quickstart run>/checkpoints/best.ckpt --size 128 \\
        --synthetic 16 --keep-scores-above 0.5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterable
from typing import Any

import torch
from bench_infer import build_net, input_batch
from torch import nn

from e2e_him.predictor.precision import alpha_only_parts, bf16_in

KEYS = ("alpha_fin", "alpha_pred", "trimap_logits", "pred_logits")


def _float32(value: Any) -> Any:
    if torch.is_tensor(value) and value.is_floating_point():
        return value.float()
    if isinstance(value, (tuple, list)):
        return type(value)(_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: _float32(v) for k, v in value.items()}
    return value


class Float32(nn.Module):
    """Runs the wrapped module without autocast, on float32 inputs."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast("cpu", enabled=False):
            return self.module(*_float32(args), **_float32(kwargs))


def parts_of(net: nn.Module) -> list[str]:
    """The direct children that compute (modules with a forward of their own; not embeddings or holders)."""
    return [n for n, m in net.named_children() if not isinstance(m, nn.Embedding) and list(m.parameters())]


@torch.inference_mode()
def forward(net: nn.Module, image: torch.Tensor, bf16_parts: Iterable[str] | None) -> tuple[dict, float]:
    """One forward: float32 (`bf16_parts` None), bf16 autocast in `bf16_parts` only ("*": everywhere), or
    predict's precision=mixed ("mixed")."""
    if bf16_parts == "mixed":
        with bf16_in(alpha_only_parts(net)):
            start = time.perf_counter()
            out = net(image)
            seconds = time.perf_counter() - start
        return {k: out[k].float() for k in KEYS}, seconds
    bf16_parts = None if bf16_parts is None else set(bf16_parts)
    wrapped = {}
    if bf16_parts is not None and "*" not in bf16_parts:
        for name in parts_of(net):
            if name not in bf16_parts:
                wrapped[name] = getattr(net, name)
                setattr(net, name, Float32(wrapped[name]))
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_parts is not None):
            start = time.perf_counter()
            out = net(image)
            seconds = time.perf_counter() - start
    finally:
        for name, module in wrapped.items():
            setattr(net, name, module)
    return {k: out[k].float() for k in KEYS}, seconds


def differences(out: dict, ref: dict, keep: float | None = None) -> dict[str, float]:
    """alpha_fin MAD / max, alpha_pred MAD, trimap argmax changes, class logits max, against `ref`; with
    `keep`, the mattes of the queries whose float32 p(human) exceeds it only (the people predict writes)."""
    people = torch.ones(ref["pred_logits"].shape[:2], dtype=torch.bool)  # (B, N)
    if keep is not None:
        people = ref["pred_logits"].softmax(-1)[..., 1] > keep
    if not people.any():
        raise SystemExit(f"no query has p(human) > {keep} on this image")
    fin = (out["alpha_fin"] - ref["alpha_fin"]).abs()[people]  # (K, H, W)
    flips = (out["trimap_logits"].argmax(2) != ref["trimap_logits"].argmax(2))[people]  # (K, h, w)
    return {
        "fin_mad": float(fin.mean()),
        "fin_max": float(fin.max()),
        "pred_mad": float((out["alpha_pred"] - ref["alpha_pred"]).abs()[people].mean()),
        "trimap_flips": float(flips.float().mean()),
        "logits_max": float((out["pred_logits"] - ref["pred_logits"]).abs().max()),
    }


def rows(net: nn.Module, image: torch.Tensor, keep: float | None = None) -> list[tuple[str, float, dict]]:
    """(configuration, seconds, differences) for float32, bf16 everywhere, precision=mixed, and bf16 in each
    part alone (with the forward's own operations); `keep`: as `differences`."""
    net = net.eval()
    forward(net, image, None)  # warm-up: oneDNN prepares its kernels per shape
    ref, seconds = forward(net, image, None)
    table = [("float32", seconds, differences(ref, ref, keep))]
    configs = [("bf16 everywhere", ["*"])]
    if hasattr(net, "alpha_only_parts"):
        configs.append(("precision=mixed (bf16 in the alpha-only parts)", "mixed"))
    configs += [(f"bf16 in {name} only", [name]) for name in parts_of(net)]
    for label, bf16_parts in configs:
        forward(net, image, bf16_parts)
        out, seconds = forward(net, image, bf16_parts)
        table.append((label, seconds, differences(out, ref, keep)))
    return table


def synthetic_images(count: int, size: int) -> list[torch.Tensor]:
    """The first `count` images of the built-in synthetic validation set (data=synthetic's val, seed 1), at
    size x size, normalised, (1, 3, size, size) each: the domain of the quickstart's trained network."""
    from e2e_him.data.synthetic import SyntheticPeople
    from e2e_him.data.transforms import normalize_image

    source = SyntheticPeople(num_samples=count, image_size=(size, size), seed=1)
    return [normalize_image(source[i]["image"])[None] for i in range(count)]


def combined(tables: list[list[tuple[str, float, dict[str, float]]]]) -> list[tuple[str, float, dict]]:
    """One table over several images: median seconds, mean MADs and flips, largest maxima."""
    out = []
    for label_rows in zip(*tables):
        values = [d for _, _, d in label_rows]
        mean = {k: sum(v[k] for v in values) / len(values) for k in values[0]}
        merged = {k: max(v[k] for v in values) if k.endswith("max") else mean[k] for k in mean}
        out.append((label_rows[0][0], statistics.median(s for _, s, _ in label_rows), merged))
    return out


def main(argv: list[str] | None = None) -> list[tuple[str, float, dict[str, float]]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", default=None, help="a checkpoint instead of Hydra model overrides")
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--photo", default=None, help="input photo (default: ../shared/data/demo/group1.jpg)")
    parser.add_argument("--keep-scores-above", type=float, default=None,
                        help="compare only the queries whose float32 p(human) is above this")  # fmt: skip
    parser.add_argument("--synthetic", type=int, default=0,
                        help="this many synthetic validation images instead of a photo")  # fmt: skip
    args, overrides = parser.parse_known_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    net = build_net(overrides, args.ckpt)
    images = (
        synthetic_images(args.synthetic, args.size)
        if args.synthetic
        else [input_batch(args.size, 1, args.photo)]
    )
    with torch.inference_mode():
        pred = torch.cat([net.eval()(image)["alpha_pred"] for image in images])
    soft = float(((pred > 0.05) & (pred < 0.95)).float().mean())
    threads = torch.get_num_threads()
    print(f"{args.size} x {args.size}, {len(images)} image(s), {threads} threads; "
          f"alpha_pred in (0.05, 0.95): {soft:.3f}")  # fmt: skip
    print(
        "| configuration | s | alpha_fin MAD | alpha_fin max | alpha_pred MAD | trimap flips | logits max |"
    )
    print("|---|---|---|---|---|---|---|")
    table = combined([rows(net, image, args.keep_scores_above) for image in images])
    for label, seconds, d in table:
        print(f"| {label} | {seconds:.2f} | {d['fin_mad']:.2e} | {d['fin_max']:.3f} | {d['pred_mad']:.2e} | "
              f"{d['trimap_flips']:.4f} | {d['logits_max']:.2e} |")  # fmt: skip
    return table


if __name__ == "__main__":
    main()
