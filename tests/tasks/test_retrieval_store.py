"""VectorStore: cosine top-k against a numpy brute force, replace/remove, `allowed`, save/reopen, bad stores."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("faiss")

from vidlens.errors import ConfigError, VidlensError  # noqa: E402
from vidlens.tasks.retrieval.store import VectorStore  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _brute(db_ids: np.ndarray, db: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = _unit(queries) @ _unit(db).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), db_ids[order]


@pytest.fixture()
def data():
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(500, 32)).astype(np.float32) * rng.uniform(0.1, 10, size=(500, 1)).astype(np.float32)
    ids = rng.choice(10**9, size=500, replace=False).astype(np.int64)
    return ids, vecs, rng


def test_search_matches_brute_force_cosine(tmp_path, data):
    ids, vecs, rng = data
    store = VectorStore.create(tmp_path / "s", 32)
    assert len(store) == 0 and store.dim == 32
    store.add(ids, vecs)
    assert len(store) == 500
    queries = rng.normal(size=(6, 32)).astype(np.float32) * 3.0  # unnormalised on purpose
    scores, got = store.search(queries, 10)
    want_scores, want = _brute(ids, vecs, queries, 10)
    assert got.dtype == np.int64 and scores.dtype == np.float32 and got.shape == (6, 10)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    # a stored vector finds itself first with cosine 1
    scores, got = store.search(vecs[[3]], 1)
    assert got[0, 0] == ids[3] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    # stored rows are the normalised inputs
    np.testing.assert_allclose(store.vectors(ids[[5, 1]]), _unit(vecs[[5, 1]]), atol=1e-6)
    assert set(store.ids().tolist()) == set(ids.tolist())


def test_k_beyond_size_pads_with_minus_one_and_minus_inf(tmp_path, data):
    ids, vecs, _ = data
    store = VectorStore.create(tmp_path / "s", 32)
    empty_scores, empty_ids = store.search(vecs[:2], 3)
    assert (empty_ids == -1).all() and np.isneginf(empty_scores).all()
    store.add(ids[:4], vecs[:4])
    scores, got = store.search(vecs[:1], 7)
    assert sorted(got[0, :4].tolist()) == sorted(ids[:4].tolist())
    assert (got[0, 4:] == -1).all() and np.isneginf(scores[0, 4:]).all()
    assert np.all(np.diff(scores[0, :4]) <= 1e-6)


def test_readd_replaces_and_remove_counts(tmp_path, data):
    ids, vecs, _ = data
    store = VectorStore.create(tmp_path / "s", 32)
    store.add(ids[:100], vecs[:100])
    # re-adding ids[0] with a new vector replaces it (no duplicate row)
    store.add(ids[[0, 150]], -vecs[[7, 150]])
    assert len(store) == 101
    scores, got = store.search(-vecs[[7]], 1)
    assert got[0, 0] == ids[0] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(store.vectors(ids[[0]]), _unit(-vecs[[7]]), atol=1e-6)
    # remove returns the number of rows removed; absent ids are ignored
    assert store.remove(np.array([ids[0], ids[1], 12345678901], dtype=np.int64)) == 2
    assert len(store) == 99
    assert store.remove(np.array([ids[0]])) == 0
    _, got = store.search(vecs[:100], 100)
    assert ids[0] not in got and ids[1] not in got
    with pytest.raises(KeyError):
        store.vectors(ids[[1]])
    with pytest.raises(ConfigError, match="unique"):
        store.add(np.array([5, 5]), vecs[:2])


def test_allowed_restricts_hits(tmp_path, data):
    ids, vecs, rng = data
    store = VectorStore.create(tmp_path / "s", 32)
    store.add(ids, vecs)
    allowed = ids[::7]
    queries = rng.normal(size=(4, 32)).astype(np.float32)
    scores, got = store.search(queries, 5, allowed=allowed)
    want_scores, want = _brute(ids[::7], vecs[::7], queries, 5)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    # fewer allowed ids than k: padded; unknown allowed ids are harmless
    scores, got = store.search(queries[:1], 5, allowed=np.array([ids[2], ids[3], 999], dtype=np.int64))
    assert sorted(got[0, :2].tolist()) == sorted(ids[[2, 3]].tolist()) and (got[0, 2:] == -1).all()
    _, got = store.search(queries[:1], 5, allowed=np.array([], dtype=np.int64))
    assert (got == -1).all()


def test_save_reopen_roundtrip_and_atomic_files(tmp_path, data):
    ids, vecs, rng = data
    path = tmp_path / "store"
    store = VectorStore.create(path, 32)
    assert not path.exists()  # nothing written before save()
    store.add(ids, vecs)
    store.save()
    queries = rng.normal(size=(3, 32)).astype(np.float32)
    before = store.search(queries, 10)
    again = VectorStore.open(path)
    assert len(again) == 500 and again.dim == 32
    after = again.search(queries, 10)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0], atol=1e-6)
    # mutate + save again; no temporary files left behind
    again.remove(ids[:10])
    again.save()
    assert len(VectorStore.open(path)) == 490
    assert sorted(p.name for p in path.iterdir()) == ["store.json", "vectors.faiss"]
    meta = json.loads((path / "store.json").read_text())
    assert meta["dim"] == 32 and meta["backend"] == "faiss"


def test_missing_and_corrupt_stores_give_clear_errors(tmp_path, data):
    ids, vecs, _ = data
    with pytest.raises(VidlensError, match="no vector store"):
        VectorStore.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VidlensError, match="not a vector store"):
        VectorStore.open(tmp_path / "empty")
    path = tmp_path / "s"
    store = VectorStore.create(path, 32)
    store.add(ids, vecs)
    store.save()
    index_file = path / "vectors.faiss"
    good = index_file.read_bytes()
    index_file.write_bytes(good[: len(good) // 3])  # truncated
    with pytest.raises(VidlensError, match="corrupt"):
        VectorStore.open(path)
    index_file.write_bytes(b"this is not a faiss index at all" * 10)
    with pytest.raises(VidlensError, match="corrupt"):
        VectorStore.open(path)
    index_file.write_bytes(good)
    (path / "store.json").write_text("{not json")
    with pytest.raises(VidlensError, match="corrupt"):
        VectorStore.open(path)
    (path / "store.json").write_text(json.dumps({"format": 1, "backend": "faiss", "dim": 64}))
    with pytest.raises(VidlensError, match="does not match"):
        VectorStore.open(path)


def test_wrong_dimension_and_bad_input(tmp_path, data):
    ids, vecs, _ = data
    store = VectorStore.create(tmp_path / "s", 32)
    with pytest.raises(ConfigError, match="32-d"):
        store.add(ids[:3], np.zeros((3, 16), np.float32))
    store.add(ids[:3], vecs[:3])
    with pytest.raises(ConfigError, match="32-d"):
        store.search(np.zeros((1, 31), np.float32), 3)
    with pytest.raises(ConfigError, match="3 ids for 2 vectors"):
        store.add(ids[:3], vecs[:2])
    with pytest.raises(ConfigError, match="NaN"):
        store.add(ids[:1], np.full((1, 32), np.nan, np.float32))
    with pytest.raises(ConfigError):
        store.add(np.array([-5]), vecs[:1])
    with pytest.raises(ConfigError):
        VectorStore.create(tmp_path / "t", 0)


def test_large_store_searches_an_hnsw_graph_after_save(tmp_path, monkeypatch):
    """Past ANN_MIN_FLOATS, save() builds/persists an HNSW graph; searches stay exact until then and with `allowed`."""
    from vidlens.tasks.retrieval import store as store_mod

    monkeypatch.setattr(store_mod, "ANN_MIN_FLOATS", 2000 * 32)  # the policy's threshold, scaled to a test size
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 32))
    vecs = (centres[rng.integers(0, 40, 4000)] + 0.7 * rng.normal(size=(4000, 32))).astype(np.float32)
    ids = np.arange(4000, dtype=np.int64) * 5
    path = tmp_path / "big"
    store = VectorStore.create(path, 32)
    store.add(ids[:3000], vecs[:3000])
    assert store.kind == "flat"
    store.save()
    assert store.kind == "hnsw" and (path / "ann.faiss").is_file()
    queries = vecs[3500:3600] + 0.1 * rng.normal(size=(100, 32)).astype(np.float32)

    def recall(s, n_db):
        _, got = s.search(queries, 10)
        _, want = _brute(ids[:n_db], vecs[:n_db], queries, 10)
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.tolist(), want.tolist())])

    assert recall(store, 3000) >= 0.9
    again = VectorStore.open(path)
    assert again.kind == "hnsw" and json.loads((path / "store.json").read_text())["kind"] == "hnsw"
    assert recall(again, 3000) >= 0.9
    # adds make searches exact until the next save, which appends them to the graph
    again.add(ids[3000:3500], vecs[3000:3500])
    assert again.kind == "flat" and recall(again, 3500) == 1.0
    again.save()
    assert again.kind == "hnsw" and recall(again, 3500) >= 0.9
    _, got = again.search(vecs[[3200]], 1)
    assert got[0, 0] == ids[3200]
    # removals rebuild the graph on save; removed ids never come back
    assert again.remove(ids[:100]) == 100
    again.save()
    _, got = again.search(vecs[:100], 10)
    assert not set(got.ravel().tolist()) & set(ids[:100].tolist())
    # `allowed` is always exact
    allowed = ids[1000:3500:3]
    scores, got = again.search(queries[:5], 10, allowed=allowed)
    _, want = _brute(allowed, vecs[1000:3500:3], queries[:5], 10)
    np.testing.assert_array_equal(got, want)
    # shrinking below the threshold drops the graph
    again.remove(ids[100:3000])
    again.save()
    assert again.kind == "flat" and not (path / "ann.faiss").exists()
    assert VectorStore.open(path).kind == "flat"
