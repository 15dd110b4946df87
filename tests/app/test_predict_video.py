"""Videos in predict: streaming with flat memory, V-HIM60's output layout, and broken or short videos."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image
from stub_network import stub_predictor, write_video

from e2e_him.predictor.composites import Background
from e2e_him.predictor.outputs import Extras, write_alpha_videos, write_people
from e2e_him.predictor.pipeline import predict_video
from e2e_him.predictor.video import VideoReadError, VideoStream, has_sound


def test_stream_reads_every_kept_frame_with_its_index(tmp_path: Path):
    write_video(tmp_path / "clip.mp4", 12)
    stream = VideoStream(tmp_path / "clip.mp4", stride=3)
    assert stream.announced == 12 and stream.expected == 4 and stream.fps == pytest.approx(10 / 3)
    frames = list(stream)
    assert [i for i, _ in frames] == [0, 3, 6, 9]
    assert frames[0][1].shape == (48, 64, 3) and frames[0][1].dtype == np.uint8
    assert stream.problem is None
    assert [i for i, _ in VideoStream(tmp_path / "clip.mp4", max_frames=2)] == [0, 1]


def test_predict_video_writes_the_vhim60_layout_overlay_composite_and_cutouts(tmp_path: Path):
    write_video(tmp_path / "clip.mp4", 5)
    out = tmp_path / "out"
    extras = Extras(overlay=True, background=Background("green"), ids=[1], cutout=True)
    summary = predict_video(stub_predictor(), tmp_path / "clip.mp4", out, extras, stride=2)
    frames = sorted(p.name for p in (out / "pha" / "clip").iterdir())
    assert frames == ["00000", "00002", "00004"]  # 5-digit 0-based frame index in the video
    assert sorted(p.name for p in (out / "pha" / "clip" / "00002").iterdir()) == ["00.png", "01.png"]
    matte = Image.open(out / "pha" / "clip" / "00000" / "00.png")
    assert matte.mode == "L" and matte.size == (64, 48)
    assert sorted(p.name for p in (out / "fgr" / "clip").iterdir()) == ["00000.jpg", "00002.jpg", "00004.jpg"]
    assert (out / "clip_overlay.mp4").stat().st_size > 500
    assert (out / "clip_composite.mp4").stat().st_size > 500
    cut = sorted((out / "cutout" / "clip" / "00000").iterdir())
    assert [p.name for p in cut] == ["01.png"]  # only the chosen id
    rgba = np.asarray(Image.open(cut[0]))
    assert rgba.shape == (48, 64, 4) and rgba[:, -1, 3].min() == 255 and rgba[:, 0, 3].max() == 0
    assert summary["frames"] == 3 and summary["ids"] == 2 and summary["problem"] is None


def test_a_video_that_ends_early_keeps_its_frames_and_says_so(tmp_path: Path):
    write_video(tmp_path / "full.mp4", 40, faststart=True)  # the index first, so a cut file still opens
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    summary = predict_video(stub_predictor(), tmp_path / "cut.mp4", tmp_path / "out", Extras(overlay=True))
    assert 0 < summary["frames"] < 40
    assert "cut.mp4" in summary["problem"] and "ends early" in summary["problem"]
    assert len(list((tmp_path / "out" / "pha" / "cut").iterdir())) == summary["frames"]
    assert (tmp_path / "out" / "cut_overlay.mp4").stat().st_size > 0  # closed properly, playable


def test_unreadable_and_zero_frame_videos_are_named(tmp_path: Path):
    import imageio_ffmpeg

    zero = tmp_path / "zero.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
         "color=c=black:s=64x48:r=10", "-frames:v", "0", "-c:v", "libx264", str(zero)],
        check=True,
    )  # fmt: skip
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    for path in (zero, tmp_path / "junk.mp4", tmp_path / "missing.mp4"):
        with pytest.raises(VideoReadError, match=path.name):
            predict_video(stub_predictor(), path, tmp_path / "out", Extras(overlay=True))
    assert not list((tmp_path / "out").glob("*.mp4"))  # no empty overlay files left behind


@pytest.mark.slow
def test_memory_stays_flat_over_a_2000_frame_video(tmp_path: Path):
    """Resident memory after frame 300 and after frame 2000 of a streamed video differ by little: keeping
    every frame (96 x 128 x 3) and its two mattes would add about 270 MB."""
    import psutil

    write_video(tmp_path / "long.mp4", 2000, size=(96, 128), fps=25)
    process = psutil.Process()
    rss: dict[int, float] = {}

    def sample(index: int) -> None:
        if index % 100 == 0:
            rss[index] = process.memory_info().rss / 2**20

    extras = Extras(overlay=True)
    summary = predict_video(stub_predictor(eval_size=None), tmp_path / "long.mp4", tmp_path / "out", extras,
                            batch_size=4, on_frame=sample)  # fmt: skip
    assert summary["frames"] == 2000 and summary["ids"] == 2
    growth = rss[1900] - rss[300]
    print(f"RSS at frame 300: {rss[300]:.1f} MiB, at 1900: {rss[1900]:.1f} MiB, growth {growth:.1f} MiB")
    assert growth < 20, rss


def test_a_folder_of_frames_is_tracked_as_one_video(tmp_path: Path):
    folder = tmp_path / "fgr" / "00003"
    folder.mkdir(parents=True)
    for i in (0, 1, 2, 10):  # V-HIM60 names frames by number: "00010" comes after "00002"
        Image.fromarray(np.full((40, 60, 3), 20 * i, dtype=np.uint8)).save(folder / f"{i:05d}.jpg")
    summary = predict_video(stub_predictor(), folder, tmp_path / "out", Extras(overlay=False))
    assert summary["frames"] == 4 and summary["ids"] == 2
    assert sorted(p.name for p in (tmp_path / "out" / "pha" / "00003").iterdir()) == [
        "00000", "00001", "00002", "00010"
    ]  # fmt: skip


def _with_sound(clip: Path, out: Path, seconds: float = 2.0) -> Path:
    """`clip` with a sine tone longer than its pictures (ffmpeg's lavfi source, AAC)."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    tone = f"sine=frequency=440:duration={seconds}"
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-i", str(clip), "-f", "lavfi", "-i", tone,
                    "-c:v", "copy", "-c:a", "aac", str(out)], check=True)  # fmt: skip
    return out


