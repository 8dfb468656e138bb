"""Near-duplicate groups: which videos of a collection show the same footage, and where.

Two stages, as copy detection systems do: cheap candidates, then an exact check.
1. Candidates: each video's frame descriptors (`embed`) pooled over sliding windows (`window_s`,
   hop `window_s/2`, plus the whole video); two videos are candidates when any pair of their windows
   has cosine similarity >= `candidate_sim`.
2. Confirmation: `align` finds the best frame-level diagonal between the two; a pair is a copy when
   that match lasts `min_len_s` with mean similarity >= `min_score`.
Confirmed pairs are joined into groups (connected components); each member carries the time range
that matched the others.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vidlens.errors import ConfigError, VidlensError
from vidlens.tasks.retrieval.align import THRESHOLD, Match, align
from vidlens.tasks.retrieval.embed import EmbedConfig, VideoEmbedder, pool, unit_rows


@dataclass
class DedupConfig:
    """`candidate_sim`: window-vector cosine that makes a pair worth aligning; `threshold`: frame-pair
    similarity a copy's diagonal stays above; `min_score`/`min_len_s`: what a confirmed copy needs."""

    candidate_sim: float = 0.6
    threshold: float = THRESHOLD
    min_score: float = 0.6
    min_len_s: float = 2.0
    window_s: float = 10.0

    def check(self) -> None:
        if not 0 < self.window_s or self.min_len_s <= 0:
            raise ConfigError(None, f"window_s and min_len_s must be positive (got {self.window_s}, {self.min_len_s})")
        for name in ("candidate_sim", "threshold", "min_score"):
            v = getattr(self, name)
            if not -1.0 <= v <= 1.0:
                raise ConfigError(None, f"{name} must be a cosine similarity in [-1, 1], got {v}")


@dataclass
class VideoRows:
    """One video's frame descriptors: `features (N,D)` unit rows at `times_s (N,)`."""

    video: str  # path (or the index's stored path)
    features: np.ndarray
    times_s: np.ndarray
    duration_s: float


@dataclass
class DedupGroup:
    """Videos showing the same footage: `members` [{video, start_s, end_s}] (the part that matched),
    `pairs` [{a, b, a_start_s, a_end_s, b_start_s, b_end_s, speed, score}]."""

    members: list[dict]
    pairs: list[dict]


@dataclass
class DedupResult:
    groups: list[DedupGroup]
    videos: int  # videos compared
    candidates: int  # pairs aligned
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason
    config: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"videos": self.videos, "candidates": self.candidates, "config": self.config,
                "groups": [asdict(g) for g in self.groups],
                "failed": [{"video": k, "reason": v} for k, v in self.failed.items()]}


def window_vectors(features: np.ndarray, times_s: np.ndarray, window_s: float) -> np.ndarray:
    """`(W,D)` unit vectors: the whole video's pool and pools of windows `window_s` long every `window_s/2`."""
    out = [pool(features)]
    if times_s.size:
        t0, t1 = float(times_s[0]), float(times_s[-1])
        for s in np.arange(t0, max(t0, t1 - window_s) + 1e-9, window_s / 2):
            sel = (times_s >= s) & (times_s < s + window_s)
            if sel.sum() >= 2:
                out.append(pool(features[sel]))
    return np.stack(out)


def candidate_pairs(videos: list[VideoRows], window_s: float, candidate_sim: float) -> list[tuple[int, int, float]]:
    """`(i, j, best window similarity)` for i < j whose windows come within `candidate_sim`, best first."""
    vecs, owner = [], []
    for i, v in enumerate(videos):
        w = window_vectors(v.features, v.times_s, window_s)
        vecs.append(w)
        owner.extend([i] * len(w))
    if len(videos) < 2:
        return []
    X = unit_rows(np.concatenate(vecs))
    owner_a = np.asarray(owner)
    n = len(videos)
    best = np.full((n, n), -np.inf, dtype=np.float32)
    block = 4096
    for a in range(0, X.shape[0], block):  # blocks bound memory at (block x W) similarities
        sims = X[a:a + block] @ X.T
        rows = owner_a[a:a + block]
        for r in np.unique(rows):
            m = sims[rows == r].max(axis=0)
            np.maximum.at(best[r], owner_a, m)
    best = np.maximum(best, best.T)
    i, j = np.nonzero(np.triu(best >= candidate_sim, k=1))
    pairs = [(int(a), int(b), float(best[a, b])) for a, b in zip(i, j, strict=True)]
    return sorted(pairs, key=lambda p: -p[2])


def find_duplicates(videos: list[VideoRows], config: DedupConfig | None = None,
                    progress: Callable[[int, int], None] | None = None) -> DedupResult:
    """Groups of copies among `videos` (candidates by window vectors, confirmed by `align`)."""
    config = config or DedupConfig()
    config.check()
    cands = candidate_pairs(videos, config.window_s, config.candidate_sim)
    confirmed: list[tuple[int, int, Match]] = []
    for k, (i, j, _) in enumerate(cands):
        m = confirm(videos[i], videos[j], config)
        if m is not None:
            confirmed.append((i, j, m))
        if progress is not None:
            progress(k + 1, len(cands))
    return DedupResult(groups=_groups(videos, confirmed), videos=len(videos), candidates=len(cands),
                       config=asdict(config))


def confirm(a: VideoRows, b: VideoRows, config: DedupConfig) -> Match | None:
    """`align(a, b)` when it meets the config's length and score, else None."""
    m = align((a.features, a.times_s), (b.features, b.times_s), min_len_s=config.min_len_s,
              threshold=config.threshold)
    if m is None or m.score < config.min_score:
        return None
    # the tuple form cannot know the durations: clip the ends to them
    m.query_end_s = min(m.query_end_s, a.duration_s or m.query_end_s)
    m.ref_end_s = min(m.ref_end_s, b.duration_s or m.ref_end_s)
    return m


