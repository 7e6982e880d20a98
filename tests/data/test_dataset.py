from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from data_factories import make_coco, make_yolo

from erpose.data.coco import read_coco
from erpose.data.dataset import PoseDataset, collate
from erpose.data.transforms import AugmentConfig
from erpose.data.yolo_pose import read_yolo_pose
from erpose.runtime.letterbox import unletterbox_keypoints


@pytest.fixture
def source(tmp_path):
    return read_coco(make_coco(tmp_path))


def test_validation_item_is_letterbox_and_maps_back(source):
    ds = PoseDataset(source, imgsz=32)
    item = ds[0]
    assert item.image.shape == (3, 32, 32) and item.image.dtype == np.uint8
    meta = item.meta
    assert meta["orig_size"] == (48, 64) and meta["ratio"] == (0.5, 0.5) and meta["pad"] == (0, 4)
    assert meta["image_id"] == 1 and meta["image_path"].endswith("a.jpg")
    kpts = item.annotations.keypoints[0]
    labelled = kpts[:, 2] > 0
    back = unletterbox_keypoints(kpts[labelled], meta["ratio"], meta["pad"])
    np.testing.assert_allclose(back[:, :2], source.samples[0].annotations.keypoints[0, labelled, :2], atol=1e-4)
    assert item.annotations.areas[0] == pytest.approx(500 * 0.25)
    # Padding rows are grey (114) and the image is RGB.
    assert (item.image[:, :4] == 114).all()


def test_training_items_deterministic_per_seed_epoch_index(source):
    cfg = AugmentConfig(degrees=10)
    a, b = PoseDataset(source, 64, cfg, seed=3), PoseDataset(source, 64, cfg, seed=3)
    first = a[1]
    np.testing.assert_array_equal(first.image, b[1].image)  # other instance, same draws
    _ = a[0]
    np.testing.assert_array_equal(a[1].image, first.image)  # access order does not matter
    a.set_epoch(1)
    assert not np.array_equal(a[1].image, first.image)
    a.set_epoch(0)
    np.testing.assert_array_equal(a[1].image, first.image)
    assert not np.array_equal(PoseDataset(source, 64, cfg, seed=4)[1].image, first.image)


def test_close_mosaic(source):
    ds = PoseDataset(source, 64, AugmentConfig(close_mosaic=2))
    assert ds.mosaic_enabled
    ds.set_epoch(7, total_epochs=10)
    assert ds.mosaic_enabled
    ds.set_epoch(8, total_epochs=10)
    assert not ds.mosaic_enabled
    ds2 = PoseDataset(source, 64, AugmentConfig())
    ds2.close_mosaic()
    assert not ds2.mosaic_enabled
    # Without mosaic and with no flip/affine/HSV, training reduces to a centred letterbox.
    plain = AugmentConfig(mosaic=0, scale=0, translate=0, fliplr=0, hsv_h=0, hsv_s=0, hsv_v=0)
    np.testing.assert_array_equal(PoseDataset(source, 32, plain)[0].image, PoseDataset(source, 32)[0].image)


def test_cache_gives_same_items_as_disk(source):
    cfg = AugmentConfig()
    cached, disk = PoseDataset(source, 64, cfg, cache_images=True), PoseDataset(source, 64, cfg)
    for i in range(len(source)):
        np.testing.assert_array_equal(cached[i].image, disk[i].image)
        np.testing.assert_array_equal(cached[i].annotations.keypoints, disk[i].annotations.keypoints)
    with pytest.raises(ValueError, match="cache_images"):
        PoseDataset(source, 64, cache_images="disk")


def test_unreadable_image_at_load_time_is_skipped(tmp_path, caplog):
    source = read_coco(make_coco(tmp_path))
    (tmp_path / "val" / "a.jpg").write_bytes(b"corrupted after reading the annotations")
    ds = PoseDataset(source, 32, AugmentConfig())
    with caplog.at_level(logging.WARNING, "erpose.data"):
        items = [ds[i] for i in range(len(ds))]
    assert [it.meta["image_id"] for it in items] == [2, 2]
    assert ds.num_bad == 1 and "a.jpg: cannot read image" in caplog.text
    (tmp_path / "val" / "b.jpg").unlink()
    with pytest.raises(ValueError, match="no readable image left"):
        PoseDataset(source, 32)[0]


def test_collate_pads_and_fills_missing_boxes(tmp_path):
    text = "0 0.1 0.2 2 0.3 0.4 2 0.5 0.6 0\n0 0.2 0.2 2 0.4 0.4 2 0 0 0\n"
    source = read_yolo_pose(make_yolo(tmp_path, {"a": text, "b": "0 0.5 0.5 0.2 0.4 0.1 0.2 2 0 0 0 0 0 0\n"},
                                      sizes={"a": (64, 64), "b": (64, 64)}), "train")
    ds = PoseDataset(source, 64)
    batch = collate([ds[0], ds[1]])
    assert batch.images.shape == (2, 3, 64, 64) and batch.images.dtype == torch.float32
    assert 0 <= batch.images.min() and batch.images.max() <= 1
    assert batch.keypoints.shape == (2, 2, 3, 3)
    assert batch.person_mask.tolist() == [[True, True], [True, False]]
    assert (batch.keypoints[1, 1] == 0).all() and batch.areas[1, 1] == 0
    # Person without a label box: the tight box of its labelled keypoints.
    np.testing.assert_allclose(batch.boxes[0, 0].numpy(), [6.4, 12.8, 19.2, 25.6], atol=1e-4)
    np.testing.assert_allclose(batch.boxes[1, 0].numpy(), [25.6, 19.2, 38.4, 44.8], atol=1e-4)
    assert batch.ignore_boxes.shape == (2, 0, 4) and batch.image_ids.tolist() == [1, 2]
    assert batch.meta[0]["image_path"].endswith("a.jpg")


def test_dataloader_with_workers(source):
    loader = torch.utils.data.DataLoader(PoseDataset(source, 32, AugmentConfig()), batch_size=2,
                                         num_workers=1, collate_fn=collate)
    (batch,) = list(loader)
    assert batch.images.shape == (2, 3, 32, 32)
