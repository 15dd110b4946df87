"""Hub folders (models/hub.py, hub_export.py, model_card.py): written from a network, read back from a folder
or from `hf://<user>/<repo>` (a fake Hub cache, offline) into the same function, with a card whose licence
follows the weights, and published through huggingface_hub's file API (its HfApi replaced by a recorder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from hub_cache import fake_hub_repo, use_cache

from e2e_him.export import default_output, export
from e2e_him.models.checkpoint import derives_from_release, load_init_weights, load_module
from e2e_him.models.hub import FILES, read_hub_config
from e2e_him.models.hub_export import save_as_hub
from e2e_him.models.model_card import RELEASE_TERMS
from e2e_him.utils.config import compose_config
from e2e_him.utils.instantiate import build, plain_config


def smoke_module(tmp_path: Path, seed: int = 0):
    """The smoke-sized paper network with a run config as e2e_him.train stores it."""
    cfg = compose_config("train", ["debug=smoke"], output_dir=tmp_path / "run")
    torch.manual_seed(seed)
    module = build(cfg.model, "model").eval()
    module.run_config = {"model": plain_config(cfg.model), "data": plain_config(cfg.data)}
    return module


def outputs(module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = module.net.eval()(image)
    return {k: out[k] for k in ("pred_logits", "alpha_fin")}


def assert_same_function(a, b) -> None:
    image = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    for key, value in outputs(a, image).items():
        assert torch.equal(value, outputs(b, image)[key]), key


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    module = smoke_module(tmp_path)
    training = {"global_step": 4, "epoch": 0, "checkpoint": "last.ckpt"}
    return save_as_hub(module, tmp_path / "hub", metrics={"REC_0.5": 0.25, "loss": 3.0}, training=training)


def test_a_hub_folder_holds_config_safetensors_and_card_and_rebuilds_the_network(
    tmp_path: Path, folder: Path
):
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    weights = (folder / "model.safetensors").read_bytes()
    assert not weights.startswith(b"PK") and b"pickle" not in weights[:4096]  # no torch.save zip, no pickle
    module = load_module(folder)
    assert_same_function(module, smoke_module(tmp_path))
    assert module.run_config["model"]["net"]["hidden_dim"] == 64
    assert module.hparams.min_area == 10.0  # post-processing settings come back with the model config


def test_the_config_names_no_local_path(tmp_path: Path, folder: Path):
    text = (folder / "config.json").read_text()
    assert str(tmp_path) not in text  # e.g. the run dir's skip list
    config = json.loads(text)
    assert config["data"]["skip_list_path"] is None and config["training"]["global_step"] == 4


def test_the_card_says_layout_data_steps_metrics_and_licence(folder: Path):
    card = (folder / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: mit" in front and "library_name: e2e-him" in front
    assert "the paper's layout" in card and "`TimmResNetBackbone`" in card
    assert "`SyntheticPeople`" in card and "optimiser step 4" in card
    assert "| REC_0.5 | 0.2500 |" in card and "loss" not in card.split("## Metrics")[1].split("##")[0]
    assert "random initialisation" in card and "noncommercial" not in card


def test_a_hub_repository_is_read_from_the_cache_offline(tmp_path: Path, folder: Path, monkeypatch):
    cache = tmp_path / "hf_cache"
    use_cache(monkeypatch, cache)
    files = {name: folder / name for name in FILES}
    fake_hub_repo(cache, "someone/e2e-him-smoke", files)
    fake_hub_repo(cache, "someone/e2e-him-smoke", files, revision="v1")
    reference = load_module(folder)
    assert_same_function(load_module("hf://someone/e2e-him-smoke"), reference)
    assert_same_function(load_module("hf://someone/e2e-him-smoke@v1"), reference)
    with pytest.raises(
        FileNotFoundError, match=r"models--someone--e2e-him-other/snapshots/<commit>/config\.json"
    ):
        load_module("hf://someone/e2e-him-other")
    with pytest.raises(ValueError, match="hf://<user>/<repo>"):
        load_module("hf://no-user")


def test_fine_tuning_starts_from_a_hub_folder(tmp_path: Path, folder: Path):
    module = smoke_module(tmp_path, seed=1)
    source = load_init_weights(module, folder)
    assert_same_function(module, load_module(folder))
    assert source["kind"] == "a Hub folder of this project" and source["from"] is None
    assert not derives_from_release(source)
    module.run_config["source"] = source
    card = (save_as_hub(module, tmp_path / "fine_tuned") / "README.md").read_text()
    assert (
        "- Start: every weight from `hub` (a Hub folder of this project)." in card
    )  # the name, not the path
    assert "Backbone start" not in card and "license: mit" in card


def test_the_authors_terms_travel_with_weights_derived_from_theirs(tmp_path: Path):
    module = smoke_module(tmp_path)
    released = {"converted_from": "swintiny.ckpt", "layout": "release_swint"}
    module.run_config["source"] = {"init_weights": "/home/me/release.ckpt", "kind": "x", "from": released}
    assert derives_from_release(module.run_config["source"])
    folder = save_as_hub(module, tmp_path / "derived", licence="apache-2.0")
    card = (folder / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: other" in front and "license_name: e2e-him-release-noncommercial" in front
    assert RELEASE_TERMS in card and "apache-2.0" not in card  # the publisher's choice does not apply
    assert read_hub_config(folder)["source"]["init_weights"] == "release.ckpt"  # the name, not the path
    # and on through another generation: fine-tuned from this folder, then published again
    child = smoke_module(tmp_path, seed=2)
    child.run_config["source"] = load_init_weights(child, folder)
    assert derives_from_release(child.run_config["source"])
    assert "license: other" in (save_as_hub(child, tmp_path / "grandchild") / "README.md").read_text()


def test_a_folder_that_is_not_a_hub_folder_is_named(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"not a Hub folder of e2e_him \(no config\.json or model"):
        load_module(tmp_path)


def test_exports_go_beside_what_they_come_from(tmp_path: Path):
    (tmp_path / "my_model").mkdir()
    assert default_output("hf://someone/e2e-him-smoke@v1", ".onnx") == Path("e2e-him-smoke.onnx")
    assert default_output(str(tmp_path / "my_model"), ".onnx") == tmp_path / "my_model.onnx"
    assert default_output(str(tmp_path / "run" / "best.ckpt"), "_hub") == tmp_path / "run" / "best_hub"


def test_a_folder_with_other_files_is_refused(tmp_path: Path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"notes\.txt"):
        save_as_hub(smoke_module(tmp_path), tmp_path / "busy")


class RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: records the calls a push makes instead of making them."""

    calls: ClassVar[list[tuple[str, tuple, dict]]] = []

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))
        return f"https://huggingface.co/{args[0]}"

    def upload_folder(self, *args, **kwargs):
        self.calls.append(("upload_folder", args, kwargs))
        folder = Path(kwargs["folder_path"])
        self.calls.append(("files", (sorted(p.name for p in folder.iterdir()),), {}))
        return "commit"


