"""Summarize one video file: shots -> segments -> frame importance -> knapsack -> summary mp4.

The steps follow the SumMe/TVSum practice (Zhang et al. 2016; Zhou et al. 2018), on a raw file:

1. shots from `vidlens.tasks.shots.detect_shots`; a shot longer than the sub-shot length
   (`max_segment_s`, shortened so the budget holds several: `selection.segment_seconds`) is cut into
   equal sub-shots (the benchmarks' KTS change points play this role), so a long shot can be partly kept;
2. frames sampled at `fps` (2 by default, the benchmarks' every-15th-frame) are embedded
   (`vidlens.tasks.frame_features`) and scored: `diverse` (default) ranks segments by greedy facility
   location (`selection.diverse_ranking`: content coverage, position-free), `dsn` trains a DSN policy on
   this video alone (unsupervised REINFORCE, no corpus; its LSTM restarts at every shot), `model` uses a
   DSN trained by `vidlens summarize train`, `kmeans` and `uniform` are the classic baselines;
3. `diverse` keeps segments in its order while they fit `ratio` of the video; the others score a segment
   by the mean of its frames' scores and a 0/1 knapsack maximises total score x length (the protocol's
   rule); then the best unchosen segment is cut to the leftover budget (`selection.fill_budget`);
4. the chosen segments are cut, frame-exact and with their audio, into `summary.mp4`.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.errors import ConfigError
from vidlens.io import VideoInfo, VideoWriter, iter_frames, probe, read_audio
from vidlens.tasks.frame_features import FEATURE_KINDS, FrameFeatures, centred_unit_rows, sample_frame_features

SCORERS = ("diverse", "dsn", "kmeans", "uniform", "model")


@dataclass
class SummaryConfig:
    ratio: float = 0.15  # summary length / video length
    method: str = "diverse"  # how segments are scored: diverse | dsn | kmeans | uniform | model
    model: str | None = None  # checkpoint from `vidlens summarize train` (method "model")
    fps: float = 2.0  # frames scored per second
    features: str = "mobilenet_v2"  # frame embeddings: mobilenet_v2 | hsv
    max_segment_s: float = 4.0  # longer shots are split into equal sub-shots no longer than this (shorter for short budgets)
    dsn_epochs: int = 100  # per-video DSN training (method "dsn")
    seed: int = 0
    audio: bool = True  # keep the audio track in summary.mp4 (when the video has one)
    keyframes: bool = True  # save keyframes of the kept segments and a contact sheet
    video: bool = True  # write summary.mp4
    shot_method: str = "learned"  # shot detection: learned | classic | both (vidlens.tasks.shots.ShotConfig.method)

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise ConfigError(None, f"ratio must be in (0, 1), got {self.ratio}")
        if self.method not in SCORERS:
            raise ConfigError(None, f"method must be one of {', '.join(SCORERS)}, got {self.method!r}")
        if (self.method == "model") != (self.model is not None):
            raise ConfigError(None, "a trained model is used with method 'model' and needs --model CKPT (and only then)")
        if self.shot_method not in ("learned", "classic", "both"):
            raise ConfigError(None, f"shot_method must be learned, classic or both, got {self.shot_method!r}")
        if self.features not in FEATURE_KINDS:
            raise ConfigError(None, f"features must be one of {', '.join(FEATURE_KINDS)}, got {self.features!r}")
        if self.fps <= 0 or self.max_segment_s <= 0 or self.dsn_epochs < 1:
            raise ConfigError(None, "fps and max_segment_s must be positive and dsn_epochs at least 1")


@dataclass
class Segment:
    """Frames `[start_frame, end_frame)` of the source; `score` = mean importance of its frames."""

    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    shot: int
    score: float = 0.0
    selected: bool = False

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["start_s"], out["end_s"] = round(self.start_s, 3), round(self.end_s, 3)
        out["score"] = round(self.score, 5)
        return out


@dataclass
class SummaryResult:
    path: str
    info: VideoInfo
    segments: list[Segment]
    features: FrameFeatures
    scores: np.ndarray  # (N,) importance of each sampled frame, in [0, 1]
    num_shots: int
    config: SummaryConfig
    files: dict[str, Path] = field(default_factory=dict)
    ratio_honoured: bool = True  # kept length within max(5 % of the video, one segment) of ratio x length
    ratio_note: str | None = None  # why not, when it is not

    @property
    def selected(self) -> list[Segment]:
        return [s for s in self.segments if s.selected]

    @property
    def summary_frames(self) -> int:
        return sum(s.num_frames for s in self.selected)


def split_into_segments(shots: list[Any], fps: float, max_segment_s: float) -> list[Segment]:
    """Shots (`start_frame`, `end_frame`) -> segments no longer than `max_segment_s`, equal parts per shot."""
    longest = max(1, int(round(max_segment_s * fps)))
    out: list[Segment] = []
    for shot_id, shot in enumerate(shots):
        start, end = int(shot.start_frame), int(shot.end_frame)
        parts = max(1, math.ceil((end - start) / longest))
        edges = np.linspace(start, end, parts + 1).round().astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            if b > a:
                out.append(Segment(int(a), int(b), a / fps, b / fps, shot_id))
    return out


def shot_bounds(shots: list[Any], frames: np.ndarray) -> list[tuple[int, int]]:
    """`[a, b)` ranges of sampled-frame indices, one per shot that holds samples (they tile `frames` `(N,)`)."""
    starts = np.asarray([int(s.start_frame) for s in shots] or [0])
    ids = np.searchsorted(starts, frames, side="right") - 1
    edges = [0, *(np.nonzero(np.diff(ids))[0] + 1).tolist(), len(frames)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def frame_importance(features: FrameFeatures, config: SummaryConfig,
                     trained: tuple[Any, dict[str, Any]] | None = None, shots: list[Any] | None = None) -> np.ndarray:
    """Importance `(N,)` in [0, 1] of each sampled frame, by `config.method` (not "diverse": see `plan_summary`).

    `trained`: `(model, checkpoint)` from `load_video_summarizer` for method "model" (loaded here if None).
    `shots` (with `start_frame`): method "dsn" restarts its LSTM at each of them, so that a frame's importance
    follows its shot's content wherever the shot is (over the whole video at once, a bi-LSTM trained on one
    video learns where frames are: ~1.0 at the start sliding to 0 at the end on a real 4-source film).
    """
    from vidlens.tasks.summarize import baselines, dsn
    from vidlens.tasks.summarize.videos import video_dsn_config

    x = features.features
    if len(x) == 0:
        return np.zeros(0, np.float32)
    if config.method == "uniform":
        scores = baselines.uniform_scores(len(x), ratio=config.ratio)
    elif config.method == "kmeans":
        scores = baselines.kmeans_scores(x, seed=config.seed)
    elif config.method == "model":
        assert config.model is not None
        scores = _model_scores(*(trained or load_video_summarizer(config.model)), x, config.model)
    else:  # one video, no corpus: a DSN trained on this video alone (see `videos.py` for the settings)
        prepared = centred_unit_rows(x)
        bounds = shot_bounds(shots, features.frames) if shots else None
        model, _ = dsn.train_dsn([prepared], video_dsn_config(config.dsn_epochs, config.seed),
                                 shots=[bounds] if bounds else None)
        scores = dsn.dsn_scores(model, prepared, bounds)
    scores = np.asarray(scores, dtype=np.float32)
    low, high = float(scores.min()), float(scores.max())
    return (scores - low) / (high - low) if high > low else np.full_like(scores, 0.5)


def load_video_summarizer(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """`(model, checkpoint)` of a summarizer trained on video-file features; its `preprocess` says which
    features (`features`, `fps`, `normalise`) it expects. H5-trained models are refused with the way out."""
    from vidlens.tasks.summarize.checkpoint import load_summarizer

    model, ckpt = load_summarizer(path)
    pre = ckpt.get("preprocess") or {}
    if pre.get("features") not in FEATURE_KINDS:
        raise ConfigError(path, f"this model was trained on {pre.get('features', 'unknown')} features, which vidlens "
                                "cannot compute from a video; train one on videos: vidlens summarize train --videos DIR")
    return model, ckpt


def _model_scores(model: Any, ckpt: dict[str, Any], x: np.ndarray, path: str | os.PathLike[str]) -> np.ndarray:
    from vidlens.tasks.summarize.dsn import DSN, dsn_scores
    from vidlens.tasks.summarize.supervised import predict_scores
    from vidlens.tasks.summarize.videos import NORMALISATION

    if getattr(model, "in_dim", x.shape[1]) != x.shape[1]:
        raise ConfigError(path, f"the model takes {model.in_dim}-d features, the video gave {x.shape[1]}-d")
    if (ckpt.get("preprocess") or {}).get("normalise") == NORMALISATION:
        x = centred_unit_rows(x)
    return dsn_scores(model, x) if isinstance(model, DSN) else predict_scores(model, x)


def score_segments(segments: list[Segment], features: FrameFeatures, scores: np.ndarray) -> None:
    """Each segment's score: the mean importance of the sampled frames inside it (nearest sample if none)."""
    if len(scores) == 0:
        return
    for seg in segments:
        inside = (features.frames >= seg.start_frame) & (features.frames < seg.end_frame)
        if inside.any():
            seg.score = float(scores[inside].mean())
        else:
            middle = (seg.start_frame + seg.end_frame) / 2
            seg.score = float(scores[int(np.argmin(np.abs(features.frames - middle)))])


