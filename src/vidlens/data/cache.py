"""A pre-decoded frame cache: decode every video once at the training fps and size.

Layout of a cache folder::

    CACHE/index.json          settings + every cached video (what CacheReader loads)
    CACHE/shard-00000.bin     concatenated per-frame payloads (JPEG bytes or raw RGB)
    CACHE/shard-00000.json    the entries of the videos in that shard (the durable truth)

Each shard holds up to `shard_videos` videos. A shard's ``.bin`` and then its ``.json``
are written to temporary names and renamed, so an interrupted run leaves only
complete shards; ``index.json`` is rebuilt from the shard files at the end of every
run (also atomically). A re-run skips videos whose entry matches the source's
size and mtime; changed videos are cached again into new shards (the old bytes
become dead weight; rebuild into a fresh folder to reclaim them). Videos that
fail to decode are reported (``index.json["bad"]``), never fatal.

Video entry (``index.json["videos"][realpath]``)::

    {"shard": "shard-00000.bin", "offsets": [...], "lengths": [...],   # bytes, per frame
     "num_frames": 64, "fps": 8.0, "height": 128, "width": 170, "label": 3 | [1, 4] | null,
     "source_size": 123456, "source_mtime_ns": 1700000000000000000, "duration_s": 8.0,
     "partial": ""}   # non-empty: a PartialDecodeWarning message from decoding

Frame ``j`` of a cached video shows time ``j / fps`` of the source. Repeated frames
(resampling above the source rate) share one payload.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidlens.errors import ConfigError, DatasetError
from vidlens.io import PartialDecodeWarning, iter_frames, probe

CACHE_FORMAT = 1
INDEX_NAME = "index.json"
IMAGE_FORMATS = ("jpeg", "raw")
_SHARD_RE = re.compile(r"^shard-(\d{5,})\.json$")

ProgressFn = Callable[[int, int, str], None]


def cache_key(path: str | os.PathLike[str]) -> str:
    """How a video is named in a cache: its real absolute path."""
    return os.path.realpath(os.fspath(path))


@dataclass
class CacheReport:
    """What one `build_cache` run did."""

    out: str
    cached: int = 0
    skipped: int = 0
    bad: dict[str, str] = field(default_factory=dict)
    partial: dict[str, str] = field(default_factory=dict)
    frames_written: int = 0
    bytes_written: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _encode_video(path: str, fps: float | None, size: int | None, image_format: str, quality: int) -> dict[str, Any]:
    """Decode one video at (fps, size) and encode its frames; runs in a worker process.

    Returns ``{"ok": True, "payload": bytes, "offsets", "lengths", ...}`` or ``{"ok": False, "reason"}``.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PartialDecodeWarning)
            chunks: list[bytes] = []
            offsets: list[int] = []
            lengths: list[int] = []
            position = 0
            last_index = None
            height = width = 0
            params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
            for frame in iter_frames(path, fps=fps, size=size):
                image = frame.image
                if frame.index == last_index:
                    offsets.append(offsets[-1])  # the same source frame again (fps above the source's)
                    lengths.append(lengths[-1])
                    continue
                last_index = frame.index
                height, width = image.shape[:2]
                if image_format == "jpeg":
                    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
                    if not ok:
                        raise RuntimeError("JPEG encoding failed")
                    data = buf.tobytes()
                else:
                    data = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
                chunks.append(data)
                offsets.append(position)
                lengths.append(len(data))
                position += len(data)
        if not offsets:
            return {"ok": False, "reason": "no frames decoded"}
        partial = "; ".join(str(w.message) for w in caught if issubclass(w.category, PartialDecodeWarning))
        rate = float(fps) if fps else float(probe(path).fps)
        return {
            "ok": True, "payload": b"".join(chunks), "offsets": offsets, "lengths": lengths,
            "num_frames": len(offsets), "fps": rate, "height": int(height), "width": int(width),
            "duration_s": round(len(offsets) / rate, 6) if rate else 0.0, "partial": partial,
        }
    except Exception as exc:  # any failure of a corrupt file is a bad video, not a crashed run
        return {"ok": False, "reason": getattr(exc, "reason", None) or str(exc) or type(exc).__name__}


def _load_shard_entries(out: Path) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]], int]:
    """(settings, {key: entry}, next shard number) from the complete shards of a cache folder."""
    settings = None
    entries: dict[str, dict[str, Any]] = {}
    numbers = []
    for meta in sorted(out.glob("shard-*.json")):
        match = _SHARD_RE.match(meta.name)
        if not match or not (out / meta.name.replace(".json", ".bin")).is_file():
            continue
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue  # unreadable shard metadata: its videos will be cached again
        numbers.append(int(match[1]))
        settings = settings or data.get("settings")
        entries.update(data.get("videos", {}))  # later shards win (re-cached videos)
    return settings, entries, (max(numbers) + 1 if numbers else 0)


