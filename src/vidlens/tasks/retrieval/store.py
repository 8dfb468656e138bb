"""A persistent id -> vector store answering cosine top-k, on faiss-cpu.

Layout of a store directory: `vectors.faiss` (a faiss `IndexIDMap2` over `IndexFlatIP`: the vectors and
their int64 ids, the exact source of truth) and `store.json` (format, dim, backend, count). Both are
written to a temporary file in the same directory and moved into place with `os.replace`, so a crash
mid-save leaves the previous store readable.

Search policy (from benchmarks/bench_vector_store.py, 1 faiss thread): exact search scans every vector, and
past ~100 MB of vectors it is memory-bound (10k x 1280: 1.9 ms/query; 100k x 1280: 58 ms idle, 190 ms
under load). So a store
holding at least `ANN_MIN_FLOATS` floats (25,000 rows at 1280-d) also keeps an HNSW graph (`ann.faiss`,
IndexHNSWFlat M=32, efConstruction=40, efSearch=128: recall@10 0.98 at 100k, < 1 ms/query), built by `save()`
(appended to when only adds happened since, rebuilt after removals/replacements). Until the next save, or
when `allowed` is given, searches are exact. Smaller stores are always exact.

Vectors are L2-normalised on add and on query, so inner product = cosine similarity.
faiss is imported lazily; it runs on one OpenMP thread unless the caller sets another count
(small queries on a shared 2-core machine are faster and steadier that way).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.errors import ConfigError, VidlensError

FORMAT = 1
INDEX_FILE = "vectors.faiss"
ANN_FILE = "ann.faiss"
ANN_MIN_FLOATS = 25_000 * 1280  # rows x dim from which save() builds the HNSW graph (~128 MB of vectors)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 40, 128
META_FILE = "store.json"
INSTALL_HINT = "pip install 'vidlens[retrieval]'"

_faiss_threads_set = False


def _faiss() -> Any:
    """Import faiss (lazily) and pin it to one OpenMP thread the first time."""
    global _faiss_threads_set
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(None, f"the vector store needs faiss-cpu ({exc}); install it with: {INSTALL_HINT}") from exc
    if not _faiss_threads_set:
        faiss.omp_set_num_threads(1)
        _faiss_threads_set = True
    return faiss


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as a C-contiguous float32 copy."""
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