def select_segments(segments: list[Segment], num_frames: int, ratio: float, *, fps: float = 25.0,
                    order: list[int] | None = None) -> list[Segment]:
    """Mark the kept segments and return the (possibly re-cut) list; total length ~ `ratio x frames`.

    Whole segments first: in `order` (best first) when given, else by a 0/1 knapsack (max sum of
    score x length, total <= floor(ratio x frames)); then the best unchosen segment is cut shorter to
    the leftover budget (`selection.fill_budget`), so a budget smaller than every segment still holds.
    """
    from vidlens.tasks.summarize.knapsack import knapsack
    from vidlens.tasks.summarize.selection import fill_budget, take_in_order

    capacity = int(math.floor(num_frames * ratio))
    if order is not None:
        take_in_order(segments, order, capacity)
    else:
        values = [s.score * s.num_frames for s in segments]
        for i in knapsack(values, [s.num_frames for s in segments], capacity):
            segments[i].selected = True
        # ties (equal scores) by length, then by the content score; never by position alone
        order = sorted(range(len(segments)), key=lambda i: (-segments[i].score, segments[i].num_frames))
    return fill_budget(segments, capacity, order, fps, slack=int(0.025 * num_frames))


def merged_spans(segments: list[Segment]) -> list[tuple[int, int]]:
    """Selected segments as frame spans, neighbours merged."""
    spans: list[list[int]] = []
    for seg in segments:
        if not seg.selected:
            continue
        if spans and spans[-1][1] == seg.start_frame:
            spans[-1][1] = seg.end_frame
        else:
            spans.append([seg.start_frame, seg.end_frame])
    return [(a, b) for a, b in spans]


