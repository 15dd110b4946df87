"""What this machine's processor computes natively (read by the trainer's and predict's precision choice)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch
from torch import nn


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


def training_precision() -> str:
    """`${e2e_him_cpu_precision:}`: Lightning's `bf16-mixed` where the CPU computes bfloat16 natively (its
    steps are then faster than float32's, docs/benchmarks.md), else `32-true` (emulated bf16 is slower)."""
    return "bf16-mixed" if native_bf16(torch.device("cpu")) else "32-true"
