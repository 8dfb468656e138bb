"""`vidlens data scan` and `vidlens data cache`."""

from __future__ import annotations

from pathlib import Path

import typer

from vidlens.cli.common import console, make_progress

_LAYOUT_HELP = "Dataset layout: auto, folder, ucf101, hmdb51, kinetics, manifest (or 'ucf101:2' with the split)."


def _spec(root: Path | None, manifest: Path | None, layout: str, split: int, seed: int, val_frac: float, test_frac: float):
    from vidlens.data.sources import load_spec
    from vidlens.errors import ConfigError

    if root is None and manifest is None:
        raise ConfigError(None, "give a dataset ROOT, a --manifest, or both")
    if root is None:
        root = manifest.parent
    return load_spec(root, layout, split, manifest, seed=seed, val_frac=val_frac, test_frac=test_frac)


def scan_command(
    root: Path | None = typer.Argument(None, help="Dataset root folder (optional with --manifest)."),
    manifest: Path | None = typer.Option(None, "--manifest", "-m", help="CSV/JSONL manifest, or the Kinetics CSV."),
    layout: str = typer.Option("auto", "--layout", help=_LAYOUT_HELP),
    split: int = typer.Option(1, "--split", help="Official split number (UCF101/HMDB51)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default: ./scan-<root name>)."),
    workers: int = typer.Option(0, "--workers", "-j", help="Worker processes (0 = min(4, CPUs))."),
    deep: bool = typer.Option(False, "--deep", help="Also decode the first, middle and last frame of every file."),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/val/test split for layouts without one."),
    val_frac: float = typer.Option(0.1, "--val-frac", help="Validation share for layouts without a split."),
    test_frac: float = typer.Option(0.1, "--test-frac", help="Test share for layouts without a split."),
) -> None:
    """Check every video of a dataset; write bad_files.csv, scan_summary.json and scan_summary.png."""
    from vidlens.data.scan import scan_dataset
    from vidlens.outputs import staged_output

    spec = _spec(root, manifest, layout, split, seed, val_frac, test_frac)
    out = out or Path(f"scan-{Path(spec.root).name or 'dataset'}")
    with staged_output(out) as stage, make_progress() as bar:
        task = bar.add_task("scan", total=None)
        result = scan_dataset(
            spec=spec, out=stage.path, workers=workers or None, deep=deep,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    s = result.summary
    splits = ", ".join(f"{k} {v['total']}" for k, v in s["splits"].items())
    console.print(
        f"scan: {s['total_files']} files ({splits}), {len(s['labels'])} classes, "
        f"{s['duration_s']['total'] / 3600:.2f} h; {result.num_bad} bad, {s['missing']} missing -> {out}/",
        highlight=False, soft_wrap=True,
    )
    for path, reason in result.bad[:10]:
        console.print(f"  [yellow]bad:[/yellow] {path}: {reason}", highlight=False, soft_wrap=True)
    if result.num_bad > 10:
        console.print(f"  ... and {result.num_bad - 10} more in {out / 'bad_files.csv'}", highlight=False)


def cache_command(
    root: Path | None = typer.Argument(None, help="Dataset root folder (optional with --manifest)."),
    out: Path = typer.Option(..., "--out", "-o", help="Cache folder (index.json + shards)."),
    fps: float = typer.Option(8.0, "--fps", help="Frames per second to cache (0 = every frame)."),
    size: int = typer.Option(128, "--size", help="Shorter side of cached frames, in pixels (0 = native)."),
    fmt: str = typer.Option("jpeg", "--format", help="Frame format: jpeg (compact) or raw (exact, large)."),
    quality: int = typer.Option(90, "--quality", help="JPEG quality, 1-100."),
    manifest: Path | None = typer.Option(None, "--manifest", "-m", help="CSV/JSONL manifest, or the Kinetics CSV."),
    layout: str = typer.Option("auto", "--layout", help=_LAYOUT_HELP),
    split: int = typer.Option(1, "--split", help="Official split number (UCF101/HMDB51)."),
    workers: int = typer.Option(0, "--workers", "-j", help="Decoding processes (0 = min(4, CPUs))."),
    shard_videos: int = typer.Option(64, "--shard-videos", help="Videos per shard file."),
    exclude: Path | None = typer.Option(None, "--exclude", help="A scan's bad_files.csv: skip these files."),
) -> None:
    """Decode every video once at --fps and --size into a sharded frame cache (re-runs skip cached videos)."""
    from vidlens.data.cache import build_cache, cache_key
    from vidlens.data.scan import default_workers, load_bad_files
    from vidlens.errors import ConfigError

    if fps < 0 or size < 0:
        raise ConfigError(None, "--fps and --size must be >= 0")
    spec = _spec(root, manifest, layout, split, 0, 0.1, 0.1)
    skip = load_bad_files(exclude)
    records = [r for _, r in spec.all_records() if cache_key(r.path) not in skip]
    with make_progress() as bar:
        task = bar.add_task("cache", total=None)
        report = build_cache(
            records, out, fps=fps or None, size=size or None, image_format=fmt, quality=quality,
            shard_videos=shard_videos, workers=workers or default_workers(), labels=spec.labels,
            progress=lambda done, total, _path: bar.update(task, completed=done, total=total),
        )
    console.print(
        f"cache: {report.cached} videos cached ({report.frames_written} frames, {report.bytes_written / 1e6:.1f} MB), "
        f"{report.skipped} already cached, {len(report.bad)} bad in {report.seconds:.1f} s -> {out}/index.json",
        highlight=False, soft_wrap=True,
    )
    for path, reason in list(report.bad.items())[:10]:
        console.print(f"  [yellow]bad:[/yellow] {path}: {reason}", highlight=False, soft_wrap=True)
    if len(report.bad) > 10:
        console.print(f"  ... and {len(report.bad) - 10} more (index.json 'bad')", highlight=False)


def register(data_app: typer.Typer) -> None:
    """Add the `scan` and `cache` commands to the `data` group."""
    data_app.command("scan")(scan_command)
    data_app.command("cache")(cache_command)
