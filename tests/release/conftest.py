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


def assert_parity(rows: list[tuple[str, float, float, bool]]) -> None:
    """Every golden array within its fixed tolerance.

    On a CPU that does not reproduce the golden file's float32 rounding (class logits not bit-identical: an
    AMD EPYC here, where float64 misses that sum as well; see scripts/release_parity.py), the one
    ill-conditioned array, `alpha_clamped_sum`, is an expected failure reported with its numbers; every other
    array is still required, and on a machine that rounds like the golden file's, all of them."""
    by_name = {name: (err, tol, ok) for name, err, tol, ok in rows}
    assert len(by_name) == 6, rows
    for name, (err, tol, ok) in by_name.items():
        if name != "alpha_clamped_sum":
            assert ok, (name, err, tol)
    err, tol, ok = by_name["alpha_clamped_sum"]
    if not ok:
        if load_parity_script().rounds_like_golden(rows):
            raise AssertionError(f"alpha_clamped_sum {err:.3e} > {tol:g} on a CPU rounding like the golden's")
        pytest.xfail(
            f"alpha_clamped_sum {err:.3e} > {tol:g}: this CPU rounds float32 differently from the golden "
            f"file's machine (class logits differ by {by_name['class_logits'][0]:.1e})"
        )


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
