import subprocess
import sys

import pytest

from erpose.cli.main import VERBS, main


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_verb_help(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "erpose.cli.main", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "erpose" in proc.stdout


# ---- file-system errors: one line naming the path, exit 2 ------------------------------------

def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("erpose ")]
    assert len(lines) == 1, err
    return lines[0]


def _coco_pair(tmp_path):
    """A one-image ground truth and a results file for ``erpose val --predictions``."""
    import json

    gt = {"images": [{"id": 1, "width": 64, "height": 64, "file_name": "a.jpg"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 400.0,
                           "bbox": [10, 10, 20, 20], "num_keypoints": 17, "keypoints": [20, 20, 2] * 17}],
          "categories": [{"id": 1, "name": "person"}]}
    dets = [{"image_id": 1, "category_id": 1, "keypoints": [20, 20, 1] * 17, "score": 0.9}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "r.json").write_text(json.dumps(dets))
    return tmp_path / "gt.json", tmp_path / "r.json"


def test_error_line_names_the_path_of_an_os_error():
    import errno

    from erpose.cli.main import error_line

    assert error_line(IsADirectoryError(errno.EISDIR, "Is a directory", "out.onnx")) == "out.onnx: Is a directory"
    # A failed rename (the end of every atomic write) is about its target.
    assert error_line(OSError(errno.EROFS, "Read-only file system", ".tmp1", None, "m.json")) == "m.json: Read-only file system"
    assert error_line(ValueError("a.json: bad\nsecond line")) == "a.json: bad second line"


@pytest.mark.parametrize("where", ["is_dir", "under_file"])
def test_val_out_that_cannot_be_written_is_one_line(tmp_path, capsys, where):
    gt, results = _coco_pair(tmp_path)
    blocker = tmp_path / "blocker"
    if where == "is_dir":
        (tmp_path / "out" / "metrics.json").mkdir(parents=True)
        out = tmp_path / "out"
    else:
        blocker.write_text("a file")
        out = blocker / "out"
    assert main(["val", "--predictions", str(results), "--data", str(gt), "--out", str(out)]) == 2
    assert str(out / "metrics.json") in _error_line(capsys)


def test_read_only_file_system_is_one_line(tmp_path, capsys, monkeypatch):
    import errno
    import os

    gt, results = _coco_pair(tmp_path)

    def read_only(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", read_only)
    out = tmp_path / "out"
    assert main(["val", "--predictions", str(results), "--data", str(gt), "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert str(out / "metrics.json") in line and "Read-only file system" in line


def test_verbose_keeps_the_traceback(tmp_path):
    gt, results = _coco_pair(tmp_path)
    (tmp_path / "blocker").write_text("a file")
    with pytest.raises(OSError):
        main(["-v", "val", "--predictions", str(results), "--data", str(gt), "--out", str(tmp_path / "blocker")])
