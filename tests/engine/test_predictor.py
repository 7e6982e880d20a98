import numpy as np
import pytest
import torch

from erpose.engine.predictor import Predictor, load_backend, oks_nms
from erpose.runtime.letterbox import letterbox, unletterbox_keypoints
from erpose.skeleton import COCO17, Skeleton

SKEL = Skeleton("pair", ("left_a", "right_a"), (0.05, 0.05), (1, 0), ((0, 1),))


class BrightestPixelModel(torch.nn.Module):
    """Stand-in PoseModel: one person per image, both keypoints at the centroid of the white input pixels."""

    skeleton = SKEL
    strides = (8, 16, 32)

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.batch_shapes = []
        self.calls = []

    def predict(self, images, conf=0.25, max_det=100):
        self.batch_shapes.append(tuple(images.shape))
        self.calls.append((conf, max_det))
        b, _, h, w = images.shape
        weight = (images.mean(dim=1) > 0.8).float()  # (B, H, W); grey padding (114) stays out
        ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        total = weight.sum(dim=(1, 2)).clamp(min=1)
        x, y = (weight * xs).sum(dim=(1, 2)) / total, (weight * ys).sum(dim=(1, 2)) / total
        kpt = torch.stack([x, y, torch.full_like(x, 0.9)], dim=1)  # (B, 3)
        row = torch.cat([torch.full((b, 1), 0.8), kpt, kpt], dim=1) * self.scale
        return [r[None] for r in row]


def _dot_image(h, w, x, y, half=4):
    """Black image with a white (2 half + 1)-pixel square centred on pixel (x, y)."""
    image = np.zeros((h, w, 3), np.uint8)
    image[y - half:y + half + 1, x - half:x + half + 1] = 255
    return image


def test_letterbox_mapping_hand_made_case():
    # 200 x 100 (w x h) to 128: scale 0.64, resized 128 x 64, padded 32 rows on top.
    image = np.zeros((100, 200, 3), np.uint8)
    boxed, ratio, pad = letterbox(image, 128)
    assert boxed.shape == (128, 128, 3) and pad == (0, 32)
    assert ratio == pytest.approx((0.64, 0.64))
    # Pixel-centre convention: the input centre (63.5, 63.5) is the original centre (99.5, 49.5),
    # and the input top-left of the picture (-0.5, 31.5) is the original corner (-0.5, -0.5).
    back = unletterbox_keypoints(np.array([[63.5, 63.5], [-0.5, 31.5]]), ratio, pad)
    np.testing.assert_allclose(back, [[99.5, 49.5], [-0.5, -0.5]], atol=1e-9)


@pytest.mark.parametrize("shape,point", [((100, 200), (150, 30)), ((90, 40), (10, 70))])
def test_keypoints_come_back_in_original_pixels(shape, point):
    model = BrightestPixelModel()
    predictor = Predictor(model, imgsz=64)
    (res,) = predictor(_dot_image(*shape, *point))
    assert res.orig_image.shape[:2] == shape and len(res) == 1
    # One input pixel covers 1 / scale original pixels; the argmax finds the pixel the dot fell in.
    tolerance = max(shape) / 64
    np.testing.assert_allclose(res.keypoints.xy[0, 0], point, atol=tolerance)
    assert res.scores[0] == pytest.approx(0.8) and res.keypoints.conf[0, 0] == pytest.approx(0.9)
    assert model.batch_shapes == [(1, 3, 64, 64)]


def test_batches_order_and_speed(tmp_path):
    import cv2

    points = [(6, 6), (30, 10), (12, 40)]
    for i, p in enumerate(points):
        cv2.imwrite(str(tmp_path / f"{i}.png"), _dot_image(48, 48, *p))
    model = BrightestPixelModel()
    predictor = Predictor(model, imgsz=50, batch_size=2, conf=0.3, max_det=7)  # 50 -> 64 (stride 32)
    results = predictor(tmp_path)
    assert predictor.imgsz == (64, 64)
    assert model.batch_shapes == [(2, 3, 64, 64), (1, 3, 64, 64)]
    assert model.calls[0] == (0.3, 7)
    assert [r.path.split("/")[-1] for r in results] == ["0.png", "1.png", "2.png"]
    for res, p in zip(results, points):
        np.testing.assert_allclose(res.keypoints.xy[0, 1], p, atol=1.0)
        assert set(res.speed) == {"preprocess", "inference", "postprocess"}
    assert predictor.totals["images"] == 3 and predictor.speed()["inference"] > 0


