"""File identity by content: sha256 of a file's bytes, a result key over (content, task, options, version), and a
per-folder cache of content hashes by (path, size, mtime).

Shared by the batch engine (which skips videos whose key is done) and the video index (which refuses a video it
holds already, whatever its name). Files are read whole in 1 MiB chunks."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
HASH_CACHE = ".content_hashes.json"


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of a file, None when it is absent: changes whenever the file is replaced
    (`os.replace` gives a new inode even within one mtime tick). Cheap: one stat, no read."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces: the same options always give the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def content_hash(path: str | os.PathLike[str]) -> str:
    """sha256 of the file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def item_key(file_hash: str, task: str, options: Mapping[str, Any]) -> str:
    """sha256 over (file content hash, task name, canonical JSON of the options, vidlens version)."""
    from vidlens import __version__

    return hashlib.sha256(canonical_json([file_hash, task, dict(options), __version__]).encode()).hexdigest()


class HashCache:
    """(path, size, mtime_ns) -> content hash, kept in FOLDER/.content_hashes.json between runs."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / HASH_CACHE
        try:
            self.data: dict[str, list[Any]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.changed = False

    def fill(self, videos: list[Path], threads: int = 4) -> None:
        """Hash every file not cached yet, `threads` at a time (hashlib releases the GIL on large reads)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(self.get, videos))

    def get(self, video: Path) -> str | None:
        """The file's content hash, or None when it cannot be read (the caller says why)."""
        try:
            st = video.stat()
        except OSError:
            return None
        cached = self.data.get(str(video))
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        try:
            digest = content_hash(video)
        except OSError:
            return None
        self.data[str(video)] = [st.st_size, st.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        """Write the cache atomically (only when something was added)."""
        if not self.changed:
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)
