"""track_results over Results streams: sequences, id counting, JSON and CSV rows on a hand case."""

from __future__ import annotations

import numpy as np
import pytest

from erpose.engine.results import Results
from erpose.skeleton import Skeleton
from erpose.track import OneEuroConfig, TrackerConfig
from erpose.track.stream import track_results

SKELETON = Skeleton("three", ("a", "b", "c"), (0.1, 0.1, 0.1), (0, 1, 2), ((0, 1), (1, 2)))
IMAGE = np.zeros((40, 60, 3), np.uint8)


def result(path: str, index: int, x: float = 10.0) -> Results:
    kpts = np.array([[[x, 5.0, 0.9], [x + 10, 5.0, 0.8], [x, 25.0, 0.7]]], np.float32)
    return Results(IMAGE, path, np.array([0.9], np.float32), kpts, SKELETON, index)


def test_each_video_is_a_sequence_and_ids_keep_counting():
    stream = [result("a.mp4", i) for i in range(3)] + [result("b.mp4", i) for i in range(3)]
    out = list(track_results(stream))
    assert [o.tracks.track_ids.tolist() for o in out] == [[1]] * 3 + [[2]] * 3
    assert [o.sequence_frame for o in out] == [0, 1, 2, 0, 1, 2]


def test_images_are_one_sequence_numbered_in_order():
    out = list(track_results(result(f"{i}.png", 0) for i in range(3)))
    assert [o.tracks.track_ids.tolist() for o in out] == [[1]] * 3
    assert [o.sequence_frame for o in out] == [0, 1, 2]


def test_posetrack_annotation_and_csv_row_by_hand():
    config = TrackerConfig(smoothing=OneEuroConfig(enabled=False))
    (first,) = track_results([result("0.png", 0)], config)
    (ann,) = first.to_posetrack(image_id=7, first_annotation_id=3)
    assert ann["id"] == 3 and ann["image_id"] == 7 and ann["track_id"] == 1 and ann["category_id"] == 1
    assert ann["keypoints"] == pytest.approx([10, 5, 0.9, 20, 5, 0.8, 10, 25, 0.7])
    assert ann["scores"] == pytest.approx([0.9, 0.8, 0.7]) and ann["bbox"] == pytest.approx([10, 5, 10, 20])
    assert "keypoints_raw" not in ann
    (row,) = first.to_rows()
    assert row[:2] == [0, 1] and row[2:] == pytest.approx([0.9, 10, 5, 0.9, 20, 5, 0.8, 10, 25, 0.7])