def build_cache(
    items: Iterable[tuple[str, Any]] | Iterable[Any],
    out: str | os.PathLike[str],
    *,
    fps: float | None = 8.0,
    size: int | None = 128,
    image_format: str = "jpeg",
    quality: int = 90,
    shard_videos: int = 64,
    workers: int = 1,
    labels: list[str] | None = None,
    progress: ProgressFn | None = None,
) -> CacheReport:
    """Decode videos once into shards under `out`; returns a `CacheReport`.

    `items`: `VideoRecord`s or ``(path, label)`` pairs. `fps`: the training rate (None =
    native); `size`: shorter side in pixels (None = native). `image_format`: ``"jpeg"``
    (`quality` 1-100) or ``"raw"`` (uint8 RGB, exact, ~10-20x larger). `workers` > 1
    decodes in that many processes. `progress(done, total, path)` is called per video.
    Raises `ConfigError` if `out` already holds a cache made with other settings.
    """
    if image_format not in IMAGE_FORMATS:
        raise ConfigError(None, f"cache format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    if not 1 <= int(quality) <= 100:
        raise ConfigError(None, f"JPEG quality must be in 1..100, got {quality}")
    if shard_videos < 1:
        raise ConfigError(None, f"shard_videos must be >= 1, got {shard_videos}")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"format": CACHE_FORMAT, "fps": None if fps is None else float(fps),
                "size": None if size is None else int(size), "image_format": image_format,
                "quality": int(quality) if image_format == "jpeg" else None}
    old_settings, entries, shard_no = _load_shard_entries(out)
    if old_settings is not None and old_settings != settings:
        def text(s: dict[str, Any]) -> str:
            return ", ".join(f"{k}={s.get(k)}" for k in ("fps", "size", "image_format", "quality"))

        raise ConfigError(out, f"holds a cache made with {text(old_settings)}, not {text(settings)}: use another folder")
    report = CacheReport(out=str(out))
    todo: list[tuple[str, Any, int, int]] = []
    seen: set[str] = set()
    for item in items:
        path, label = (item.path, item.label) if hasattr(item, "path") else item
        key = cache_key(path)
        if key in seen:
            continue
        seen.add(key)
        try:
            stat = os.stat(key)
        except OSError as exc:
            report.bad[key] = f"cannot stat ({exc.strerror or exc})"
            continue
        old = entries.get(key)
        if old and old.get("source_size") == stat.st_size and old.get("source_mtime_ns") == stat.st_mtime_ns:
            report.skipped += 1
            continue
        todo.append((key, label, stat.st_size, stat.st_mtime_ns))
    total = len(todo)
    if progress:
        progress(0, total, "")
    args = (settings["fps"], settings["size"], image_format, int(quality))
    shard: _ShardWriter | None = None
    executor = None
    try:
        if workers > 1 and total > 1:
            from vidlens.data.parallel import process_pool

            executor = process_pool(min(workers, total))
            results = executor.map(_encode_video, [t[0] for t in todo], *[[a] * total for a in args])
        else:
            results = (_encode_video(t[0], *args) for t in todo)
        for done, ((key, label, src_size, src_mtime), result) in enumerate(zip(todo, results, strict=True), 1):
            if not result["ok"]:
                report.bad[key] = result["reason"]
            else:
                if shard is None:
                    shard = _ShardWriter(out, shard_no, settings)
                    shard_no += 1
                payload = result.pop("payload")
                result.pop("ok")
                entry = shard.add(key, payload, result)
                entry.update(label=label, source_size=src_size, source_mtime_ns=src_mtime)
                entries[key] = entry
                report.cached += 1
                report.frames_written += entry["num_frames"]
                report.bytes_written += len(payload)
                if entry["partial"]:
                    report.partial[key] = entry["partial"]
                if len(shard.videos) >= shard_videos:
                    shard.commit()
                    shard = None
            if progress:
                progress(done, total, key)
        if shard is not None:
            shard.commit()
            shard = None
    finally:
        if shard is not None:
            shard.abort()
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    _write_index(out, settings, entries, report.bad, labels)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


class _ShardWriter:
    """Appends payloads to a temporary shard file; `commit` renames it and writes its JSON."""

    def __init__(self, out: Path, number: int, settings: dict[str, Any]) -> None:
        self.name = f"shard-{number:05d}.bin"
        self.path = out / self.name
        self.tmp = out / f".{self.name}.{os.getpid()}.tmp"
        self.handle = open(self.tmp, "wb")
        self.position = 0
        self.settings = settings
        self.videos: dict[str, dict[str, Any]] = {}

    def add(self, key: str, payload: bytes, info: dict[str, Any]) -> dict[str, Any]:
        self.handle.write(payload)
        entry = {"shard": self.name, **info, "offsets": [self.position + o for o in info["offsets"]]}
        self.position += len(payload)
        self.videos[key] = entry
        return entry

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.path)
        meta = {"settings": self.settings, "videos": self.videos}
        _atomic_write(self.path.with_suffix(".json"), json.dumps(meta).encode())

    def abort(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)


