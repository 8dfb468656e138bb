"""`vidlens emotion DIR|MANIFEST --out OUT`: every video of a folder or a list, in one process, models loaded once.

Inputs: a folder (its video files, recursively, by extension; the output folder is skipped when it
lies inside) or a manifest: a `.csv` with a `path` column, or a `.txt` with one path per line (`#`
comments and blank lines skipped); relative paths are relative to the manifest's folder.
Per video: `analyse_emotions` with the models of `EmotionModels` (expression predictor, face
detector, voice model, audio-visual model: loaded once, `EmotionModels.loads` counts the loads of
this process), outputs staged into `OUT/<stem>/` (`write_emotion_outputs`; `_2`, `_3`, ... when two
videos share a stem). A video that cannot be read is a failed row with its reason; the others go on.
`OUT/summary.csv`: one row per input (`SUMMARY_COLUMNS`); `OUT/summary.png`: valence and dominant
emotion per video, and how many videos each emotion dominates.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vidlens.errors import VidlensError
from vidlens.io.inputs import is_manifest, list_videos, read_manifest  # noqa: F401 (part of this module's API)
from vidlens.tasks.emotion.analyse import EmotionConfig, EmotionResult, analyse_emotions, sentiment, valence

SUMMARY_COLUMNS = ("video", "folder", "duration_s", "faces", "dominant", "valence", "sentiment", "confidence",
                   "av_dominant", "av_confidence", "seconds", "status", "error")


@dataclass
class EmotionModels:
    """Every model a video's analysis needs, loaded once and reused for each video."""

    expression: Any  # ExpressionPredictor
    detector: Any  # FaceDetector
    voice: Any = None  # (model, labels, preprocess) from load_voice_model, or None
    av: Any = None  # AVModel from av_apply.load_av, or None
    load_s: float = 0.0
    loads: ClassVar[int] = 0  # loads in this process (a folder run adds one, whatever its number of videos)

    @classmethod
    def load(cls, config: EmotionConfig, av_model: str | os.PathLike[str] | None = None) -> EmotionModels:
        """Load what `config` (and an audio-visual checkpoint) asks for; raises `VidlensError` naming the bad file."""
        from vidlens.tasks.emotion.analyse import load_expression, make_detector

        start = time.perf_counter()
        av = None
        if av_model is not None:  # first: a bad checkpoint fails before the slower loads
            from vidlens.tasks.emotion.av_apply import load_av

            av = load_av(av_model)
        expression = load_expression(config)
        detector = make_detector(config.detector)
        voice = None
        if config.voice_model:
            from vidlens.tasks.voice import load_voice_model

            voice = load_voice_model(config.voice_model)
        cls.loads += 1
        return cls(expression, detector, voice, av, time.perf_counter() - start)


@dataclass
class VideoOutcome:
    """One input of a folder run: its result (or why it failed) and where its files went."""

    video: Path
    name: str  # shown in summary.csv: the path as listed (relative to the folder or as the manifest says)
    folder: str  # OUT/<folder>
    status: str = "ok"  # ok | failed
    error: str = ""
    result: EmotionResult | None = None
    av: Any = None  # AVResult
    seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)


def output_names(videos: Sequence[Path], reserved: Sequence[str] = ()) -> list[str]:
    """One output folder name per video: its stem, then `_2`, `_3`, ... for stems already taken or
    `reserved` (compared without case, for case-insensitive file systems)."""
    taken: set[str] = {r.lower() for r in reserved}
    names = []
    for video in videos:
        stem = video.stem or "video"
        name, n = stem, 1
        while name.lower() in taken or name.lower() in ("summary.csv", "summary.png"):
            n += 1
            name = f"{stem}_{n}"
        taken.add(name.lower())
        names.append(name)
    return names


def analyse_one(video: Path, out_dir: Path, config: EmotionConfig, models: EmotionModels, *, annotate: bool = False,
                progress: Callable[[str, float], None] | None = None) -> tuple[EmotionResult, Any, dict[str, Path]]:
    """One video with loaded models: `(result, av result or None, files)`; files staged into `out_dir`
    (nothing lands there when it fails). Raises what `analyse_emotions` raises."""
    from vidlens.outputs import staged_output
    from vidlens.tasks.emotion.outputs import write_emotion_outputs

    result = analyse_emotions(video, config, detector=models.detector, progress=progress,
                              expression=models.expression, voice=models.voice)
    av = None
    if models.av is not None:
        from vidlens.tasks.emotion.av_apply import apply_av_model

        av = apply_av_model(result, models.av, progress=progress)
    with staged_output(out_dir) as stage:
        files = write_emotion_outputs(result, stage.path, annotate=annotate)
        if av is not None:
            from vidlens.tasks.emotion.av_apply import write_av_outputs

            files.update(write_av_outputs(av, stage.path))
        files = {name: stage.final(path) for name, path in files.items()}
    return result, av, files


