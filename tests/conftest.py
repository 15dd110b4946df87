"""Shared fixtures: the ../shared data fixtures (skipped with a reason when absent) and small helpers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("E2E_HIM_SHARED", REPO_ROOT.parent / "shared"))

# Two cores on CI: keep torch from oversubscribing them and make runs repeatable.
torch.set_num_threads(min(torch.get_num_threads(), 2))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# No test may reach the Hugging Face Hub, nor read weights this machine happened to cache: offline, with a
# cache that holds nothing (tests that need one build a fake cache in a temporary folder and point
# HF_HUB_CACHE at it). Set before anything imports huggingface_hub, which reads both once; subprocesses
# inherit them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = str(Path(tempfile.gettempdir()) / f"e2e_him_tests_empty_hf_cache_{os.getpid()}")


def _shared(sub: str) -> Path:
    path = SHARED_DIR / sub
    if not path.exists():
        pytest.skip(
            f"{path} is absent: the ../shared fixtures ship beside the checkout, not in a fresh clone"
        )
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (skips the test when it is not there)."""
    return _shared("data")


@pytest.fixture(scope="session")
def coco_persons(shared_data: Path) -> Path:
    return _shared("data/coco_persons")


@pytest.fixture(scope="session")
def p3m_pseudo(shared_data: Path) -> Path:
    return _shared("data/p3m_pseudo")


@pytest.fixture(scope="session")
def demo_dir(shared_data: Path) -> Path:
    return _shared("data/demo")


def pytest_report_header(config):
    import importlib.metadata as md

    names = [
        "torch",
        "torchvision",
        "timm",
        "lightning",
        "hydra-core",
        "torchmetrics",
        "albumentations",
        "scipy",
    ]
    versions = []
    for n in names:
        try:
            versions.append(f"{n}=={md.version(n)}")
        except md.PackageNotFoundError:
            versions.append(f"{n} missing")
    return "versions: " + ", ".join(versions)
