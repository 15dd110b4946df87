"""The authors' released network as a Hub folder (`convert_release --hub`, `export format=hub`), made from the
fixture's weights: the same tensors come back, and their non-commercial terms travel with the folder, with
anything fine-tuned from it, and with its published copies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from e2e_him.convert_release import main as convert_main
from e2e_him.models.checkpoint import derives_from_release, load_init_weights, load_module
from e2e_him.models.hub import read_hub_config
from e2e_him.models.hub_export import export_hub
from e2e_him.models.model_card import RELEASE_TERMS


@pytest.fixture(scope="module")
def release_folder(release_weights: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("release_hub") / "release_swint"
    convert_main([str(release_weights), str(folder), "--hub"])
    return folder


def assert_release_terms(folder: Path) -> None:
    card = (folder / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: other" in front and "license_name: e2e-him-release-noncommercial" in front
    assert "license_link: https://github.com/aipixel/E2E-HIM" in front
    assert RELEASE_TERMS in card and "**Non-commercial.**" in card


def test_the_converted_release_folder_holds_their_weights_and_terms(
    release_folder: Path, release_weights: Path
):
    assert_release_terms(release_folder)
    config = read_hub_config(release_folder)
    assert config["source"] == {"converted_from": release_weights.name, "layout": "release_swint"}
    assert config["model"]["net"]["_target_"].endswith("ReleaseE2EHIM.from_config")
    card = (release_folder / "README.md").read_text()
    assert "the authors' released layout" in card and "no training here" in card
    ours, theirs = load_module(release_folder).net.state_dict(), load_module(release_weights).net.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_fine_tuned_from_it_or_exported_again_the_terms_stay(release_folder: Path, tmp_path: Path):
    module = load_module(release_folder)
    module.run_config["source"] = load_init_weights(module, release_folder)  # what train init_weights= does
    assert derives_from_release(module.run_config["source"])
    assert_release_terms(export_hub(release_folder, tmp_path / "again"))
