"""The notebooks run top to bottom (on the quickstart-sized model and synthetic data) and are stored clean."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.slow


def test_the_notebooks_are_there():
    assert {p.name for p in NOTEBOOKS} >= {"inspect_guidance.ipynb", "inspect_data.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path):
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: strip the outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # figures as outputs
    monkeypatch.setenv("E2E_HIM_DATA_OVERRIDES", "data=synthetic_tiny")
    monkeypatch.delenv("E2E_HIM_CKPT", raising=False)
    book = nbformat.read(path, as_version=4)
    NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    images = [
        o for c in book.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})
    ]
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert len(images) >= 2, f"{path.name} drew {len(images)} figures"
