"""The demo's video tab without its page (e2e_him.web.videos): predict's video path on a clip, with progress
in frames per second, a frame limit with a note, one zip, and files it cannot use named in notes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from people_stub import stub_predictor, write_clip, write_photo
from PIL import Image

from e2e_him.predictor.composites import Background
from e2e_him.predictor.outputs import Extras
from e2e_him.predictor.pipeline import predict_video
from e2e_him.web.videos import VideoDemo


def test_a_clip_gives_predicts_files_videos_and_zip_with_progress(tmp_path: Path):
    clip = write_clip(tmp_path / "in" / "dance.mp4", frames=6)
    predictor = stub_predictor()
    reports = []
    demo = VideoDemo(predictor, tmp_path / "out", max_frames=4)
    result = demo.run(clip, 0.5, 64, "#0000ff", progress=lambda *report: reports.append(report))
    assert [done for done, _, _ in reports] == [1, 2, 3, 4] and all(fps > 0 for _, _, fps in reports)
    assert predictor.backend.calls == 4  # cut after the limit
    notes = result.markdown()
    assert "dance.mp4: 4 frames, 2 person id(s) issued" in notes and "stopped after 4 frames" in notes
    folder = Path(result.overlay).parent
    assert folder.parent == tmp_path / "out" / "videos"
    assert Path(result.overlay).name == "dance_overlay.mp4" and Path(result.composite).is_file()
    assert result.summary["videos"][0]["frames"] == 4 and result.summary["videos"][0]["mattes"] == "pha/dance"
    assert [caption for _, caption in result.alpha_videos] == ["id 00", "id 01"]  # one matte video per id

    reference = tmp_path / "predict"
    predict_video(stub_predictor(), clip, reference, Extras(background=Background("#0000ff")), max_frames=4)
    mattes = sorted(str(p.relative_to(reference)) for p in (reference / "pha").rglob("*.png"))
    assert len(mattes) == 8 and mattes[0] == "pha/dance/00000/00.png"  # 4 frames x 2 people, by id
    for name in mattes:
        np.testing.assert_array_equal(
            np.asarray(Image.open(folder / name)), np.asarray(Image.open(reference / name))
        )
    with zipfile.ZipFile(result.archive) as archive:
        names = set(archive.namelist())
    assert {
        *mattes,
        "fgr/dance/00003.jpg",
        "dance_overlay.mp4",
        "dance_composite.mp4",
        "dance_alpha_01.mp4",
        "summary.json",
    } <= names

    again = demo.run(clip, 0.5, 64, "#0000ff")  # the same clip and settings: served from its folder
    assert predictor.backend.calls == 4 and again.archive == result.archive and again.notes == result.notes
    demo.run(clip, 0.7, 64, None)  # another threshold: predicted again, no composite
    assert predictor.backend.calls == 8


def test_files_that_are_no_clip_give_a_note(tmp_path: Path):
    fake = tmp_path / "in" / "fake.mp4"
    fake.parent.mkdir()
    fake.write_bytes(b"no video in here")
    photo = write_photo(tmp_path / "in" / "photo.jpg")
    demo = VideoDemo(stub_predictor(), tmp_path / "out")
    result = demo.run(fake, 0.5, 64, None)
    assert "fake.mp4 is not a video this demo can read" in result.markdown() and result.archive is None
    assert str(tmp_path / "in") not in result.markdown()
    assert list((tmp_path / "out" / "videos").iterdir()) == []  # nothing left behind
    assert "photo.jpg is a photo: use the Photo tab" in demo.run(photo, 0.5, 64, None).markdown()
    assert demo.run(None).markdown() == "- upload a clip to start"
