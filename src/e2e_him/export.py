"""`python -m e2e_him.export ckpt_path=<checkpoint> [format=onnx|hub] [output=<file.onnx or folder>]`.

`format=hub` writes a Hugging Face Hub folder (config.json, model.safetensors, a generated model card;
models/hub.py) and with `hub.push_to=<user>/<repo>` uploads it (docs/weights.md). `format=onnx` writes the
network of a checkpoint (any layout with the output contract of docs/contracts.md, section 3) as
an ONNX model with dynamic batch, height and width (multiples of 32), input `image` (B, 3, H, W)
ImageNet-normalised, outputs `pred_logits` (B, N, 2) and `alpha_fin` (B, N, H, W), and the checkpoint's
post-processing settings in the model's metadata. `python -m e2e_him.predict ckpt_path=<file.onnx>
backend=onnx` runs it with onnxruntime. With `check=true` the exported model is run at two input sizes and
compared with PyTorch.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from e2e_him import CONF_DIR
from e2e_him.models.checkpoint import load_module
from e2e_him.models.hub import HF_PREFIX, is_hub_reference, parse_hf_id, push_folder
from e2e_him.models.hub_export import export_hub
from e2e_him.predictor.backends import OUTPUT_KEYS, OnnxBackend

log = logging.getLogger(__name__)
EXPORTERS = ("dynamo", "torchscript")
SIZE_MULTIPLE = 32
MIN_DYNAMO_SIZE = 256


class ContractOutputs(nn.Module):
    """The network with the outputs that post-processing reads, as a tuple in `OUTPUT_KEYS` order."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.net(image)
        return tuple(outputs[k] for k in OUTPUT_KEYS)