class VectorStore:
    """Persistent id -> vector store answering cosine top-k (vectors L2-normalised on add and query)."""

    def __init__(self, path: Path, dim: int, index: Any, ann: Any = None) -> None:
        """Use `create` or `open`."""
        self.path = Path(path)
        self.dim = int(dim)
        self._index = index  # faiss.IndexIDMap2(IndexFlatIP(dim)): every vector, exact
        self._ann = ann  # faiss.IndexIDMap2(IndexHNSWFlat) or None; used only while `_ann_current`
        self._ann_current = ann is not None
        self._ann_appendable = ann is not None  # only adds since it was built: save() may append instead of rebuilding
        self._pending: list[np.ndarray] = []  # ids added since the graph was current

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(cls, path: str | os.PathLike[str], dim: int) -> "VectorStore":
        """An empty store for `dim`-dimensional vectors at directory `path`; nothing is written until `save()`."""
        if int(dim) <= 0:
            raise ConfigError(path, f"vector dimension must be positive, got {dim}")
        faiss = _faiss()
        return cls(Path(path), int(dim), faiss.IndexIDMap2(faiss.IndexFlatIP(int(dim))))

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "VectorStore":
        """Open a saved store; VidlensError when the directory is missing, not a store, or corrupt."""
        path = Path(path)
        meta_path = path / META_FILE
        if not path.is_dir():
            raise VidlensError(path, "no vector store here (directory missing)")
        if not meta_path.is_file():
            raise VidlensError(path, f"not a vector store ({META_FILE} missing)")
        try:
            meta = json.loads(meta_path.read_text())
            dim = int(meta["dim"])
            fmt = int(meta.get("format", 0))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise VidlensError(meta_path, f"corrupt vector store metadata ({exc})") from exc
        if fmt != FORMAT or meta.get("backend") != "faiss":
            raise VidlensError(meta_path, f"unsupported vector store format {fmt} / backend {meta.get('backend')!r}")
        index_path = path / INDEX_FILE
        if not index_path.is_file():
            raise VidlensError(index_path, "vector store is missing its index file")
        faiss = _faiss()
        try:
            index = faiss.read_index(str(index_path))
        except (RuntimeError, MemoryError, OSError) as exc:
            raise VidlensError(index_path, f"corrupt vector store index ({str(exc).strip().splitlines()[0]})") from exc
        if index.d != dim or not isinstance(index, faiss.IndexIDMap2):
            raise VidlensError(index_path, f"vector store index does not match its metadata (dim {index.d} vs {dim})")
        ann = None
        ann_path = path / ANN_FILE
        if meta.get("kind") == "hnsw" and ann_path.is_file():
            try:
                ann = faiss.read_index(str(ann_path))
            except (RuntimeError, MemoryError, OSError):
                ann = None  # a broken graph is only an accelerator: searches stay exact, save() rebuilds it
            if ann is not None and (ann.d != dim or ann.ntotal != index.ntotal):
                ann = None
            if ann is not None:
                faiss.downcast_index(ann.index).hnsw.efSearch = HNSW_EF_SEARCH
        return cls(path, dim, index, ann)

    # ------------------------------------------------------------------ contents

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def _check_vectors(self, vectors: np.ndarray, what: str) -> np.ndarray:
        vectors = np.asarray(vectors)
        if vectors.ndim == 1 and vectors.shape[0] == self.dim:
            vectors = vectors[None, :]
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ConfigError(self.path, f"{what} have shape {tuple(vectors.shape)}, this store holds {self.dim}-d vectors")
        if not np.all(np.isfinite(vectors)):
            raise ConfigError(self.path, f"{what} contain NaN or infinite values")
        return _normalise(vectors)

    @staticmethod
    def _check_ids(ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
            raise ConfigError(None, f"ids must be a 1-D integer array, got {ids.dtype} {tuple(ids.shape)}")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size and ids.min() < 0:
            raise ConfigError(None, "ids must be >= 0 (-1 marks an empty result slot)")
        return ids

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add rows: ids (N,) int64 unique, vectors (N,D) float32. Re-adding an id replaces its vector."""
        ids = self._check_ids(ids)
        vectors = self._check_vectors(vectors, "vectors")
        if len(ids) != len(vectors):
            raise ConfigError(self.path, f"{len(ids)} ids for {len(vectors)} vectors")
        if len(np.unique(ids)) != len(ids):
            raise ConfigError(self.path, "ids passed to add() must be unique")
        if not len(ids):
            return
        if len(self):
            self.remove(ids)
        self._index.add_with_ids(vectors, ids)
        self._ann_current = False
        self._pending.append(ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids (absent ones are ignored); returns how many rows were removed."""
        ids = np.unique(self._check_ids(ids))
        if not ids.size or not len(self):
            return 0
        faiss = _faiss()
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        if removed:
            self._ann_current = self._ann_appendable = False
        return removed

    def ids(self) -> np.ndarray:
        """All ids, (N,) int64, in storage order."""
        faiss = _faiss()
        return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    def _matrix(self) -> np.ndarray:
        """The stored rows (N,D) float32 as a view into faiss' memory (do not keep past a mutation)."""
        faiss = _faiss()
        flat = faiss.downcast_index(self._index.index)
        return faiss.vector_to_array(flat.codes).view(np.float32).reshape(-1, self.dim)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored (normalised) rows of these ids, (N,D) float32, in the order asked; KeyError for an unknown id."""
        ids = self._check_ids(ids)
        all_ids = self.ids()
        order = np.argsort(all_ids, kind="stable")
        pos = np.searchsorted(all_ids, ids, sorter=order)
        pos = np.minimum(pos, max(len(all_ids) - 1, 0))
        if not len(all_ids) or np.any(all_ids[order[pos]] != ids):
            missing = ids if not len(all_ids) else ids[all_ids[order[pos]] != ids]
            raise KeyError(f"ids not in the vector store: {missing[:10].tolist()}")
        return self._matrix()[order[pos]].copy()

    # ------------------------------------------------------------------ search

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Cosine top-k: queries (Q,D) -> scores (Q,k) float32, ids (Q,k) int64, best first;
        slots past the available rows hold id -1 and score -inf. `allowed` restricts hits to these ids."""
        queries = self._check_vectors(queries, "queries")
        k = int(k)
        if k <= 0:
            raise ConfigError(self.path, f"k must be positive, got {k}")
        q = len(queries)
        scores = np.full((q, k), -np.inf, dtype=np.float32)
        out_ids = np.full((q, k), -1, dtype=np.int64)
        n = len(self)
        if not q or not n:
            return scores, out_ids
        faiss = _faiss()
        kk = min(k, n)
        if allowed is None:
            index = self._ann if self._ann_current and self._ann is not None else self._index
            dist, labels = index.search(queries, kk)
        else:
            allowed = np.unique(self._check_ids(allowed))
            if not allowed.size:
                return scores, out_ids
            kk = min(kk, allowed.size)
            params = faiss.SearchParameters()
            selector = faiss.IDSelectorBatch(allowed)
            params.sel = selector
            dist, labels = self._index.search(queries, kk, params=params)
        valid = labels >= 0
        out_ids[:, :kk] = np.where(valid, labels, -1)
        scores[:, :kk] = np.where(valid, dist, -np.inf)
        return scores, out_ids

    # ------------------------------------------------------------------ persistence

    def save(self) -> None:
        """Write the store to its directory atomically (temporary files + os.replace)."""
        faiss = _faiss()
        self.path.mkdir(parents=True, exist_ok=True)
        self._write_index(self._index, INDEX_FILE)
        kind = "flat"
        if len(self) * self.dim >= ANN_MIN_FLOATS:
            kind = "hnsw"
            if not self._ann_current or self._ann is None:
                self._update_ann()
                self._write_index(self._ann, ANN_FILE)
        elif (self.path / ANN_FILE).exists():
            self._ann, self._ann_current, self._ann_appendable = None, False, False
            (self.path / ANN_FILE).unlink()
        meta = {"format": FORMAT, "backend": "faiss", "kind": kind, "dim": self.dim, "count": len(self),
                "metric": "cosine"}
        fd, tmp = tempfile.mkstemp(prefix=".store-", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(meta, fh, indent=1)
            os.replace(tmp, self.path / META_FILE)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _write_index(self, index: Any, name: str) -> None:
        faiss = _faiss()
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=self.path)
        os.close(fd)
        try:
            faiss.write_index(index, tmp)
            os.replace(tmp, self.path / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _update_ann(self) -> None:
        """Bring the HNSW graph up to date: append the rows added since it was built, or rebuild it."""
        faiss = _faiss()
        if self._ann is not None and self._ann_appendable and self._pending:
            new = np.unique(np.concatenate(self._pending))
            self._ann.add_with_ids(self.vectors(new), new)
        else:
            hnsw = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            hnsw.hnsw.efSearch = HNSW_EF_SEARCH
            ann = faiss.IndexIDMap2(hnsw)
            ann.add_with_ids(self._matrix().copy(), self.ids().copy())
            self._ann = ann
        self._pending = []
        self._ann_current = self._ann_appendable = True

    @property
    def kind(self) -> str:
        """"flat" (every search exact) or "hnsw" (searches without `allowed` use the graph built by save())."""
        return "hnsw" if self._ann_current and self._ann is not None else "flat"

    def info(self) -> dict:
        """Backend facts for `index info`: backend, kind, dim, count, bytes on disk."""
        files = (self.path / INDEX_FILE, self.path / ANN_FILE, self.path / META_FILE)
        size = sum(p.stat().st_size for p in files if p.is_file())
        return {"backend": "faiss", "kind": self.kind, "dim": self.dim, "count": len(self), "disk_bytes": size}
