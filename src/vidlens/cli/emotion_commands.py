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
    video: Path = typer.Argument(..., help="Video file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: emotion.json, emotion.csv, emotion.png [, annotated.mp4]."),
    fps: float = typer.Option(5.0, "--fps", help="Frames analysed per second."),
    max_width: int = typer.Option(640, "--max-width", help="Frames are analysed no wider than this, pixels."),
    expression_checkpoint: str = typer.Option(None, "--expression-checkpoint", help="A model from `vidlens emotion train-faces` (default: FER2013 weights)."),
    voice_model: str = typer.Option(None, "--voice-model", help="An audio emotion checkpoint to fuse with the faces (late fusion)."),
    face_weight: float = typer.Option(0.5, "--face-weight", help="Late fusion weight of the faces where voice is active too."),
    annotate: bool = typer.Option(False, "--annotate", help="Also write annotated.mp4 with face boxes and labels."),
) -> None:
    """Per face track and for the whole video: emotion probabilities, dominant emotion and valence per second."""
    from vidlens.io import probe
    from vidlens.outputs import staged_output
    from vidlens.tasks.emotion import EmotionConfig, analyse_emotions, write_emotion_outputs

    config = EmotionConfig(fps=fps, max_width=max_width, expression_checkpoint=expression_checkpoint,
                           voice_model=voice_model, face_weight=face_weight)
    duration = probe(video).duration_s
    with make_progress() as bar:
        result = analyse_emotions(video, config, progress=stage_progress(bar, duration))
    with staged_output(out) as stage:
        files = write_emotion_outputs(result, stage.path, annotate=annotate)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    for track in result.tracks:
        mean = track.mean_probs
        label = result.labels[int(mean.argmax())]
        console.print(f"face #{track.id}: {track.times[0]:.1f}-{track.times[-1]:.1f} s, {len(track.frames)} detections, "
                      f"mostly {label} ({mean.max():.2f})", highlight=False)
    if result.seconds:
        moods = [row["sentiment"] for row in result.seconds]
        console.print("video: " + ", ".join(f"{m} {moods.count(m)} s" for m in ("positive", "neutral", "negative") if m in moods),
                      highlight=False)
    console.print(f"wrote {', '.join(sorted(files))} -> {out}", highlight=False, soft_wrap=True)


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
