"""Fixtures of the metric tests."""

from __future__ import annotations

import pytest
import torch
from metric_scenes import rect


@pytest.fixture
def two_people() -> dict[str, torch.Tensor]:
    """Person A: rows 0-4, cols 0-3 (20 px); person B: rows 5-9, cols 5-9 (25 px); C: an extra 6 px blob."""
    a = rect(0, 5, 0, 4)
    b = rect(5, 10, 5, 10)
    c = rect(0, 2, 7, 10)
    return {"A": a, "B": b, "C": c, "gt": torch.stack([a, b])}
