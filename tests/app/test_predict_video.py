"""Videos in predict: streaming with flat memory, V-HIM60's layout, broken or short videos, progress."""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from clips import decoded, ffmpeg, make_clip
from PIL import Image
from stub_network import stub_predictor, write_video

from e2e_him.predictor.backgrounds import Background
from e2e_him.predictor.outputs import Extras
from e2e_him.predictor.pipeline import VideoProgress, predict_video
from e2e_him.predictor.video import VideoReadError, VideoStream


def test_stream_reads_every_kept_frame_with_its_index_and_time(tmp_path: Path):
    write_video(tmp_path / "clip.mp4", 12)
    stream = VideoStream(tmp_path / "clip.mp4", stride=3)
    assert stream.announced == 12 and stream.expected == 4 and stream.fps == pytest.approx(10)
    frames = list(stream)
    assert [f.index for f in frames] == [0, 3, 6, 9]
    assert [f.time for f in frames] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert stream.problem is None and not stream.cut
    assert float(stream.end_pts * stream.time_base) == pytest.approx(1.2)  # the last stored frame's end
    two = VideoStream(tmp_path / "clip.mp4", max_frames=2)
    assert [f.index for f in two] == [0, 1] and two.cut
    assert float(two.end_pts * two.time_base) == pytest.approx(0.2)  # where the next kept frame would start


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
    for name in ("overlay", "composite"):  # stride keeps the timing: each kept frame lasts until the next
        video = decoded(out / f"clip_{name}.mp4")
        assert video["times"] == [0.0, 0.2, 0.4] and video["sizes"] == {(64, 48)}
        assert video["length"] == pytest.approx(0.5) and video["sound"] is None
    cut = sorted((out / "cutout" / "clip" / "00000").iterdir())
    assert [p.name for p in cut] == ["01.png"]  # only the chosen id
    rgba = np.asarray(Image.open(cut[0]))
    assert rgba.shape == (48, 64, 4) and rgba[:, -1, 3].min() == 255 and rgba[:, 0, 3].max() == 0
    assert summary["frames"] == 3 and summary["ids"] == 2 and summary["problem"] is None
    assert summary["audio"] == "none (the input has no sound)"
    assert summary["videos"] == {
        "overlay": str(out / "clip_overlay.mp4"),
        "composite": str(out / "clip_composite.mp4"),
    }
    assert (
        summary["size"] == [64, 48]
        and summary["output_problems"] == []
        and not summary["frame_rate"]["variable"]
    )
    with open(summary["timestamps"]) as f:
        rows = list(csv.DictReader(f))
    assert [(r["frame"], r["time_s"]) for r in rows] == [
        ("0", "0.000000"),
        ("2", "0.200000"),
        ("4", "0.400000"),
    ]
    assert [float(int(r["pts"]) * Fraction(summary["time_base"])) for r in rows] == pytest.approx(
        [0, 0.2, 0.4]
    )


def test_a_video_that_ends_early_keeps_its_frames_and_says_so(tmp_path: Path):
    make_clip(tmp_path / "made.mp4", times=[i / 10 for i in range(40)], sound=4.0)
    ffmpeg(
        "-i", str(tmp_path / "made.mp4"), "-c", "copy", "-movflags", "+faststart", str(tmp_path / "full.mp4")
    )
    data = (tmp_path / "full.mp4").read_bytes()  # the index first, so a cut file (a broken download) opens
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    summary = predict_video(stub_predictor(), tmp_path / "cut.mp4", tmp_path / "out", Extras(overlay=True))
    assert 0 < summary["frames"] < 40 and summary["frames_expected"] == 40
    assert summary["problem"].startswith(
        f"{tmp_path / 'cut.mp4'}: the video ends early, after {summary['frames']}"
    )
    assert len(list((tmp_path / "out" / "pha" / "cut").iterdir())) == summary["frames"]
    overlay = decoded(tmp_path / "out" / "cut_overlay.mp4")  # closed properly: playable, with the sound read
    assert len(overlay["times"]) == summary["frames"] and overlay["sound"]["codec"] == "aac"


