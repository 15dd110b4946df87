"""Fixtures of the data tests: tiny data sets written into tmp_path (helpers in tiny_datasets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_datasets import person, three_people, write_instance_image


@pytest.fixture
def instance_root(tmp_path: Path) -> Path:
    """images/a.png (2 people), images/b.png (1 person), images/c.png (3 people)."""
    root = tmp_path / "inst"
    write_instance_image(root, "a", [person(2, 2, 10, 8), person(20, 10, 15, 12)])
    write_instance_image(root, "b", [person(5, 30, 30, 15)])
    write_instance_image(root, "c", three_people())
    return root
