"""A persistent video index: visual vectors per video, per shot and per fixed window, text vectors of
tags + labels + user text, per-frame descriptor rows for alignment, and SQLite metadata.

Layout of an index folder (why: vectors live in a vector store that answers top-k fast; everything a
result shows lives in SQLite; frame rows let a search confirm and locate a match in time):

    index.json          format, encoder, dims, embed config, window/hop, tag settings
    meta.sqlite         videos, segments (id = vector id), schema version in PRAGMA user_version
    visual/             VectorStore: one row per segment (kind video | shot | window)
    text/               VectorStore: MiniLM rows for the video and shot segments that have any text
    frames/<id>.npy     structured rows (t float64, f float16[D]) of the 2 fps frame descriptors

Crash safety: a write computes everything first, then inside one SQLite transaction inserts the rows,
writes the frame files and saves both stores (each with os.replace), and commits last. A crash before
the commit leaves the previous index readable: the uncommitted vectors have no metadata row, searches
ignore them and the next write removes them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.errors import ConfigError, VidlensError

__all__ = ["IndexOptions", "Segment", "VideoEntry", "AddReport", "IndexModels", "VideoIndex", "compute_entry",
           "set_text", "segment_text", "save_entry", "load_entry", "batch_options",
           "INDEX_FORMAT", "SCHEMA_VERSION"]

INDEX_FORMAT = 1
# MIGRATIONS[i] brings a meta.sqlite from user_version i to i + 1 (append, never edit a shipped one).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE videos (
        id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, name TEXT NOT NULL,
        content_hash TEXT NOT NULL UNIQUE, key TEXT NOT NULL, duration_s REAL, fps REAL, num_frames INTEGER,
        frames_rows INTEGER, tags TEXT NOT NULL DEFAULT '[]', labels TEXT NOT NULL DEFAULT '[]',
        facts TEXT NOT NULL DEFAULT '{}', user_text TEXT NOT NULL DEFAULT '', added TEXT, seconds REAL);
    CREATE INDEX videos_path ON videos(path);
    CREATE TABLE segments (
        id INTEGER PRIMARY KEY AUTOINCREMENT, video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
        kind TEXT NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL, tags TEXT NOT NULL DEFAULT '[]',
        text TEXT NOT NULL DEFAULT '', has_text INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX segments_video ON segments(video_id);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
KINDS = ("video", "shot", "window")


@dataclass
class IndexOptions:
    """What an index stores besides the frame descriptors (fixed when the index is created)."""

    window_s: float = 4.0  # fixed windows, so a long single-shot video still gives time ranges
    hop_s: float = 2.0
    tags: bool = True  # ImageNet tags per shot and per video (vidlens.tasks.tags; decodes the video again)
    shot_method: str = "learned"  # vidlens.tasks.shots detector
    tag_threshold: float = 0.15

    def check(self) -> None:
        if not (self.window_s > 0 and 0 < self.hop_s <= self.window_s):
            raise ConfigError(None, f"need window_s > 0 and 0 < hop_s <= window_s, got {self.window_s}, {self.hop_s}")


@dataclass
class Segment:
    kind: str  # video | shot | window
    start_s: float
    end_s: float
    tags: list[str] = field(default_factory=list)
    text: str = ""  # what the text vector was made from ('' = no text vector)
    words: str = ""  # the tags/look/label part of `text` (the user's text is added to it)


@dataclass
class VideoEntry:
    """Everything computed for one video (picklable: workers send it to the process that writes the index).

    `features`: `(N,D)` float32 unit frame descriptors at `times_s` `(N,)`; `visual`: `(S,D)` one row per
    segment; `text_vectors`: `(T,384)` one row per segment whose `text` is not empty, in segment order."""

    path: str
    content_hash: str
    duration_s: float
    fps: float
    num_frames: int
    features: np.ndarray
    times_s: np.ndarray
    segments: list[Segment]
    visual: np.ndarray
    text_vectors: np.ndarray
    tags: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    user_text: str = ""
    seconds: float = 0.0


@dataclass
class AddReport:
    added: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why): content already indexed
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "skipped": [{"video": p, "reason": r} for p, r in self.skipped],
                "failed": [{"video": p, "reason": r} for p, r in self.failed], "seconds": round(self.seconds, 3)}


class IndexModels:
    """The frame embedder, the tag classifier and the text encoder, each loaded on first use, once per
    process (a text search loads only the text encoder)."""

    def __init__(self, embed_config: Any, options: IndexOptions, device: str = "cpu") -> None:
        self.embed_config = embed_config
        self.options = options
        self.device = device
        self._embedder: Any = None
        self._tag_model: Any = None
        self._text: Any = None

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from vidlens.tasks.retrieval.embed import VideoEmbedder

            self._embedder = VideoEmbedder(self.embed_config, device=self.device)
        return self._embedder

    @property
    def tag_model(self) -> Any:
        """The ImageNet tag classifier, or None when the index keeps no tags."""
        if self._tag_model is None and self.options.tags:
            from vidlens.tasks.tags import TagModel

            self._tag_model = TagModel(device=self.device)
        return self._tag_model

    @property
    def text(self) -> Any:
        if self._text is None:
            from vidlens.tasks.retrieval.text import text_encoder

            self._text = text_encoder()
        return self._text


def segment_text(tags: Iterable[str], labels: Iterable[str], user_text: str) -> str:
    """The sentence a text vector is made from: tags, then labels, then the user's text."""
    parts = []
    tags, labels = [t for t in tags if t], [x for x in labels if x]
    if tags:
        parts.append(", ".join(tags))
    if labels:
        parts.append(", ".join(labels))
    if user_text.strip():
        parts.append(user_text.strip())
    return ". ".join(parts)


