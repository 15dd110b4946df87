"""Videos in predict: streaming with flat memory, V-HIM60's output layout, and broken or short videos."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stub_network import stub_predictor, write_video

from e2e_him.predictor.composites import Background
from e2e_him.predictor.outputs import Extras
from e2e_him.predictor.pipeline import predict_video
from e2e_him.predictor.video import VideoReadError, VideoStream


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
