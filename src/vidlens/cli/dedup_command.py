"""`vidlens dedup DIR|INDEX`: groups of near-duplicate videos with their aligned time ranges."""

from __future__ import annotations

from pathlib import Path

import typer

from vidlens.cli.common import console, make_progress, print_skipped


def dedup_command(
    target: Path = typer.Argument(..., help="Folder (or glob / manifest) of videos, or a `vidlens index` folder."),
    out: Path = typer.Option(Path("dedup_out"), "--out", "-o", help="Output folder: dedup.json, dedup.csv, dedup.png."),
    threshold: float = typer.Option(0.6, "--threshold",
                                    help="Least mean frame similarity along the aligned range for a copy (0..1)."),
    min_len: float = typer.Option(2.0, "--min-len", help="Least aligned length in seconds for a copy."),
) -> None:
    """Find copies of the same footage (re-encoded, resized, cropped, mirrored, +-10 % speed, ...):
    window vectors propose pairs, a frame-level alignment confirms them; exit 1 when some files were unreadable."""
    import torch

    from vidlens.io.inputs import list_videos
    from vidlens.outputs import staged_output
    from vidlens.tasks.retrieval.dedup import DedupConfig, embed_videos, find_duplicates, index_rows, write_dedup_outputs

    config = DedupConfig(min_score=threshold, min_len_s=min_len)
    config.check()
    torch.set_num_threads(1)
    if (target / "index.json").is_file():
        rows, failed = index_rows(target)
    else:
        paths = list_videos(target, out)
        with make_progress() as bar:
            task = bar.add_task("embedding", total=len(paths))
            rows, failed = embed_videos(paths, progress=lambda _p: bar.advance(task))
    with make_progress() as bar:
        task = bar.add_task("aligning", total=None)
        result = find_duplicates(rows, config, progress=lambda done, total: bar.update(task, completed=done, total=total))
    result.failed = failed
    with staged_output(out) as stage:
        write_dedup_outputs(result, stage.path)
    print_skipped(failed)
    copies = sum(len(g.members) for g in result.groups)
    console.print(f"{len(result.groups)} groups of copies ({copies} videos) among {result.videos} videos "
                  f"({result.candidates} candidate pairs aligned) -> {out}/dedup.json, dedup.csv, dedup.png",
                  highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("dedup")(dedup_command)
