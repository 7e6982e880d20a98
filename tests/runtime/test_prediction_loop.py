"""The one prediction loop (erpose.runtime.predictor): thresholding, un-letterbox, input size, backends."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

from erpose.limits import LimitError
from erpose.runtime.letterbox import letterbox
from erpose.runtime.predictor import Predictor, input_size, postprocess, preprocess
from erpose.skeleton import COCO17


class RecordingBackend:
    """Returns fixed rows (input pixels) and records what the predictor asked for."""

    skeleton = COCO17
    strides = (8, 16, 32)

    def __init__(self, scores, imgsz=None, fixed_imgsz=None):
        self.scores = np.asarray(scores, np.float32)
        self.calls: list[tuple[tuple, float, int]] = []
        if imgsz is not None:
            self.imgsz = imgsz
        self.fixed_imgsz = fixed_imgsz

    def predict(self, images, conf, max_det):
        self.calls.append((images.shape, conf, max_det))
        rows = np.zeros((len(self.scores), 1 + 3 * 17), np.float32)
        rows[:, 0] = self.scores
        rows[:, 1::3] = 32.0  # x
        rows[:, 2::3] = 16.0  # y
        rows[:, 3::3] = 0.9
        return [rows.copy() for _ in range(len(images))]


def test_conf_is_passed_to_the_backend_and_not_applied_again():
    backend = RecordingBackend([0.05, 0.9, 0.3])  # the backend "forgot" to threshold the 0.05 row
    (res,) = Predictor(backend, imgsz=64, conf=0.25, max_det=7)(np.zeros((64, 64, 3), np.uint8))
    assert backend.calls == [((1, 3, 64, 64), 0.25, 7)]
    # Thresholding is the backend's job: the loop orders by score and keeps every row it was given.
    np.testing.assert_allclose(res.scores, [0.9, 0.3, 0.05])


def test_postprocess_orders_cuts_and_unletterboxes_by_hand():
    image = np.zeros((50, 100, 3), np.uint8)  # letterboxed to 64: scale 0.64, 32 x 64 image, pad 16 top
    _, ratio, pad = letterbox(image, (64, 64))
    rows = np.zeros((3, 1 + 3 * 17), np.float32)
    rows[:, 0] = [0.2, 0.8, 0.5]
    rows[:, 1::3], rows[:, 2::3], rows[:, 3::3] = 31.5, 31.5, 1.0  # the centre of the input (pixel centres)
    scores, keypoints = postprocess(rows, (ratio, pad), 17, max_det=2)
    np.testing.assert_allclose(scores, [0.8, 0.5])
    assert keypoints.shape == (2, 17, 3) and keypoints.dtype == np.float32
    # The input centre is the image centre: (49.5, 24.5) in the 100 x 50 image.
    np.testing.assert_allclose(keypoints[0, 0, :2], [49.5, 24.5], atol=1e-4)


def test_postprocess_oks_nms_drops_a_duplicate_person():
    rows = np.zeros((2, 1 + 3 * 17), np.float32)
    rows[:, 0] = [0.9, 0.8]
    rows[:, 1::3] = np.linspace(10, 50, 17)
    rows[:, 2::3] = np.linspace(5, 60, 17)
    rows[:, 3::3] = 1.0
    identity = ((1.0, 1.0), (0, 0))
    assert len(postprocess(rows, identity, 17)[0]) == 2
    scores, _ = postprocess(rows, identity, 17, sigmas=COCO17.sigmas_array())
    np.testing.assert_allclose(scores, [0.9])


def test_preprocess_divides_like_the_validation_transform():
    image = np.full((4, 4, 3), (10, 20, 200), np.uint8)  # BGR
    batch, params = preprocess([image], (4, 4))
    assert batch.shape == (1, 3, 4, 4) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0, :, 0, 0], np.array([200, 20, 10], np.float32) / np.float32(255.0))
    assert params[0][1] == (0, 0)


def test_input_size_rules(caplog):
    assert input_size(RecordingBackend([1.0]), None) == (640, 640)  # nothing named: 640
    assert input_size(RecordingBackend([1.0], imgsz=(96, 128)), None) == (96, 128)  # the backend's own
    with caplog.at_level(logging.WARNING):
        assert input_size(RecordingBackend([1.0]), 50) == (64, 64)  # rounded up to the stride 32
    assert "not a multiple" in caplog.text
    fixed = RecordingBackend([1.0], imgsz=(64, 64), fixed_imgsz=(64, 64))
    assert input_size(fixed, None) == (64, 64) and input_size(fixed, 64) == (64, 64)
    with pytest.raises(ValueError, match=r"fixed input of \(64, 64\), not imgsz \(128, 128\)"):
        input_size(fixed, 128)
    with pytest.raises(LimitError, match="above the limit"):
        input_size(RecordingBackend([1.0]), 100_000)


def test_a_backend_without_predict_or_skeleton_is_refused():
    with pytest.raises(ValueError, match="not a pose model or backend"):
        Predictor(object())


def test_the_loop_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import erpose.runtime.predictor, erpose.runtime.predict, erpose.runtime.sources, erpose.runtime.results\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_old_import_paths_are_the_same_objects():
    import erpose.engine.results as old_results
    import erpose.engine.sources as old_sources
    import erpose.runtime.results as results
    import erpose.runtime.sources as sources

    assert old_results.Results is results.Results and old_sources.open_source is sources.open_source
