"""`vidlens index build|add|remove|info` and `vidlens search`: a persistent video index and its four searches.

Exit status: 0 ok; 1 when some files could not be indexed (each is listed) or some videos to remove
were not in the index; 2 for bad input (one line, no traceback).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from vidlens.cli.common import console, console_err, make_progress, print_skipped
from vidlens.errors import ConfigError, DatasetError

index_app = typer.Typer(help="A persistent video index (visual + text vectors, tags, shots) for `vidlens search`.",
                        no_args_is_help=True)


def _expand(inputs: list[str]) -> tuple[list[Path], dict[str, str]]:
    """Videos of each input (folder, glob, manifest, file) and the user text a CSV manifest's `text` column gives.
    A named file that does not exist is kept (it is reported as failed, the others go on)."""
    from vidlens.io.inputs import _is_glob, is_manifest, list_videos

    videos: list[Path] = []
    texts: dict[str, str] = {}
    for item in inputs:
        if not Path(item).exists() and not _is_glob(item) and Path(item).suffix:
            videos.append(Path(os.path.abspath(item)))
            continue
        videos += list_videos(item)
        if is_manifest(item) and Path(item).suffix.lower() == ".csv":
            texts.update(_manifest_text(Path(item)))
    seen: set[Path] = set()
    return [v for v in videos if not (v in seen or seen.add(v))], texts


def _manifest_text(path: Path) -> dict[str, str]:
    """path -> text from a CSV manifest's `text` column (absolute paths; relative ones are the manifest's)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if "text" not in (reader.fieldnames or []):
            return {}
        out = {}
        for row in reader:
            p, t = (row.get("path") or "").strip(), (row.get("text") or "").strip()
            if p and t:
                out[os.path.abspath(p if Path(p).is_absolute() else path.parent / p)] = t
        return out


def _add(index: Any, videos: list[Path], texts: dict[str, str], workers: int, as_json: bool) -> None:
    from vidlens.threads import one_torch_thread

    with make_progress() as bar, one_torch_thread():
        task = bar.add_task("indexing", total=len(videos))
        report = index.add_videos(videos, text=texts, workers=workers, progress=lambda p, s: bar.advance(task))
    if as_json:
        typer.echo(json.dumps({**report.to_json(), "index": index.info()}, indent=2))
    else:
        info = index.info()
        console.print(f"added {len(report.added)}, skipped {len(report.skipped)} (already indexed), "
                      f"failed {len(report.failed)} in {report.seconds:.1f} s; the index holds {info['videos']} videos "
                      f"-> {escape(str(index.path))}", highlight=False, soft_wrap=True)
        print_skipped(report.failed, "files could not be indexed")
    if report.failed:
        raise typer.Exit(1)