def analyse_folder(videos: Sequence[Path], out: str | os.PathLike[str], config: EmotionConfig, models: EmotionModels, *,
                   names: Sequence[str] | None = None, annotate: bool = False, reserved: Sequence[str] = (),
                   progress: Callable[[int, str, float], None] | None = None,
                   done: Callable[[int, VideoOutcome], None] | None = None) -> list[VideoOutcome]:
    """Analyse `videos` one after the other into `out/<name>/`, then write `out/summary.csv` and
    `summary.png`. `progress(i, stage, seconds_done)` during video i; `done(i, outcome)` after it.
    `reserved`: folder names of `out` that a video's folder must not take.
    A video that fails (unreadable, no video stream, a decoder error) is recorded, never raised."""
    out = Path(out)
    folders = output_names(videos, reserved)
    names = list(names) if names is not None else [str(v) for v in videos]
    outcomes: list[VideoOutcome] = []
    for i, (video, name, folder) in enumerate(zip(videos, names, folders)):
        outcome = VideoOutcome(Path(video), name, folder)
        start = time.perf_counter()
        report = (lambda stage, seconds, i=i: progress(i, stage, seconds)) if progress is not None else None
        try:
            outcome.result, outcome.av, outcome.files = analyse_one(Path(video), out / folder, config, models,
                                                                    annotate=annotate, progress=report)
        except VidlensError as exc:
            outcome.status, outcome.error = "failed", exc.reason
        except (OSError, RuntimeError, ValueError) as exc:  # a decoder's own error on a damaged file: one row, not the run
            outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
        outcome.seconds = time.perf_counter() - start
        outcomes.append(outcome)
        if done is not None:
            done(i, outcome)
    write_summary(outcomes, out)
    return outcomes


def summary_row(outcome: VideoOutcome) -> dict[str, Any]:
    """The `summary.csv` row of one video (`SUMMARY_COLUMNS`); empty cells where there is nothing to say."""
    row: dict[str, Any] = {c: "" for c in SUMMARY_COLUMNS}
    row.update(video=outcome.name, status=outcome.status, error=outcome.error, seconds=f"{outcome.seconds:.2f}")
    result = outcome.result
    if result is None:
        return row
    row.update(folder=outcome.folder, duration_s=f"{result.info.duration_s:.3f}", faces=len(result.tracks))
    if result.dominant is not None and result.video_probs is not None:
        mood, confidence = sentiment(result.video_probs, result.labels)
        row.update(dominant=result.dominant, valence=f"{float(valence(result.video_probs, result.labels)):.4f}",
                   sentiment=mood, confidence=f"{confidence:.4f}")
    if outcome.av is not None:
        p = outcome.av.video_probs
        row.update(av_dominant=outcome.av.labels[int(np.argmax(p))], av_confidence=f"{float(np.max(p)):.4f}")
    return row


def write_summary(outcomes: Sequence[VideoOutcome], out: str | os.PathLike[str]) -> dict[str, Path]:
    """`out/summary.csv` and `out/summary.png`, each written beside its place and renamed into it
    (a reader never sees half a file; an earlier summary stays until the new one is complete)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [summary_row(o) for o in outcomes]
    tag = f".partial-{os.getpid()}"
    csv_tmp, png_tmp = out / f"summary{tag}.csv", out / f"summary{tag}.png"
    try:
        with open(csv_tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(SUMMARY_COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
        plot_summary(rows, png_tmp)
        os.replace(csv_tmp, out / "summary.csv")
        os.replace(png_tmp, out / "summary.png")
    finally:
        csv_tmp.unlink(missing_ok=True)
        png_tmp.unlink(missing_ok=True)
    return {"summary.csv": out / "summary.csv", "summary.png": out / "summary.png"}


def plot_summary(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Per video a valence bar coloured by its dominant emotion (failed / faceless videos marked), and
    beside it the number of videos each emotion dominates."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from vidlens.tasks.faces.expression import EMOTIONS

    colours = {label: colormaps["tab10"](k) for k, label in enumerate(EMOTIONS)}
    n = len(rows)
    fig = Figure(figsize=(11, max(2.5, 0.32 * n + 1.2)))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1.2]})
    y = np.arange(n)[::-1]
    for yi, row in zip(y, rows):
        if row["status"] != "ok":
            left.text(-1.15, yi, "failed: " + str(row["error"])[:70], va="center", fontsize=7, color="tab:red")
        elif row["dominant"] == "":
            left.text(-1.15, yi, "no faces", va="center", fontsize=7, color="grey")
        else:
            v = float(row["valence"])
            left.barh(yi, v, color=colours.get(row["dominant"], "grey"), height=0.7)
            left.text(v + (0.02 if v >= 0 else -0.02), yi, f"{row['dominant']} ({row['sentiment']} {float(row['confidence']):.2f})",
                      va="center", ha="left" if v >= 0 else "right", fontsize=7)
    left.axvline(0, color="black", lw=0.8)
    left.set_xlim(-1.2, 1.2)
    left.set_yticks(y, [Path(str(r["video"])).name[:40] for r in rows], fontsize=7)
    left.set_xlabel("valence of the video's faces (-1 negative .. +1 positive)")
    left.set_title(f"{n} videos: dominant facial emotion and valence", fontsize=9)
    counts = {label: sum(r["dominant"] == label for r in rows) for label in EMOTIONS}
    shown = [label for label in EMOTIONS if counts[label]]
    right.barh(np.arange(len(shown))[::-1], [counts[s] for s in shown], color=[colours[s] for s in shown])
    right.set_yticks(np.arange(len(shown))[::-1], shown, fontsize=8)
    right.set_xlabel("videos")
    right.set_title("dominant emotion", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)
