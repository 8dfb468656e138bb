"""`vidlens index build|add|remove|info` and `vidlens search` on real footage: outputs and exit codes
(0 ok, 1 some files failed / some videos not found, 2 bad input with one line and no traceback)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from tests.tasks.test_retrieval_index import ffmpeg
from vidlens.cli.main import main
from vidlens.testing import sample_media


@pytest.fixture
def run_cli(capsys, one_thread):
    """`vidlens --quiet ARGS` in this process."""

    def run(*args) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            main(["--quiet", *map(str, args)])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two small real clips, a broken file and a manifest with a text column."""
    d = tmp_path_factory.mktemp("cli-videos")
    enc = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-an"]
    ffmpeg("-i", sample_media("bigbuckbunny.mp4"), "-vf", "scale=320:-2", *enc, d / "bunny.mp4")
    ffmpeg("-t", "6", "-i", sample_media("bikes.mp4"), "-vf", "scale=320:-2", *enc, d / "bikes.mp4")
    (d / "broken.mp4").write_text("not a video\n")
    (d / "list.csv").write_text("path,text\nbunny.mp4,an animated film with a big rabbit in a forest\nbikes.mp4,\n")
    return d


def test_build_add_info_search_remove(run_cli, folder, tmp_path):
    idx = tmp_path / "idx"
    r = run_cli("index", "build", folder, "--out", idx)
    assert r.returncode == 1, r.stderr  # broken.mp4 failed: listed, the others indexed
    assert "broken.mp4" in r.stderr and "Traceback" not in r.stderr
    assert "added 2" in r.stdout

    r = run_cli("index", "info", idx, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["videos"] == 2 and info["visual_dim"] > 0 and info["text_dim"] == 384 and info["bytes"] > 0

    r = run_cli("index", "add", idx, folder / "bikes.mp4", "--json")  # already there: skipped
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["skipped"]) == 1

    r = run_cli("index", "info", idx)
    assert r.returncode == 0 and "videos" in r.stdout and "faiss" in r.stdout

    out = tmp_path / "hits"
    r = run_cli("search", idx, "--clip", sample_media("bikes.mp4"), "--start", "1", "--end", "5", "--k", "2",
                "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["hits"][0]["name"] == "bikes.mp4" and abs(doc["hits"][0]["start_s"] - 1.0) <= 1.0
    assert {p.name for p in out.iterdir()} == {"results.json", "results.csv", "sheet.png"}
    assert list(csv.DictReader((out / "results.csv").open()))[0]["name"] == "bikes.mp4"

    r = run_cli("search", idx, "--text", "bicycle")
    assert r.returncode == 0, r.stderr
    assert "bikes.mp4" in r.stdout and "not the pixels" in r.stdout.replace("\n", " ")

    r = run_cli("index", "remove", idx, "bikes.mp4", "nothere.mp4")
    assert r.returncode == 1 and "removed 1" in r.stdout and "nothere.mp4" in r.stderr
    r = run_cli("search", idx, "--video", "bunny.mp4", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["hits"] == []


def test_manifest_text_column_is_searchable(run_cli, folder, tmp_path):
    idx = tmp_path / "idx"
    r = run_cli("index", "build", folder / "list.csv", "--out", idx, "--no-tags")
    assert r.returncode == 0, r.stderr
    r = run_cli("search", idx, "--text", "rabbit cartoon", "--json")
    hits = json.loads(r.stdout)["hits"]
    assert hits and hits[0]["name"] == "bunny.mp4" and "rabbit" in hits[0]["why"]


@pytest.mark.parametrize("args, message", [
    (["search", "{idx}"], "exactly one of"),
    (["search", "{idx}", "--text", "x", "--video", "y"], "exactly one of"),
    (["search", "{idx}", "--text", "x", "--start", "1"], "--start/--end go with --clip"),
    (["search", "{idx}", "--clip", "{tmp}/missing.mp4"], "no such file"),
    (["search", "{tmp}", "--text", "x"], "not a video index"),
    (["index", "info", "{tmp}/nowhere"], "not a video index"),
    (["index", "build", "{tmp}/nowhere", "--out", "{tmp}/i2"], "not a folder"),
])
def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path, args, message):
    idx = tmp_path / "idx"
    idx.mkdir()
    (idx / "index.json").write_text(json.dumps({"format": 1}))
    (idx / "meta.sqlite").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    r = run_cli(*[a.format(idx=idx, tmp=tmp_path / "empty") for a in args])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr
