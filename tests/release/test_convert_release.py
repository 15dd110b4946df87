"""`e2e_him.convert_release`: every key of the release maps to one key of ours and back, strictly."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from release_weights import manifest

from e2e_him.models.checkpoint import load_module
from e2e_him.models.release import ReleaseE2EHIM
from e2e_him.models.release.convert import (
    ReleaseKeyError,
    build_release_module,
    load_release_state_dict,
    ours_to_release,
    relative_position_index,
    release_run_config,
    release_to_ours,
)


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Size]:
    """Our released layout's key -> shape."""
    module = build_release_module(release_run_config())
    return {k: v.shape for k, v in module.net.state_dict().items()}


@pytest.fixture(scope="module")
def release_state(release_weights: Path) -> dict[str, torch.Tensor]:
    return load_release_state_dict(release_weights)


def test_every_key_maps_one_to_one_and_back(release_state, expected, official_swint):
    ours = release_to_ours(release_state, expected)
    assert set(ours) == set(expected)  # nothing of ours left unfilled, nothing extra
    back = ours_to_release(ours)
    keys = [e["key"] for e in manifest(official_swint)]
    assert sorted(back) == sorted(keys)  # the release's 649 keys, index buffers included
    for key in keys:
        if key.endswith("relative_position_index"):
            assert torch.equal(back[key], relative_position_index(7))
        else:
            assert back[key] is release_state[key]


def test_the_parameter_count_is_the_releases(expected):
    assert sum(torch.Size(s).numel() for s in expected.values()) == 70_453_030 + 514  # + unused conv1/conv2


@pytest.mark.parametrize("problem", ["missing", "unexpected", "shape"])
def test_a_wrong_key_is_an_error_that_names_it(problem, release_state, expected):
    state = dict(release_state)
    if problem == "missing":
        del state["c8d3.4.weight"]
        match = r"missing from the release file: our matting\.trimap_features\.2\.0\.weight"
    elif problem == "unexpected":
        state["c9.0.weight"] = torch.zeros(1)
        match = r"unexpected key in the release file: c9\.0\.weight"
    else:
        state["globalfc2.layers.2.weight"] = torch.zeros(835, 512)
        match = r"globalfc2\.layers\.2\.weight: \(835, 512\) in the file, \(836, 512\) in perception\.matting"
    with pytest.raises(ReleaseKeyError, match=match):
        release_to_ours(state, expected)


def test_a_wrong_relative_position_index_is_refused(release_state, expected):
    state = dict(release_state)
    key = "trans.layers.0.blocks.0.attn.relative_position_index"
    state[key] = relative_position_index(7).flip(0)
    with pytest.raises(ReleaseKeyError, match=key.replace(".", r"\.")):
        release_to_ours(state, expected)


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix"])
def test_files_as_the_authors_ship_them(wrap, release_state, tmp_path):
    state = dict(list(release_state.items())[:4])
    obj = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 39},
        "model": {"model": state},
        "module_prefix": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    torch.save(obj, tmp_path / "w.pth")
    loaded = load_release_state_dict(tmp_path / "w.pth")
    assert list(loaded) == list(state) and all(loaded[k] is not None for k in state)


class _Payload:
    def __reduce__(self):  # would run code when unpickled without weights_only
        return (print, ("pickled code ran",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        pickle.dump({"w": _Payload()}, f)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_release_state_dict(path)


@pytest.mark.slow
def test_the_command_writes_a_checkpoint_that_every_app_loads(release_weights, release_state, tmp_path):
    out = tmp_path / "release_swint.ckpt"
    done = subprocess.run(
        [sys.executable, "-m", "e2e_him.convert_release", str(release_weights), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ckpt = torch.load(out, map_location="cpu", weights_only=True)  # plain types only
    assert ckpt["e2e_him_config"]["model"]["net"]["_target_"].endswith("ReleaseE2EHIM.from_config")
    module = load_module(out)
    assert isinstance(module.net, ReleaseE2EHIM)
    assert torch.equal(module.net.guidance.norms[1].weight, release_state["g2.weight"])
    assert torch.equal(module.net.matting.refiner.stage1[2].weight, release_state["c1.2.weight"])
