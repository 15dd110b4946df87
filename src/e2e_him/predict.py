"""`python -m e2e_him.predict ckpt_path=<file> input=<image|folder|video> output=<folder>`.

Writes one alpha PNG per detected person as `<output>/<image stem>/NN.png` (HIM2K's per-instance layout,
people sorted by score) and a colour overlay `<output>/<image stem>_overlay.jpg`. A video gives
`<output>/<video stem>/<frame>/NN.png`, NN being a track id that persists across frames, and
`<output>/<video stem>_overlay.mp4`. Unreadable files in a folder are reported by name and skipped
(listed in `<output>/failed.txt`); the others are still processed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from tqdm import tqdm

from e2e_him import CONF_DIR
from e2e_him.data.io import IMAGE_SUFFIXES, ImageReadError, list_images, read_image, write_alpha
from e2e_him.data.transforms import prepare_eval_image
from e2e_him.tracking import IoUTracker
from e2e_him.utils.checkpoint import load_module
from e2e_him.viz import overlay_instances

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


class Predictor:
    """A trained model plus its post-processing, applied to uint8 RGB photos of any size."""

    def __init__(self, module, eval_size: int | None, score_threshold: float | None, min_area: float | None):
        self.module = module
        self.eval_size = eval_size
        if score_threshold is not None:
            module.hparams.score_threshold = float(score_threshold)
        if min_area is not None:
            module.hparams.min_area = float(min_area)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        """Mattes (K, H, W) float in [0, 1] at the photo's size and scores (K,), sorted by score."""
        tensor, meta = prepare_eval_image(image, self.eval_size)
        outputs = self.module(tensor[None].to(self.module.device))
        pred = self.module.postprocess(outputs, [meta])[0]
        return {
            "alphas": pred["alphas"].float().cpu().numpy(),
            "scores": pred["scores"].float().cpu().numpy(),
        }


def write_people(folder: Path, alphas: np.ndarray, ids: np.ndarray | None = None) -> None:
    """One 8-bit PNG per person: `folder/NN.png` (NN = position, or the track id when `ids` is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = range(len(alphas)) if ids is None else ids
    for name, alpha in zip(names, alphas):
        write_alpha(folder / f"{int(name):02d}.png", alpha)


def unique_stems(paths: list[Path]) -> list[str]:
    """Output names per input: the stem, or stem_ext when two files share a stem (a.jpg and a.png)."""
    stems = [p.stem for p in paths]
    return [f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def predict_images(
    predictor: Predictor, paths: list[Path], stems: list[str], output: Path, overlay: bool
) -> list[str]:
    """Predict every image into `output/<stem>/`; returns the failures as 'path: reason' lines."""
    failed = []
    for path, stem in zip(tqdm(paths, desc="predict", unit="img"), stems):
        try:
            image = read_image(path)
        except ImageReadError as err:
            log.error("skipped %s", err)
            failed.append(str(err))
            continue
        pred = predictor(image)
        write_people(output / stem, pred["alphas"])
        if overlay:
            Image.fromarray(overlay_instances(image, pred["alphas"])).save(
                output / f"{stem}_overlay.jpg", quality=90
            )
        log.info("%s: %d people", path.name, len(pred["alphas"]))
    return failed


def video_frames(path: Path, stride: int, max_frames: int | None) -> tuple[Iterator[np.ndarray], float, int]:
    """(frames as uint8 RGB, frames per second, number of frames that will be read) of a video file."""
    import imageio.v2 as imageio

    try:
        reader = imageio.get_reader(str(path), format="FFMPEG")
    except Exception as err:
        raise ImageReadError(f"{path}: cannot read video ({err})") from err
    meta = reader.get_meta_data()
    fps = float(meta.get("fps", 25.0))
    total = reader.count_frames() if hasattr(reader, "count_frames") else 0
    count = len(range(0, total, stride)) if total else 0
    if max_frames is not None:
        count = min(count, max_frames) if count else max_frames

    def frames() -> Iterator[np.ndarray]:
        taken = 0
        for index, frame in enumerate(reader):
            if index % stride:
                continue
            if max_frames is not None and taken >= max_frames:
                break
            taken += 1
            yield np.ascontiguousarray(frame[..., :3])
        reader.close()

    return frames(), fps / stride, count


def predict_video(
    predictor: Predictor,
    path: Path,
    output: Path,
    stride: int,
    max_frames: int | None,
    stem: str | None = None,
    overlay: bool = True,
) -> Path:
    """Mattes of every kept frame with track ids in `output/<stem>/<frame>/`, and (with `overlay`) an overlay
    video `output/<stem>_overlay.mp4`; returns the folder of the mattes."""
    import imageio.v2 as imageio

    stem = stem or path.stem
    frames, fps, count = video_frames(path, stride, max_frames)
    tracker = IoUTracker()
    writer = None
    if overlay:
        writer = imageio.get_writer(
            str(output / f"{stem}_overlay.mp4"), fps=fps, codec="libx264", quality=7, macro_block_size=1
        )
    try:
        for index, frame in enumerate(tqdm(frames, total=count or None, desc=path.name, unit="frame")):
            pred = predictor(frame)
            ids = tracker.update(pred["alphas"])
            write_people(output / stem / f"{index * stride:06d}", pred["alphas"], ids)
            if writer is not None:
                writer.append_data(overlay_instances(frame, pred["alphas"], ids=ids))
    finally:
        if writer is not None:
            writer.close()
    return output / stem


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Run the predict app; returns a summary (inputs processed, failures, output folder)."""
    source = Path(cfg.input)
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    module = load_module(cfg.ckpt_path, map_location=resolve_device(cfg.device))
    predictor = Predictor(module, cfg.eval_size, cfg.score_threshold, cfg.min_area)

    failed: list[str] = []
    videos: list[str] = []
    if source.is_dir():
        images = list_images(source)
        movies = sorted(
            p
            for p in source.iterdir()
            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
        )
        if not images and not movies:
            raise FileNotFoundError(
                f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) or videos in this folder"
            )
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        images, movies = [], [source]
    else:
        images, movies = [source], []
    # one output name per input, images and videos together (clip.jpg and clip.mp4 must not share a folder)
    stems = unique_stems([*images, *movies])
    failed += predict_images(predictor, images, stems[: len(images)], output, cfg.overlay)
    images_done = len(images) - len(failed)
    for movie, stem in zip(movies, stems[len(images) :]):
        try:
            videos.append(
                str(
                    predict_video(
                        predictor, movie, output, cfg.video_stride, cfg.max_frames, stem, cfg.overlay
                    )
                )
            )
        except Exception as err:  # a broken or unreadable video must not stop the others
            log.error("skipped %s: %s", movie, err)
            failed.append(f"{movie}: {err}")
    if failed:
        (output / "failed.txt").write_text("\n".join(failed) + "\n")
        log.warning("%d input(s) could not be read; listed in %s", len(failed), output / "failed.txt")
    summary = {"output": str(output), "images": images_done, "videos": videos, "failed": failed}
    print(f"predicted {summary['images']} image(s) and {len(videos)} video(s) into {output}")
    if failed:
        print(f"could not read {len(failed)} file(s): see {output / 'failed.txt'}")
    return summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