class DuplicateBackend:
    """A non-torch backend (the ONNX hook): numpy in, numpy out; two near-identical people and one apart."""

    skeleton = COCO17

    def predict(self, images, conf, max_det):
        rng = np.random.default_rng(0)
        base = np.stack([rng.uniform(10, 40, 17), rng.uniform(10, 40, 17), np.ones(17)], axis=1)
        people = [base, base + [0.5, 0.5, 0], base + [20, 20, 0]]
        rows = np.stack([np.concatenate([[s], p.reshape(-1)]) for s, p in zip([0.7, 0.9, 0.5], people)])
        return [rows.astype(np.float32) for _ in range(len(images))]


def test_backend_hook_sorting_and_oks_nms():
    image = np.zeros((64, 64, 3), np.uint8)
    (plain,) = Predictor(DuplicateBackend(), imgsz=64)(image)
    assert plain.scores.tolist() == pytest.approx([0.9, 0.7, 0.5])  # sorted by score
    (nms,) = Predictor(DuplicateBackend(), imgsz=64, nms=True)(image)
    assert nms.scores.tolist() == pytest.approx([0.9, 0.5])
    (top1,) = Predictor(DuplicateBackend(), imgsz=64, max_det=1)(image)
    assert len(top1) == 1


def test_oks_nms_hand_case():
    skel = Skeleton("one", ("a",), (0.1,), (0,))
    # Single keypoint: area from its extent is 0, so OKS is 1 only for identical points.
    dets = np.array([[0.9, 10, 10, 1], [0.8, 10, 10, 1], [0.7, 50, 50, 1]], np.float32)
    assert oks_nms(dets, skel, 0.5).tolist() == [0, 2]


def test_bad_inputs():
    with pytest.raises(ValueError, match="not a pose model"):
        Predictor(object())
    with pytest.raises(ValueError, match="conf"):
        Predictor(DuplicateBackend(), conf=2.0)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_backend("missing/model.pt")
    with pytest.raises(ValueError, match="device"):
        Predictor(BrightestPixelModel(), device="tpu9")


# ---- erpose predict (CLI) ---------------------------------------------------------------------

def _write_dot_images(folder, names, shape=(60, 80)):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        assert cv2.imwrite(str(folder / name), _dot_image(*shape, 20 + 10 * i, 30))


@pytest.fixture
def fake_weights(monkeypatch):
    """Make every --weights load the stand-in model (the CLI logic is what is under test here)."""
    from erpose.engine import predictor as predictor_module

    monkeypatch.setattr(predictor_module, "load_backend",
                        lambda weights, device="cpu", half=False: BrightestPixelModel())


def test_cli_images_json_txt_and_run_dirs(tmp_path, fake_weights, capsys):
    import json

    from erpose.cli.main import main

    _write_dot_images(tmp_path / "imgs", ["7.jpg", "12.png"])
    (tmp_path / "imgs" / "3.jpg").write_bytes(b"corrupt")
    argv = ["predict", "--weights", "fake.pt", "--source", str(tmp_path / "imgs"), "--imgsz", "64",
            "--save-json", "--save-txt", "--show-scores", "--project", str(tmp_path / "runs"), "--no-progress"]
    assert main(argv) == 0
    run = tmp_path / "runs" / "exp"
    assert sorted(p.name for p in run.iterdir()) == ["12.png", "7.jpg", "labels", "predictions.json"]
    dets = json.loads((run / "predictions.json").read_text())
    assert sorted(d["image_id"] for d in dets) == [7, 12]  # numeric stems are the COCO ids
    assert all(len(d["keypoints"]) == 3 * 2 and d["category_id"] == 1 for d in dets)
    by_id = {d["image_id"]: d for d in dets}
    assert by_id[7]["keypoints"][:2] == pytest.approx([20, 30], abs=0.5)  # original pixels
    label = (run / "labels" / "12.txt").read_text().split()
    assert len(label) == 5 + 6 and float(label[5]) == pytest.approx(30 / 80, abs=0.01)
    out = capsys.readouterr()
    assert "images/s" in out.out and "ms per image" in out.out and str(run) in out.out
    assert "1 unreadable image(s)/frame(s) skipped: " in out.out and "3.jpg" in out.out
    import cv2

    drawn = cv2.imread(str(run / "7.jpg"))
    assert drawn.shape == (60, 80, 3) and (drawn != cv2.imread(str(tmp_path / "imgs" / "7.jpg"))).any()
    assert main(argv) == 0 and (tmp_path / "runs" / "exp2" / "7.jpg").is_file()  # next run folder


