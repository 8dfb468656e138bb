"""`vidlens emotion VIDEO` (faces + voice -> emotion timelines) and `vidlens emotion train-faces`."""

from __future__ import annotations

from pathlib import Path

import typer

from vidlens.cli.common import VideoDefaultGroup, console, make_progress, progress_enabled, stage_progress

emotion_app = typer.Typer(
    cls=VideoDefaultGroup,
    help="Emotion and sentiment of people in video: `vidlens emotion VIDEO --out DIR`; `train-faces` fine-tunes the expression model.",
    no_args_is_help=True,
)


@emotion_app.command("video")
def emotion_video_command(
    video: Path = typer.Argument(..., help="Video file; or a folder of videos, or a manifest (.csv with a path column, .txt with one path a line): each video into OUT/<stem>/ and OUT/summary.csv."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: emotion.json, emotion.csv, emotion.png [, annotated.mp4, av.csv]."),
    fps: float = typer.Option(5.0, "--fps", help="Frames analysed per second."),
    max_width: int = typer.Option(640, "--max-width", help="Frames are analysed no wider than this, pixels."),
    expression_checkpoint: str = typer.Option(None, "--expression-checkpoint", help="A model from `vidlens emotion train-faces` (default: FER2013 weights)."),
    voice_model: str = typer.Option(None, "--voice-model", help="An audio emotion checkpoint to fuse with the faces (late fusion)."),
    face_weight: float = typer.Option(0.5, "--face-weight", help="Late fusion weight of the faces where voice is active too."),
    av_model: Path = typer.Option(None, "--av-model", help="An audio-visual model from `vidlens emotion train-av` (RUN/best.pt), applied per face track to its face crops and voice: av_probs in emotion.json, av.csv."),
    detector: str = typer.Option("auto", "--detector", help="Face detector: auto (MTCNN when installed, else Haar), mtcnn or haar."),
    expression_model: str = typer.Option("ensemble", "--expression-model", help="ensemble, mini_xception or networkv2 (ignored with --expression-checkpoint)."),
    aggregation: str = typer.Option("peak", "--aggregation", help="How a face track's frames combine: peak, top or mean."),
    tta: bool = typer.Option(True, "--tta/--no-tta", help="Average each face with its mirror image."),
    annotate: bool = typer.Option(False, "--annotate", help="Also write annotated.mp4 with face boxes and labels."),
) -> None:
    """Per face track and for the whole video: emotion probabilities, dominant emotion and valence per second.

    Given a folder or a manifest, every video is analysed in this one process (models loaded once);
    a file that cannot be read is a failed row of summary.csv and the others go on; the exit status
    is 2 when any video failed, as for the other commands over many files.
    """
    from vidlens.tasks.emotion import EmotionConfig
    from vidlens.io.inputs import is_manifest
    from vidlens.tasks.emotion.folder import EmotionModels

    config = EmotionConfig(fps=fps, max_width=max_width, expression_checkpoint=expression_checkpoint,
                           voice_model=voice_model, face_weight=face_weight, detector=detector,
                           expression_model=expression_model, aggregation=aggregation, tta=tta)
    if video.is_dir() or is_manifest(video):
        _emotion_folder(video, out, config, av_model, annotate)
        return
    from vidlens.io import probe

    duration = probe(video).duration_s  # an unreadable file fails here, before any model loads
    models = EmotionModels.load(config, av_model)
    from vidlens.tasks.emotion.folder import analyse_one

    with make_progress() as bar:
        result, av, files = analyse_one(video, out, config, models, annotate=annotate, progress=stage_progress(bar, duration))
    for note in result.notes + (av.notes if av is not None else []):
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    for track in result.tracks:
        clip = track.clip_probs
        label = result.labels[int(clip.argmax())]
        line = (f"face #{track.id}: {track.times[0]:.1f}-{track.times[-1]:.1f} s, {len(track.frames)} detections, "
                f"mostly {label} ({clip.max():.2f})")
        if av is not None and track.id in av.tracks:
            line += "; " + _av_text(av.labels, av.tracks[track.id].probs, len(av.tracks[track.id].windows), av.fusion)
        console.print(line, highlight=False)
    if av is not None and av.scope == "frames":
        console.print("whole frames (no face track): " + _av_text(av.labels, av.video_probs, len(av.frames.windows), av.fusion),
                      highlight=False)
    if result.seconds:
        moods = [row["sentiment"] for row in result.seconds]
        console.print("video: " + ", ".join(f"{m} {moods.count(m)} s" for m in ("positive", "neutral", "negative") if m in moods),
                      highlight=False)
    console.print(f"wrote {', '.join(sorted(files))} -> {out}", highlight=False, soft_wrap=True)


def _av_text(labels: list[str], probs, windows: int, fusion: str) -> str:
    """`av (late, 3 windows): positive 0.71 (negative 0.12, neutral 0.17)`."""
    best = int(probs.argmax())
    others = ", ".join(f"{label} {float(p):.2f}" for k, (label, p) in enumerate(zip(labels, probs)) if k != best)
    return f"av ({fusion}, {windows} window{'s' if windows != 1 else ''}): {labels[best]} {float(probs[best]):.2f} ({others})"


def _emotion_folder(target: Path, out: Path, config, av_model: Path | None, annotate: bool) -> None:
    """Folder / manifest mode of `vidlens emotion`: one process, models loaded once, a bar over the videos."""
    import os

    from rich.markup import escape

    from vidlens.cli.common import console_err
    from vidlens.io import probe
    from vidlens.io.inputs import list_videos
    from vidlens.tasks.emotion.folder import EmotionModels, analyse_folder

    videos = list_videos(target, out)
    base = target if target.is_dir() else target.parent
    relative = [os.path.relpath(v, base) for v in videos]
    names = [r if not r.startswith("..") else str(v) for r, v in zip(relative, videos)]
    models = EmotionModels.load(config, av_model)
    console.print(f"{len(videos)} videos; models loaded once in {models.load_s:.1f} s", highlight=False)
    durations: dict[int, float] = {}
    with make_progress() as bar:
        overall = bar.add_task("videos", total=len(videos))
        current = bar.add_task("", total=1.0, visible=False)

        def progress(i: int, stage: str, seconds: float) -> None:
            if i not in durations:
                try:
                    durations[i] = max(probe(videos[i]).duration_s, 1e-6)
                except Exception:  # noqa: BLE001 - the analysis reports the real reason
                    durations[i] = 1.0
            bar.update(current, description=f"{names[i]}: {stage}", total=durations[i],
                       completed=min(seconds, durations[i]), visible=True)

        def done(i: int, outcome) -> None:
            bar.update(overall, advance=1)
            bar.update(current, visible=False)
            if outcome.status != "ok":
                console_err.print(f"[yellow]{escape(outcome.name)}: {escape(outcome.error)}[/yellow]", highlight=False, soft_wrap=True)
                return
            r = outcome.result
            text = f"{outcome.name}: {len(r.tracks)} face track{'s' if len(r.tracks) != 1 else ''}"
            if r.dominant is not None:
                from vidlens.tasks.emotion import sentiment, valence

                mood, conf = sentiment(r.video_probs, r.labels)
                text += f", mostly {r.dominant} (valence {float(valence(r.video_probs, r.labels)):+.2f}, {mood} {conf:.2f})"
            if outcome.av is not None:
                text += "; " + _av_text(outcome.av.labels, outcome.av.video_probs,
                                        sum(len(t.windows) for t in outcome.av.tracks.values()) or
                                        (len(outcome.av.frames.windows) if outcome.av.frames else 0), outcome.av.fusion)
            console.print(escape(f"{text}  [{outcome.seconds:.1f} s]"), highlight=False, soft_wrap=True)

        outcomes = analyse_folder(videos, out, config, models, names=names, annotate=annotate, progress=progress, done=done)
    failed = [o for o in outcomes if o.status != "ok"]
    console.print(f"wrote {len(outcomes) - len(failed)} video folders, summary.csv, summary.png -> {out}", highlight=False,
                  soft_wrap=True)
    if failed:  # like the other multi-file commands (predict, batch): every video done, then exit 2
        console_err.print(f"{len(failed)} of {len(outcomes)} videos failed (status and error in summary.csv)", highlight=False)
        raise SystemExit(2)


@emotion_app.command("train-faces")
def train_faces_command(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: best.pt, last.pt, logs, curves."),
    data: Path = typer.Option(None, "--data", help="FER2013 layout: DATA/train/<emotion>/*.png [, DATA/test/<emotion>/*.png]."),
    clips: Path = typer.Option(None, "--clips", help="Labelled video clips (CLIPS/manifest.csv: path,label[,split]); their faces are cropped into OUT/faces first."),
    epochs: int = typer.Option(10, "--epochs"),
    batch_size: int = typer.Option(64, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr"),
    init: str = typer.Option("fer2013", "--init", help="fer2013 (fine-tune the shipped weights) or scratch."),
    resume: bool = typer.Option(False, "--resume"),
) -> None:
    """Fine-tune (or train) the facial expression model with the training engine, on face images or on video clips."""
    from vidlens.engine.config import TrainConfig
    from vidlens.errors import ConfigError
    from vidlens.tasks.faces.train import train_expression

    if (data is None) == (clips is None):
        raise ConfigError(None, "give exactly one of --data (face images) or --clips (labelled videos)")
    if clips is not None:
        from vidlens.tasks.faces.clips import extract_clip_faces

        faces = extract_clip_faces(clips, out / "faces")
        for bad, reason in faces.skipped:
            console.print(f"[yellow]no faces from {bad}: {reason}[/yellow]", highlight=False, soft_wrap=True)
        console.print(f"face crops: {faces.crops} -> {faces.root}", highlight=False)
        data = faces.root
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr)
    result = train_expression(data, out, cfg, init=init, resume=resume, progress=progress_enabled())
    extras = result.extras
    if extras.get("skipped"):
        console.print(f"[yellow]{extras['skipped']} unreadable images skipped[/yellow]")
    best = f"{result.best_metric:.4f}" if result.best_metric is not None else "n/a"
    console.print(f"trained on {extras['train_images']} images ({len(extras['labels'])} classes); "
                  f"best {result.monitor} {best} -> {result.best_checkpoint}", highlight=False, soft_wrap=True)


@emotion_app.command("train-voice")
def train_voice_command(
    data: Path = typer.Option(..., "--data", help="A folder with manifest.csv (path,label,split) and labels.json, e.g. `vidlens data synth audiovisual`."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: best.pt, last.pt, logs, curves."),
    epochs: int = typer.Option(10, "--epochs"),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(1e-2, "--lr"),
    width: float = typer.Option(0.5, "--width", help="Width multiplier of the audio CNN."),
) -> None:
    """Train the voice emotion model (audio CNN on 1 s log-mel windows) used by `vidlens emotion --voice-model`."""
    from vidlens.engine.config import TrainConfig
    from vidlens.tasks.voice import train_voice_model

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr)
    result = train_voice_model(data, out, cfg, width=width, progress=progress_enabled())
    best = f"{result.best_metric:.4f}" if result.best_metric is not None else "n/a"
    console.print(f"trained the voice model for {len(result.history)} epochs; best {result.monitor} {best} -> {result.best_checkpoint}",
                  highlight=False, soft_wrap=True)


@emotion_app.command("train-av")
def train_av_command(
    data: Path = typer.Option(..., "--data", help="A folder with manifest.csv (path,label,split) of clips with sound, e.g. `vidlens data synth audiovisual`."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: best.pt, last.pt, logs, curves."),
    fusion: str = typer.Option("late", "--fusion", help="early, late or attention fusion of face video and voice; video or audio alone for the baselines."),
    epochs: int = typer.Option(14, "--epochs"),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(1e-2, "--lr"),
    num_frames: int = typer.Option(8, "--num-frames"),
    size: int = typer.Option(48, "--size"),
    video_model: str = typer.Option("tsn", "--video-model", help="Any registered video model (vidlens models), e.g. c3d, r2plus1d_18."),
    video_width: float = typer.Option(0.5, "--video-width", help="Width multiplier of the video model."),
) -> None:
    """Train an audio-visual clip classifier (video + sound, fused as chosen) with the training engine."""
    from vidlens.engine.config import TrainConfig
    from vidlens.tasks.audiovisual import AVSpec, train_av

    video_args = {"encoder": "small_cnn"} if video_model == "tsn" else {}
    spec = AVSpec(fusion=fusion, num_frames=num_frames, size=size, video_model=video_model, video_args=video_args,
                  video_width=video_width)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=1e-4)
    result = train_av(data, out, spec, cfg, progress=progress_enabled())
    best = f"{result.best_metric:.4f}" if result.best_metric is not None else "n/a"
    console.print(f"trained {fusion} for {len(result.history)} epochs; best val {result.monitor} {best} -> {result.best_checkpoint}",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(emotion_app, name="emotion")
    # The same trainer for any clips with sound (action recognition with audio included).
    app.command("train-av")(train_av_command)
