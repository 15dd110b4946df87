"""Videos made the way phones, browsers and editors make them, generated for the tests by the ffmpeg binary
that imageio-ffmpeg ships (no video file is committed): variable frame rates, sound longer or shorter than the
picture, odd sizes, rotation metadata, and the usual containers."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

AUDIO = {".mp4": "aac", ".mov": "aac", ".m4v": "aac", ".webm": "libopus", ".mkv": "libvorbis"}


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def make_clip(
    path: Path,
    times: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4),
    size: tuple[int, int] = (64, 48),
    sound: float | None = None,
    codec: str = "libx264",
    audio_codec: str | None = None,
    rotation: int | None = None,
) -> Path:
    """A clip whose stored frames are shown at `times` (seconds, multiples of 0.01: picked from a 100 fps
    test pattern and kept with their own timestamps, so uneven gaps make a variable frame rate).

    Args:
        size: (W, H); an odd one is cropped from the pattern in 4:4:4 and coded by `codec` as it allows
            (libx264: 4:4:4, VP9: 4:2:0).
        sound: seconds of a 440 Hz tone beside the picture (None: no sound).
        audio_codec: default by suffix (AAC for MP4/MOV, Opus for WebM, Vorbis for Matroska).
        rotation: display rotation in degrees (counter-clockwise) stored as metadata, as phones do.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    picks = "+".join(f"eq(n\\,{round(t * 100)})" for t in times)
    filters = f"format=yuv444p,crop={w}:{h}:0:0,select='{picks}'"
    pix_fmt = "yuv444p" if (w % 2 or h % 2) and codec == "libx264" else "yuv420p"
    source = [
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={w + w % 2}x{h + h % 2}:rate=100:duration={max(times) + 0.01}",
    ]
    tone = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={sound}"] if sound else []
    audio = ["-c:a", audio_codec or AUDIO[path.suffix]] if sound else []
    target = path.with_name(f"unrotated_{path.name}") if rotation is not None else path
    ffmpeg(*source, *tone, "-vf", filters, "-fps_mode", "passthrough", "-c:v", codec, "-pix_fmt", pix_fmt,
           *audio, str(target))  # fmt: skip
    if rotation is not None:
        ffmpeg("-display_rotation", str(rotation), "-i", str(target), "-c", "copy", str(path))
        target.unlink()
    return path


def decoded(path: Path) -> dict:
    """What a player gets from a video: its frames' times (s) and sizes, its streams' codecs and lengths."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = [(float(f.time), f.width, f.height) for f in container.decode(video)]
    with av.open(str(path)) as container:
        audio = container.streams.audio
        sound = None
        if audio:
            packets = [p for p in container.demux(audio[0]) if p.pts is not None]
            ends = [float((p.pts + p.duration) * p.time_base) for p in packets]
            sound = {"codec": audio[0].codec_context.name, "end": max(ends) if ends else 0.0}
        video = container.streams.video[0]
        length = float(video.duration * video.time_base) if video.duration else None
        return {"times": [round(t, 4) for t, _, _ in frames], "sizes": {(w, h) for _, w, h in frames},
                "codec": video.codec_context.name, "length": length, "sound": sound}  # fmt: skip


def gray_frames(path: Path) -> list[np.ndarray]:
    """The frames of a greyscale (matte) video as (H, W) uint8."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray") for f in container.decode(video=0)]