def test_unreadable_and_zero_frame_videos_are_named(tmp_path: Path):
    zero = tmp_path / "zero.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x48:r=10", "-frames:v", "0", "-c:v", "libx264", str(zero))
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    make_clip(tmp_path / "sound_only.mp4", sound=1.0)
    ffmpeg("-i", str(tmp_path / "sound_only.mp4"), "-vn", "-c", "copy", str(tmp_path / "sound.m4v"))
    for path in (zero, tmp_path / "junk.mp4", tmp_path / "missing.mp4", tmp_path / "sound.m4v"):
        with pytest.raises(VideoReadError, match=path.name):
            predict_video(stub_predictor(), path, tmp_path / "out", Extras(overlay=True))
    assert not list((tmp_path / "out").glob("*.mp4"))  # no empty overlay files left behind


def test_progress_reports_each_frame_and_an_exception_stops_with_playable_videos(tmp_path: Path):
    make_clip(tmp_path / "clip.mp4", times=[0.0, 0.1, 0.3, 0.35, 0.5, 0.6], sound=1.0)
    seen: list[VideoProgress] = []

    def stop_after_three(step: VideoProgress) -> None:
        seen.append(step)
        if step.done == 3:
            raise KeyboardInterrupt  # what a GUI's "stop" button can do

    with pytest.raises(KeyboardInterrupt):
        predict_video(stub_predictor(), tmp_path / "clip.mp4", tmp_path / "out", Extras(overlay=True),
                      progress=stop_after_three)  # fmt: skip
    assert [(s.frame, s.done, s.expected) for s in seen] == [(0, 1, 6), (1, 2, 6), (2, 3, 6)]
    assert [s.time for s in seen] == pytest.approx([0.0, 0.1, 0.3])
    assert all(s.fps > 0 and s.seconds > 0 for s in seen)
    video = decoded(tmp_path / "out" / "clip_overlay.mp4")
    assert video["times"] == [0.0, 0.1, 0.3] and video["sound"]["codec"] == "aac"


@pytest.mark.slow
def test_memory_stays_flat_over_a_2000_frame_video(tmp_path: Path):
    """Resident memory after frame 300 and after frame 2000 of a streamed video differ by little: keeping
    every frame (96 x 128 x 3) and its two mattes would add about 270 MB."""
    import psutil

    write_video(tmp_path / "long.mp4", 2000, size=(96, 128), fps=25)
    process = psutil.Process()
    rss: dict[int, float] = {}

    def sample(step: VideoProgress) -> None:
        if step.frame % 100 == 0:
            rss[step.frame] = process.memory_info().rss / 2**20

    extras = Extras(overlay=True, alpha_video="near_lossless")
    summary = predict_video(stub_predictor(eval_size=None), tmp_path / "long.mp4", tmp_path / "out", extras,
                            batch_size=4, progress=sample)  # fmt: skip
    assert summary["frames"] == 2000 and summary["ids"] == 2
    growth = rss[1900] - rss[300]
    print(f"RSS at frame 300: {rss[300]:.1f} MiB, at 1900: {rss[1900]:.1f} MiB, growth {growth:.1f} MiB")
    assert growth < 20, rss


def test_a_folder_of_frames_is_tracked_as_one_video(tmp_path: Path):
    folder = tmp_path / "fgr" / "00003"
    folder.mkdir(parents=True)
    for i in (0, 1, 2, 10):  # V-HIM60 names frames by number: "00010" comes after "00002"
        Image.fromarray(np.full((40, 60, 3), 20 * i, dtype=np.uint8)).save(folder / f"{i:05d}.jpg")
    summary = predict_video(stub_predictor(), folder, tmp_path / "out", Extras(overlay=True))
    assert summary["frames"] == 4 and summary["ids"] == 2
    assert sorted(p.name for p in (tmp_path / "out" / "pha" / "00003").iterdir()) == [
        "00000", "00001", "00002", "00010"
    ]  # fmt: skip
    # no timestamps in a folder: frame n is shown at n / 25 s
    assert decoded(tmp_path / "out" / "00003_overlay.mp4")["times"] == [0.0, 0.04, 0.08, 0.4]
