"""Regenerate the example PNGs of docs/explain.md from real footage (bikes.mp4 street, vtest.avi pedestrians).

    python docs/img/explain/make_examples.py

Trains the tiny C3D of tests/tasks/explain/realclips.py (seconds), explains the 6 s street-then-pedestrians
video for 'pedestrians' with gradcam and occlusion, and copies each method's frames.png / temporal.png here.
"""

import shutil
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
torch.set_num_threads(1)

from tests.tasks.explain.realclips import mixed_video, train_classifier  # noqa: E402
from vidlens.tasks.explain.outputs import write_explanation  # noqa: E402
from vidlens.tasks.explain.video import explain_video  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    video, ckpt = mixed_video(tmp), train_classifier(tmp / "c3d", "c3d")
    for method in ("gradcam", "occlusion"):
        result = explain_video(ckpt, video, method=method, target="pedestrians")
        files = write_explanation(result, tmp / method, video=False)
        for name in ("frames.png", "temporal.png"):
            shutil.copy(files[name], Path(__file__).parent / f"{method}_{name}")
