"""`vidlens explain --checkpoint CKPT [--checkpoint CKPT2 ...] VIDEO`: where and when a classifier (or an ensemble)
looked, as overlays, a strip and a curve.

Writes overlay.mp4, overlay.gif, frames.png, temporal.png, temporal.csv, heat.npz and explanation.json into
`--out` (all or nothing). `vidlens predict --explain` writes the same beside predictions (`explain_into`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from vidlens.cli.common import console, make_progress

METHODS = ("gradcam", "gradcam++", "occlusion", "integrated-gradients", "attention", "hirescam")
METHOD_HELP = ("default: gradcam (occlusion for audio-visual fusion models). "
               "gradcam | gradcam++ (gradients at the last conv that keeps time; frame models: per frame, with the "
               "temporal head's attention), occlusion (what changes when frames/patches are hidden), "
               "integrated-gradients (pixel attributions), attention (the temporal head's weights only), hirescam "
               "(gradient x activation per place: no averaging that can cancel).")


def check_method(method: str | None) -> str | None:
    """The method, or None for the model's default (Grad-CAM; occlusion for audio-visual fusion models)."""
    from vidlens.errors import ConfigError

    if method is not None and method not in METHODS:
        raise ConfigError(None, f"unknown explain method {method!r}; use one of: {', '.join(METHODS)}")
    return method


@contextmanager
def clip_progress(name: str) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback over the clips explained (a rich bar on a terminal)."""
    with make_progress() as bar:
        task = bar.add_task(f"explain {name}", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def summary_line(result: Any, files: dict[str, Path]) -> str:
    seconds = ", ".join(f"{s}-{s + 1} s ({100 * float(result.temporal[s]):.0f} %)" for s in result.top_seconds(3))
    shares = "".join(f"; {name} {100 * share:.0f} %" for name, share in result.modalities.items())
    return (f"{Path(result.path).name}: {result.label!r} p={result.probability:.3f} ({result.method}, "
            f"{len(result.clips)} clips); decisive seconds: {seconds or 'none'}{shares}")


def explain_into(classifier: Any, video: Path, folder: Path, *, method: str | None, target: str | int | None = None,
                 clips: int | None = None, overlay: bool = True) -> tuple[Any, dict[str, Path]]:
    """Explain one video and write its files into `folder` (staged: all or nothing)."""
    from vidlens.tasks.explain.outputs import write_explanation
    from vidlens.tasks.explain.video import explain_video

    with clip_progress(video.name) as report:
        result = explain_video(classifier, video, method=method, target=target, clips=clips, progress=report)
    return result, write_explanation(result, folder, video=overlay)


def explain_command(
    video: Path = typer.Argument(..., help="The video to explain."),
    checkpoint: list[Path] = typer.Option(..., "--checkpoint", help="A classifier checkpoint (vidlens train), an exported "
                                          ".onnx, or an audio-visual checkpoint (vidlens emotion train-av); repeat for "
                                          "an ensemble (every member explained, averaged)."),
    out: Path = typer.Option(Path("runs/explain"), "--out", "-o", help="Folder for the overlays, strip, curve and JSON."),
    method: Optional[str] = typer.Option(None, "--method", help=METHOD_HELP),
    target: Optional[str] = typer.Option(None, "--target", help="The label to explain (default: the predicted one)."),
    clips: Optional[int] = typer.Option(None, "--clips", help="Clips explained (default: as predict chooses, up to 10)."),
    no_video: bool = typer.Option(False, "--no-video", help="Skip overlay.mp4 / overlay.gif (faster on long videos)."),
) -> None:
    """Explain a classifier's decision on a video: heat over the frames and which seconds mattered."""
    from vidlens.tasks.explain.video import load_explainable

    result, files = explain_into(load_explainable(checkpoint), video, out, method=check_method(method), target=target,
                                 clips=clips, overlay=not no_video)
    console.print(escape(summary_line(result, files)), highlight=False, soft_wrap=True)
    console.print(escape(f"wrote {', '.join(str(p) for p in files.values())}"), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("explain")(explain_command)


def explain_beside(classifier: Any, video: Path, row: dict[str, Any], stage: Any, taken: set[str], method: str) -> None:
    """`vidlens predict --explain`: explain the predicted label of one video into `<stem>_explain/` of the
    staged output; `row` gets `explanation` (the folder) or `explanation_error` (the prediction stands)."""
    from vidlens.errors import VidlensError

    name, n = f"{video.stem}_explain", 1
    while name in taken:  # videos in different folders may share a name
        n += 1
        name = f"{video.stem}_{n}_explain"
    taken.add(name)
    try:
        result, _ = explain_into(classifier, video, stage.path / name, method=method, target=row["top"][0]["label"])
    except VidlensError as exc:
        row["explanation_error"] = exc.reason
        console.print(escape(f"{video.name}: no explanation ({exc.reason})"), highlight=False, soft_wrap=True)
        return
    row["explanation"] = str(stage.final(stage.path / name))
    row["explained"] = {"method": method, "label": result.label, "top_seconds": result.top_seconds(3)}
