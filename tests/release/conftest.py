"""Fixtures of the released-layout tests: the authors' golden outputs and the weights they were made with."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from release_weights import recipe_state_dict

REPO_ROOT = Path(__file__).resolve().parents[2]
PARITY_SCRIPT = REPO_ROOT / "scripts" / "release_parity.py"


def load_parity_script():
    """scripts/release_parity.py as a module (its functions, without a subprocess)."""
    spec = importlib.util.spec_from_file_location("release_parity", PARITY_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def official_swint(shared_data: Path) -> Path:
    """../shared/fixtures/official_swint (skips when absent)."""
    path = shared_data.parent / "fixtures" / "official_swint"
    if not path.is_dir():
        pytest.skip(f"{path} is absent: the golden outputs of the authors' network ship in ../shared only")
    return path


@pytest.fixture(scope="session")
def release_weights(official_swint: Path, tmp_path_factory) -> Path:
    """The fixture's deterministic weights, saved in the release's format (a plain state dict)."""
    path = tmp_path_factory.mktemp("release") / "release_recipe.pth"
    torch.save(recipe_state_dict(official_swint), path)
    return path