def _rows_in(times: np.ndarray, a: float, b: float) -> np.ndarray:
    rows = np.flatnonzero((times >= a) & (times < b))
    if len(rows) == 0 and len(times):  # a shot shorter than the sampling step: its nearest row
        rows = np.array([int(np.argmin(np.abs(times - (a + b) / 2)))])
    return rows


def window_starts(duration: float, window: float, hop: float) -> list[float]:
    """Window starts every `hop` s; the last window ends at the video's end; one window for a short video."""
    if duration <= window:
        return [0.0]
    starts = list(np.arange(0.0, duration - window + 1e-6, hop))
    if starts[-1] + window < duration - 1e-6:
        starts.append(duration - window)
    return [round(float(s), 3) for s in starts]


def compute_entry(path: str | os.PathLike[str], models: IndexModels, *, user_text: str = "",
                  content_hash: str | None = None, with_text: bool = True) -> VideoEntry:
    """Descriptors (2 fps), shots, tags, segment vectors and (`with_text`) text vectors of one video. Raises
    `VidlensError` (`VideoDecodeError`) for a file that cannot be used."""
    from vidlens.io import probe
    from vidlens.tasks.retrieval.embed import pool

    t0 = time.perf_counter()
    path = os.fspath(path)
    info = probe(path)
    if content_hash is None:
        from vidlens.io.content import content_hash as hash_file

        content_hash = hash_file(path)
    emb = models.embedder.embed_video(path)
    feats = np.asarray(emb.features, np.float32)
    times = np.asarray(emb.times_s, np.float64)
    if len(feats) == 0:
        raise VidlensError(path, "no frame could be decoded")
    duration = float(emb.duration_s or info.duration_s or (times[-1] + 0.5))
    opts = models.options
    video_tags: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    shots: list[tuple[float, float, list[str], list[str]]] = []  # start, end, tags, look words
    if models.tag_model is not None:
        from vidlens.tasks.tags import TagConfig, tag_video

        tr = tag_video(path, TagConfig(threshold=opts.tag_threshold, shot_method=opts.shot_method), models.tag_model)
        video_tags, labels, facts = tr.tags, tr.labels, tr.facts
        shots = [(s.start_s, s.end_s, [t["tag"] for t in s.tags], list(s.facts.get("look", []))) for s in tr.shots]
    else:
        from vidlens.tasks.shots import ShotConfig, detect_shots

        res = detect_shots(path, ShotConfig(method=opts.shot_method))
        shots = [(float(s.start_s), float(s.end_s), [], []) for s in res.scenes]
    if not shots:
        shots = [(0.0, duration, [], [])]
    words = [t["tag"] for t in video_tags] + list(facts.get("look", []))
    label_words = [x["label"] for x in labels]
    segments = [Segment("video", 0.0, round(duration, 3), words, words=segment_text(words, label_words, ""))]
    vectors = [pool(feats)]
    for a, b, tags, look in shots:
        rows = _rows_in(times, a, b)
        segments.append(Segment("shot", round(a, 3), round(b, 3), tags, words=segment_text(tags + look, [], "")))
        vectors.append(pool(feats[rows]))
    for a in window_starts(duration, opts.window_s, opts.hop_s):
        b = min(duration, a + opts.window_s)
        rows = np.flatnonzero((times >= a) & (times < b))
        if len(rows):
            segments.append(Segment("window", a, round(b, 3)))
            vectors.append(pool(feats[rows]))
    entry = VideoEntry(path, content_hash, duration, float(emb.fps or info.fps or 0.0),
                       int(emb.num_frames or info.num_frames), feats, times, segments,
                       np.stack(vectors).astype(np.float32), np.zeros((0, 384), np.float32),
                       video_tags, labels, facts, user_text, 0.0)
    if with_text:
        set_text(entry, models.text, user_text)
    entry.seconds = time.perf_counter() - t0
    return entry