def _seconds(path: Path, kind: str) -> float:
    """Duration of the first `kind` ("v" or "a") stream of `path`, decoded to the end by ffmpeg."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    run = subprocess.run([ffmpeg, "-hide_banner", "-i", str(path), "-map", f"0:{kind}:0", "-f", "null", "-"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    h, m, s = re.findall(r"time=(\d+):(\d+):([\d.]+)", run.stderr)[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_the_composite_keeps_the_clips_sound_cut_to_its_frames(tmp_path: Path):
    write_video(tmp_path / "silent.mp4", 10)  # 1 s at 10 frames/s
    clip = _with_sound(tmp_path / "silent.mp4", tmp_path / "talk.mp4")
    assert has_sound(clip) and not has_sound(tmp_path / "silent.mp4")
    extras = Extras(overlay=True, background=Background("green"))
    summary = predict_video(stub_predictor(), clip, tmp_path / "out", extras, max_frames=5)
    composite = tmp_path / "out" / "talk_composite.mp4"
    assert summary["sound"] and has_sound(composite) and not has_sound(tmp_path / "out" / "talk_overlay.mp4")
    assert _seconds(composite, "v") == pytest.approx(0.5, abs=0.05)
    assert _seconds(composite, "a") == pytest.approx(0.5, abs=0.1)  # the tone cut with the pictures
    assert len(imageio.mimread(composite)) == 5  # the pictures untouched by the remux

    quiet = predict_video(stub_predictor(), tmp_path / "silent.mp4", tmp_path / "quiet", extras)
    assert not quiet["sound"] and not has_sound(tmp_path / "quiet" / "silent_composite.mp4")


def test_alpha_videos_show_each_id_over_every_frame(tmp_path: Path):
    write_video(tmp_path / "clip.mp4", 4)
    out = tmp_path / "out"
    predict_video(stub_predictor(), tmp_path / "clip.mp4", out, Extras(overlay=False, alpha_videos=True))
    videos = sorted(p.name for p in out.glob("*.mp4"))
    ids = sorted(p.stem for p in (out / "pha" / "clip" / "00000").iterdir())
    assert videos == [f"clip_alpha_{i}.mp4" for i in ids] and len(ids) == 2
    for i in ids:
        frames = imageio.mimread(out / f"clip_alpha_{i}.mp4")
        assert len(frames) == 4
        for index, frame in enumerate(frames):  # the PNG's matte, through H.264: within a few levels
            matte = np.asarray(Image.open(out / "pha" / "clip" / f"{index:05d}" / f"{i}.png"), dtype=float)
            assert np.abs(frame.astype(float).mean(axis=2) - matte).mean() < 4


def test_an_alpha_video_is_black_where_its_person_is_absent(tmp_path: Path):
    mattes = tmp_path / "pha" / "clip"
    present = np.full((32, 48), 0.8, np.float32)  # written as 204
    write_people(mattes / "00000", np.stack([present]), np.array([3]))
    write_people(mattes / "00001", np.zeros((0, 32, 48), np.float32), np.array([], int))  # nobody
    write_people(mattes / "00002", np.stack([present]), np.array([3]))
    videos = write_alpha_videos(mattes, ["00000", "00001", "00002"], (32, 48), tmp_path / "clip", 10.0)
    assert [p.name for p in videos] == ["clip_alpha_03.mp4"]
    levels = [frame.mean() for frame in imageio.mimread(videos[0])]
    assert levels == pytest.approx([204, 0, 204], abs=3)
