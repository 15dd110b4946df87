"""The suite as a package: the wheel carries conf/ and the console commands, so that after a plain (not
editable) install the commands run from any folder with the shipped configs and a user's own config folder;
LICENSE and CITATION.cff say what pyproject and the paper say."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")
REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
COMMANDS = {
    "e2e-him-train": "e2e_him.train:main",
    "e2e-him-eval": "e2e_him.eval:main",
    "e2e-him-predict": "e2e_him.predict:main",
    "e2e-him-export": "e2e_him.export:main",
    "e2e-him-convert-release": "e2e_him.convert_release:main",
    "e2e-him-demo": "e2e_him.demo:main",
}


def test_every_package_and_config_folder_goes_into_the_wheel():
    """pyproject lists the packages (conf/ is mapped into e2e_him.conf): a new one fails here until listed."""
    code = {".".join(p.parent.relative_to(REPO / "src").parts) for p in (REPO / "src").rglob("__init__.py")}
    configs = {
        ".".join(("e2e_him", "conf", *p.relative_to(REPO / "conf").parts))
        for p in [REPO / "conf", *(REPO / "conf").rglob("*")]
        if p.is_dir() and p.name != "local" and any(p.glob("*.yaml"))
    }
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert sorted(setuptools["packages"]) == sorted(code | configs)
    assert setuptools["package-dir"] == {"": "src", "e2e_him.conf": "conf"}


def test_the_console_commands_and_their_entry_points():
    assert PYPROJECT["project"]["scripts"] == COMMANDS
    for target in COMMANDS.values():
        module, function = target.split(":")
        assert callable(getattr(__import__(module, fromlist=[function]), function))
    dependencies = " ".join(PYPROJECT["project"]["dependencies"])
    assert "huggingface_hub" in dependencies and "safetensors" in dependencies  # imported by models/hub*.py


def test_licence_and_citation():
    assert PYPROJECT["project"]["license"] == "MIT" and PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert cff["version"] == PYPROJECT["project"]["version"]
    paper = cff["preferred-citation"]
    assert paper["title"] == "End-to-End Human Instance Matting" and paper["year"] == 2023
    assert paper["journal"] == "IEEE Transactions on Circuits and Systems for Video Technology"
    names = [f"{a['given-names']} {a['family-names']}" for a in paper["authors"]]
    assert names == [
        "Qinglin Liu",
        "Shengping Zhang",
        "Quanling Meng",
        "Bineng Zhong",
        "Peiqiang Liu",
        "Hongxun Yao",
    ]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh virtual environment with the built wheel installed (its dependencies: this environment's
    site-packages through a .pth file; nothing is downloaded), and the environment to run it in."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"  # what a clean clone holds for the build, nothing else
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        source.mkdir(exist_ok=True)
        shutil.copy(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "local")
    shutil.copytree(REPO / "src", source / "src", ignore=ignore)
    shutil.copytree(REPO / "conf", source / "conf", ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the wheel's code, not the checkout's
    env.update({"PIP_FIND_LINKS": "", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(source)], tmp, env)
    (wheel,) = (tmp / "dist").glob("e2e_him-*.whl")
    root = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env)
    (Path(purelib.stdout.strip()) / "project_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)], tmp, env)
    return root / "bin", env


@pytest.mark.slow
def test_the_installed_commands_run_from_an_empty_folder(installed, tmp_path: Path):
    bin_dir, env = installed
    work = tmp_path / "empty"
    work.mkdir()
    where = _run([str(bin_dir / "python"), "-c", "import e2e_him; print(e2e_him.__file__, e2e_him.CONF_DIR)"],
                 work, env).stdout.split()  # fmt: skip
    assert where[0].startswith(str(bin_dir.parent)) and where[1] == str(Path(where[0]).parent / "conf")
    tiny = ["data.train.num_samples=8", "data.val.num_samples=4", "picture_images=0", "logger=csv"]
    _run([str(bin_dir / "e2e-him-train"), "trainer.max_steps=2", *tiny], work, env)
    (ckpt,) = work.glob("outputs/train/quickstart/*/checkpoints/last.ckpt")  # the quickstart, under the cwd
    photo = work / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(photo)
    _run(
        [str(bin_dir / "e2e-him-predict"), f"ckpt_path={ckpt}", "input=photo.jpg", "output=mattes"], work, env
    )
    assert (work / "mattes" / "photo_overlay.jpg").is_file() and (work / "mattes" / "summary.json").is_file()
    # the others start and show their shipped configs
    for command in ("e2e-him-eval", "e2e-him-export", "e2e-him-demo"):
        assert "ckpt_path" in _run([str(bin_dir / command), "--cfg", "job", "ckpt_path=x"], work, env).stdout
    assert "--hub" in _run([str(bin_dir / "e2e-him-convert-release"), "--help"], work, env).stdout


@pytest.mark.slow
def test_a_users_config_folder_adds_to_the_shipped_ones(installed, tmp_path: Path):
    bin_dir, env = installed
    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "tiny_people.yaml").write_text(
        "# @package _global_\ndefaults:\n  - quickstart\n  - _self_\nexperiment_name: tiny_people\n"
        "data:\n  train:\n    num_samples: 4\n  val:\n    num_samples: 2\n"
    )
    cmd = [
        str(bin_dir / "e2e-him-train"),
        "--config-dir",
        str(tmp_path / "my_conf"),
        "experiment=tiny_people",
    ]
    _run([*cmd, "trainer.max_steps=1", "test=false", "picture_images=0", "logger=csv"], tmp_path, env)
    (config,) = tmp_path.glob("outputs/train/tiny_people/*/.hydra/config.yaml")
    stored = yaml.safe_load(config.read_text())
    assert stored["data"]["train"]["num_samples"] == 4 and stored["model"]["net"]["hidden_dim"] == 64