def set_text(entry: VideoEntry, encoder: Any, user_text: str) -> VideoEntry:
    """(Re)make the entry's text vectors: each video/shot segment's words plus the user's text."""
    entry.user_text = user_text.strip()
    for s in entry.segments:
        s.text = segment_text([s.words] if s.words else [], [], entry.user_text) if s.kind != "window" else ""
    texts = [s.text for s in entry.segments if s.text]
    entry.text_vectors = (np.asarray(encoder.encode(texts), np.float32) if texts
                          else np.zeros((0, getattr(encoder, "dim", 384)), np.float32))
    return entry


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class VideoIndex:
    """An index folder opened for reading and writing (one writer at a time: a lock file guards writes).

    Several handles may be open on one folder (the service and the CLI, two processes): each write takes the lock,
    then drops any vector store another handle saved since this one loaded it, so it adds to what is on disk."""

    def __init__(self, path: Path, manifest: dict[str, Any], conn: sqlite3.Connection) -> None:
        self.path = path
        self.manifest = manifest
        self.conn = conn
        self._stores: dict[str, Any] = {}
        self._seen: dict[str, tuple[int, int, int] | None] = {}  # store name -> its store file's identity when loaded
        self._models: IndexModels | None = None
        self._frames_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ open / create
    @classmethod
    def create(cls, path: str | os.PathLike[str], *, config: Any = None, options: IndexOptions | None = None
               ) -> VideoIndex:
        """A new, empty index at `path` (a missing or empty folder). `config`: an `embed.EmbedConfig`."""
        from vidlens import __version__
        from vidlens.tasks.retrieval.embed import EmbedConfig

        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            if (path / "index.json").is_file():
                raise VidlensError(path, "an index already exists here (use `vidlens index add` to add videos)")
            raise VidlensError(path, "not an empty folder: pick a new folder for the index")
        config = config or EmbedConfig()
        options = options or IndexOptions()
        options.check()
        path.mkdir(parents=True, exist_ok=True)
        (path / "frames").mkdir(exist_ok=True)
        manifest = {"format": INDEX_FORMAT, "vidlens_version": __version__, "created": _now(),
                    "encoder": getattr(config, "encoder", None), "visual_dim": None, "text_dim": None,
                    "embed_config": asdict(config), "options": asdict(options), "text_encoder": "all-MiniLM-L6-v2"}
        _write_json(path / "index.json", manifest)
        return cls(path, manifest, _connect(path / "meta.sqlite"))

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> VideoIndex:
        """An existing index; `VidlensError` when `path` is not one (or was written by a newer vidlens)."""
        path = Path(path)
        try:
            manifest = json.loads((path / "index.json").read_text())
        except FileNotFoundError:
            raise VidlensError(path, "not a video index (no index.json); make one with `vidlens index build`") from None
        except (OSError, ValueError) as exc:
            raise VidlensError(path, f"cannot read index.json ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != INDEX_FORMAT:
            raise VidlensError(path, f"unknown index format {manifest.get('format') if isinstance(manifest, dict) else '?'}"
                                     f" (this vidlens reads format {INDEX_FORMAT})")
        if not (path / "meta.sqlite").is_file():
            raise VidlensError(path, "the index has no meta.sqlite")
        return cls(path, manifest, _connect(path / "meta.sqlite"))

    def close(self) -> None:
        self.conn.close()
        self._stores.clear()
        self._frames_cache.clear()

    def __enter__(self) -> VideoIndex:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ configuration
    @property
    def embed_config(self) -> Any:
        from vidlens.tasks.retrieval.embed import EmbedConfig

        return EmbedConfig(**self.manifest["embed_config"])

    @property
    def options(self) -> IndexOptions:
        return IndexOptions(**self.manifest["options"])

    def models(self, device: str = "cpu") -> IndexModels:
        """The index's models, loaded on first use (search uses the embedder and the text encoder)."""
        if self._models is None:
            self._models = IndexModels(self.embed_config, self.options, device)
        return self._models

    def store(self, name: str) -> Any:
        """The `visual` or `text` VectorStore, or None while the index holds no such vectors."""
        if name not in self._stores:
            from vidlens.tasks.retrieval.store import VectorStore

            folder = self.path / name
            self._seen[name] = self._signature(name)
            self._stores[name] = VectorStore.open(folder) if folder.exists() else None
        return self._stores[name]

    def _signature(self, name: str) -> tuple[int, int, int] | None:
        """The identity of the store's metadata file, which every save replaces (None when absent)."""
        from vidlens.io.content import file_identity
        from vidlens.tasks.retrieval.store import META_FILE

        return file_identity(self.path / name / META_FILE)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The write lock, with this handle brought up to date: stores another handle saved meanwhile are reopened
        and the manifest re-read, so a write never saves a stale copy over someone else's."""
        with _WriteLock(self.path):
            for name in list(self._stores):
                if self._seen.get(name) != self._signature(name):
                    del self._stores[name]
            try:
                self.manifest = json.loads((self.path / "index.json").read_text())
            except (OSError, ValueError):
                pass  # keep the one read at open; a broken manifest is reported by open()
            yield

    def _save_store(self, name: str, store: Any) -> None:
        store.save()
        self._seen[name] = self._signature(name)

    # ------------------------------------------------------------------ adding
    def add_videos(self, paths: Iterable[str | os.PathLike[str]], *, text: dict[str, str] | None = None,
                   progress: Callable[[str, str], None] | None = None, workers: int = 1,
                   flush_every: int = 32) -> AddReport:
        """Index `paths`, skipping content already indexed (same file bytes) and reporting files that
        fail (the rest go on). `text`: user text per video (keys: path as given, absolute path or file
        name). `progress(path, status)` after each video, status added | skipped | failed.
        `workers` > 1 computes videos in that many processes; this process writes the index."""
        from vidlens.io.content import HashCache

        t0 = time.perf_counter()
        report = AddReport()
        paths = [Path(os.path.abspath(p)) for p in paths]
        self._repair()
        cache = HashCache(self.path)
        cache.fill(paths)
        known = {r[0] for r in self.conn.execute("SELECT content_hash FROM videos")}
        todo: list[tuple[str, str, str]] = []
        for p in paths:
            digest = cache.get(p)
            if digest is None:
                report.failed.append((str(p), "missing or unreadable file"))
                _call(progress, str(p), "failed")
            elif digest in known:
                report.skipped.append((str(p), "already indexed (same content)"))
                _call(progress, str(p), "skipped")
            else:
                known.add(digest)
                todo.append((str(p), digest, _text_for(text, p)))
        cache.save()
        pending: list[VideoEntry] = []

        def take(path: str, result: VideoEntry | str) -> None:
            if isinstance(result, str):
                report.failed.append((path, result))
                _call(progress, path, "failed")
                return
            pending.append(result)
            if len(pending) >= flush_every:
                self.add_entries(pending)
                pending.clear()
            report.added.append(path)
            _call(progress, path, "added")

        try:
            if workers > 1 and len(todo) > 1:
                _compute_in_pool(todo, self.embed_config, self.options, workers, take)
            else:
                models = self.models()
                for path, digest, user_text in todo:
                    take(path, _compute_or_reason(models, path, digest, user_text))
        finally:
            if pending:
                self.add_entries(pending)
        report.seconds = time.perf_counter() - t0
        return report

    def add_entries(self, entries: list[VideoEntry]) -> list[int]:
        """Write computed videos: one transaction, frame files and both stores saved before the commit."""
        if not entries:
            return []
        from vidlens.tasks.retrieval.store import VectorStore

        with self._writing():
            cur = self.conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                vis_ids, vis_rows, txt_ids, txt_rows, video_ids = [], [], [], [], []
                for e in entries:
                    cur.execute(
                        "INSERT INTO videos (path, name, content_hash, key, duration_s, fps, num_frames, frames_rows, "
                        "tags, labels, facts, user_text, added, seconds) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (e.path, Path(e.path).name, e.content_hash, self._key(e.content_hash), e.duration_s, e.fps,
                         e.num_frames, len(e.features), json.dumps(e.tags), json.dumps(e.labels), json.dumps(e.facts),
                         e.user_text, _now(), round(e.seconds, 3)))
                    vid = int(cur.lastrowid)
                    video_ids.append(vid)
                    t = 0
                    for s, vec in zip(e.segments, e.visual):
                        cur.execute("INSERT INTO segments (video_id, kind, start_s, end_s, tags, text, has_text) "
                                    "VALUES (?,?,?,?,?,?,?)", (vid, s.kind, s.start_s, s.end_s, json.dumps(s.tags),
                                                               s.text, int(bool(s.text))))
                        sid = int(cur.lastrowid)
                        vis_ids.append(sid)
                        vis_rows.append(vec)
                        if s.text:
                            txt_ids.append(sid)
                            txt_rows.append(e.text_vectors[t])
                            t += 1
                    _save_frames(self.path / "frames" / f"{vid}.npy", e.features, e.times_s)
                self._add_vectors("visual", np.array(vis_ids, np.int64), np.stack(vis_rows), VectorStore)
                if txt_ids:
                    self._add_vectors("text", np.array(txt_ids, np.int64), np.stack(txt_rows), VectorStore)
                self.conn.commit()
            except BaseException:
                self.conn.rollback()
                self._stores.clear()  # reopen from disk: in-memory rows of the failed write are dropped
                raise
        return video_ids

    def _add_vectors(self, name: str, ids: np.ndarray, rows: np.ndarray, store_cls: Any) -> None:
        store = self.store(name)
        if store is None:
            store = store_cls.create(self.path / name, rows.shape[1])
            self._stores[name] = store
            key = "visual_dim" if name == "visual" else "text_dim"
            self.manifest[key] = int(rows.shape[1])
            _write_json(self.path / "index.json", self.manifest)
        elif store.dim != rows.shape[1]:
            raise VidlensError(self.path, f"{name} vectors have {rows.shape[1]} dims, the index holds {store.dim}")
        store.add(ids, rows.astype(np.float32))
        self._save_store(name, store)

    def _key(self, digest: str) -> str:
        from vidlens.io.content import item_key

        return item_key(digest, "index", {"embed": self.manifest["embed_config"], "options": self.manifest["options"]})

    def _repair(self) -> None:
        """Drop vectors without a metadata row (left by a write that crashed before its commit)."""
        for name in ("visual", "text"):
            if not len(self._stray(name)):
                continue
            with self._writing():  # again under the lock: another writer may have committed those rows meanwhile
                stray = self._stray(name)
                if len(stray):
                    store = self.store(name)
                    store.remove(stray)
                    self._save_store(name, store)

    def _stray(self, name: str) -> np.ndarray:
        """Ids in the `name` store without a segment row."""
        store = self.store(name)
        if store is None or len(store) == 0:
            return np.zeros(0, np.int64)
        known = np.fromiter((r[0] for r in self.conn.execute("SELECT id FROM segments")), np.int64)
        ids = np.asarray(store.ids(), np.int64)
        return ids[~np.isin(ids, known)]

    def add_computed(self, folders: Iterable[str | os.PathLike[str]], *, text: dict[str, str] | None = None,
                     flush_every: int = 32) -> list[int]:
        """Add entries the batch engine's `index` task saved (`entry.npz`/`entry.json` per folder); content
        already indexed is skipped. Text vectors are made here, with the user's text."""
        known = {r[0] for r in self.conn.execute("SELECT content_hash FROM videos")}
        ids: list[int] = []
        pending: list[VideoEntry] = []
        for folder in folders:
            entry = load_entry(folder)
            if entry.content_hash in known:
                continue
            known.add(entry.content_hash)
            pending.append(set_text(entry, self.models().text, _text_for(text, Path(entry.path))))
            if len(pending) >= flush_every:
                ids += self.add_entries(pending)
                pending = []
        return ids + self.add_entries(pending)

    # ------------------------------------------------------------------ removing
    def remove(self, videos: Iterable[str]) -> int:
        """Remove videos by id, path, file name or content hash; returns how many were removed."""
        rows = [self.find(v) for v in videos]
        ids = sorted({r["id"] for r in rows if r is not None})
        if not ids:
            return 0
        with self._writing():
            marks = ",".join("?" * len(ids))
            seg = np.array([r[0] for r in self.conn.execute(f"SELECT id FROM segments WHERE video_id IN ({marks})", ids)],
                           np.int64)
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute(f"DELETE FROM segments WHERE video_id IN ({marks})", ids)
                self.conn.execute(f"DELETE FROM videos WHERE id IN ({marks})", ids)
                self.conn.commit()
            except BaseException:
                self.conn.rollback()
                raise
            for name in ("visual", "text"):
                store = self.store(name)
                if store is not None and len(seg):
                    store.remove(seg)
                    self._save_store(name, store)
            for vid in ids:
                (self.path / "frames" / f"{vid}.npy").unlink(missing_ok=True)
                self._frames_cache.pop(vid, None)
        return len(ids)

    # ------------------------------------------------------------------ reading
    def find(self, video: str | int) -> dict[str, Any] | None:
        """A video's row by id, absolute or relative path, file name or content hash (None when absent)."""
        text = str(video)
        queries = []
        if text.isdigit():
            queries.append(("id = ?", int(text)))
        queries += [("path = ?", os.path.abspath(text)), ("path = ?", text), ("content_hash = ?", text),
                    ("name = ?", Path(text).name)]
        for where, value in queries:
            row = self.conn.execute(f"SELECT * FROM videos WHERE {where} ORDER BY id LIMIT 1", (value,)).fetchone()
            if row is not None:
                return _video_dict(row)
        return None

    def video(self, video_id: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM videos WHERE id = ?", (int(video_id),)).fetchone()
        return _video_dict(row) if row is not None else None

    def videos(self) -> list[dict[str, Any]]:
        return [_video_dict(r) for r in self.conn.execute("SELECT * FROM videos ORDER BY id")]

    def segments(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Segment rows by id (ids without a row, e.g. left by a crashed write, are left out)."""
        ids = [int(i) for i in ids if int(i) >= 0]
        out: dict[int, dict[str, Any]] = {}
        for a in range(0, len(ids), 500):
            chunk = ids[a:a + 500]
            for r in self.conn.execute(f"SELECT * FROM segments WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                out[int(r["id"])] = {**dict(r), "tags": json.loads(r["tags"])}
        return out

    def video_segments(self, video_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM segments WHERE video_id = ?", [int(video_id)]
        if kind:
            sql, args = sql + " AND kind = ?", args + [kind]
        return [{**dict(r), "tags": json.loads(r["tags"])} for r in self.conn.execute(sql + " ORDER BY start_s", args)]

    def frames(self, video_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The video's frame descriptors `(N,D)` float32 and their times `(N,)` seconds."""
        if video_id not in self._frames_cache:
            if len(self._frames_cache) > 256:
                self._frames_cache.clear()
            rows = np.load(self.path / "frames" / f"{int(video_id)}.npy")
            self._frames_cache[video_id] = (rows["f"].astype(np.float32), rows["t"].astype(np.float64))
        return self._frames_cache[video_id]

    def info(self) -> dict[str, Any]:
        """Counts, dims, encoders, store backend and bytes on disk."""
        kinds = dict(self.conn.execute("SELECT kind, COUNT(*) FROM segments GROUP BY kind").fetchall())
        n_text = self.conn.execute("SELECT COUNT(*) FROM segments WHERE has_text = 1").fetchone()[0]
        visual, text = self.store("visual"), self.store("text")
        return {
            "path": str(self.path), "format": self.manifest["format"], "schema": SCHEMA_VERSION,
            "videos": self.conn.execute("SELECT COUNT(*) FROM videos").fetchone()[0],
            "segments": {k: int(kinds.get(k, 0)) for k in KINDS}, "text_rows": int(n_text),
            "visual_vectors": len(visual) if visual is not None else 0,
            "text_vectors": len(text) if text is not None else 0,
            "visual_dim": self.manifest.get("visual_dim"), "text_dim": self.manifest.get("text_dim"),
            "encoder": self.manifest.get("encoder"), "text_encoder": self.manifest.get("text_encoder"),
            "backend": _backend(visual), "embed_config": self.manifest["embed_config"],
            "options": self.manifest["options"], "bytes": _dir_bytes(self.path),
            "duration_s": round(float(self.conn.execute("SELECT COALESCE(SUM(duration_s), 0) FROM videos").fetchone()[0]), 3),
        }


# ---------------------------------------------------------------------- helpers

def _backend(store: Any) -> str | None:
    if store is None:
        return None
    facts = store.info() if hasattr(store, "info") else {}
    return " ".join(str(facts[k]) for k in ("backend", "kind") if facts.get(k)) or type(store).__name__


def _video_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    for k in ("tags", "labels", "facts"):
        d[k] = json.loads(d[k])
    return d


def _call(progress: Callable[[str, str], None] | None, path: str, status: str) -> None:
    if progress is not None:
        progress(path, status)


def _text_for(text: dict[str, str] | None, path: Path) -> str:
    if not text:
        return ""
    for key in (str(path), path.name, path.stem):
        if key in text:
            return text[key]
    for key, value in text.items():
        if os.path.abspath(key) == str(path):
            return value
    return ""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # explicit BEGIN / COMMIT
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    _migrate(conn, path)
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION, one migration per transaction; refuse a newer one."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise VidlensError(path, f"metadata schema {version} is newer than this vidlens reads ({SCHEMA_VERSION})")
    for v in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[v].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {v + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _save_frames(path: Path, features: np.ndarray, times: np.ndarray) -> None:
    """One .npy of structured rows (t float64, f float16[D]): times stay exact, rows take half the space."""
    rows = np.zeros(len(features), dtype=[("t", "<f8"), ("f", "<f2", (features.shape[1],))])
    rows["t"], rows["f"] = times, features.astype(np.float16)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, rows)
    os.replace(tmp, path)


class _WriteLock:
    """An exclusive lock on INDEX/.lock while writing (a second writer waits; readers never lock)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.depth = 0
        self.handle: Any = None

    def __enter__(self) -> _WriteLock:
        import fcntl

        self.handle = open(self.folder / ".lock", "a+")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: Any) -> None:
        import fcntl

        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


# ---------------------------------------------------------------------- worker processes

_WORKER_MODELS: IndexModels | None = None


def _compute_or_reason(models: IndexModels, path: str, digest: str, user_text: str) -> VideoEntry | str:
    from vidlens.threads import one_torch_thread

    try:
        with one_torch_thread():
            return compute_entry(path, models, user_text=user_text, content_hash=digest)
    except VidlensError as exc:
        return exc.reason
    except (OSError, ValueError, RuntimeError) as exc:  # a decoder's own error on a damaged file
        return f"{type(exc).__name__}: {exc}"


def _worker_init(embed_config: dict[str, Any], options: dict[str, Any]) -> None:
    global _WORKER_MODELS
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    from vidlens.tasks.retrieval.embed import EmbedConfig

    _WORKER_MODELS = IndexModels(EmbedConfig(**embed_config), IndexOptions(**options))


def _worker_run(job: tuple[str, str, str]) -> VideoEntry | str:
    assert _WORKER_MODELS is not None
    return _compute_or_reason(_WORKER_MODELS, *job)


def _compute_in_pool(todo: list[tuple[str, str, str]], embed_config: Any, options: IndexOptions, workers: int,
                     take: Callable[[str, VideoEntry | str], None]) -> None:
    """Compute videos in `workers` spawned processes (models loaded once each); `take` them as they finish."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_worker_init,
                             initargs=(asdict(embed_config), asdict(options))) as pool:
        futures = {pool.submit(_worker_run, job): job[0] for job in todo}
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except BrokenProcessPool as exc:
                result = f"worker died: {exc}"
            take(futures[fut], result)


# ---------------------------------------------------------------------- entries made apart (batch workers: batch/index_task.py)

ENTRY_ARRAYS = ("features", "times_s", "visual")


def save_entry(entry: VideoEntry, folder: str | os.PathLike[str]) -> list[Path]:
    """`entry.npz` (features, times_s, visual) and `entry.json` (the rest; no text vectors: the index
    process makes them, with the user's text) in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "entry.npz", features=entry.features.astype(np.float16), times_s=entry.times_s,
             visual=entry.visual.astype(np.float32))
    doc = {k: v for k, v in asdict(entry).items() if k not in ENTRY_ARRAYS + ("text_vectors",)}
    (folder / "entry.json").write_text(json.dumps(doc) + "\n")
    return [folder / "entry.npz", folder / "entry.json"]


def load_entry(folder: str | os.PathLike[str]) -> VideoEntry:
    folder = Path(folder)
    doc = json.loads((folder / "entry.json").read_text())
    with np.load(folder / "entry.npz") as z:
        arrays = {"features": z["features"].astype(np.float32), "times_s": z["times_s"], "visual": z["visual"]}
    doc["segments"] = [Segment(**s) for s in doc["segments"]]
    return VideoEntry(**doc, **arrays, text_vectors=np.zeros((0, 384), np.float32))


def batch_options(embed_config: Any = None, options: IndexOptions | None = None) -> dict[str, Any]:
    """The flat option dict of the `index` batch task (what goes into each video's batch key)."""
    from vidlens.tasks.retrieval.embed import EmbedConfig

    return {**asdict(embed_config or EmbedConfig()), **asdict(options or IndexOptions()), "device": "auto"}
