"""`vidlens sync ...`: measure (and fix) the offset between a video's sound and its picture.

`vidlens sync VIDEO [--method auto|speech|events|learned|baseline] [--report DIR]` (= `sync video`) prints the
offset (positive = audio late), its confidence and drift, and writes sync.json, sync_windows.csv and sync.png;
`vidlens sync VIDEO --fix --out fixed.mp4` also writes a corrected copy (video stream copied, audio moved and, with
drift, resampled); `--offset-ms` fixes by a known offset without measuring. `vidlens sync train VIDEOS... --out CKPT`
trains the learned (SyncNet-style) method on the user's own in-sync videos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from vidlens.cli.common import VideoDefaultGroup, console, console_err, make_progress, stage_progress

sync_app = typer.Typer(
    cls=VideoDefaultGroup,
    help="Audio-video synchronisation: `vidlens sync VIDEO` measures the offset (positive = audio late) and its drift, "
         "`--fix --out fixed.mp4` writes a corrected copy, `train` fits the learned method on your own videos.",
    no_args_is_help=True,
)
METHODS = ("auto", "speech", "events", "learned", "baseline")
METHOD_HELP = ("auto (learned with --checkpoint, else speech when faces are seen, else events), speech (mouth motion vs "
               "the voice), events (motion onsets vs sound onsets), learned (SyncNet-style, needs --checkpoint), "
               "baseline (whole-frame change vs loudness).")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm")


def check_method(method: str) -> str:
    from vidlens.errors import ConfigError

    if method not in METHODS:
        raise ConfigError(None, f"unknown sync method {method!r}; use one of: {', '.join(METHODS)}")
    return method


def _duration(video: Path) -> float:
    from vidlens.io import probe

    try:
        return float(probe(video).duration_s or 0.0)
    except Exception:  # noqa: BLE001 - only sizes the progress bar; estimate_sync reports unreadable files
        return 0.0


def _report_folder(video: Path, out: Optional[Path], report: Optional[Path], fix: bool) -> Path:
    """--report, else (without --fix) --out, else runs/sync/<video stem>."""
    from vidlens.errors import ConfigError

    if report is not None:
        return report
    if not fix and out is not None:
        if out.suffix.lower() in VIDEO_SUFFIXES:
            raise ConfigError(out, "--out names a video file: add --fix to write a corrected copy (without --fix, "
                                   "--out is the folder for sync.json, sync_windows.csv and sync.png)")
        return out
    return Path("runs") / "sync" / video.stem


def _fix_target(video: Path, out: Optional[Path], fix: bool, offset_ms: Optional[float],
                drift: Optional[float]) -> Optional[Path]:
    from vidlens.errors import ConfigError

    if not fix:
        if offset_ms is not None or drift is not None:
            raise ConfigError(None, "--offset-ms / --drift-ms-per-min only make sense with --fix")
        return None
    if out is None:
        raise ConfigError(None, "--fix needs --out FIXED.mp4 (the corrected copy to write)")
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(out, f"--out with --fix is the corrected video: give it one of {', '.join(VIDEO_SUFFIXES)}")
    return out


@sync_app.command("video")
def video_command(
    video: Path = typer.Argument(..., help="The video (with sound) to check."),
    method: str = typer.Option("auto", "--method", "-m", help=METHOD_HELP),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="A model from `vidlens sync train` (method learned)."),
    max_offset_ms: float = typer.Option(1000.0, "--max-offset-ms", help="Largest offset searched, either way (ms)."),
    window_s: float = typer.Option(4.0, "--window-s", help="Window length for the offset over time (drift), seconds."),
    fix: bool = typer.Option(False, "--fix", help="Also write a corrected copy to --out (video stream copied, audio moved)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="With --fix: the corrected video (e.g. fixed.mp4). Without "
                                                                 "--fix: the report folder (same as --report)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Folder for sync.json, sync_windows.csv, sync.png "
                                                                 "(default: runs/sync/<video name>)."),
    offset_ms: Optional[float] = typer.Option(None, "--offset-ms", help="With --fix: correct by this known offset (ms, "
                                                                        "positive = audio late) instead of measuring."),
    drift_ms_per_min: Optional[float] = typer.Option(None, "--drift-ms-per-min", help="With --fix --offset-ms: also "
                                                     "correct this drift (the offset at the video's middle is --offset-ms)."),
) -> None:
    """Measure the audio-video offset (positive = audio late), its confidence and drift; optionally fix it."""
    from vidlens.errors import ConfigError
    from vidlens.tasks.sync.fix import fix_sync
    from vidlens.tasks.sync.outputs import moved

    target = _fix_target(video, out, fix, offset_ms, drift_ms_per_min)
    if target is not None and offset_ms is not None:  # a known offset: no measuring
        with make_progress() as bar:
            written = fix_sync(video, target, offset_ms, drift_ms_per_min, progress=stage_progress(bar, _duration(video)))
        drift_text = "" if drift_ms_per_min is None else f", drift {drift_ms_per_min:+.1f} ms/min"
        console.print(escape(f"{video.name}: {moved(offset_ms)}{drift_text} -> {written}"), highlight=False, soft_wrap=True)
        return
    if drift_ms_per_min is not None:
        raise ConfigError(None, "--drift-ms-per-min needs --offset-ms (without them the drift is measured)")

    from vidlens.tasks.sync import base
    from vidlens.tasks.sync.outputs import drift_line, summary_line, write_sync

    check_method(method)
    if method == "learned" and checkpoint is None:
        raise ConfigError(None, "--method learned needs --checkpoint (a model from `vidlens sync train`)")
    folder = _report_folder(video, out, report, fix)
    with make_progress() as bar:
        result = base.estimate_sync(video, method, max_offset_ms=max_offset_ms, window_s=window_s, checkpoint=checkpoint,
                                    progress=stage_progress(bar, 1.0))  # progress in fractions of the video
        files = write_sync(result, folder)
    console.print(escape(summary_line(result)), highlight=False, soft_wrap=True)
    console.print(escape(f"wrote {', '.join(str(p) for p in files.values())}"), highlight=False, soft_wrap=True)
    if target is None:
        return
    if result.offset_ms is None:
        console_err.print(escape(f"not writing {target}: the offset cannot be told ({result.reason}); give --offset-ms "
                                 "to fix by a known offset"), highlight=False, soft_wrap=True)
        raise SystemExit(2)
    line = drift_line(result)
    with make_progress() as bar:
        if line is None:
            written = fix_sync(video, target, result.offset_ms, progress=stage_progress(bar, result.duration_s))
        else:  # the drift line's offset at t=0 and its slope
            written = fix_sync(video, target, line[0], result.drift_ms_per_min, reference_s=0.0,
                               progress=stage_progress(bar, result.duration_s))
    if result.confidence < base.CONFIDENT:
        console_err.print(f"[yellow]warning: low confidence ({result.confidence:.2f}); check the fixed file[/yellow]",
                          highlight=False)
    console.print(escape(f"fixed: {moved(result.offset_ms)}"
                         + ("" if line is None else f", drift {result.drift_ms_per_min:+.1f} ms/min resampled")
                         + f" -> {written}"), highlight=False, soft_wrap=True)


@sync_app.command("train")
def train_command(
    videos: list[Path] = typer.Argument(..., help="In-sync videos with sound (files or folders) of the kind you will check."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint to write (.pt)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs (default: the method's)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the learned method self-supervised on your own videos: aligned windows are positives, shifted ones negatives."""
    from vidlens.tasks.sync.learned import train_sync

    kwargs: dict = {"seed": seed}
    if epochs is not None:
        kwargs["epochs"] = epochs
    with make_progress() as bar:
        written = train_sync(_expand(videos), out, progress=stage_progress(bar, 1.0), **kwargs)
    console.print(escape(f"sync model trained on {len(_expand(videos))} video(s) -> {written}"), highlight=False,
                  soft_wrap=True)


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders -> their videos (sorted)."""
    from vidlens.errors import ConfigError

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        else:
            found.append(path)
    if not found:
        raise ConfigError(None, "no videos to train on (folders given hold no .mp4/.mkv/.avi/.mov/.webm files)")
    return found


def register(app: typer.Typer) -> None:
    app.add_typer(sync_app, name="sync")
