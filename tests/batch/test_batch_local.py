"""`vidlens batch` on the local engine, over real footage (+ one synthetic video and a corrupt file).

What a user relies on: the same labels / scenes as the single-video commands, a results table with
the headline fields, a corrupt file recorded and not stopping the batch, reruns that redo nothing,
a changed option that redoes everything, and no video lost when a worker or the whole batch is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import CORRUPT, child_pids
from vidlens.batch import ResultStore, get_task, plan_batch, resolve_options
from vidlens.batch.local import LocalPool, run_local
from vidlens.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")

VIDLENS = Path(sys.executable).parent / "vidlens"


def cli(*args: str) -> int:
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def rows_of(out: Path) -> list[dict]:
    return ResultStore(out).rows()


@pytest.fixture(scope="module")
def shots_batch(video_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shots_batch") / "out"
    assert cli("--quiet", "batch", "shots", video_folder, "--out", out, "--workers", 2) == 2  # the corrupt file
    return out


def test_classify_batch_gives_the_labels_of_vidlens_predict(video_folder, checkpoint, tmp_path):
    out = tmp_path / "batch"
    assert cli("--quiet", "batch", "classify", video_folder, "--out", out, "--checkpoint", checkpoint, "--workers", 2) == 2
    assert cli("--quiet", "predict", video_folder, "--checkpoint", checkpoint, "--out", tmp_path / "predict") == 2
    single = {Path(r["path"]).name: r for r in map(json.loads, (tmp_path / "predict" / "predictions.jsonl").read_text().splitlines())}
    table = {Path(r["video"]).name: r for r in pq.read_table(out / "results.parquet").to_pylist()}
    assert set(table) == set(single) == {p.name for p in video_folder.iterdir()}
    for name, row in table.items():
        if name == CORRUPT:
            assert row["status"] == "failed" and row["error"] and row["label"] is None
            assert "error" in single[name]
            continue
        assert row["status"] == "done", row
        assert row["label"] == single[name]["top"][0]["label"]
        assert row["score"] == pytest.approx(single[name]["top"][0]["score"], abs=1e-5)
        assert row["seconds"] > 0 and row["worker"] and row["started"]
        # the video's folder holds what `vidlens predict VIDEO` writes
        own = json.loads((Path(row["out_dir"]) / "predictions.jsonl").read_text())
        assert own["top"][0]["label"] == row["label"]
        assert (Path(row["out_dir"]) / "predictions.csv").is_file()
    assert not (out / Path(CORRUPT).stem).exists()  # a failed video leaves no folder


def test_shots_batch_gives_the_scenes_of_vidlens_shots(shots_batch, video_folder, tmp_path):
    table = {Path(r["video"]).name: r for r in pq.read_table(shots_batch / "results.parquet").to_pylist()}
    real = ["bikes.mp4", "chaplin.mp4", "tree.avi"]
    for name in real:
        if name not in table:
            continue
        assert cli("--quiet", "shots", video_folder / name, "--out", tmp_path / name, "--no-plot") == 0
        single = json.loads((tmp_path / name / "scenes.json").read_text())
        batch = json.loads((Path(table[name]["out_dir"]) / "scenes.json").read_text())
        assert batch["boundaries"] == single["boundaries"]
        assert batch["scenes"] == single["scenes"]
        assert table[name]["shots"] == len(single["scenes"]) and table[name]["boundaries"] == len(single["boundaries"])
    assert table["bikes.mp4"]["boundaries"] >= 1  # bikes.mp4 has cuts
    assert table[CORRUPT]["status"] == "failed" and table[CORRUPT]["error"]
    assert all(r["status"] == "done" for n, r in table.items() if n != CORRUPT)
    rows = rows_of(shots_batch)
    assert len(rows) == len(table) == 7  # one row per video in results.jsonl


def test_rerun_skips_done_and_a_changed_option_redoes_all(shots_batch, video_folder):
    before = len(rows_of(shots_batch))
    # --skip-failed: the corrupt file is not decoded again either: nothing runs
    assert cli("--quiet", "batch", "shots", video_folder, "--out", shots_batch, "--skip-failed") == 0
    assert len(rows_of(shots_batch)) == before
    store = ResultStore(shots_batch)
    todo, done = plan_batch(video_folder, "shots", {}, shots_batch, store)
    assert [Path(i.video).name for i in todo] == [CORRUPT] and len(done) == 6  # by default failed ones are retried
    todo, done = plan_batch(video_folder, "shots", {"min_shot_s": 1.0}, shots_batch, store)
    assert len(todo) == 7 and not done  # another option: another key for every video
    todo, done = plan_batch(video_folder, "shots", {"min_shot_s": 0.5}, shots_batch, store)  # the default, spelled out
    assert len(done) == 6


def test_a_killed_worker_loses_no_video(video_folder, tmp_path):
    """Kill -9 the worker holding one video (once) and the worker of another (every time): the first ends
    done on its second try, the second is recorded failed "worker died", every other video is done."""
    videos = sorted(p for p in video_folder.iterdir() if p.name != CORRUPT)
    out = tmp_path / "out"
    store = ResultStore(out)
    todo, _ = plan_batch(video_folder, "shots", {"plot": False}, out, store)
    todo = [i for i in todo if Path(i.video).name != CORRUPT]
    once, always = videos[1].name, videos[3].name
    killed: list[str] = []

    def on_dispatch(item, pid):
        name = Path(item.video).name
        if name == always or (name == once and name not in killed):
            killed.append(name)
            os.kill(pid, signal.SIGKILL)

    pool = LocalPool()
    rows = run_local(todo, "shots", resolve_options(get_task("shots"), {"plot": False}), store, 2,
                     on_dispatch=on_dispatch, pool=pool)
    by_name = {Path(r["video"]).name: r for r in rows}
    assert killed.count(once) == 1 and killed.count(always) == 2
    assert by_name[once]["status"] == "done" and by_name[once]["attempt"] == 2
    assert by_name[always]["status"] == "failed" and by_name[always]["error"].startswith("worker died")
    assert "SIGKILL" in by_name[always]["error"]
    assert all(r["status"] == "done" for n, r in by_name.items() if n != always)
    assert len(rows) == len(todo) == len(rows_of(out))
    assert pool.pids == []  # every worker stopped


def test_killing_the_batch_then_rerunning_finishes_only_the_missing_videos(video_folder, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(VIDLENS), "--quiet", "batch", "shots", str(video_folder), "--out", str(out), "--workers", "1", "--no-plot"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and process.poll() is None:
        workers = workers or child_pids(process.pid)
        if (out / "results.jsonl").exists() and rows_of(out):
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]  # still running: kill it mid-batch
    process.kill()
    process.wait()
    first = rows_of(out)
    assert 1 <= len(first) < 7
    for pid in workers:  # an orphaned worker sees its pipe close and exits
        for _ in range(300):
            try:
                if " Z " in Path(f"/proc/{pid}/stat").read_text():
                    break
            except OSError:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"worker {pid} outlived its batch")
    assert cli("--quiet", "batch", "shots", video_folder, "--out", out, "--workers", 2, "--no-plot") == 2
    rows = rows_of(out)
    again = rows[len(first):]
    assert len(again) == 7 - len([r for r in first if r["status"] == "done"])  # only the missing videos ran
    assert {r["video"] for r in again}.isdisjoint({r["video"] for r in first if r["status"] == "done"})
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert len(table) == 7 and sum(r["status"] == "done" for r in table) == 6


def test_store_survives_a_row_cut_by_a_kill(tmp_path):
    store = ResultStore(tmp_path)
    store.append({"video": "/a.mp4", "key": "k1", "status": "done", "out_dir": str(tmp_path), "shots": 2})
    with open(store.jsonl, "a") as handle:
        handle.write('{"video": "/b.mp4", "key": "k2", "sta')  # the kill came in the middle of a write
    store.append({"video": "/c.mp4", "key": "k3", "status": "failed", "error": "bad", "out_dir": None, "shots": None})
    assert [r["video"] for r in store.rows()] == ["/a.mp4", "/c.mp4"]
    assert store.done_keys() == {"k1"} and set(store.failed_rows()) == {"k3"}
    table = pq.read_table(store.write_table()).to_pylist()
    assert [(r["video"], r["status"], r["shots"]) for r in table] == [("/a.mp4", "done", 2), ("/c.mp4", "failed", None)]


def test_inputs_by_glob_and_manifest_with_shared_stems(video_folder, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "bikes.mp4").write_bytes((video_folder / "bikes.mp4").read_bytes() + b"\0")  # same stem, other content
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path\n{video_folder / 'bikes.mp4'}\nother/bikes.mp4\nmissing.mp4\n")
    out = tmp_path / "out"
    todo, done = plan_batch(manifest, "shots", {}, out, ResultStore(out))
    names = [Path(i.out_dir).name for i in todo]
    assert len(todo) == 3 and not done and len(set(names)) == 3 and all(n.startswith(("bikes_", "missing")) for n in names)
    assert len({i.key for i in todo}) == 3
    todo, _ = plan_batch(str(video_folder / "*.avi"), "shots", {}, out, ResultStore(out))
    assert [Path(i.video).name for i in todo] == ["tree.avi"]
    with pytest.raises(Exception, match="no option"):
        plan_batch(video_folder, "shots", {"no_such_option": 1}, out, ResultStore(out))


def test_features_batch_embeds_on_the_device_asked_for(tmp_path, capsys):
    """`--device auto` runs where the worker is (cpu here); cuda on a worker without a GPU is a clear error."""
    import numpy as np
    import torch

    from vidlens.testing import sample_media

    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "carphone.mp4").write_bytes(sample_media("carphone_pristine.mp4").read_bytes())
    out = tmp_path / "features"
    assert cli("--quiet", "batch", "features", folder, "--out", out, "--workers", 1, "--frames", 4) == 0
    embedding = np.load(out / "carphone" / "embedding.npy")
    assert embedding.shape == (1280,) and np.isfinite(embedding).all()
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert cli("--quiet", "batch", "features", folder, "--out", tmp_path / "cuda", "--device", "cuda") == 2
        assert "sees no GPU" in capsys.readouterr().err


def test_rows_carry_the_videos_frames_and_duration(shots_batch, video_folder):
    """The table says how long each video is (the progress bar's frames/s comes from it); ffprobe agrees."""
    from vidlens.testing.real import ffprobe_frame_count

    rows = {Path(r["video"]).name: r for r in ResultStore(shots_batch).latest_rows()}
    assert rows[CORRUPT]["video_frames"] is None and rows[CORRUPT]["status"] == "failed"
    bikes = rows["bikes.mp4"]
    assert bikes["video_frames"] == ffprobe_frame_count(video_folder / "bikes.mp4") and bikes["duration_s"] > 0