def test_cli_video_and_id_mapping(tmp_path, fake_weights):
    import json

    import cv2

    from erpose.cli.main import main

    path = tmp_path / "walk.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (80, 60))
    for i in range(4):
        writer.write(_dot_image(60, 80, 20 + 5 * i, 30))
    writer.release()
    argv = ["predict", "--weights", "x.pt", "--source", str(path), "--imgsz", "64", "--batch", "3",
            "--save-json", "--save-txt", "--project", str(tmp_path / "runs"), "--name", "vid", "--no-progress"]
    assert main(argv) == 0
    run = tmp_path / "runs" / "vid"
    video = cv2.VideoCapture(str(run / "walk.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    video.release()
    assert sorted(p.name for p in (run / "labels").iterdir()) == [f"walk_{i}.txt" for i in range(4)]
    mapping = json.loads((run / "image_ids.json").read_text())
    assert [(m["id"], m["frame"]) for m in mapping] == [(i, i) for i in range(4)]
    assert {d["image_id"] for d in json.loads((run / "predictions.json").read_text())} == {0, 1, 2, 3}


@pytest.mark.parametrize(
    "weights,source,message",
    [("missing.pt", "IMG", "weights file not found"), ("fake.pt", "no/such/dir", "source not found")],
)
def test_cli_clear_errors(tmp_path, capsys, weights, source, message):
    from erpose.cli.main import main

    _write_dot_images(tmp_path, ["1.png"])
    source = str(tmp_path / "1.png") if source == "IMG" else source
    code = main(["predict", "--weights", str(tmp_path / weights), "--source", source,
                 "--project", str(tmp_path / "runs")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("erpose predict: error:") and message in err[-1]


def test_cli_end_to_end_real_erpose_n_checkpoint(tmp_path, capsys):
    """A fresh erpose-n saved as a checkpoint: files, JSON (3K values, ids) and txt from the real model."""
    import json

    import cv2

    from erpose.cli.main import main
    from erpose.models.checkpoint import save_checkpoint
    from erpose.models.zoo import build_model

    weights = save_checkpoint(tmp_path / "fresh.pt", build_model("erpose-n"))
    _write_dot_images(tmp_path / "imgs", ["frame_a.jpg", "frame_b.jpg"], shape=(70, 90))
    run_dir = tmp_path / "runs" / "e2e"
    argv = ["predict", "--weights", str(weights), "--source", str(tmp_path / "imgs" / "*.jpg"),
            "--imgsz", "64", "--conf", "0", "--max-det", "3", "--batch", "2", "--save-json", "--save-txt",
            "--project", str(tmp_path / "runs"), "--name", "e2e", "--no-progress"]
    assert main(argv) == 0
    dets = json.loads((run_dir / "predictions.json").read_text())
    assert len(dets) == 2 * 3  # conf 0 keeps max_det people per image
    assert all(len(d["keypoints"]) == 3 * 17 and len(d["bbox"]) == 4 for d in dets)
    assert sorted({d["image_id"] for d in dets}) == [0, 1]  # non-numeric stems: running index
    mapping = json.loads((run_dir / "image_ids.json").read_text())
    assert [m["file"].split("/")[-1] for m in mapping] == ["frame_a.jpg", "frame_b.jpg"]
    for name in ("frame_a", "frame_b"):
        assert cv2.imread(str(run_dir / f"{name}.jpg")).shape == (70, 90, 3)
        lines = (run_dir / "labels" / f"{name}.txt").read_text().splitlines()
        assert len(lines) == 3 and all(len(line.split()) == 5 + 3 * 17 for line in lines)
    scores = [d["score"] for d in dets if d["image_id"] == 0]
    assert scores == sorted(scores, reverse=True)
    # The same weights by zoo name (fresh model) also run.
    by_name = ["predict", "--weights", "erpose-n", "--source", str(tmp_path / "imgs"), "--imgsz", "64",
               "--no-save", "--save-json", "--project", str(tmp_path / "runs"), "--name", "byname"]
    assert main(by_name) == 0 and (tmp_path / "runs" / "byname" / "predictions.json").is_file()
    assert "images/s" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"\x00garbage bytes", None])
def test_cli_foreign_or_corrupt_weights(tmp_path, capsys, content):
    from erpose.cli.main import main

    _write_dot_images(tmp_path, ["1.png"])
    weights = tmp_path / "other.pt"
    if content is None:
        torch.save({"model": "someone else's"}, weights)  # a valid torch file of another kind
    else:
        weights.write_bytes(content)
    code = main(["predict", "--weights", str(weights), "--source", str(tmp_path / "1.png"),
                 "--project", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "other.pt" in err[0] and "checkpoint" in err[0]
