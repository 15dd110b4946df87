"""Parameters and multiply-accumulates of the E2E-HIM network, measured (docs/architecture.md, Table II).

    python scripts/complexity.py                                   # ResNet-50, the paper's model
    python scripts/complexity.py model/backbone=swin_tiny
    python scripts/complexity.py model.net.guidance.num_heads=0 model.net.matting.use_fusion=false
    python scripts/complexity.py experiment=<name> --size 512 --time 3 --device cuda
    python scripts/complexity.py model=release_swint              # the authors' released network

Builds `model.net` from conf/train.yaml with the overrides (the default experiment removed unless one is
named, so that the paper's defaults are measured). Prints one JSON line. MACs come from
`torch.utils.flop_counter.FlopCounterMode`, which counts FLOPs = 2 x MACs (matmuls and convolutions only): the
paper's "GFlops" (Table II: 305.3 for ResNet-50) are MACs, as the authors' release (283 GMAC, 566 GFLOP by
torch's counter) shows, so compare `gmacs` with them.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from e2e_him.utils.config import compose_config

NET_PREFIX = "model.net."


def compose_net(overrides: list[str]) -> DictConfig:
    """The `model.net` node of conf/train.yaml with the overrides; without an `experiment=` override the
    default (quickstart) experiment is removed, so that the paper's defaults are measured."""
    if not any(o.split("=", 1)[0].lstrip("+~") == "experiment" for o in overrides):
        overrides = ["~experiment", *overrides]
    # sizes and speed do not depend on the weights: the backbone's pretrained ones are never fetched
    return compose_config("train", [*overrides, "model.net.backbone.pretrained=null"]).model.net


def count_params(module: nn.Module | None) -> float:
    """Millions of parameters."""
    return 0.0 if module is None else sum(p.numel() for p in module.parameters()) / 1e6


# The parts reported separately, as attribute paths of each layout's network.
PARTS = {
    "E2EHIM": {
        "stem": ["stem"],
        "backbone": ["backbone"],
        "transformer_encoder": ["perception.encoder"],
        "perception_decoder": ["perception.decoder"],
        "feature_decoder": ["perception.feature_decoder"],
        "perception_heads": ["perception.input_proj", "perception.class_head", "perception.mask_kernels"],
        "guidance": ["guidance"],
        "fusion": ["matting.fusion"],
        "refiner": ["matting.refiner"],
        "matting_kernels": ["matting.trimap_kernels", "matting.alpha_kernels"],
    },
    "ReleaseE2EHIM": {
        "stem": ["stem"],
        "backbone": ["backbone"],
        "perception_decoder": ["perception.context_proj", "perception.decoder"],
        "feature_decoder": ["perception.feature_decoder"],
        "perception_heads": ["perception.class_head", "perception.perception_kernels"],
        "guidance": ["guidance"],
        "fusion": ["matting.fusion"],
        "trimap_features": ["matting.trimap_features"],
        "refiner": ["matting.refiner"],
        "matting_kernels": ["perception.matting_kernels"],
    },
}


def parts(net: nn.Module) -> dict[str, list[str]]:
    """Label -> attribute paths of the sub-networks reported separately (per layout)."""
    layout = type(net).__name__
    if layout not in PARTS:
        raise ValueError(f"no part list for {layout}; add it to PARTS")
    present = dict(net.named_modules())  # a part switched off (None) is not there
    return {k: [p for p in paths if p in present] for k, paths in PARTS[layout].items()}


def measure(net: nn.Module, size: tuple[int, int], device: str, repeats: int) -> dict:
    """Parameters, MACs at `size` (per part), and optionally the mean forward time."""
    net = net.to(device).eval().requires_grad_(False)
    image = torch.randn(1, 3, *size, device=device)
    counter = FlopCounterMode(display=False, depth=4)
    with torch.no_grad(), counter:
        net(image)
    flops = counter.get_total_flops()
    per_module = {name: sum(c.values()) for name, c in counter.get_flop_counts().items()}
    prefix = type(net).__name__
    groups = parts(net)
    macs = {k: sum(per_module.get(f"{prefix}.{p}", 0) for p in paths) / 2e9 for k, paths in groups.items()}
    macs["rest (heads, dynamic convolutions)"] = flops / 2e9 - sum(macs.values())
    result = {
        "layout": prefix,
        "params_M": round(count_params(net), 3),
        "gmacs": round(flops / 2e9, 2),
        "gflops_torch_counter": round(flops / 1e9, 2),
        "params_M_by_part": {
            k: round(sum(count_params(net.get_submodule(p)) for p in paths), 3) for k, paths in groups.items()
        },
        "gmacs_by_part": {k: round(v, 2) for k, v in macs.items()},
    }
    if repeats:
        with torch.no_grad():
            net(image)  # warm-up
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(repeats):
                net(image)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        result["seconds_per_image"] = round((time.perf_counter() - start) / repeats, 4)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, nargs="+", default=[640], help="input H [W] (multiples of 32)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--time", type=int, default=0, metavar="N", help="also time N forwards (batch 1)")
    args, overrides = parser.parse_known_args(argv)
    size = (args.size[0], args.size[-1])

    from hydra.utils import instantiate

    net_cfg = compose_net(overrides)
    backbone = OmegaConf.select(net_cfg, "backbone.name") or OmegaConf.select(net_cfg, "backbone._target_")
    torch.manual_seed(0)
    net = instantiate(net_cfg)
    result = {"backbone": backbone, "input": list(size), "overrides": overrides}
    result.update(measure(net, size, args.device, args.time))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
