"""erpose.track imports and tracks in a process where importing torch fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is blocked in this test ({name})")
            return None

    sys.meta_path.insert(0, NoTorch())
    import numpy as np
    from erpose.track import PoseTracker, TrackerConfig
    from erpose.track.metrics import keypoint_mota
    from erpose.track.stream import track_results

    tracker = PoseTracker(np.full(3, 0.1), TrackerConfig())
    out = tracker.update(np.array([0.9]), np.array([[[0, 0, 1], [10, 0, 1], [0, 20, 1]]], float))
    assert out.track_ids.tolist() == [1]
    assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
    print("ok")
    """
)


def test_track_package_is_torch_free():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
