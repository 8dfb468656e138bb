"""Whole-process speed for bench_shots.py: each tool's CLI run once per file, start-up included.

`vidlens shots FILE -o DIR --no-plot` (the default method, learned), the same with `--method classic`,
and `scenedetect -i FILE detect-content` (PySceneDetect's CLI prints its scene list and writes nothing).
One process at a time; each tool runs once untimed first (page cache warm for all), then the order of
the tools rotates from file to file so no tool always runs first or last.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

Command = Callable[[Path, Path], list[str]]  # (file, output folder) -> argv


def commands(model: str | None) -> dict[str, Command]:
    """The timed command lines, keyed by the detector names of the accuracy table."""
    bindir = Path(sys.executable).parent
    extra = ["--model", str(model)] if model else []

    def vidlens(flags: list[str]) -> Command:
        return lambda f, out: [str(bindir / "vidlens"), "shots", str(f), "-o", str(out / f.stem), "--no-plot", *flags]

    return {"vidlens learned": vidlens(extra), "vidlens classic": vidlens(["--method", "classic"]),
            "PySD Content": lambda f, out: [str(bindir / "scenedetect"), "-i", str(f), "detect-content"]}


def describe(model: str | None) -> str:
    """The timed command lines as written in RESULTS.md."""
    extra = f" --model {model}" if model else ""
    return (f"vidlens learned `vidlens shots FILE -o DIR --no-plot{extra}`, vidlens classic `vidlens shots FILE -o DIR "
            f"--no-plot --method classic`, PySD Content `scenedetect -i FILE detect-content`")


def timed_processes(files: list[Path], frames: list[int], out_dir: Path,
                    cmds: dict[str, Command]) -> tuple[dict[str, float], dict[str, float]]:
    """Summed wall seconds per tool over `files` (of `frames` frames each), one subprocess per file and tool, the
    order rotated per file; each tool first runs once untimed on the shortest file (its code and libraries read
    into the page cache). Also returns each tool's timed seconds on that file: mostly start-up (imports, model)."""
    names = list(cmds)
    shortest = files[frames.index(min(frames))]
    for name in names:
        run(name, cmds[name], shortest, out_dir)
    total, short = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
    for i, f in enumerate(files):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = run(name, cmds[name], f, out_dir)
            total[name] += seconds
            if f == shortest:
                short[name] = seconds
    return total, short


def run(name: str, cmd: Command, f: Path, out_dir: Path) -> float:
    """Wall seconds of one process; a failure raises with the end of its stderr."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd(f, out_dir), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed on {f} (exit {done.returncode}): {done.stderr[-600:]}")
    return seconds
