"""Network backends of the predict app: the PyTorch model (bfloat16 autocast, channels-last,
torch.compile) and an exported ONNX model under onnxruntime. Both take a normalised batch (B, 3, H, W) and
return the part of the network's output contract (docs/contracts.md, section 3) that the post-processing
reads, in float32."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from e2e_him.models.release.band import check_tile
from e2e_him.predictor.precision import alpha_only_parts, bf16_in, resolve_precision

log = logging.getLogger(__name__)

# what `e2e_him.models.inference.postprocess` reads; an exported model has exactly these outputs
OUTPUT_KEYS = ("pred_logits", "alpha_fin")


class TorchBackend:
    """The PyTorch network in inference mode.

    Args:
        net: the network (`module.net` of a checkpoint), any layout with the section 3 output contract.
        device: where to run.
        precision: "auto" | "fp32" | "bf16" | "mixed" (predictor/precision.py). bf16: autocast, with
            convolutions and matrix products in bfloat16, normalisations and softmax in float32; mixed:
            bfloat16 only in the network's alpha-only parts; outputs are returned as float32.
        channels_last: NHWC memory format for the weights and the input (oneDNN's fast layout on CPU).
        compile: wrap the network in `torch.compile` (slow first call per input size; ours, not the paper's).
        band_tile: run the full-resolution refinement only on tiles of this size that hold unknown pixels,
            where the network declares it can (`supports_band_tile`: the released layout,
            models/release/band.py; alpha_fin unchanged); None:
            the whole image. Ours, not the paper's.
    """

    name = "torch"

    def __init__(
        self,
        net: nn.Module,
        device: torch.device | str = "cpu",
        precision: str = "auto",
        channels_last: bool = True,
        compile: bool = False,
        band_tile: int | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = channels_last
        net = net.eval().to(self.device)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.parts = alpha_only_parts(net) if self.precision == "mixed" else []
        if band_tile is not None:  # refused up front, whichever the layout (32: the contract's multiple)
            check_tile(band_tile, getattr(net, "size_multiple", 32))
        # a layout declares whether its forward takes `band_tile` (`supports_band_tile`)
        self.band_tile = band_tile if getattr(net, "supports_band_tile", False) else None
        if band_tile and self.band_tile is None:
            log.info("band_tile=%s: %s refines the whole image (only the released layout can skip tiles)",
                     band_tile, type(net).__name__)  # fmt: skip
        self.net = torch.compile(net, dynamic=True) if compile else net
        self.run_config: dict[str, Any] | None = None  # the checkpoint's model config and source, when known

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == "mixed":
            return bf16_in(self.parts, self.device.type)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def __call__(
        self, images: torch.Tensor, keep_scores_above: float | None = None
    ) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) float32, H and W multiples of 32 -> `pred_logits` (B, N, 2) and `alpha_fin`
        (B, N, H, W), float32 on the backend's device. `keep_scores_above`: the post-processing threshold,
        so that the network decodes mattes only for queries that can pass it (models/query_selection.py)."""
        x = images.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        kwargs: dict[str, Any] = {} if keep_scores_above is None else {"keep_scores_above": keep_scores_above}
        if self.band_tile:
            kwargs["band_tile"] = self.band_tile
        with self._autocast():
            outputs = self.net(x, **kwargs)
        return {k: outputs[k].float().contiguous() for k in OUTPUT_KEYS}


class OnnxBackend:
    """An ONNX file written by `python -m e2e_him.export`, run by onnxruntime on CPU (or another provider).

    Args:
        path: the .onnx file.
        threads: intra-op threads (None: onnxruntime's default, one per core).
        providers: onnxruntime execution providers (default: CPU).
    """

    name = "onnx"
    device = torch.device("cpu")

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        # no busy-waiting between runs: onnxruntime's threads would otherwise spin after each image on the
        # cores where predict's reader workers prepare the next ones
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: onnxruntime cannot load this model ({err})") from err
        self.input_name = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        missing = [k for k in OUTPUT_KEYS if k not in names]
        if missing:
            raise ValueError(
                f"{path}: outputs {names} lack {missing}; export it with python -m e2e_him.export"
            )
        self.metadata = read_metadata(self.session)

    def __call__(
        self, images: torch.Tensor, keep_scores_above: float | None = None
    ) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) float32 -> `pred_logits` (B, N, 2), `alpha_fin` (B, N, H, W), CPU tensors.
        The exported graph decodes every query (`keep_scores_above` is accepted and not used)."""
        feed = {self.input_name: np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)}
        values = self.session.run(list(OUTPUT_KEYS), feed)
        return {k: torch.from_numpy(v) for k, v in zip(OUTPUT_KEYS, values)}


def read_metadata(session: Any) -> dict[str, Any]:
    """The e2e_him entries of an ONNX model's metadata (JSON values decoded)."""
    props = session.get_modelmeta().custom_metadata_map
    out = {}
    for key, value in props.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
