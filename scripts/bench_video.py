"""Frames per second and peak memory of predict's video path on a long variable-frame-rate 720p clip.

    python scripts/bench_video.py                                  # 2,000 frames of 1280 x 720, and 500
    python scripts/bench_video.py --frames 2000 500 --size 1280x720 --workdir /tmp/bench_video

The clip is made once by the ffmpeg binary that imageio-ffmpeg ships (H.264 + AAC in MP4, cached in
--workdir): a 60 fps test pattern of which 8 of every 15 frames are kept, in an uneven pattern, with their own
timestamps (gaps of 1/60 to 4/60 s), and a tone 2 s longer than the picture. Each row runs in a fresh
process, which prints the seconds, the frames per second and its peak resident memory (ru_maxrss):

- `decode`: the frames alone (predictor.video.VideoStream, RGB arrays), the baseline of the ratio column;
- `mattes only`: predict_video without any video written (`overlay=false`): decoding, refinement, tracking,
  the V-HIM60 PNG/JPEG layout and the timestamps file;
- `predict`: predict_video as `predict` runs it by default (eval_size 640, guided refinement of the 720p
  mattes, tracking, the V-HIM60 PNG/JPEG layout, the overlay with the input's sound, the timestamps file);
- `+ alpha videos`: the same with `alpha_video=near_lossless` (two people, so two more encoders).

The network is a stand-in that costs nothing (two fixed people), so the figures are those of everything around
the network; a real network adds its own time per frame (docs/benchmarks.md, "Inference"). Running the same
row on fewer frames (`--frames 2000 500`) shows that memory does not grow with the video's length.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROWS = ("decode", "mattes only", "predict", "+ alpha videos")


class StandIn:
    """The network's output contract (docs/contracts.md, section 3) at no cost: a person on the left and one
    on the right half of the input, both kept by the class head, a third query rejected."""

    device = torch.device("cpu")

    def __call__(
        self, images: torch.Tensor, keep_scores_above: float | None = None
    ) -> dict[str, torch.Tensor]:
        b, _, h, w = images.shape
        ramp = torch.linspace(-4.0, 4.0, w).sigmoid()  # soft edges across the middle
        alpha = torch.stack([1 - ramp, ramp, torch.zeros(w)])[:, None, :].expand(3, h, w)
        logits = torch.tensor([[-9.0, 9.0], [-9.0, 9.0], [9.0, -9.0]])
        return {"pred_logits": logits.expand(b, 3, 2).clone(), "alpha_fin": alpha.expand(b, 3, h, w).clone()}


def make_clip(path: Path, frames: int, size: str) -> Path:
    """The benchmark clip (module doc), unless `path` exists."""
    if path.is_file():
        return path
    import imageio_ffmpeg

    keep = "not(eq(mod(n\\,15)\\,1)+eq(mod(n\\,15)\\,4)+eq(mod(n\\,15)\\,5)+eq(mod(n\\,15)\\,9)" \
           "+eq(mod(n\\,15)\\,10)+eq(mod(n\\,15)\\,11)+eq(mod(n\\,15)\\,13))"  # fmt: skip
    seconds = frames * 15 / 8 / 60
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=60:duration={seconds + 1}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds + 2}",
         "-vf", f"select='{keep}'", "-fps_mode", "passthrough", "-frames:v", str(frames),
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


def child(row: str, clip: Path, frames: int, out: Path) -> dict:
    """One row in this process."""
    from e2e_him.predictor.mattes import Predictor
    from e2e_him.predictor.outputs import Extras
    from e2e_him.predictor.pipeline import predict_video
    from e2e_him.predictor.video import VideoStream

    start_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    start = time.perf_counter()
    if row == "decode":
        done = sum(1 for _ in VideoStream(clip, max_frames=frames))
        extra = {}
    else:
        alpha = "near_lossless" if row == "+ alpha videos" else None
        extras = Extras(overlay=row != "mattes only", alpha_video=alpha)
        predictor = Predictor(StandIn(), eval_size=640, score_threshold=0.5, min_area=0.0)
        summary = predict_video(predictor, clip, out, extras, max_frames=frames)
        done = summary["frames"]
        extra = {"audio": summary["audio"], "variable": summary["frame_rate"]["variable"],
                 "videos": len(summary["videos"]) + len(summary["alpha_videos"])}  # fmt: skip
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    return {"row": row, "frames": done, "seconds": seconds, "fps": done / seconds, "peak_mib": peak,
            "start_mib": start_mib, **extra}  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, nargs="+", default=[2000, 500])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "e2e_him_bench_video")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(child(job["row"], Path(job["clip"]), job["frames"], Path(job["out"]))))
        return []
    clip = make_clip(args.workdir / f"vfr_{max(args.frames)}_{args.size}.mp4", max(args.frames), args.size)
    print(f"clip: {clip} ({max(args.frames)} frames, {args.size}, variable frame rate, AAC sound)")
    print("| frames | row | s | frames/s | x decode | peak RSS (MiB) | at start (MiB) |")
    print("|---|---|---|---|---|---|---|", flush=True)
    results, base = [], {}
    for frames in args.frames:
        for row in args.rows:
            job = {"row": row, "clip": str(clip), "frames": frames, "out": str(args.workdir / "out")}
            run = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            r = json.loads(run.stdout.strip().splitlines()[-1])
            results.append(r)
            if row == "decode":
                base[frames] = r["fps"]
            ratio = f"{r['fps'] / base[frames]:.2f}" if frames in base else "-"
            print(f"| {r['frames']} | {r['row']} | {r['seconds']:.1f} | {r['fps']:.1f} | {ratio} | "
                  f"{r['peak_mib']:.0f} | {r['start_mib']:.0f} |", flush=True)  # fmt: skip
    return results


if __name__ == "__main__":
    main()
