"""The PyTorch backend of predict: bfloat16 only where the CPU has it, float32 outputs, channels-last."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from e2e_him.predictor.backends import TorchBackend
from e2e_him.predictor.mattes import build_backend
from e2e_him.predictor.precision import float32_cpu_note, resolve_precision
from e2e_him.utils import hardware


class Tiny(torch.nn.Module):
    """Two queries from one convolution: the output contract's keys, any input size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = self.conv(x)  # (B, 2, H, W)
        logits = torch.stack([maps.mean((2, 3)), -maps.mean((2, 3))], dim=-1)  # (B, 2, 2)
        return {"pred_logits": logits, "alpha_fin": maps.sigmoid(), "pred_masks": maps}


def _cpu(monkeypatch, machine: str, flags: set[str]) -> None:
    monkeypatch.setattr(hardware.platform, "machine", lambda: machine)
    monkeypatch.setattr(hardware, "_cpu_flags", lambda: flags)


def test_bf16_is_chosen_only_where_the_cpu_has_it(monkeypatch, caplog):
    cpu = torch.device("cpu")
    _cpu(monkeypatch, "x86_64", {"avx512f", "avx2"})  # AVX-512 without BF16: emulated, slower than fp32
    assert resolve_precision("auto", cpu) == "fp32"
    with caplog.at_level(logging.WARNING):
        assert resolve_precision("bf16", cpu) == "fp32"
    assert "not native" in caplog.text
    _cpu(monkeypatch, "x86_64", {"avx512f", "amx_bf16"})
    assert resolve_precision("auto", cpu) == "bf16"
    _cpu(monkeypatch, "aarch64", {"fp", "asimd", "bf16"})
    assert resolve_precision("auto", cpu) == "bf16"
    assert resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", cpu)


def test_a_cpu_without_bf16_is_pointed_to_onnxruntime(monkeypatch):
    cpu = torch.device("cpu")
    _cpu(monkeypatch, "x86_64", {"avx2", "fma"})
    for requested in ("auto", "bf16", "mixed"):  # all fall back to float32 here
        note = float32_cpu_note(requested, resolve_precision(requested, cpu), cpu, "runs/best.ckpt")
        assert note is not None and "bfloat16 is not native" in note
        assert "python -m e2e_him.export ckpt_path=runs/best.ckpt format=onnx" in note
    quoted = float32_cpu_note("auto", "fp32", cpu, "my runs/best.ckpt")  # a path the shell would split
    assert "ckpt_path='my runs/best.ckpt' format=onnx" in quoted
    assert float32_cpu_note("fp32", resolve_precision("fp32", cpu), cpu) is None  # asked for float32
    _cpu(monkeypatch, "x86_64", {"avx2", "avx512_bf16"})
    assert resolve_precision("auto", cpu) == "bf16" and float32_cpu_note("auto", "bf16", cpu) is None
    assert float32_cpu_note("auto", "fp32", torch.device("cuda")) is None  # not a CPU


@pytest.mark.parametrize("flags", [{"avx2", "fma"}, {"avx2", "avx512_bf16"}])
def test_predict_backend_tells_a_cpu_without_bf16_about_onnxruntime(monkeypatch, caplog, flags):
    from e2e_him.models import checkpoint

    class Module:  # what load_module returns: the network and the stored hyperparameters
        net, hparams = Tiny(), {}

    monkeypatch.setattr(checkpoint, "load_module", lambda path, map_location=None: Module)
    _cpu(monkeypatch, "x86_64", flags)
    with caplog.at_level(logging.INFO, logger="e2e_him.predictor.mattes"):
        backend, _ = build_backend("runs/best.ckpt", device="cpu")
    told = "python -m e2e_him.export ckpt_path=runs/best.ckpt format=onnx" in caplog.text
    assert told == (backend.precision == "fp32") == ("avx512_bf16" not in flags)


def test_backend_returns_float32_contract_outputs_in_any_precision(monkeypatch):
    _cpu(monkeypatch, "x86_64", {"avx512_bf16"})
    torch.manual_seed(0)
    image, net = torch.randn(2, 3, 32, 48), Tiny()
    fp32 = TorchBackend(copy.deepcopy(net), precision="fp32", channels_last=False)(image)
    backend = TorchBackend(copy.deepcopy(net), precision="bf16", channels_last=True)
    assert backend.precision == "bf16"
    assert backend.net.conv.weight.is_contiguous(memory_format=torch.channels_last)
    bf16 = backend(image)
    assert set(bf16) == {"pred_logits", "alpha_fin"}  # what post-processing reads, nothing else
    assert all(v.dtype == torch.float32 for v in bf16.values())
    assert bf16["alpha_fin"].shape == (2, 2, 32, 48)
    assert (bf16["alpha_fin"] - fp32["alpha_fin"]).abs().max() < 0.02  # bf16: 8 mantissa bits