def _groups(videos: list[VideoRows], confirmed: list[tuple[int, int, Match]]) -> list[DedupGroup]:
    parent = list(range(len(videos)))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, _ in confirmed:
        parent[root(i)] = root(j)
    by_root: dict[int, list[tuple[int, int, Match]]] = {}
    for i, j, m in confirmed:
        by_root.setdefault(root(i), []).append((i, j, m))
    groups = []
    for items in by_root.values():
        ranges: dict[int, list[float]] = {}
        pairs = []
        for i, j, m in items:
            for v, s, e in ((i, m.query_start_s, m.query_end_s), (j, m.ref_start_s, m.ref_end_s)):
                r = ranges.setdefault(v, [s, e])
                r[0], r[1] = min(r[0], s), max(r[1], e)
            pairs.append({"a": videos[i].video, "b": videos[j].video,
                          "a_start_s": round(m.query_start_s, 3), "a_end_s": round(m.query_end_s, 3),
                          "b_start_s": round(m.ref_start_s, 3), "b_end_s": round(m.ref_end_s, 3),
                          "speed": round(m.speed, 3), "score": round(m.score, 4)})
        members = [{"video": videos[v].video, "start_s": round(s, 3), "end_s": round(e, 3),
                    "duration_s": round(float(videos[v].duration_s), 3)}
                   for v, (s, e) in sorted(ranges.items(), key=lambda kv: -videos[kv[0]].duration_s)]
        groups.append(DedupGroup(members=members, pairs=pairs))
    return sorted(groups, key=lambda g: (-len(g.members), g.members[0]["video"]))


def embed_videos(paths: Iterable[str | os.PathLike[str]], embedder: VideoEmbedder | None = None,
                 progress: Callable[[str], None] | None = None) -> tuple[list[VideoRows], dict[str, str]]:
    """Embed every file; the unreadable ones are returned as `{path: reason}` instead of stopping."""
    embedder = embedder or VideoEmbedder(EmbedConfig())
    rows, failed = [], {}
    for p in paths:
        try:
            e = embedder.embed_video(p)
            rows.append(VideoRows(os.fspath(p), e.features, e.times_s, e.duration_s))
        except VidlensError as exc:
            failed[os.fspath(p)] = exc.reason
        if progress is not None:
            progress(os.fspath(p))
    return rows, failed


def index_rows(index_path: str | os.PathLike[str]) -> tuple[list[VideoRows], dict[str, str]]:
    """The frame rows an index stored (`frames/<id>.npy`): no decoding at all."""
    from vidlens.tasks.retrieval.index import VideoIndex

    rows, failed = [], {}
    with VideoIndex.open(index_path) as index:
        for v in index.videos():
            try:
                f, t = index.frames(int(v["id"]))
            except (OSError, ValueError, KeyError) as exc:
                failed[v["path"]] = f"frame rows unreadable ({exc})"
                continue
            rows.append(VideoRows(v["path"], f, t, float(v.get("duration_s") or (t[-1] if t.size else 0.0))))
    return rows, failed


def dedup(target: str | os.PathLike[str], config: DedupConfig | None = None, *, embedder: VideoEmbedder | None = None,
          progress: Callable[[str], None] | None = None, out: str | os.PathLike[str] | None = None) -> DedupResult:
    """Near-duplicate groups of a folder / glob / manifest of videos, or of a `vidlens index` folder."""
    from vidlens.io.inputs import list_videos

    target = Path(target)
    if (target / "index.json").is_file():
        rows, failed = index_rows(target)
    else:
        rows, failed = embed_videos(list_videos(target, out), embedder, progress)
    result = find_duplicates(rows, config)
    result.failed = failed
    return result


def write_dedup_outputs(result: DedupResult, out_dir: str | os.PathLike[str]) -> list[Path]:
    """`dedup.json` (everything), `dedup.csv` (one row per group member), `dedup.png` (thumbnails per group)."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dedup.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    with open(out / "dedup.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["group", "video", "start_s", "end_s", "duration_s"])
        for g, group in enumerate(result.groups):
            for m in group.members:
                w.writerow([g, m["video"], f"{m['start_s']:.3f}", f"{m['end_s']:.3f}", f"{m['duration_s']:.3f}"])
    _plot(result, out / "dedup.png")
    return [out / "dedup.json", out / "dedup.csv", out / "dedup.png"]


def _thumb(path: str, t: float) -> np.ndarray | None:
    from vidlens.io import iter_frames

    try:
        for frame in iter_frames(path, size=120, start=max(0.0, t)):
            return frame.image
    except (VidlensError, OSError, ValueError):
        return None
    return None


def _plot(result: DedupResult, path: Path, max_groups: int = 20, max_members: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = result.groups[:max_groups]
    cols = max([min(len(g.members), max_members) for g in groups] or [1])
    fig, axes = plt.subplots(max(1, len(groups)), cols, figsize=(2.6 * cols, 2.2 * max(1, len(groups))), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if not groups:
        axes[0, 0].text(0.5, 0.5, f"no duplicates among {result.videos} videos", ha="center", va="center")
    for r, g in enumerate(groups):
        for c, m in enumerate(g.members[:max_members]):
            ax = axes[r, c]
            img = _thumb(m["video"], 0.5 * (m["start_s"] + m["end_s"]))
            if img is not None:
                ax.imshow(img)
            ax.set_title(f"{Path(m['video']).name[:28]}\n{m['start_s']:.3f}-{m['end_s']:.3f} s", fontsize=7)
        axes[r, 0].text(-0.08, 0.5, f"group {r}", transform=axes[r, 0].transAxes, rotation=90,
                        ha="right", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
