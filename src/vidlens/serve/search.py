"""Video search in the service: the index a server was started with (`--index`), its search and add jobs,
and the reads and removals the server answers itself.

- `IndexHandle`: one open `VideoIndex` per process, reopened whenever a write (from any process) has
  replaced its vector stores (`signature`: inode + mtime of `index.json` and each store's `store.json`), so a
  search sees the videos added or removed since; the models (`IndexModels`) are loaded once and kept.
- Jobs, run in the worker processes (`worker.run_job`): `search` (by clip, image, text or indexed video;
  `results.json|csv`, `sheet.png` and a thumbnail per hit) and `index` (an upload added to the index).
- Writes never use a cached index: each opens the index afresh, so its stores are read inside the index's
  write lock (`INDEX/.lock`) and one writer cannot save over another's vectors. Uploaded videos are kept
  in `INDEX/uploads/` (search results show their frames); removing one deletes that copy too, and a copy left by
  a job killed before its commit is deleted when a server next starts on the index (`sweep_uploads`).
- Results carry no server paths: a hit's `video` is the file name it was indexed under (`video_id` is unique).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

from vidlens.errors import ConfigError, VidlensError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
UPLOADS = "uploads"  # INDEX/uploads/: videos added through the service
THUMB_WIDTH = 240


def signature(path: str | os.PathLike[str]) -> tuple:
    """What changes when a write lands: inode and mtime of index.json and of each vector store's store.json
    (written with os.replace on every save). SQLite rows need no check: a connection reads them fresh."""
    from vidlens.io.content import file_identity

    return tuple(file_identity(Path(path) / rel) for rel in ("index.json", "visual/store.json", "text/store.json"))


def ensure_index(path: str | os.PathLike[str]) -> None:
    """An index at `path`: opened to check it, or created empty when the folder is missing or empty
    (`ConfigError` when `path` is something else)."""
    from vidlens.tasks.retrieval.index import VideoIndex

    folder = Path(path)
    try:
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            VideoIndex.open(folder).close()
        else:
            VideoIndex.create(folder).close()
    except VidlensError as exc:
        raise ConfigError(str(path), f"--index: {exc.reason}") from None


class IndexHandle:
    """The server's index in one process: `get()` gives an open `VideoIndex`, reopened after other writes."""

    def __init__(self, path: str | os.PathLike[str], models: Any = None) -> None:
        self.path = Path(path)
        self.models = models  # IndexModels shared by every reopened index (None: not loaded yet)
        self._index: Any = None
        self._sig: tuple | None = None
        self.lock = threading.RLock()  # the server's threads share one connection

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IndexHandle:
        """Open the index and load the search models (frame embedder, text encoder) once, for a worker."""
        handle = cls(path)
        index = handle.get()
        handle.models = index.models()
        handle.models.embedder  # noqa: B018 - load now, not on the first job
        handle.models.text  # noqa: B018
        return handle

    def get(self) -> Any:
        from vidlens.tasks.retrieval.index import VideoIndex

        with self.lock:
            sig = signature(self.path)
            if self._index is None or sig != self._sig:
                if self._index is not None:
                    self._index.close()
                self._index = VideoIndex.open(self.path)
                if self.models is not None:
                    self._index._models = self.models  # keep the loaded models across reopens
                self._sig = sig
            return self._index

    def describe(self) -> dict[str, Any]:
        return {"index": self.path.name, "encoder": self.get().manifest.get("encoder"), "text_encoder": "all-MiniLM-L6-v2"}

    def facts(self) -> dict[str, Any]:
        """What /v1/info and GET /v1/index say of the index (no server paths)."""
        with self.lock:
            info = self.get().info()
        keys = ("videos", "segments", "text_rows", "visual_vectors", "text_vectors", "visual_dim", "text_dim",
                "encoder", "text_encoder", "backend", "bytes", "duration_s")
        return {"name": self.path.name, **{k: info[k] for k in keys}}

    def listing(self) -> list[dict[str, Any]]:
        """Every indexed video, oldest first, as clients see them."""
        with self.lock:
            rows = self.get().videos()
        return [public_video(r, self.path) for r in rows]

    def find(self, video: str) -> dict[str, Any] | None:
        with self.lock:
            return self.get().find(video)

    def close(self) -> None:
        with self.lock:
            if self._index is not None:
                self._index.close()
                self._index = None