def write_checkpoint(run_dir: Path, module, step: int) -> Path:
    """A checkpoint as e2e_him.train writes it, with the run's metrics.json and summary.json beside."""
    (run_dir / "checkpoints").mkdir(parents=True)
    path = run_dir / "checkpoints" / "last.ckpt"
    config = module.run_config
    torch.save(
        {"state_dict": module.state_dict(), "e2e_him_config": config, "global_step": step, "epoch": 1}, path
    )
    (run_dir / "metrics.json").write_text(json.dumps({"REC_0.5": 0.5, "ACC_0.5": 0.4, "loss_tri": 0.1}))
    best = run_dir / "checkpoints" / "best-epoch000.ckpt"
    (run_dir / "summary.json").write_text(json.dumps({"best_checkpoint": str(best)}))
    return path


def test_export_writes_and_publishes_a_checkpoint(tmp_path: Path, monkeypatch):
    import huggingface_hub

    module = smoke_module(tmp_path)
    ckpt = write_checkpoint(tmp_path / "run", module, step=7)
    RecordingHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    cfg = compose_config(
        "export", [f"ckpt_path={ckpt}", "format=hub", "hub.push_to=someone/e2e-him-smoke", "hub.private=true"]
    )
    result = export(cfg)
    folder = tmp_path / "run" / "checkpoints" / "last_hub"  # beside the checkpoint by default
    assert result == {"output": str(folder), "url": "https://huggingface.co/someone/e2e-him-smoke"}
    (_, args, kwargs), (_, _, upload), (_, (files,), _) = RecordingHfApi.calls
    assert args == ("someone/e2e-him-smoke",) and kwargs["private"] is True and kwargs["exist_ok"] is True
    assert upload["repo_id"] == "someone/e2e-him-smoke" and upload["folder_path"] == str(folder)
    assert upload["repo_type"] == "model" and sorted(upload["allow_patterns"]) == sorted(FILES)
    assert files == sorted(FILES)
    card = (folder / "README.md").read_text()
    assert "e2e-him-predict ckpt_path=hf://someone/e2e-him-smoke" in card
    assert "| REC_0.5 | 0.5000 |" in card and "optimiser step 7" in card
    assert "They belong to `best-epoch000.ckpt`, not to `last.ckpt`" in card  # the run's metrics, said whose
    assert_same_function(load_module(folder), module)
