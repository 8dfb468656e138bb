"""`vidlens sync VIDEO` and `vidlens sync VIDEO --fix --out fixed.mp4` end to end on real footage whose audio the
ffmpeg CLI moved by a known amount: pedestrians (OpenCV's vtest.avi) with a box flashed and a beep mixed over Big
Buck Bunny's music at the same irregular instants (in sync by construction), and a still picture with music (no
cue: "cannot tell"). The fixed files are checked with the ffmpeg CLI (video packets unchanged, audio back in line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidlens.testing.real import opencv_sample, realdata
from vidlens.testing.sync_media import audio_lag_ms, decode_audio_cli, make_flash_beep_clip, shift_audio, video_packets
from tests.cli.console import run_main

pytestmark = pytest.mark.usefixtures("one_thread")
FRAME_MS = 40.0  # the flash clip is 25 fps


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> dict[str, Path]:
    import subprocess

    folder = tmp_path_factory.mktemp("sync_cli")
    source = folder / "street.mp4"
    make_flash_beep_clip(source, 6.0, seed=3)
    still = folder / "still.mp4"
    bbb = realdata("scenes/big_buck_bunny_0_30.webm")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "5", "-i", str(bbb), "-frames:v", "1", str(folder / "frame.png")],
                   check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "25", "-i", str(folder / "frame.png"), "-ss", "10",
                    "-i", str(bbb), "-map", "0:v", "-map", "1:a", "-t", "6", "-vf", "scale=320:-2", "-c:v", "libx264",
                    "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(still)], check=True)
    return {"source": source, "late": shift_audio(source, folder / "street_late240.mp4", 240), "still": still}


def test_detect_reports_the_offset_and_writes_the_files(talk, capsys, tmp_path):
    report = tmp_path / "report"
    code, out = run_main(capsys, "--quiet", "sync", talk["late"], "--report", report)  # auto
    assert code == 0, out
    doc = json.loads((report / "sync.json").read_text())
    assert doc["method"] == "events" and doc["verdict"] == "audio late", doc
    assert abs(doc["offset_ms"] - 240) <= FRAME_MS
    assert f"street_late240.mp4: audio late, offset {doc['offset_ms']:+.0f} ms" in out and str(report / "sync.png") in out
    assert (report / "sync_windows.csv").read_text().startswith("start_s,end_s,center_s,offset_ms,confidence")


def test_fix_measures_then_writes_a_corrected_copy(talk, capsys, tmp_path):
    fixed = tmp_path / "fixed.mp4"
    code, out = run_main(capsys, "--quiet", "sync", talk["late"], "--method", "events", "--fix", "--out", fixed,
                         "--report", tmp_path / "r")
    assert code == 0, out
    assert "fixed: audio moved" in out and "ms earlier" in out and str(fixed) in out
    assert video_packets(fixed) == video_packets(talk["late"])
    lag = audio_lag_ms(decode_audio_cli(talk["source"]), decode_audio_cli(fixed), start_s=1.0, seconds=4.0)
    assert abs(lag) <= FRAME_MS, lag
    assert json.loads((tmp_path / "r" / "sync.json").read_text())["offset_ms"] is not None


def test_cannot_tell_gives_no_number_and_no_fixed_file(talk, capsys, tmp_path):
    fixed = tmp_path / "fixed.mp4"
    code, out = run_main(capsys, "--quiet", "sync", talk["still"], "--method", "events", "--fix", "--out", fixed,
                         "--report", tmp_path / "r")
    assert code == 2 and "still.mp4: cannot tell (" in out and "not writing" in out, out
    assert not fixed.exists() and json.loads((tmp_path / "r" / "sync.json").read_text())["offset_ms"] is None


def test_fix_by_a_known_offset_needs_no_measuring(talk, capsys, tmp_path):
    fixed = tmp_path / "fixed.mkv"
    code, out = run_main(capsys, "--quiet", "sync", talk["late"], "--fix", "--offset-ms", "240", "--out", fixed)
    assert code == 0, out
    assert out.strip() == f"street_late240.mp4: audio moved 240 ms earlier -> {fixed}"
    lag = audio_lag_ms(decode_audio_cli(talk["source"]), decode_audio_cli(fixed), start_s=1.0, seconds=4.0)
    assert abs(lag) <= 3.0


def test_user_errors_exit_2_with_one_line(talk, capsys, tmp_path):
    cases = [
        (("sync", opencv_sample("vtest.avi"), "--report", tmp_path / "r"), "no audio stream"),
        (("sync", tmp_path / "missing.mp4", "--report", tmp_path / "r"), "does not exist"),
        (("sync", talk["late"], "--method", "lipreading", "--report", tmp_path / "r"), "unknown sync method"),
        (("sync", talk["late"], "--method", "learned", "--report", tmp_path / "r"), "needs --checkpoint"),
        (("sync", talk["late"], "--out", tmp_path / "fixed.mp4"), "add --fix"),
        (("sync", talk["late"], "--fix"), "--fix needs --out"),
        (("sync", talk["late"], "--offset-ms", "100", "--report", tmp_path / "r"), "only make sense with --fix"),
        (("sync", talk["late"], "--fix", "--offset-ms", "100", "--out", tmp_path / "fixed.txt"), "corrected video"),
        (("sync", opencv_sample("vtest.avi"), "--fix", "--offset-ms", "100", "--out", tmp_path / "f.mp4"), "no audio stream"),
        (("sync", talk["late"], "--max-offset-ms", "5000", "--report", tmp_path / "r"), "too short"),
    ]
    for args, message in cases:
        code, out = run_main(capsys, "--quiet", *args)
        assert code == 2 and message in out and "Traceback" not in out, (args, out)
        assert out.strip().startswith("error:") and len(out.strip().splitlines()) == 1, out
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a report folder


def test_train_then_use_the_learned_method(capsys, tmp_path):
    """`vidlens sync train` on a real talking face (5 s of the SyncNet sample, in sync), then `--method learned`
    with that checkpoint answers (a number or an honest "cannot tell") and writes its report."""
    from vidlens.testing.sync_media import cut_clip

    face = cut_clip(realdata("faces/guangfan.avi"), tmp_path / "face.mp4", 0.0, 5.0)
    model = tmp_path / "models" / "sync.pt"
    code, out = run_main(capsys, "--quiet", "sync", "train", face, "--out", model, "--epochs", "1")
    assert code == 0, out
    assert out.strip() == f"sync model trained on 1 video(s) -> {model}" and model.is_file()
    late = shift_audio(face, tmp_path / "face_late.mp4", 200)
    code, out = run_main(capsys, "--quiet", "sync", late, "--method", "learned", "--checkpoint", model, "--report",
                         tmp_path / "r")
    assert code == 0, out
    doc = json.loads((tmp_path / "r" / "sync.json").read_text())
    assert doc["method"] == "learned" and (doc["offset_ms"] is None) == (doc["verdict"] == "cannot tell")
    code, out = run_main(capsys, "--quiet", "sync", "train", tmp_path / "empty_folder_missing", "--out", tmp_path / "x.pt")
    assert code == 2 and "error:" in out
