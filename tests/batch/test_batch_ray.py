"""`vidlens batch --engine ray` on a real local Ray cluster (2 CPUs), over the same real footage as the
local engine's tests (+ one synthetic video and a corrupt file).

What a user relies on: the Ray engine gives the same labels / scenes as the local engine and the
single-video commands, the same results table, the corrupt file recorded with its reason, and a model
that cannot load stops the batch with its reason. Fault tolerance (a killed actor, a killed driver) is in
test_batch_ray_faults.py and a dying node in test_batch_ray_node.py: separate files, so that
`pytest -n N --dist loadfile` runs them on other workers.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import CORRUPT, by_name, cli, pool_released
from vidlens.batch import ResultStore, get_task, plan_batch, resolve_options

ray = pytest.importorskip("ray", reason="the Ray engine's tests need ray[data] (pip install 'vidlens[ray]')")

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # `make test-slow`


def test_shots_on_ray_match_the_local_engine_and_vidlens_shots(cluster, video_folder, tmp_path):
    on_ray, local = tmp_path / "ray", tmp_path / "local"
    assert cli("--quiet", "batch", "shots", video_folder, "--out", on_ray, "--engine", "ray", "--no-plot") == 2
    assert cli("--quiet", "batch", "shots", video_folder, "--out", local, "--workers", 2, "--no-plot") == 2
    ray_table = by_name(pq.read_table(on_ray / "results.parquet").to_pylist())
    local_table = by_name(pq.read_table(local / "results.parquet").to_pylist())
    assert set(ray_table) == set(local_table) == {p.name for p in video_folder.iterdir()}
    assert pq.read_table(on_ray / "results.parquet").column_names == pq.read_table(local / "results.parquet").column_names
    for name, row in ray_table.items():
        other = local_table[name]
        assert row["status"] == other["status"] and row["key"] == other["key"]
        if name == CORRUPT:
            assert row["status"] == "failed" and row["error"] and row["error"] == other["error"]
            assert not Path(row["out_dir"]).exists()
            continue
        assert row["status"] == "done", row
        assert (row["shots"], row["boundaries"]) == (other["shots"], other["boundaries"])
        ours = json.loads((Path(row["out_dir"]) / "scenes.json").read_text())
        theirs = json.loads((Path(other["out_dir"]) / "scenes.json").read_text())
        assert ours["boundaries"] == theirs["boundaries"] and ours["scenes"] == theirs["scenes"]
        assert row["attempt"] == 1 and row["load_s"] is not None and row["seconds"] > 0
        assert int(row["worker"].rsplit(":", 1)[1]) != os.getpid()  # run by an actor process
    assert ray_table["bikes.mp4"]["boundaries"] >= 1  # bikes.mp4 has cuts
    for name in ("bikes.mp4", "chaplin.mp4"):  # the single-video command on real footage
        if name not in ray_table:
            continue
        assert cli("--quiet", "shots", video_folder / name, "--out", tmp_path / name, "--no-plot") == 0
        single = json.loads((tmp_path / name / "scenes.json").read_text())
        ours = json.loads((Path(ray_table[name]["out_dir"]) / "scenes.json").read_text())
        assert ours["boundaries"] == single["boundaries"] and ours["scenes"] == single["scenes"]
    assert len(ResultStore(on_ray).rows()) == len(ray_table)  # one row per video
    assert pool_released()


def test_classify_on_ray_matches_vidlens_predict(cluster, video_folder, checkpoint, tmp_path):
    """Ray == `vidlens predict` per video (the local engine == `vidlens predict` is tested in test_batch_local)."""
    on_ray = tmp_path / "ray"
    assert cli("--quiet", "batch", "classify", video_folder, "--out", on_ray, "--checkpoint", checkpoint,
               "--engine", "ray", "--workers", 2) == 2
    assert cli("--quiet", "predict", video_folder, "--checkpoint", checkpoint, "--out", tmp_path / "predict") == 2
    single = {Path(r["path"]).name: r for r in map(json.loads, (tmp_path / "predict" / "predictions.jsonl").read_text().splitlines())}
    ray_table = by_name(pq.read_table(on_ray / "results.parquet").to_pylist())
    assert set(ray_table) == set(single)
    for name, row in ray_table.items():
        if name == CORRUPT:
            assert row["status"] == "failed" and row["error"] and row["label"] is None and "error" in single[name]
            continue
        assert row["status"] == "done", row
        assert row["label"] == single[name]["top"][0]["label"]
        assert row["score"] == pytest.approx(single[name]["top"][0]["score"], abs=1e-5)
        own = json.loads((Path(row["out_dir"]) / "predictions.jsonl").read_text())
        assert [t["label"] for t in own["top"]] == [t["label"] for t in single[name]["top"]]
        assert [t["score"] for t in own["top"]] == pytest.approx([t["score"] for t in single[name]["top"]], abs=1e-5)


def test_a_model_that_cannot_load_stops_the_batch_with_its_reason(cluster, video_folder, tmp_path):
    from vidlens.batch.ray_engine import run_ray
    from vidlens.errors import VidlensError

    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    out = tmp_path / "out"
    store = ResultStore(out)
    options = resolve_options(get_task("classify"), {"checkpoint": str(bad)})
    todo, _ = plan_batch(video_folder, "classify", options, out, store)
    with pytest.raises(VidlensError, match="cannot load the classify models on a Ray worker: .*bad.pt"):
        run_ray(todo, "classify", options, store, workers=1)
    assert store.rows() == []  # no video was recorded failed for a problem of the model
    assert pool_released()  # the batch stopped: its actors are gone


def test_without_ray_the_engine_says_how_to_install_it(video_folder, tmp_path, monkeypatch):
    from vidlens.batch.ray_engine import run_ray
    from vidlens.errors import VidlensError

    out = tmp_path / "out"
    store = ResultStore(out)
    todo, _ = plan_batch(video_folder, "shots", {}, out, store)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when ray is not installed
    with pytest.raises(VidlensError, match=r"pip install 'vidlens\[ray\]'"):
        run_ray(todo, "shots", resolve_options(get_task("shots"), {}), store)
    assert store.rows() == []


def test_gpu_actors_on_a_cluster_without_gpus_is_a_clear_error(cluster, video_folder, tmp_path):
    from vidlens.batch.ray_engine import run_ray
    from vidlens.errors import ConfigError

    out = tmp_path / "out"
    store = ResultStore(out)
    todo, _ = plan_batch(video_folder, "shots", {}, out, store)
    with pytest.raises(ConfigError, match="no GPUs"):
        run_ray(todo, "shots", resolve_options(get_task("shots"), {}), store, gpus_per_worker=0.25)
    assert store.rows() == []
