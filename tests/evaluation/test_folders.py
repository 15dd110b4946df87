"""Reading prediction folders: person order, resizing to the ground truth, unusable files listed."""

from __future__ import annotations

import numpy as np
import pytest

from e2e_him.data.io import write_alpha
from e2e_him.evaluation.folders import read_mattes, same_aspect


def _matte(h: int, w: int, value: float = 1.0) -> np.ndarray:
    a = np.zeros((h, w), np.float32)
    a[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = value
    return a


def test_same_aspect_allows_rounding_only():
    assert same_aspect((540, 960), (1080, 1920)) and same_aspect((541, 960), (1080, 1920))
    assert same_aspect((333, 500), (1000, 1500))  # 333.33 rounded
    assert not same_aspect((960, 540), (1080, 1920))  # rotated
    assert not same_aspect((600, 960), (1080, 1920))  # padded or cropped


def test_read_mattes_resizes_skips_and_reports(tmp_path):
    folder = tmp_path / "img"
    write_alpha(folder / "0.png", _matte(40, 60))
    write_alpha(folder / "2.png", _matte(20, 30, 0.8))  # half scale: resized
    write_alpha(folder / "10.png", _matte(60, 40))  # transposed: another aspect ratio, skipped
    (folder / "1.png").write_bytes(b"not a png")  # unreadable, skipped
    (folder / "notes.txt").write_text("ignored")
    out = read_mattes(folder, (40, 60))
    assert out.names == ["0", "2"] and out.alphas.shape == (2, 40, 60)
    np.testing.assert_allclose(out.alphas[1][10:30, 15:45].mean(), 0.8, atol=0.05)  # bilinear upscale
    reasons = {p.path.rsplit("/", 1)[-1]: (p.reason, p.action) for p in out.problems}
    assert set(reasons) == {"1.png", "2.png", "10.png"}
    assert reasons["1.png"][1] == "skipped" and "unreadable" in reasons["1.png"][0]
    assert reasons["2.png"][1] == "resized (bilinear)"
    assert reasons["10.png"][1] == "skipped" and "not a rescale" in reasons["10.png"][0]
    nearest = read_mattes(folder, (40, 60), resize="nearest")
    np.testing.assert_allclose(np.unique(nearest.alphas[1]), [0.0, 204 / 255], rtol=1e-6)  # no new values
    with pytest.raises(ValueError, match=r"2\.png: matte size 20x30"):
        read_mattes(folder, (40, 60), resize="error")