def write_summary_video(video: str | os.PathLike[str], spans: list[tuple[int, int]], out: str | os.PathLike[str],
                        info: VideoInfo, *, audio: bool = True) -> Path:
    """Cut frames `[a, b)` of every span into one H.264 mp4, each span's audio cut to the same length."""
    rate = int(info.audio_sample_rate or 0) if audio and info.has_audio else 0
    channels = 1 if (info.audio_channels or 1) == 1 else 2
    fps = info.fps if info.fps > 0 else 25.0
    with VideoWriter(out, fps=fps, audio_rate=rate or None, audio_channels=channels) as writer:
        for a, b in spans:
            written = 0
            for frame in iter_frames(video, start=max(a / fps - 1.0, 0.0) or None):
                if frame.index < a:
                    continue
                if frame.index >= b:
                    break
                writer.write(frame.image)
                written += 1
            if rate and written:
                want = int(round(written / fps * rate))
                sound = read_audio(video, sample_rate=rate, mono=channels == 1, start=a / fps, end=a / fps + written / fps)
                sound = sound[:, :want] if sound.shape[1] >= want else np.pad(sound, ((0, 0), (0, want - sound.shape[1])))
                writer.write_audio(sound)
    return Path(out)


def summarize_video(
    video: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: SummaryConfig | None = None,
    *,
    progress: Callable[[str, float], None] | None = None,
    embedder: Any = None,
    trained: tuple[Any, dict[str, Any]] | None = None,
) -> SummaryResult:
    """Run the whole pipeline and write its outputs into `out_dir`; `progress(stage, seconds_done)`.

    `embedder` (a `FrameEmbedder`) and `trained` (from `load_video_summarizer(config.model)`) are
    models already loaded, for a service that summarizes many videos; by default they load here.
    """
    from vidlens.tasks.shots import detect_shots

    config = config or SummaryConfig()
    info = probe(video)  # unreadable input fails here, with the reason
    if config.method != "model":
        trained = None
    elif trained is None:  # the features the model was trained on, from its checkpoint
        assert config.model is not None
        trained = load_video_summarizer(config.model)
    if trained is not None:
        pre = trained[1]["preprocess"]
        config = replace(config, features=pre["features"], fps=float(pre.get("fps", config.fps)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fps = info.fps if info.fps > 0 else 25.0
    from vidlens.tasks.shots import ShotConfig

    shots = detect_shots(video, ShotConfig(method=config.shot_method), progress=(lambda n: progress("shots", n / fps)) if progress else None)
    if embedder is not None and getattr(embedder, "kind", None) != config.features:
        embedder = None
    features = sample_frame_features(video, fps=config.fps, kind=config.features, embedder=embedder,
                                     progress=(lambda t: progress("features", t)) if progress else None)
    result = plan_summary(str(video), info, shots.scenes, features, config, trained)
    result.files.update(write_summary_outputs(result, out))
    if config.video and result.selected:
        if progress:
            progress("summary video", 0.0)
        result.files["summary.mp4"] = write_summary_video(video, merged_spans(result.segments), out / "summary.mp4", info,
                                                          audio=config.audio)
    if config.keyframes and result.selected:
        from vidlens.tasks.keyframes import KeyframeConfig, choose_keyframes, save_keyframes

        kf_config = KeyframeConfig(fps=config.fps, features=config.features, seed=config.seed)
        chosen = choose_keyframes(features, result.selected, kf_config)
        result.files.update(save_keyframes(video, chosen, out, kf_config,
                                           title=f"{Path(video).name}: summary keyframes"))
    return result


def plan_summary(video: str, info: VideoInfo, shots: list[Any], features: FrameFeatures, config: SummaryConfig,
                 trained: tuple[Any, dict[str, Any]] | None = None) -> SummaryResult:
    """Segments, scores and selection from already detected `shots` and sampled `features` (writes nothing)."""
    from vidlens.tasks.frame_features import centred_unit_rows
    from vidlens.tasks.summarize.selection import diverse_ranking, ratio_check, segment_members, segment_seconds

    fps = info.fps if info.fps > 0 else 25.0
    longest = segment_seconds(info.num_frames / fps, config.ratio, config.max_segment_s)
    segments = split_into_segments(shots, fps, longest)
    order = None
    if config.method == "diverse":
        members = segment_members(segments, features.frames)
        order, gains = diverse_ranking(centred_unit_rows(features.features), members) if len(features) else ([], None)
        flash = [i for i in order if segments[i].num_frames < 0.3 * fps]  # a stray frame or two: last resort
        order = [i for i in order if i not in flash] + flash
        scores = np.zeros(len(features), np.float32)
        for seg, gain, inside in zip(segments, gains if gains is not None else [], members):
            seg.score = float(gain)
            scores[inside] = np.maximum(scores[inside], gain)
    else:
        scores = frame_importance(features, config, trained, shots)
        score_segments(segments, features, scores)
    segments = select_segments(segments, info.num_frames, config.ratio, fps=fps, order=order)
    result = SummaryResult(video, info, segments, features, scores, len(shots), config)
    widest = max((s.num_frames for s in segments), default=0)
    result.ratio_honoured, result.ratio_note = ratio_check(result.summary_frames, info.num_frames, config.ratio, widest)
    return result


def write_summary_outputs(result: SummaryResult, out: Path) -> dict[str, Path]:
    """`summary.json` (segments, scores, selection), `segments.csv`, `importance.png`."""
    from vidlens.report.importance import plot_importance

    chosen = result.summary_frames
    doc = {
        "video": result.path,
        "fps": result.info.fps,
        "num_frames": result.info.num_frames,
        "duration_s": round(result.info.duration_s, 3),
        "num_shots": result.num_shots,
        "ratio_requested": result.config.ratio,
        "ratio_achieved": round(chosen / max(result.info.num_frames, 1), 4),
        "ratio_honoured": result.ratio_honoured,
        "ratio_note": result.ratio_note,
        "summary_s": round(chosen / (result.info.fps or 25.0), 3),
        "selected": [s.to_dict() for s in result.selected],
        "segments": [s.to_dict() for s in result.segments],
        "frame_scores": {"time_s": [round(float(t), 3) for t in result.features.times_s],
                         "frame": result.features.frames.tolist(),
                         "score": [round(float(v), 5) for v in result.scores]},
        "config": asdict(result.config),
    }
    (out / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    with open(out / "segments.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["start_s", "end_s", "start_frame", "end_frame", "shot", "score", "selected"])
        for s in result.segments:
            writer.writerow([f"{s.start_s:.3f}", f"{s.end_s:.3f}", s.start_frame, s.end_frame, s.shot, f"{s.score:.5f}", int(s.selected)])
    png = plot_importance(result.features.times_s, result.scores,
                          [(s.start_s, s.end_s, s.selected) for s in result.segments],
                          out / "importance.png", title=f"{Path(result.path).name}: kept {doc['summary_s']} s "
                                                         f"of {doc['duration_s']} s ({doc['ratio_achieved']:.0%})")
    return {"summary.json": out / "summary.json", "segments.csv": out / "segments.csv", "importance.png": png}
