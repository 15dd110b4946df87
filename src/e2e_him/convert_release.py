"""`python -m e2e_him.convert_release <release .pth> <out .ckpt | out folder --hub>`: the authors' released
weights, strictly.

Reads the authors' file with `torch.load(weights_only=True)` (no pickled code can run), maps every key onto
the released layout and back (`e2e_him.models.release.convert`: a missing, unexpected or mis-shaped key is
an error that names it) and writes a checkpoint of this project (`state_dict` under `net.`, the model config
`model=release_swint` inside), which `predict`, `eval`, the notebooks and `train init_weights=` read like any
other. With `--hub` it writes a Hugging Face Hub folder instead (config.json, model.safetensors and a model
card that carries the authors' non-commercial terms; models/hub.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from e2e_him.models.hub_export import save_as_hub
from e2e_him.models.release.convert import load_release_state_dict, module_from_release


def convert(
    release_path: str | Path, out_path: str | Path, overrides: Sequence[str] = (), hub: bool = False
) -> Path:
    """Convert the authors' file to a checkpoint of this project (or, with `hub`, a Hub folder); returns the
    path written."""
    module = module_from_release(load_release_state_dict(release_path), str(release_path), overrides)
    if hub:
        note = "None measured by this suite: `e2e-him-eval ckpt_path=<this folder> data=him2k data.root=...`."
        return save_as_hub(module, out_path, metrics_note=note)
    out_path = Path(out_path).expanduser()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": {f"net.{k}": v.contiguous() for k, v in module.net.state_dict().items()},
            "e2e_him_config": module.run_config,
            "e2e_him_source": module.run_config["source"],
        },
        out_path,
    )
    return out_path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("release", help="the authors' weights file (e.g. swintiny.ckpt)")
    parser.add_argument(
        "output", help="checkpoint to write (e.g. checkpoints/release_swint.ckpt), or a folder"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the stored config (key=value)")
    parser.add_argument(
        "--hub", action="store_true", help="write a Hugging Face Hub folder (docs/weights.md)"
    )
    args = parser.parse_args(argv)
    out = convert(args.release, args.output, args.overrides, hub=args.hub)
    print(f"wrote {out}: the authors' released Swin-T network in the released layout (model=release_swint)")
    print("their terms travel with it: the model can only be used and distributed for noncommercial purposes")


if __name__ == "__main__":
    main()