def public_video(row: dict[str, Any], index_path: Path) -> dict[str, Any]:
    """An index row without server paths."""
    return {"id": row["id"], "name": row["name"], "duration_s": row["duration_s"], "fps": row["fps"],
            "tags": [t["tag"] for t in row["tags"]], "labels": [x["label"] for x in row["labels"]],
            "user_text": row["user_text"], "added": row["added"], "uploaded": _is_upload(row["path"], index_path)}


def _is_upload(path: str, index_path: Path) -> bool:
    uploads = (index_path / UPLOADS).resolve()
    return uploads in Path(path).resolve().parents


def remove_video(index_path: str | os.PathLike[str], video: str) -> dict[str, Any] | None:
    """Remove one video (id, name, or content hash) from the index, and its uploaded copy when the service
    made it; None when the index has no such video. Opens the index afresh (its stores are read inside
    the write lock)."""
    from vidlens.tasks.retrieval.index import VideoIndex

    base = Path(index_path)
    with VideoIndex.open(base) as index:
        row = index.find(video)
        if row is None:
            return None
        removed = index.remove([str(row["id"])])
    if removed and _is_upload(row["path"], base):
        Path(row["path"]).unlink(missing_ok=True)
    return {"removed": bool(removed), "video": row["name"], "video_id": row["id"]}


# ---------------------------------------------------------------------- jobs (worker side)

def run_search(handle: IndexHandle, upload: Path, out: Path, name: str, options: dict[str, Any],
               progress: Any) -> tuple[dict[str, Any], dict[str, Path]]:
    """One search job. `options["query"]`: clip | image (the upload), text (`options["text"]`) or video
    (`options["video"]`, an indexed video's id or name); `k`; for a clip `start`/`end` seconds."""
    from vidlens.tasks.retrieval.search import search_clip, search_image, search_text, search_video, write_search_outputs

    query, k = options.get("query"), int(options.get("k", 10))
    progress(f"search by {query}", 0.0)
    with handle.lock:
        index = handle.get()
        if query == "clip":
            result = search_clip(index, upload, start_s=options.get("start"), end_s=options.get("end"), k=k)
            result.query["path"] = name
        elif query == "image":
            result = search_image(index, upload, k=k)
            result.query["path"] = name
        elif query == "text":
            result = search_text(index, str(options.get("text", "")), k=k)
        elif query == "video":
            row = index.find(str(options.get("video", "")))
            if row is None:  # never a file path: only what the index holds
                raise VidlensError(None, f"no video {options.get('video')!r} in the index")
            result = search_video(index, str(row["id"]), k=k)
            result.query["video"] = row["name"]
            for item in result.query.get("excluded", []):
                item["video"] = Path(item["video"]).name
        else:
            raise ConfigError(None, f"unknown search query {query!r}")
        progress("writing results", 0.0)
        write_search_outputs(result, out)  # sheet.png from the real files
        files = {"results.json": out / "results.json", "results.csv": out / "results.csv", "sheet.png": out / "sheet.png"}
        thumbs = _thumbnails(result.hits, out)
    public = dataclasses.replace(result, hits=[dataclasses.replace(h, video=h.name or Path(h.video).name) for h in result.hits])
    write_search_outputs(public, out, sheet=False)  # JSON and CSV again, without server paths
    doc = public.to_json()
    for i, hit in enumerate(doc["hits"], 1):
        if f"hits/{i}.jpg" in thumbs:
            hit["thumbnail"] = f"hits/{i}.jpg"
    files.update(thumbs)
    return {"kind": "search", **doc}, files


