import logging

import cv2
import numpy as np
import pytest

from erpose.runtime.sources import SourceError, open_source


def _write_images(folder, names, size=(24, 32)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        assert cv2.imwrite(str(folder / name), np.full((*size, 3), 10 * (i + 1), np.uint8))


def test_folder_skips_and_reports_corrupt_image(tmp_path, caplog):
    _write_images(tmp_path, ["b.png", "a.jpg"])
    (tmp_path / "c.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "notes.txt").write_text("ignored: not media")
    source = open_source(tmp_path)
    assert [p.split("/")[-1] for p in source.items] == ["a.jpg", "b.png", "c.jpg"]
    with caplog.at_level(logging.WARNING):
        frames = list(source)
    assert [p.split("/")[-1] for _, p, _ in frames] == ["a.jpg", "b.png"]
    assert all(f.dtype == np.uint8 and f.shape == (24, 32, 3) for f, _, _ in frames)
    assert len(source.skipped) == 1 and source.skipped[0][0].endswith("c.jpg")
    assert "c.jpg" in caplog.text


def test_glob_and_single_image(tmp_path):
    _write_images(tmp_path / "sub", ["x1.png", "x2.png", "y.jpg"])
    source = open_source(str(tmp_path / "**" / "x*.png"))
    assert len(list(source)) == 2 and source.total == 2
    frame, path, index = next(iter(open_source(tmp_path / "sub" / "y.jpg")))
    assert path.endswith("y.jpg") and index == 0 and frame.shape == (24, 32, 3)


def test_video_frames(tmp_path):
    path = str(tmp_path / "clip.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    assert writer.isOpened()
    for i in range(7):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    source = open_source(path)
    frames = list(source)
    assert source.total == 7
    assert [index for _, _, index in frames] == list(range(7))
    assert frames[0][0].shape == (48, 64, 3) and not source.skipped


def test_arrays_and_kinds(tmp_path):
    arrays = [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32)]
    source = open_source(arrays)
    frames = list(source)
    assert [name for _, name, _ in frames] == ["image0", "image1"]  # grayscale promoted, float skipped
    assert frames[1][0].shape == (8, 8, 3) and len(source.skipped) == 1
    assert open_source(0).kind == "camera" and open_source("1").items == ["1"]
    assert open_source("rtsp://example.com/live").kind == "stream"


@pytest.mark.parametrize("bad", ["does/not/exist.jpg", "nothing_here_*.png", 3.5])
def test_unknown_source_is_a_clear_error(tmp_path, bad):
    with pytest.raises(SourceError):
        open_source(bad)


def test_empty_folder_and_wrong_suffix(tmp_path):
    with pytest.raises(SourceError, match="no images or videos"):
        open_source(tmp_path)
    (tmp_path / "weights.pt").write_bytes(b"x")
    with pytest.raises(SourceError, match="not an image or video"):
        open_source(tmp_path / "weights.pt")
