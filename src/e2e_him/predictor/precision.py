"""Numeric precision of the PyTorch backend (ours, not the paper's): float32, bfloat16 autocast where the
device computes it natively, or "mixed": bfloat16 only in the parts of the network whose outputs reach the
alpha values alone, so that the class logits and Eq. 8's trimap regions are those of float32."""

from __future__ import annotations

import contextlib
import logging
import shlex
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from e2e_him.utils.hardware import native_bf16

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "mixed")


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision run for a requested one: fp32, bf16 (auto: where `native_bf16`, else fp32) or mixed.

    An explicit "bf16" or "mixed" on a device without native support falls back to fp32 with a warning.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return "fp32"
    if native_bf16(device):
        return "bf16" if precision == "auto" else precision
    if precision != "auto":
        log.warning("bfloat16 is not native on %s: running in float32 instead", device)
    return "fp32"


def float32_cpu_note(
    requested: str, resolved: str, device: torch.device, ckpt_path: str = "<checkpoint>"
) -> str | None:
    """What to tell a user whose CPU runs the network in float32 because `native_bf16` is False there (and
    who did not ask for float32): onnxruntime's float32 is the faster engine on such CPUs (docs/benchmarks.md,
    "On a CPU without native bfloat16"); None otherwise."""
    if device.type != "cpu" or requested == "fp32" or resolved != "fp32":
        return None
    return ("bfloat16 is not native on this CPU (or not detected), so the network runs in float32; "
            "onnxruntime's float32 ran faster than PyTorch's on such CPUs, both layouts, every query kept "
            "(docs/benchmarks.md): python -m e2e_him.export "
            f"ckpt_path={shlex.quote(ckpt_path)} format=onnx (the exporter to pick: docs/inference.md, "
            "section export), then predict with the .onnx file (it decodes every query and refines the "
            "whole image)")  # fmt: skip


def alpha_only_parts(net: nn.Module) -> list[nn.Module]:
    """The network's sub-modules whose outputs reach alpha_pred only (`net.alpha_only_parts()`), refused for a
    network that does not name them."""
    if not hasattr(net, "alpha_only_parts"):
        raise ValueError(f"precision=mixed needs a network that names its alpha-only parts; "
                         f"{type(net).__name__} does not (use precision=bf16 or fp32)")  # fmt: skip
    return list(net.alpha_only_parts())


@contextlib.contextmanager
def bf16_in(parts: Sequence[nn.Module], device_type: str = "cpu") -> Iterator[None]:
    """bfloat16 autocast inside `parts` only, their tensor outputs cast back to float32.

    With `alpha_only_parts` this is precision=mixed: the class logits and the trimap logits, and so Eq. 8's
    regions, are computed in float32, the alpha features in bfloat16."""

    def wrap(forward):
        def autocast_forward(*args: Any, **kwargs: Any) -> Any:
            with torch.autocast(device_type, dtype=torch.bfloat16):
                out = forward(*args, **kwargs)
            return out.float() if torch.is_tensor(out) else out

        return autocast_forward

    parts = list(dict.fromkeys(parts))  # each module once
    saved = [part.__dict__.get("forward") for part in parts]  # an instance forward already there, if any
    for part in parts:
        part.forward = wrap(part.forward)  # an instance attribute: nn.Module.__call__ finds it first
    try:
        yield
    finally:
        for part, previous in zip(parts, saved):
            if previous is None:
                del part.forward
            else:
                part.forward = previous
