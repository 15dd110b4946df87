"""HIMDataModule: sources built in setup, seeding, loaders, eval meta, and the conf/data YAML files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from tiny_datasets import person, write_instance_image

from e2e_him.data.checks import TooManyInstancesError
from e2e_him.data.datamodule import HIMDataModule
from e2e_him.data.dataset import EpochSampler
from e2e_him.data.targets import complete_batch

CONF_DATA = Path(__file__).resolve().parents[2] / "conf" / "data"


class FakePeople:
    """A tiny in-memory source: record i is a noise photo with 1 + i % 3 rectangles as people."""

    def __init__(self, num_samples: int = 6, size: tuple[int, int] = (48, 56), people: int | None = None):
        self.num_samples, self.size, self.people = num_samples, size, people

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng(i)
        k = self.people if self.people is not None else 1 + i % 3
        alphas = np.zeros((k, *self.size), np.float32)
        for j in range(k):
            t, l = rng.integers(0, self.size[0] - 20), rng.integers(0, self.size[1] - 20)
            alphas[j, t : t + 20, l : l + 16] = 1.0
        alphas /= np.maximum(alphas.sum(0), 1.0)
        image = rng.integers(0, 256, (*self.size, 3), dtype=np.uint8)
        return {"image": image, "alphas": alphas, "masks": None, "name": f"fake{i}"}


def _dm(**kw) -> HIMDataModule:
    base = {"crop_size": (32, 32), "eval_size": 64, "composite_prob": 0.5, "min_visible_pixels": 10}
    return HIMDataModule(train=FakePeople, val=lambda: FakePeople(3), **{**base, **kw})


def _first_batch(dm: HIMDataModule) -> dict:
    """The first training batch, completed as on the device."""
    dm.setup("fit")
    return complete_batch(next(iter(dm.train_dataloader())))


def test_sources_are_built_in_setup_not_before():
    spec = {"_target_": "e2e_him.data.readers.InstanceFolder", "root": "/nonexistent/data"}
    dm = HIMDataModule(train=spec)  # nothing is read yet
    assert dm.train_dataset is None and dm.hparams["train"] == spec
    with pytest.raises(FileNotFoundError, match="/nonexistent/data/images"):
        dm.setup("fit")


def test_same_seed_same_batch_other_seed_other_batch():
    a, b = _first_batch(_dm(seed=0, batch_size=2)), _first_batch(_dm(seed=0, batch_size=2))
    c = _first_batch(_dm(seed=1, batch_size=2))
    for key in ("image", "alphas", "trimaps", "valid"):
        assert torch.equal(a[key], b[key])
    assert [m["name"] for m in a["meta"]] == [m["name"] for m in b["meta"]]
    assert not torch.equal(a["image"], c["image"])


def test_epochs_differ_and_sampler_follows_set_epoch():
    sampler = EpochSampler(6, shuffle=True, seed=0)
    e0 = list(sampler)
    sampler.set_epoch(1)
    e1 = list(sampler)
    assert sorted(i for i, _ in e0) == list(range(6)) and {e for _, e in e1} == {1}
    assert [i for i, _ in e0] != [i for i, _ in e1]
    dm = _dm()
    dm.setup("fit")
    s0, s1 = dm.train_dataset[(2, 0)], dm.train_dataset[(2, 1)]
    assert not torch.equal(s0["image"], s1["image"])


def test_workers_give_the_same_batches_as_the_main_process():
    def batches(workers: int) -> list[dict]:
        dm = _dm(num_workers=workers, batch_size=2)
        dm.setup("fit")
        return list(dm.train_dataloader())

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 3
    for x, y in zip(serial, parallel):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["alphas"], y["alphas"])


def test_train_batch_follows_the_contract():
    dm = _dm(batch_size=3)
    dm.setup("fit")
    compact = next(iter(dm.train_dataloader()))
    # through the loader: 8-bit photo and mattes, no trimaps, a kernel per sample
    assert compact["image"].dtype == compact["alphas"].dtype == torch.uint8 and "trimaps" not in compact
    assert all(7 <= m["trimap_kernel"] <= 25 for m in compact["meta"])
    batch = complete_batch(compact)
    assert batch["image"].shape == (3, 3, 32, 32) and batch["alphas"].shape[0] == 3
    assert batch["trimaps"].dtype == torch.long and batch["labels"].dtype == torch.long
    assert batch["valid"].sum(1).tolist() == batch["num_instances"].tolist()
    assert (batch["alphas"].sum(1) <= 1 + 1e-5).all()
    assert set(batch["trimaps"].unique().tolist()) <= {0, 1, 2}


def test_val_and_test_loaders_keep_original_mattes():
    dm = _dm(eval_batch_size=2)
    dm.setup("fit")
    dm.setup("test")  # test defaults to the val source
    assert len(dm.val_dataset) == len(dm.test_dataset) == 3
    batch = next(iter(dm.val_dataloader()))
    # 48 x 56 photos, long side 56 -> 64: 48 * 64 / 56 = 54.9 -> 55; padded to 64 x 64
    assert batch["image"].shape == (2, 3, 64, 64)
    meta = batch["meta"][1]
    assert meta["orig_size"] == (48, 56) and meta["input_size"] == (55, 64)
    assert meta["orig_alphas"].shape == (2, 48, 56) and meta["orig_alphas"].dtype == torch.uint8
    assert next(iter(dm.test_dataloader()))["meta"][0]["name"] == "fake0"


def test_too_many_people_at_load_time_for_unindexed_sources():
    dm = HIMDataModule(
        train=lambda: FakePeople(2, people=4), crop_size=(32, 32), max_instances=3, composite_prob=0
    )
    dm.setup("fit")
    with pytest.raises(TooManyInstancesError, match=r"image fake0 .* holds 4 people but the model has 3"):
        dm.train_dataset[0]
    dm = HIMDataModule(
        train=lambda: FakePeople(2, people=4),
        crop_size=(48, 56),
        max_instances=3,
        composite_prob=0,
        on_too_many="truncate",
        augment={"affine_prob": 0},
        min_visible_pixels=1,
    )
    dm.setup("fit")
    with pytest.warns(UserWarning, match="fake0 holds 4 people; keeping the 3 largest"):
        assert dm.train_dataset[0]["alphas"].shape[0] == 3


def test_compositing_respects_max_instances():
    dm = HIMDataModule(
        train=lambda: FakePeople(4, people=2),
        crop_size=(48, 56),
        max_instances=3,
        composite_prob=1.0,
        min_visible_pixels=0,
        min_visible_fraction=0,
    )
    dm.setup("fit")
    counts = [len(dm.train_dataset[(i, 0)]["labels"]) for i in range(4)]
    assert max(counts) <= 3 and max(counts) == 3


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="on_bad_file"):
        HIMDataModule(on_bad_file="ignore")
    with pytest.raises(ValueError, match="on_too_many"):
        HIMDataModule(on_too_many="drop")


# -------------------------------------------------------------------------------------------- configs
def _data_cfg(name: str, root: Path | None, tmp_path: Path):
    """The `data` node of conf/train.yaml composed with `data=<name>`, as the train app would build it."""
    from e2e_him.utils.config import compose_config

    overrides = [f"data={name}", f"paths.data_dir={tmp_path}"]
    if root is not None:
        overrides.append(f"data.root={root}")
    return compose_config("train", overrides, output_dir=tmp_path / "run").data


def test_instance_folder_yaml(tmp_path: Path):
    write_instance_image(tmp_path / "d", "a", [person(2, 2, 10, 8)])
    write_instance_image(tmp_path / "d", "b", [person(2, 2, 20, 20), person(20, 20, 15, 15)])
    dm = instantiate(
        _data_cfg("instance_folder", tmp_path / "d", tmp_path),
        crop_size=[32, 32],
        num_workers=0,
        eval_batch_size=1,
    )
    assert isinstance(dm, HIMDataModule) and dm.crop_size == (32, 32)
    dm.setup("fit")
    assert len(dm.train_dataset) == len(dm.val_dataset) == 2
    assert next(iter(dm.val_dataloader()))["alphas"].shape[1] == 1


def test_him100k_yaml(tmp_path: Path):
    for part, split in (("real", "train"), ("real", "val"), ("synthetic", "train")):
        write_instance_image(tmp_path / "h" / part, f"{part}_{split}", [person(2, 2, 10, 8)], split=split)
    dm = instantiate(_data_cfg("him100k", tmp_path / "h", tmp_path), num_workers=0)
    dm.setup("fit")
    assert [e.name for e in dm.train_dataset.source.entries] == [
        "real/real_train",
        "synthetic/synthetic_train",
    ]
    assert [e.name for e in dm.val_dataset.source.entries] == ["real/real_val"]


def test_single_matte_yaml(tmp_path: Path):
    from PIL import Image

    for folder in ("image", "matte"):
        (tmp_path / "ppm" / folder).mkdir(parents=True)
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / "ppm" / "image" / "x.jpg")
    Image.fromarray(person(5, 5, 20, 20)).save(tmp_path / "ppm" / "matte" / "x.png")
    dm = instantiate(_data_cfg("single_matte", tmp_path / "ppm", tmp_path), num_workers=0)
    dm.setup("validate")
    # long side 48 -> 640: 40 * 640 / 48 = 533.3 -> 533, padded to 544 x 640
    assert dm.val_dataset[0]["alphas"].shape == (1, 544, 640)
    assert dm.val_dataset[0]["meta"]["input_size"] == (533, 640)


def test_synthetic_yaml(tmp_path: Path):
    cfg = _data_cfg("synthetic", None, tmp_path)
    assert cfg.train._target_ == "e2e_him.data.synthetic.SyntheticPeople"
    assert cfg._target_ == "e2e_him.data.datamodule.HIMDataModule" and cfg._recursive_ is False
    pytest.importorskip("e2e_him.data.synthetic")
    dm = instantiate(cfg, num_workers=0, batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 256, 256)


def test_default_skip_list_goes_to_the_trainer_dir(tmp_path: Path):
    from lightning.pytorch import Trainer

    dm = _dm(on_bad_file="skip")
    dm.trainer = Trainer(default_root_dir=str(tmp_path), logger=False, enable_checkpointing=False)
    assert dm.skip_log().path == (tmp_path / "skipped_files.txt").resolve()
    assert dm.skip_log().path.read_text().startswith("# files skipped")
