"""The demo's photo tab without its page (e2e_him.web.photos): predict's files and one zip, caches that make
a control re-run only what it changes, and uploads it cannot use named in notes while the others go on."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from people_stub import SCORES, stub_predictor, write_photo
from PIL import Image

from e2e_him.predictor.backgrounds import Background
from e2e_him.predictor.outputs import Extras
from e2e_him.predictor.pipeline import predict_photos
from e2e_him.web.cache import BytesLru
from e2e_him.web.photos import PhotoDemo, background_spec, parse_people
from e2e_him.web.uploads import distinct, safe_stem


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_each_control_reruns_only_what_it_changes(tmp_path: Path):
    photo = write_photo(tmp_path / "in" / "street.png")
    predictor = stub_predictor()
    demo = PhotoDemo(predictor, tmp_path / "out")
    first = demo.run([photo], 0.5, 64, "#0000ff")
    assert predictor.backend.calls == 1 and first.scores == {"street": [0.9, 0.6]}
    assert [caption for _, caption in first.mattes] == ["street #00 · 0.90", "street #01 · 0.60"]
    assert "network" in first.notes[0] and "2 people" in first.notes[0]

    higher = demo.run([photo], 0.7, 64, "#0000ff")  # the threshold: post-processing only
    assert predictor.backend.calls == 1 and higher.scores == {"street": [0.9]}
    assert "network outputs reused" in higher.notes[0]
    estimates = demo.foregrounds.made
    red = demo.run([photo], 0.5, 64, "red")  # the background: composited again, nothing else
    assert predictor.backend.calls == 1 and demo.foregrounds.made == estimates and demo.people.made == 2
    blue_picture = _pixels(Path(first.composites[0][0])).astype(int)
    red_picture = _pixels(Path(red.composites[0][0])).astype(int)
    assert np.abs(blue_picture[:, -8:] - [0, 0, 255]).mean() < 10  # the right third is nobody's: background
    assert np.abs(red_picture[:, -8:] - [255, 0, 0]).mean() < 10
    assert np.abs(red_picture[:, 4:20] - blue_picture[:, 4:20]).mean() < 4  # person 0: the same (JPEG)

    demo.run([photo], 0.5, 96, "red")  # the working size: the network again
    assert predictor.backend.calls == 2
    again = demo.run([photo], 0.5, 64, "#0000ff")  # a setting seen before: served from its folder
    assert predictor.backend.calls == 2 and again.folder == first.folder and again.archive == first.archive


def test_the_results_are_the_files_predict_writes_in_one_zip(tmp_path: Path):
    photo = write_photo(tmp_path / "in" / "street.png")
    extras = Extras(overlay=True, background=Background("#0000ff"), cutout=True)
    predict_photos(stub_predictor(), [photo], ["street"], tmp_path / "predict", extras)
    result = PhotoDemo(stub_predictor(), tmp_path / "out").run([photo], 0.5, 64, "#0000ff")
    folder = Path(result.folder)
    assert folder.parent == tmp_path / "out" / "photos"
    written = sorted(str(p.relative_to(tmp_path / "predict")) for p in (tmp_path / "predict").rglob("*.*"))
    assert written == ["composite/street.jpg", "cutout/street/00.png", "cutout/street/01.png",
                       "street/00.png", "street/01.png", "street_overlay.jpg"]  # fmt: skip
    for name in written:
        if name.endswith(".png"):  # mattes and cut-outs: the same numbers
            np.testing.assert_array_equal(_pixels(folder / name), _pixels(tmp_path / "predict" / name))
        else:
            assert (folder / name).is_file()
    with zipfile.ZipFile(result.archive) as archive:
        files = [name for name in archive.namelist() if not name.endswith("/")]
        assert sorted(files) == sorted([*written, "summary.json"])
    assert [Path(p).name for p, _ in result.mattes] == ["00.png", "01.png"]
    assert Path(result.overlays[0][0]) == folder / "street_overlay.jpg"


def test_files_it_cannot_use_are_named_and_the_others_predicted(tmp_path: Path):
    good = write_photo(tmp_path / "in" / "good.png")
    broken = tmp_path / "in" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    text = tmp_path / "in" / "notes.txt"
    text.write_text("hello")
    clip = tmp_path / "in" / "clip.mp4"
    clip.write_bytes(b"\x00" * 64)
    demo = PhotoDemo(stub_predictor(), tmp_path / "out")
    result = demo.run([broken, good, text, clip], 0.5, 64, None)
    notes = result.markdown()
    assert "broken.jpg is not a photo this demo can read" in notes
    assert "notes.txt is not a photo this demo can read" in notes
    assert "clip.mp4 is a video: use the Video tab" in notes
    assert str(tmp_path / "in") not in notes  # names, not the upload's folder
    assert result.scores == {"good": [0.9, 0.6]} and result.composites == []  # no background: no composite
    nothing = demo.run([broken], 0.5, 64, "#0000ff")
    assert nothing.archive is None and nothing.mattes == [] and "broken.jpg" in nothing.markdown()
    wrong = demo.run([good], 0.5, 64, str(tmp_path / "in" / "notes.txt"))  # a background that is no image
    assert "background:" in wrong.markdown() and wrong.composites == [] and wrong.mattes


def test_a_photo_over_pils_pixel_limit_is_refused_unread(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 48 x 96 > 2 x 1000: a "decompression bomb"
    photo = write_photo(tmp_path / "in" / "bomb.png")
    result = PhotoDemo(stub_predictor(), tmp_path / "out").run([photo], 0.5, 64, None)
    assert "bomb.png is not a photo this demo can read" in result.markdown()
    assert "exceeds limit" in result.markdown() and result.mattes == []


def test_a_huge_photo_is_downscaled_with_a_note(tmp_path: Path):
    photo = write_photo(tmp_path / "in" / "big.png", size=(120, 240))
    result = PhotoDemo(stub_predictor(), tmp_path / "out", max_side=80).run([photo], 0.5, 64, None)
    assert "big.png: 240 x 120 px is larger than the demo's limit of 80 px: downscaled to 80 x 40" in (
        result.markdown()
    )
    assert Image.open(result.mattes[0][0]).size == (80, 40)


def test_uploads_with_one_name_get_their_own_outputs(tmp_path: Path):
    a = write_photo(tmp_path / "a" / "p.png", seed=1)
    b = write_photo(tmp_path / "b" / "p.png", seed=2)
    result = PhotoDemo(stub_predictor(), tmp_path / "out").run([a, b], 0.5, 64, None)
    assert sorted(result.scores) == ["p", "p_2"]
    assert (Path(result.folder) / "p_2_overlay.jpg").is_file()


def test_only_the_newest_results_are_kept(tmp_path: Path):
    photo = write_photo(tmp_path / "in" / "p.png")
    demo = PhotoDemo(stub_predictor(), tmp_path / "out", keep_runs=2)
    results = [demo.run([photo], threshold, 64, None) for threshold in (0.1, 0.3, 0.5)]
    kept = sorted(p.name for p in (tmp_path / "out" / "photos").iterdir())
    assert kept == sorted(Path(r.folder).name for r in results[1:]) + sorted(
        Path(r.archive).name for r in results[1:]
    )


def test_what_the_page_sends_is_read_like_predicts_options():
    assert parse_people("2, 0") == ([0, 2], None) and parse_people(" ") == (None, None)
    ranks, note = parse_people("the tall one")
    assert ranks is None and "not a list of ranks" in note
    assert background_spec("#00B140", None) == "#00B140"
    assert background_spec("rgba(255, 128, 0, 1)", None) == "255,128,0"  # as some colour pickers give it
    assert background_spec("not a colour", None) is None and background_spec(None, None) is None
    assert background_spec("#00b140", "/uploads/sea.jpg") == "/uploads/sea.jpg"  # a photo wins
    assert safe_stem("../../etc/passwd") == "passwd" and safe_stem("..") == "upload"
    assert safe_stem("my photo (1).JPG") == "my_photo_1" and distinct(["a", "b", "a"]) == ["a", "b", "a_2"]
    assert SCORES == (0.9, 0.6, 0.2)


def test_the_cache_drops_the_least_recently_used_past_its_bytes():
    cache = BytesLru(max_bytes=250)
    for key in "abc":
        cache.get_or_make(key, lambda: np.zeros(100, dtype=np.uint8))
    assert "a" not in cache and "b" in cache and "c" in cache and cache.made == 3
    cache.get_or_make("b", lambda: pytest.fail("b is cached"))
    cache.get_or_make("d", lambda: np.zeros(100, dtype=np.uint8))
    assert "c" not in cache and "b" in cache  # b was used after c
    cache.get_or_make("huge", lambda: np.zeros(1000, dtype=np.uint8))
    assert "huge" in cache and "b" not in cache  # the newest stays, however large
