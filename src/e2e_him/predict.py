"""`python -m e2e_him.predict ckpt_path=<file> input=<image|folder|video> output=<folder>`.

Photos: one alpha PNG per person, `<output>/<stem>/NN.png` (HIM2K's per-instance layout, people sorted by
score), and a colour overlay `<output>/<stem>_overlay.jpg`. Videos (streamed, ids that follow each person):
V-HIM60's layout `<output>/pha/<video>/<frame>/<id>.png` plus `<output>/fgr/<video>/<frame>.jpg`, and
`<output>/<video>_overlay.mp4` with the input's sound and frame times; `frames=true` reads a folder of frames
as one video. `background=<image|colour|video>` adds composites, `cutout=true` RGBA cut-outs,
`alpha_video=near_lossless|lossless` one matte video per person (e2e_him.predictor.outputs, .video_outputs).
`ckpt_path=<model.onnx> backend=onnx` runs an exported model with onnxruntime.
Unreadable inputs are named and skipped (listed in `<output>/failed.txt`); the others are still processed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from e2e_him import CONF_DIR
from e2e_him.data.io import IMAGE_SUFFIXES, ImageReadError, list_images
from e2e_him.predictor.backgrounds import Background
from e2e_him.predictor.mattes import PREDICTOR_OPTIONS, build_predictor
from e2e_him.predictor.outputs import Extras, OutputWriteError, check_output_folder
from e2e_him.predictor.pipeline import predict_photos, predict_video
from e2e_him.predictor.video import VIDEO_SUFFIXES

log = logging.getLogger(__name__)


def unique_stems(paths: list[Path]) -> list[str]:
    """Output names per input: the stem, or stem_ext when two files share a stem (a.jpg and a.png)."""
    stems = [p.stem for p in paths]
    return [f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def find_inputs(source: Path, frames: bool = False) -> tuple[list[Path], list[Path]]:
    """(photos, videos) of `input=`: a file, the files directly inside a folder, or with `frames` a folder
    that holds the frames of one video."""
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    if frames:
        if not source.is_dir():
            raise FileNotFoundError(f"frames=true needs a folder of frames, got the file {source}")
        return [], [source]
    if not source.is_dir():
        return ([], [source]) if source.suffix.lower() in VIDEO_SUFFIXES else ([source], [])
    images = list_images(source)
    videos = sorted(
        p
        for p in source.iterdir()
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
    )
    if images or videos:
        return images, videos
    folders = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    if folders:
        shown = ", ".join(folders[:5]) + (", ..." if len(folders) > 5 else "")
        raise FileNotFoundError(
            f"{source}: no images or videos directly in this folder, only {len(folders)} folder(s) "
            f"({shown}); predict reads the files of one folder: pass one of them, e.g. "
            f"input={source / folders[0]}"
        )
    raise FileNotFoundError(
        f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) or videos ({', '.join(VIDEO_SUFFIXES)}) here"
    )


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Run the predict app; returns a summary (inputs processed, failures, output folder)."""
    images, movies = find_inputs(Path(cfg.input), cfg.frames)
    output = check_output_folder(Path(cfg.output))
    background = Background(cfg.background, cfg.background_loop) if cfg.background is not None else None
    ids = cfg.ids if cfg.ids is None or isinstance(cfg.ids, int) else OmegaConf.to_object(cfg.ids)
    ids = None if ids is None else [int(i) for i in ([ids] if isinstance(ids, int) else ids)]
    extras = Extras(cfg.overlay, background, ids, cfg.cutout, cfg.alpha_video)
    predictor = build_predictor(**{k: cfg[k] for k in PREDICTOR_OPTIONS})

    # one output name per input, images and videos together (clip.jpg and clip.mp4 must not share a folder)
    stems = unique_stems([*images, *movies])
    done, failed = predict_photos(predictor, images, stems, output, extras, cfg.batch_size, cfg.workers)
    videos: list[dict[str, Any]] = []
    not_written: list[str] = []  # outputs whose encoder failed: the input is not to blame
    for movie, stem in zip(movies, stems[len(images) :]):
        try:
            video = predict_video(predictor, movie, output, extras, stem, cfg.video_stride, cfg.max_frames,
                                  cfg.batch_size)  # fmt: skip
        except OutputWriteError:
            raise
        except (ImageReadError, OSError, RuntimeError) as err:  # a broken video must not stop the others
            log.error("skipped %s: %s", movie, err)
            failed.append(str(err) if str(movie) in str(err) else f"{movie}: {err}")
            continue
        videos.append(video)
        if video["problem"]:
            failed.append(video["problem"])
        not_written.extend(video["output_problems"])
    if failed:
        (output / "failed.txt").write_text("\n".join(failed) + "\n")
        log.warning("%d input(s) could not be read fully; listed in %s", len(failed), output / "failed.txt")
    summary = {"output": str(output), "images": done, "videos": videos, "failed": failed,
               "output_problems": not_written}  # fmt: skip
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"predicted {done} image(s) and {len(videos)} video(s) into {output}")
    if failed:
        print(f"could not read {len(failed)} file(s) fully: see {output / 'failed.txt'}")
    for problem in not_written:
        print(f"output problem: {problem}")
    return summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
