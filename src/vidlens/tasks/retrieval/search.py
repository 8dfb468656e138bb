"""The four searches over a `VideoIndex`: by clip, by image, by video ("more like this"), by text.

Each returns a `SearchResult`: one hit per video, best first, with the time range that matched.
- clip: the clip's pooled descriptor finds candidate videos among window/shot/video vectors; each
  candidate is then aligned frame by frame (`align`) against its stored frame rows, which confirms the
  match and gives the time range; aligned videos rank above videos that only look alike.
- image: one frame's descriptor against the stored vectors, then against every frame row of the
  candidates: the best frame gives the time.
- video: the video-level vector against the other videos' ones, leaving out V itself and its
  near-duplicates (same content, or an alignment score above `dup_threshold`).
- text: a MiniLM sentence vector against the vectors of tags + labels + user text. **Text search does
  not look at pixels**: a video is found by text only through the words its tags, labels or user text hold.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.errors import ConfigError, VidlensError

__all__ = ["Hit", "SearchResult", "search_clip", "search_image", "search_video", "search_text",
           "write_search_outputs", "TEXT_NOTE"]

TEXT_NOTE = ("text search only sees the tags, labels and user text stored with each video and shot, "
             "not the pixels: footage whose tags do not name it is not found")
DUP_THRESHOLD = 0.75  # align() score at or above which a video counts as a copy of the query video


@dataclass
class Hit:
    """One video in the results: `video` is its path; `[start_s, end_s)` the part that matched."""

    video: str
    score: float
    start_s: float
    end_s: float
    kind: str  # video | shot | range (an aligned or located time range)
    tags: list[str] = field(default_factory=list)
    why: str = ""
    video_id: int = -1
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(score=round(float(self.score), 4), start_s=round(float(self.start_s), 3),
                 end_s=round(float(self.end_s), 3))
        return d


@dataclass
class SearchResult:
    query: dict[str, Any]
    hits: list[Hit]
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = {"query": self.query, "hits": [h.to_json() for h in self.hits], "seconds": round(self.seconds, 3)}
        if self.query.get("kind") == "text":
            out["note"] = TEXT_NOTE
        return out


def _check_k(k: int) -> int:
    if int(k) < 1:
        raise ConfigError(None, f"k must be at least 1, got {k}")
    return int(k)


def _hit(index: Any, vid: int, score: float, start: float, end: float, kind: str, why: str,
         tags: list[str] | None = None) -> Hit:
    v = index.video(vid)
    words = tags if tags is not None else [t["tag"] for t in v["tags"]]
    return Hit(v["path"], float(score), float(start), float(end), kind, list(words), why, int(vid), v["name"])


def _best_per_video(index: Any, scores: np.ndarray, ids: np.ndarray) -> dict[int, tuple[float, dict[str, Any]]]:
    """video id -> (best score, its segment), in the order of the best scores; stray ids are skipped."""
    segs = index.segments(ids)
    best: dict[int, tuple[float, dict[str, Any]]] = {}
    for s, i in zip(scores, ids):
        seg = segs.get(int(i))
        if seg is None or not np.isfinite(s):
            continue
        vid = int(seg["video_id"])
        if vid not in best or s > best[vid][0]:
            best[vid] = (float(s), seg)
    return dict(sorted(best.items(), key=lambda kv: -kv[1][0]))


def _candidates(index: Any, store_name: str, vector: np.ndarray, n: int) -> dict[int, tuple[float, dict[str, Any]]]:
    store = index.store(store_name)
    if store is None or len(store) == 0:
        return {}
    scores, ids = store.search(np.asarray(vector, np.float32)[None], min(n, len(store)))
    return _best_per_video(index, scores[0], ids[0])


def _seg_hit(index: Any, vid: int, score: float, seg: dict[str, Any], why: str) -> Hit:
    tags = seg["tags"] if seg["kind"] == "shot" else None
    return _hit(index, vid, score, seg["start_s"], seg["end_s"], seg["kind"], why, tags)


def search_clip(index: Any, path: str | os.PathLike[str], *, start_s: float | None = None,
                end_s: float | None = None, k: int = 10, candidates: int | None = None) -> SearchResult:
    """Videos showing the clip `path[start_s:end_s]`, with the matching time range in each."""
    from vidlens.tasks.retrieval.align import align
    from vidlens.tasks.retrieval.embed import pool

    k = _check_k(k)
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise ConfigError(None, f"--end ({end_s}) must be after --start ({start_s})")
    t0 = time.perf_counter()
    q = index.models().embedder.embed_video(path, start_s=start_s, end_s=end_s)
    qf, qt = np.asarray(q.features, np.float32), np.asarray(q.times_s, np.float64)
    q_len = float(qt[-1] - qt[0]) + 1.0 / index.embed_config.fps if len(qt) else 0.0
    cands = _candidates(index, "visual", pool(qf), max(8 * k, 64))
    hits: list[tuple[bool, Hit]] = []
    for vid, (score, seg) in list(cands.items())[: max(2 * k, 10)]:
        feats, times = index.frames(vid)
        m = align((qf, qt), (feats, times), min_len_s=min(2.0, 0.5 * q_len))
        if m is not None:
            why = (f"aligned: query {m.query_start_s:.1f}-{m.query_end_s:.1f} s = video {m.ref_start_s:.1f}-"
                   f"{m.ref_end_s:.1f} s, speed {m.speed:.2f}")
            hits.append((True, _hit(index, vid, m.score, m.ref_start_s, m.ref_end_s, "range", why)))
        else:
            hits.append((False, _seg_hit(index, vid, score, seg, f"{seg['kind']} vector similarity (not aligned)")))
    hits.sort(key=lambda h: (not h[0], -h[1].score))
    query = {"kind": "clip", "path": os.fspath(path), "start_s": start_s, "end_s": end_s, "k": k,
             "frames": int(len(qf))}
    return SearchResult(query, [h for _, h in hits[:k]], time.perf_counter() - t0)


def load_image(path_or_array: str | os.PathLike[str] | np.ndarray) -> np.ndarray:
    """An image file (or an array) as `uint8 (H,W,3)` RGB; `VidlensError` when it cannot be read."""
    if isinstance(path_or_array, np.ndarray):
        img = path_or_array
    else:
        import cv2

        bgr = cv2.imread(os.fspath(path_or_array), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VidlensError(path_or_array, "cannot read this image (missing, or not a PNG/JPEG/BMP/...)")
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise VidlensError(None, f"an image must be (H,W,3) RGB, got shape {img.shape}")
    return np.ascontiguousarray(img.astype(np.uint8))


def search_image(index: Any, path_or_array: str | os.PathLike[str] | np.ndarray, *, k: int = 10) -> SearchResult:
    """Videos holding a frame like the image; the hit's range is the best frame's time (+- half a step)."""
    k = _check_k(k)
    t0 = time.perf_counter()
    img = load_image(path_or_array)
    v = index.models().embedder.embed_images([img])[0]
    cands = _candidates(index, "visual", v, max(8 * k, 64))
    half = 0.5 / index.embed_config.fps
    hits = []
    for vid in list(cands)[: max(3 * k, 20)]:
        feats, times = index.frames(vid)
        sims = feats @ v
        j = int(np.argmax(sims))
        t = float(times[j])
        hits.append(_hit(index, vid, float(sims[j]), max(0.0, t - half), t + half, "range",
                         f"best frame at {t:.2f} s"))
    hits.sort(key=lambda h: -h.score)
    src = "array" if isinstance(path_or_array, np.ndarray) else os.fspath(path_or_array)
    return SearchResult({"kind": "image", "path": src, "k": k}, hits[:k], time.perf_counter() - t0)


def search_video(index: Any, video: str | os.PathLike[str], *, k: int = 10, exclude_duplicates: bool = True,
                 dup_threshold: float = DUP_THRESHOLD) -> SearchResult:
    """"More like this": other videos whose whole-video vector is closest to V's. V is an indexed video
    (id, path, name) or a video file; V itself, files with its content and (when `exclude_duplicates`)
    videos that align with it at `dup_threshold` or above are left out and listed in `query["excluded"]`."""
    from vidlens.tasks.retrieval.align import align
    from vidlens.tasks.retrieval.embed import pool

    k = _check_k(k)
    t0 = time.perf_counter()
    row = index.find(os.fspath(video))
    if row is not None:
        vid_self, digest = int(row["id"]), row["content_hash"]
        qf, qt = index.frames(vid_self)
        source = row["path"]
    elif Path(video).is_file():
        from vidlens.io.content import content_hash

        emb = index.models().embedder.embed_video(video)
        qf, qt = np.asarray(emb.features, np.float32), np.asarray(emb.times_s, np.float64)
        vid_self, digest, source = -1, content_hash(video), os.fspath(video)
    else:
        raise VidlensError(video, "not a video of this index (id, path or file name) and not a file")
    store = index.store("visual")
    allowed = np.array([r[0] for r in index.conn.execute("SELECT id FROM segments WHERE kind = 'video'")], np.int64)
    if store is None or len(store) == 0 or len(allowed) == 0:
        return SearchResult({"kind": "video", "video": source, "k": k, "excluded": []}, [], time.perf_counter() - t0)
    scores, ids = store.search(pool(qf)[None], min(len(allowed), max(4 * k, 32) + 1), allowed=allowed)
    cands = _best_per_video(index, scores[0], ids[0])
    hits: list[Hit] = []
    excluded: list[dict[str, Any]] = []
    for vid, (score, seg) in cands.items():
        if len(hits) >= k:
            break
        other = index.video(vid)
        if vid == vid_self or other["content_hash"] == digest:
            excluded.append({"video": other["path"], "reason": "the query video itself (same content)"})
            continue
        if exclude_duplicates:
            m = align((qf, qt), index.frames(vid))
            if m is not None and m.score >= dup_threshold:
                excluded.append({"video": other["path"], "reason": f"near-duplicate: align score {m.score:.3f}, "
                                 f"{m.query_start_s:.1f}-{m.query_end_s:.1f} s = {m.ref_start_s:.1f}-{m.ref_end_s:.1f} s"})
                continue
        hits.append(_seg_hit(index, vid, score, seg, "whole-video vector similarity"))
    query = {"kind": "video", "video": source, "k": k, "exclude_duplicates": exclude_duplicates,
             "dup_threshold": dup_threshold, "excluded": excluded}
    return SearchResult(query, hits, time.perf_counter() - t0)


def search_text(index: Any, text: str, *, k: int = 10) -> SearchResult:
    """Videos (and shots) whose tags, labels or user text are closest in meaning to `text`.
    Pixels are not looked at: see `TEXT_NOTE`."""
    k = _check_k(k)
    if not text or not text.strip():
        raise ConfigError(None, "the text query is empty")
    t0 = time.perf_counter()
    v = index.models().text.encode([text.strip()])[0]
    cands = _candidates(index, "text", v, max(8 * k, 64))
    hits = [_seg_hit(index, vid, score, seg, f"text: {seg['text']}") for vid, (score, seg) in list(cands.items())[:k]]
    return SearchResult({"kind": "text", "text": text, "k": k, "note": TEXT_NOTE}, hits, time.perf_counter() - t0)


CSV_FIELDS = ("rank", "video", "name", "score", "start_s", "end_s", "kind", "tags", "why")


def write_search_outputs(result: SearchResult, out_dir: str | os.PathLike[str], *, sheet: bool = True) -> list[Path]:
    """results.json, results.csv (a row per hit) and sheet.png (a thumbnail per hit with name, score, timecodes)."""
    from vidlens.tasks.retrieval.sheet import hits_sheet

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.csv"]
    paths[0].write_text(json.dumps(result.to_json(), indent=2) + "\n")
    with open(paths[1], "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_FIELDS)
        for i, h in enumerate(result.hits, 1):
            j = h.to_json()
            w.writerow([i, j["video"], j["name"], j["score"], f"{j['start_s']:.3f}", f"{j['end_s']:.3f}", j["kind"],
                        ";".join(h.tags), h.why])
    if sheet:
        q = result.query
        what = {"clip": q.get("path"), "image": q.get("path"), "video": q.get("video"), "text": f'"{q.get("text")}"'}
        title = f"search by {q.get('kind')}: {Path(str(what.get(q.get('kind')))).name if q.get('kind') != 'text' else what['text']}"
        paths.append(hits_sheet(result.hits, out / "sheet.png", title=title))
    return paths
