"""erpose.images: truncated JPEGs and oversized images are refused by name, before decoding."""

import logging
import struct
import zlib

import cv2
import numpy as np
import pytest

from erpose.images import ImageFileError, jpeg_is_complete, read_image


def _jpeg(h=64, w=80, seed=0) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header says width x height (the pixel data does not match: never decoded)."""
    ok, buf = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    data = bytearray(buf.tobytes())
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def test_truncated_jpeg_is_refused_by_name(tmp_path):
    data = _jpeg()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None  # what OpenCV alone would use, grey-filled
    with pytest.raises(ImageFileError, match=r"cut\.jpg: truncated JPEG"):
        read_image(tmp_path / "cut.jpg")


def test_complete_jpegs_decode_as_imread(tmp_path):
    data = _jpeg()
    assert jpeg_is_complete(data)
    assert jpeg_is_complete(data + b"appended trailer \xff\xd8 of a motion photo")
    assert not jpeg_is_complete(data[:-2]) and not jpeg_is_complete(data[:40])
    (tmp_path / "a.jpg").write_bytes(data)
    assert np.array_equal(read_image(tmp_path / "a.jpg"), cv2.imread(str(tmp_path / "a.jpg")))


def test_thumbnail_end_marker_in_the_header_does_not_hide_truncation():
    data = _jpeg(200, 240)
    # An APP1 segment holding an embedded JPEG (as an EXIF thumbnail does), ending with FF D9.
    thumbnail = _jpeg(8, 8, seed=1)
    app1 = b"\xff\xe1" + struct.pack(">H", len(thumbnail) + 2) + thumbnail
    with_thumbnail = data[:2] + app1 + data[2:]
    assert jpeg_is_complete(with_thumbnail)
    assert not jpeg_is_complete(with_thumbnail[: len(with_thumbnail) - 200])


@pytest.mark.parametrize("width, height", [(12_000, 9_000), (20_000, 20_000)])
def test_image_above_the_pixel_limit_is_refused_before_decoding(tmp_path, width, height):
    (tmp_path / "big.png").write_bytes(_png_claiming(width, height))
    with pytest.raises(ImageFileError, match=r"big\.png: .*limit of 100"):
        read_image(tmp_path / "big.png")


def test_header_size_reader_applies_the_pixel_limit(tmp_path):
    from erpose.data.source import image_size

    (tmp_path / "big.png").write_bytes(_png_claiming(12_000, 9_000))
    with pytest.raises(OSError, match=r"big\.png: .*megapixels"):
        image_size(tmp_path / "big.png")


def test_prediction_source_skips_and_counts_a_truncated_jpeg(tmp_path, caplog):
    from erpose.runtime.sources import open_source

    data = _jpeg()
    (tmp_path / "a.jpg").write_bytes(data)
    (tmp_path / "b.jpg").write_bytes(data[: len(data) // 2])
    source = open_source(tmp_path)
    with caplog.at_level(logging.WARNING):
        frames = list(source)
    assert [p.split("/")[-1] for _, p, _ in frames] == ["a.jpg"]
    assert len(source.skipped) == 1 and source.skipped[0][0].endswith("b.jpg")
    assert "truncated JPEG" in source.skipped[0][2] and "b.jpg" in caplog.text


def test_training_dataset_skips_and_counts_a_truncated_jpeg(tmp_path, caplog):
    import json

    from erpose.data.coco import read_coco
    from erpose.data.dataset import PoseDataset

    data = _jpeg(48, 64)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "img" / "b.jpg").write_bytes(data)
    kpts = [20, 20, 2] + [0, 0, 0] * 16
    gt = {"images": [{"id": i, "file_name": f"{n}.jpg", "width": 64, "height": 48} for i, n in ((1, "a"), (2, "b"))],
          "annotations": [{"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "num_keypoints": 1,
                           "area": 100.0, "bbox": [10, 10, 20, 20], "keypoints": kpts} for i in (1, 2)],
          "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    dataset = PoseDataset(read_coco(tmp_path / "gt.json", tmp_path / "img"), imgsz=64, augment=None)
    with caplog.at_level(logging.WARNING):
        item = dataset[0]
    assert item.meta["image_id"] == 2 and dataset.num_bad == 1
    assert "a.jpg: truncated JPEG" in caplog.text
