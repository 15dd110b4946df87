"""Network backends of the predict app: the PyTorch model (bfloat16 autocast, channels-last,
torch.compile) and an exported ONNX model under onnxruntime. Both take a normalised batch (B, 3, H, W) and
return the part of the network's output contract (docs/contracts.md, section 3) that the post-processing
reads, in float32."""

from __future__ import annotations

import contextlib
import json
import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
# what `e2e_him.models.inference.postprocess` reads; an exported model has exactly these outputs
OUTPUT_KEYS = ("pred_logits", "alpha_fin")


def _cpu_flags() -> set[str]:
    """The CPU feature flags of /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 matrix products natively (emulated bf16 is slower than float32).

    CUDA: `torch.cuda.is_bf16_supported()`. CPU: x86 with AVX512-BF16 or AMX-BF16 (oneDNN's fast bf16
    kernels), or ARM with the BF16 extension; and a tiny convolution under autocast must run.
    """
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    flags = _cpu_flags()
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if not ({"avx512_bf16", "amx_bf16"} & flags if x86 else "bf16" in flags):
        return False
    try:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = nn.functional.conv2d(torch.ones(1, 8, 4, 4), torch.ones(8, 8, 3, 3), padding=1)
        return out.dtype == torch.bfloat16 and bool(torch.isfinite(out.float()).all())
    except RuntimeError:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision run for a requested one: fp32, or bf16 (auto: where `native_bf16`, else fp32).

    An explicit "bf16" on a device without native support falls back to fp32 with a warning.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return "fp32"
    if native_bf16(device):
        return "bf16"
    if precision == "bf16":
        log.warning("bfloat16 is not native on %s: running in float32 instead", device)
    return "fp32"


class TorchBackend:
    """The PyTorch network in inference mode.

    Args:
        net: the network (`module.net` of a checkpoint), any layout with the section 3 output contract.
        device: where to run.
        precision: "auto" | "fp32" | "bf16" (autocast: convolutions and matrix products in bfloat16,
            normalisations and softmax in float32, outputs returned as float32).
        channels_last: NHWC memory format for the weights and the input (oneDNN's fast layout on CPU).
        compile: wrap the network in `torch.compile` (slow first call per input size; ours, not the paper's).
    """

    name = "torch"

    def __init__(
        self,
        net: nn.Module,
        device: torch.device | str = "cpu",
        precision: str = "auto",
        channels_last: bool = True,
        compile: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = channels_last
        net = net.eval().to(self.device)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = torch.compile(net, dynamic=True) if compile else net

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
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
        kwargs = {} if keep_scores_above is None else {"keep_scores_above": keep_scores_above}
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