def export_onnx(
    net: nn.Module,
    path: str | Path,
    sample_size: tuple[int, int] = (256, 256),
    opset: int = 18,
    exporter: str = "dynamo",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Export `net` to `path` with dynamic batch, height and width; returns the path.

    Args:
        net: the network (in eval mode, float32).
        path: the .onnx file to write.
        sample_size: (H, W) of the example input that is traced (multiples of 32, at least 256 for the
            dynamo exporter; batch 2): torch.export fixes any size that is 1 in the example.
        opset: ONNX opset.
        exporter: "dynamo" (torch.export, PyTorch's supported exporter) or "torchscript" (the legacy
            tracer, deprecated by PyTorch but much faster to export a Swin-T model; docs/benchmarks.md).
        metadata: key -> JSON-serialisable value, stored in the model's metadata_props.
    """
    import onnx

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {list(EXPORTERS)}, got {exporter!r}")
    h, w = sample_size
    if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        raise ValueError(f"sample_size must be multiples of {SIZE_MULTIPLE}, got {sample_size}")
    if exporter == "dynamo" and min(h, w) < MIN_DYNAMO_SIZE:
        # torch.export fixes every size that is 1 in the example: below 256 px Swin's last stage has one
        # window per axis, and the exported graph would then accept no other window count
        raise ValueError(
            f"exporter=dynamo needs sample_size >= {MIN_DYNAMO_SIZE} on each side, got {sample_size}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = ContractOutputs(net.eval().float()).eval()
    sample = torch.randn(2, 3, h, w)
    names = {"input_names": ["image"], "output_names": list(OUTPUT_KEYS)}
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer flags the network's shape checks, which hold for every multiple of 32
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx.*")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=1024)
            rows = torch.export.Dim("rows32", min=1, max=512)
            cols = torch.export.Dim("cols32", min=1, max=512)
            shapes = {"image": {0: batch, 2: SIZE_MULTIPLE * rows, 3: SIZE_MULTIPLE * cols}}
            program = torch.onnx.export(
                model, (sample,), dynamo=True, opset_version=opset, dynamic_shapes=shapes, **names
            )
            program.save(str(path))
        else:
            axes = {"image": {0: "batch", 2: "height", 3: "width"}}
            axes.update({"pred_logits": {0: "batch"}, "alpha_fin": {0: "batch", 2: "height", 3: "width"}})
            torch.onnx.export(
                model, (sample,), str(path), dynamo=False, opset_version=opset, dynamic_axes=axes, **names
            )
    proto = onnx.load(str(path))
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, str(path))
    return path


def compare_with_torch(net: nn.Module, path: str | Path, sizes: list[tuple[int, int, int]]) -> list[dict]:
    """Max absolute differences between onnxruntime and PyTorch (float32) per output, for inputs of `sizes`
    (B, H, W), with random normal images."""
    engine = OnnxBackend(path)
    rows = []
    generator = torch.Generator().manual_seed(0)
    for b, h, w in sizes:
        image = torch.randn(b, 3, h, w, generator=generator)
        with torch.no_grad():
            reference = net.eval()(image)
        got = engine(image)
        diffs = {k: float((got[k] - reference[k].float()).abs().max()) for k in OUTPUT_KEYS}
        # alpha_fin switches between alpha_pred and 0 / 1 at the trimap's argmax (Eq. 8): where two trimap
        # logits are within 1e-4, any rounding may flip it; count those pixels apart
        flips = (got["alpha_fin"] - reference["alpha_fin"]).abs() > 1e-4
        rows.append({"size": (b, h, w), **diffs, "alpha_fin_pixels_over_1e-4": float(flips.float().mean())})
    return rows


def default_output(ref: str, suffix: str) -> Path:
    """Where an export of `ref` goes without `output=`: beside a checkpoint file or a Hub folder, with
    `suffix` (`.onnx`, `_hub`) after its stem; for `hf://<user>/<repo>`, `<repo><suffix>` here."""
    if ref.startswith(HF_PREFIX):
        return Path(parse_hf_id(ref)[0].split("/")[1] + suffix)
    path = Path(ref).expanduser()
    stem = path.name if path.is_dir() else path.stem
    return path.parent / f"{stem}{suffix}"


def export_hub_folder(cfg: DictConfig) -> dict[str, Any]:
    """`format=hub`: the checkpoint as a Hub folder with its model card; pushed with `hub.push_to`."""
    hub = cfg.hub
    output = Path(cfg.output) if cfg.output else default_output(str(cfg.ckpt_path), "_hub")
    folder = export_hub(cfg.ckpt_path, output, hub.license, hub.metrics, hub.push_to)
    print(f"wrote {folder}: config.json, model.safetensors, README.md (the model card)")
    url = None
    if hub.push_to:
        url = push_folder(folder, hub.push_to, private=bool(hub.private))
        print(f"published {folder} to {url}: use it as ckpt_path=hf://{hub.push_to}")
    return {"output": str(folder), "url": url}


def export(cfg: DictConfig) -> dict[str, Any]:
    """Run the export app; returns {"output", "seconds", "checks"} (format=hub: {"output", "url"})."""
    if cfg.format == "hub":
        return export_hub_folder(cfg)
    if cfg.format != "onnx":
        raise ValueError(f"format={cfg.format!r}: choose onnx or hub")
    ref = str(cfg.ckpt_path)
    module = load_module(ref, map_location="cpu")
    output = Path(cfg.output) if cfg.output else default_output(ref, ".onnx")
    metadata = {
        "producer": "e2e_him.export",
        "checkpoint": ref if is_hub_reference(ref) else Path(ref).name,
        "score_threshold": float(module.hparams.get("score_threshold", 0.5)),
        "min_area": float(module.hparams.get("min_area", 1000.0)),
        "size_multiple": SIZE_MULTIPLE,
        "outputs": list(OUTPUT_KEYS),
        "model": module.run_config.get("model") if module.run_config else None,
    }
    start = time.perf_counter()
    export_onnx(module.net, output, tuple(cfg.sample_size), cfg.opset, cfg.exporter, metadata)
    seconds = time.perf_counter() - start
    print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB) in {seconds:.0f} s")
    checks = []
    if cfg.check:
        h, w = cfg.sample_size
        # the traced size, another size and batch, and a small batch-2 input (a single window in Swin's last
        # stage: the torchscript exporter gets that case wrong for timm's Swin, docs/inference.md)
        sizes = [(1, h, w), (2, h + 64, w - 32 if w > 32 else w + 32), (2, 64, 64)]
        checks = compare_with_torch(module.net, output, sizes)
        for row in checks:
            cells = {k: f"{v:.2e}" for k, v in row.items() if k != "size"}
            print("onnxruntime vs torch at", row["size"], cells)
        worst = max(row["pred_logits"] for row in checks)
        flipped = max(row["alpha_fin_pixels_over_1e-4"] for row in checks)
        if not np.isfinite(worst) or worst > 1e-3 or flipped > 1e-3:
            raise RuntimeError(
                f"{output}: onnxruntime differs from PyTorch (class logits by {worst:.2e}, "
                f"{flipped:.2%} of the matte pixels by more than 1e-4); try exporter=dynamo"
            )
    return {"output": str(output), "seconds": seconds, "checks": checks}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()