@index_app.command("build")
def build_command(
    inputs: str = typer.Argument(..., help="A folder (recursive), a glob or a manifest (.csv with a path column and "
                                           "an optional text column, .txt one path a line)."),
    out: Path = typer.Option(..., "--out", "-o", help="Index folder (created; an existing index is resumed)."),
    text: Optional[str] = typer.Option(None, "--text", help="Text attached to every video (searchable with --text)."),
    workers: int = typer.Option(1, "--workers", help="Processes computing videos (the index is written by this one)."),
    engine: str = typer.Option("local", "--engine", help="local (this process, or --workers processes) or ray "
                                                         "(the batch engine's Ray actor pool; resumable in OUT/batch)."),
    address: Optional[str] = typer.Option(None, "--address", help="ray: cluster address; default: a local Ray."),
    tags: bool = typer.Option(True, "--tags/--no-tags", help="ImageNet tags per shot and video (decodes once more)."),
    window_s: float = typer.Option(4.0, "--window", help="Fixed window length, seconds (time ranges in long shots)."),
    hop_s: float = typer.Option(2.0, "--hop", help="Step between windows, seconds."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Index every video of INPUTS: frame descriptors (2 fps), shots, windows, tags and text vectors."""
    from vidlens.tasks.retrieval.index import IndexOptions, VideoIndex

    if engine not in ("local", "ray"):
        raise ConfigError(None, f"--engine must be local or ray, got {engine!r}")
    if engine == "ray":
        from vidlens.batch import TASKS

        if "index" not in TASKS:
            raise ConfigError(None, "--engine ray needs the batch task 'index' (vidlens.batch.index_task."
                                    "index_task_spec), which this vidlens does not register; use --engine local")
    if workers < 1:
        raise ConfigError(None, f"--workers must be at least 1, got {workers}")
    videos, texts = _expand([inputs])
    if text:
        texts = {str(v): (texts.get(str(v), "") + " " + text).strip() for v in videos}
    if (out / "index.json").is_file():
        index = VideoIndex.open(out)
    else:
        index = VideoIndex.create(out, options=IndexOptions(window_s=window_s, hop_s=hop_s, tags=tags))
    with index:
        if engine == "ray":
            _add_through_batch(index, inputs, texts, workers, address, as_json)
        else:
            _add(index, videos, texts, workers, as_json)


def _add_through_batch(index: Any, inputs: str, texts: dict[str, str], workers: int, address: str | None,
                       as_json: bool) -> None:
    """The batch engine's `index` task computes each video on Ray (resumable rows in INDEX/batch/);
    this process then adds the finished entries (text vectors made here, with the user's text)."""
    from vidlens.batch import ResultStore, get_task, plan_batch, resolve_options
    from vidlens.cli.batch_command import _run
    from vidlens.tasks.retrieval.index import batch_options

    out = index.path / "batch"
    options = batch_options(index.embed_config, index.options)
    store = ResultStore(out)
    todo, done = plan_batch(inputs, "index", options, out, store)
    rows = _run("ray", todo, "index", resolve_options(get_task("index"), options), store, workers, address, 0.0) if todo else []
    store.write_table()
    folders = [r["out_dir"] for r in rows if r.get("status") == "done"] + [item.out_dir for item in done]
    before = index.info()["videos"]
    index.add_computed(folders, text=texts)
    failed = [(str(r.get("video")), str(r.get("error"))) for r in rows if r.get("status") != "done"]
    info = index.info()
    if as_json:
        typer.echo(json.dumps({"added": info["videos"] - before, "failed": [{"video": v, "reason": e} for v, e in failed],
                               "index": info}, indent=2))
    else:
        console.print(f"added {info['videos'] - before}, failed {len(failed)}; the index holds {info['videos']} videos "
                      f"-> {escape(str(index.path))}", highlight=False, soft_wrap=True)
        print_skipped(failed, "files could not be indexed")
    if failed:
        raise typer.Exit(1)


@index_app.command("add")
def add_command(
    index_dir: Path = typer.Argument(..., help="Index folder from `vidlens index build`."),
    inputs: list[str] = typer.Argument(..., help="Folders, globs, manifests or video files."),
    text: Optional[str] = typer.Option(None, "--text", help="Text attached to the videos added now."),
    workers: int = typer.Option(1, "--workers", help="Processes computing videos."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Add videos; content already in the index (same file bytes) is skipped, unreadable files are listed."""
    from vidlens.tasks.retrieval.index import VideoIndex

    index = VideoIndex.open(index_dir)
    videos, texts = _expand(inputs)
    if text:
        texts = {str(v): (texts.get(str(v), "") + " " + text).strip() for v in videos}
    with index:
        _add(index, videos, texts, workers, as_json)


@index_app.command("remove")
def remove_command(
    index_dir: Path = typer.Argument(..., help="Index folder."),
    videos: list[str] = typer.Argument(..., help="Videos by id, path or file name."),
) -> None:
    """Remove videos (their vectors, frame rows and metadata)."""
    from vidlens.tasks.retrieval.index import VideoIndex

    with VideoIndex.open(index_dir) as index:
        missing = [v for v in videos if index.find(v) is None]
        removed = index.remove([v for v in videos if v not in missing])
        console.print(f"removed {removed} videos; the index holds {index.info()['videos']}", highlight=False)
    print_skipped([(v, "not in the index") for v in missing], "videos not found")
    if missing:
        raise typer.Exit(1)


@index_app.command("info")
def info_command(
    index_dir: Path = typer.Argument(..., help="Index folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    list_videos: bool = typer.Option(False, "--videos", help="Also list the videos."),
) -> None:
    """Counts, dimensions, encoders, store backend and size on disk."""
    from vidlens.tasks.retrieval.index import VideoIndex

    with VideoIndex.open(index_dir) as index:
        info = index.info()
        vids = index.videos() if list_videos else []
    if as_json:
        if list_videos:
            info["video_list"] = [{k: v[k] for k in ("id", "path", "duration_s", "tags", "user_text")} for v in vids]
        typer.echo(json.dumps(info, indent=2))
        return
    table = Table(title=f"index {escape(str(index_dir))}", show_header=False)
    seg = info["segments"]
    for k, v in [("videos", info["videos"]), ("duration", f"{info['duration_s']:.1f} s"),
                 ("segments", f"{seg['video']} video, {seg['shot']} shot, {seg['window']} window"),
                 ("visual vectors", f"{info['visual_vectors']} x {info['visual_dim']} ({info['encoder']})"),
                 ("text vectors", f"{info['text_vectors']} x {info['text_dim']} ({info['text_encoder']})"),
                 ("store", info["backend"]), ("on disk", f"{info['bytes'] / 1e6:.2f} MB")]:
        table.add_row(k, escape(str(v)))
    console.print(table)
    if vids:
        t = Table("id", "video", "duration_s", "tags")
        for v in vids:
            t.add_row(str(v["id"]), escape(v["path"]), f"{v['duration_s']:.1f}", escape(", ".join(x["tag"] for x in v["tags"][:5])))
        console.print(t)


def search_command(
    index_dir: Path = typer.Argument(..., help="Index folder from `vidlens index build`."),
    clip: Optional[Path] = typer.Option(None, "--clip", help="Find videos showing this clip (and where)."),
    start: Optional[float] = typer.Option(None, "--start", help="--clip: from this second."),
    end: Optional[float] = typer.Option(None, "--end", help="--clip: to this second."),
    image: Optional[Path] = typer.Option(None, "--image", help="Find videos holding a frame like this image."),
    video: Optional[str] = typer.Option(None, "--video", help="More like this video (indexed id/path/name or a file); "
                                                              "it and its near-duplicates are left out."),
    text: Optional[str] = typer.Option(None, "--text", help="Search tags, labels and user text (not pixels)."),
    k: int = typer.Option(10, "--k", "-k", help="Videos returned."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write results.json, results.csv, sheet.png here."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON instead of a table."),
) -> None:
    """Search an index by clip, image, video or text: ranked videos with the matching time ranges."""
    from vidlens.report.contact_sheet import timecode
    from vidlens.tasks.retrieval.index import VideoIndex
    from vidlens.tasks.retrieval.search import TEXT_NOTE, search_clip, search_image, search_text, search_video, write_search_outputs
    from vidlens.threads import one_torch_thread

    given = [n for n, v in (("--clip", clip), ("--image", image), ("--video", video), ("--text", text)) if v is not None]
    if len(given) != 1:
        raise ConfigError(None, "give exactly one of --clip, --image, --video, --text" + (f" (got {', '.join(given)})" if given else ""))
    if (start is not None or end is not None) and clip is None:
        raise ConfigError(None, "--start/--end go with --clip")
    for p in (clip, image):
        if p is not None and not p.is_file():
            raise DatasetError(p, "no such file")
    with VideoIndex.open(index_dir) as index, one_torch_thread():
        if clip is not None:
            result = search_clip(index, clip, start_s=start, end_s=end, k=k)
        elif image is not None:
            result = search_image(index, image, k=k)
        elif video is not None:
            result = search_video(index, video, k=k)
        else:
            result = search_text(index, str(text), k=k)
        files = write_search_outputs(result, out) if out is not None else []
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    table = Table("#", "video", "score", "from", "to", "kind", "tags", "why", title=f"search by {given[0][2:]}")
    for i, h in enumerate(result.hits, 1):
        table.add_row(str(i), escape(h.name or h.video), f"{h.score:.3f}", timecode(h.start_s), timecode(h.end_s), h.kind,
                      escape(", ".join(h.tags[:4])), escape(h.why))
    console.print(table)
    if text is not None:
        console.print(f"note: {TEXT_NOTE}", highlight=False, soft_wrap=True)
    if video is not None and result.query.get("excluded"):
        for e in result.query["excluded"]:
            console_err.print(f"left out {escape(Path(e['video']).name)}: {escape(e['reason'])}", highlight=False, soft_wrap=True)
    if not result.hits:
        console.print("no hits", highlight=False)
    if files:
        console.print(f"-> {escape(str(out))}/results.json, results.csv, sheet.png", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
    app.command("search")(search_command)