def _thumbnails(hits: list[Any], out: Path) -> dict[str, Path]:
    """`hits/<rank>.jpg`: the frame at the middle of each hit's range (left out when it cannot be read)."""
    import cv2

    from vidlens.tasks.retrieval.sheet import hit_thumbnail

    files = {}
    for i, h in enumerate(hits, 1):
        img = hit_thumbnail(h.video, (h.start_s + h.end_s) / 2, THUMB_WIDTH)
        if img is None:
            continue
        path = out / "hits" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        files[f"hits/{i}.jpg"] = path
    return files


def sweep_uploads(index_path: str | os.PathLike[str], older_than_s: float) -> list[Path]:
    """Delete the files in INDEX/uploads/ that no indexed video refers to and that are older than `older_than_s`:
    copies left by an index job killed (e.g. at its timeout) between keeping the upload and committing it. A job
    still running is younger than its timeout, so its copy is never touched. Returns the files removed."""
    import time

    from vidlens.tasks.retrieval.index import VideoIndex

    folder = Path(index_path) / UPLOADS
    if not folder.is_dir():
        return []
    with VideoIndex.open(index_path) as index:
        used = {Path(row[0]).resolve() for row in index.conn.execute("SELECT path FROM videos")}
    removed = []
    now = time.time()
    for path in sorted(folder.iterdir()):
        try:
            stale = path.is_file() and path.resolve() not in used and now - path.stat().st_mtime > older_than_s
        except OSError:
            continue
        if stale:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def run_add(handle: IndexHandle, upload: Path, out: Path, name: str, options: dict[str, Any],
            progress: Any) -> tuple[dict[str, Any], dict[str, Path]]:
    """One index job: keep the upload in INDEX/uploads/ (a free name), compute its entry outside the lock,
    write it through a freshly opened index (inside the write lock). Content already indexed is skipped."""
    from vidlens.io.content import content_hash
    from vidlens.tasks.retrieval.index import VideoIndex, compute_entry

    digest = content_hash(upload)
    known = handle.find(digest)
    if known is not None:
        return {"kind": "index", "status": "skipped", "reason": "already indexed (same content)", "video": known["name"],
                "video_id": known["id"]}, {}
    kept = _keep_upload(upload, handle.path / UPLOADS, name)
    try:
        progress("indexing", 0.0)
        entry = compute_entry(kept, handle.models, user_text=str(options.get("text", "")), content_hash=digest)
        progress("writing the index", 0.0)
        try:
            with VideoIndex.open(handle.path) as index:
                video_id = index.add_entries([entry])[0]
                row = index.video(video_id)
                total = index.conn.execute("SELECT COUNT(*) FROM videos").fetchone()[0]
        except sqlite3.IntegrityError:  # the same content was added by another job meanwhile
            kept.unlink(missing_ok=True)
            row = handle.find(digest) or {"name": name, "id": None}
            return {"kind": "index", "status": "skipped", "reason": "already indexed (same content)", "video": row["name"],
                    "video_id": row["id"]}, {}
    except BaseException:
        kept.unlink(missing_ok=True)
        raise
    video = public_video(row, handle.path)
    return {"kind": "index", "status": "added", "video": video["name"], "video_id": video_id, "entry": video,
            "segments": len(entry.segments), "seconds": round(entry.seconds, 3), "index_videos": int(total)}, {}


def _keep_upload(upload: Path, folder: Path, name: str) -> Path:
    """Copy the upload to `folder/name`, or `stem-2.ext`, ... when that name is taken (created exclusively)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 1
    while True:
        target = folder / (name if n == 1 else f"{stem}-{n}{suffix}")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            n += 1
            continue
        with os.fdopen(fd, "wb") as dst, open(upload, "rb") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
        return target