def _write_index(out: Path, settings: dict[str, Any], entries: dict[str, Any], bad: dict[str, str], labels) -> None:
    index = {
        **settings,
        "labels": list(labels) if labels is not None else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "num_videos": len(entries),
        "num_frames": int(sum(e["num_frames"] for e in entries.values())),
        "shards": sorted({e["shard"] for e in entries.values()}),
        "videos": entries,
        "bad": bad,
    }
    _atomic_write(out / INDEX_NAME, json.dumps(index).encode())


@dataclass(frozen=True)
class CacheEntry:
    """One cached video: `num_frames` frames at `fps`, each `(height, width, 3)`."""

    key: str
    shard: str
    offsets: np.ndarray
    lengths: np.ndarray
    num_frames: int
    fps: float
    height: int
    width: int
    label: Any = None


class CacheReader:
    """Reads frames back from a cache folder; picklable (file handles open lazily per process).

    `read(path, indices)` -> `uint8 (N,H,W,C)` RGB, in the order asked, indices repeating freely.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        index_path = self.root / INDEX_NAME
        try:
            index = json.loads(index_path.read_text())
        except FileNotFoundError:
            raise DatasetError(index_path, "cache index not found (build it with `vidlens data cache`)") from None
        except (OSError, ValueError) as exc:
            raise DatasetError(index_path, f"unreadable cache index ({exc})") from None
        if index.get("format") != CACHE_FORMAT:
            raise DatasetError(index_path, f"unknown cache format {index.get('format')!r}")
        self.fps: float | None = index["fps"]
        self.size: int | None = index["size"]
        self.image_format: str = index["image_format"]
        self.labels: list[str] | None = index.get("labels")
        self.bad: dict[str, str] = index.get("bad", {})
        self._videos: dict[str, dict[str, Any]] = index["videos"]
        self._entries: dict[str, CacheEntry] = {}
        self._fds: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._videos)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str | os.PathLike) and cache_key(path) in self._videos

    def paths(self) -> list[str]:
        return sorted(self._videos)

    def entry(self, path: str | os.PathLike[str]) -> CacheEntry | None:
        """The cached video for `path`, or None."""
        key = cache_key(path)
        cached = self._entries.get(key)
        if cached is None:
            raw = self._videos.get(key)
            if raw is None:
                return None
            cached = CacheEntry(key, raw["shard"], np.asarray(raw["offsets"], dtype=np.int64),
                                np.asarray(raw["lengths"], dtype=np.int64), int(raw["num_frames"]), float(raw["fps"]),
                                int(raw["height"]), int(raw["width"]), raw.get("label"))
            self._entries[key] = cached
        return cached

    def read(self, path: str | os.PathLike[str], indices: Iterable[int] | np.ndarray) -> np.ndarray:
        """Frames `indices` of a cached video as `uint8 (N,H,W,C)` RGB."""
        entry = self.entry(path)
        if entry is None:
            raise DatasetError(path, f"not in the cache at {self.root}")
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= entry.num_frames):
            raise DatasetError(path, f"cached frame {int(wanted.max())} requested but {entry.num_frames} are cached")
        fd = self._fd(entry.shard)
        out = np.empty((wanted.size, entry.height, entry.width, 3), dtype=np.uint8)
        decoded: dict[int, int] = {}
        for pos, i in enumerate(wanted.tolist()):
            if i in decoded:
                out[pos] = out[decoded[i]]
                continue
            length = int(entry.lengths[i])
            data = os.pread(fd, length, int(entry.offsets[i]))
            if len(data) != length:
                raise DatasetError(self.root / entry.shard, "shard is shorter than its index says (truncated?)")
            if self.image_format == "jpeg":
                image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
                if image is None:
                    raise DatasetError(self.root / entry.shard, f"corrupt JPEG for frame {i} of {path}")
                cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=out[pos])
            else:
                out[pos] = np.frombuffer(data, dtype=np.uint8).reshape(entry.height, entry.width, 3)
            decoded[i] = pos
        return out

    def _fd(self, shard: str) -> int:
        fd = self._fds.get(shard)
        if fd is None:
            try:
                fd = os.open(self.root / shard, os.O_RDONLY)
            except OSError as exc:
                raise DatasetError(self.root / shard, f"cannot open cache shard ({exc.strerror or exc})") from None
            self._fds[shard] = fd
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fds"] = {}  # descriptors do not cross processes; each worker opens its own
        state["_entries"] = {}
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
