"""The `vidlens` command: typer sub-commands, each a thin layer over the library.

User errors (`VidlensError`) print one line and exit 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from vidlens import __version__
from vidlens.cli import common
from vidlens.cli.anomaly_commands import register as register_anomaly
from vidlens.cli.batch_command import register as register_batch
from vidlens.cli.data_commands import data_app
from vidlens.cli.dedup_command import register as register_dedup
from vidlens.cli.demo_command import register as register_demo
from vidlens.cli.emotion_commands import register as register_emotion
from vidlens.cli.explain_command import register as register_explain
from vidlens.cli.export_command import register as register_export
from vidlens.cli.features_command import register as register_features
from vidlens.cli.index_commands import register as register_index
from vidlens.cli.io_commands import register as register_io
from vidlens.cli.keyframes_command import register as register_keyframes
from vidlens.cli.models_command import register as register_models
from vidlens.cli.recognition_commands import register as register_recognition
from vidlens.cli.serve_command import register as register_serve
from vidlens.cli.shots_command import register as register_shots
from vidlens.cli.stream_command import register as register_stream
from vidlens.cli.tags_command import register as register_tags
from vidlens.cli.summarize_commands import summarize_app
from vidlens.cli.summarize_video_command import register as register_summarize_video
from vidlens.cli.sync_commands import register as register_sync
from vidlens.errors import VidlensError

app = typer.Typer(
    name="vidlens",
    help="Deep-learning video understanding: decode, preprocess, train, evaluate, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vidlens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    common.STATE.debug = debug
    common.STATE.quiet = quiet


register_demo(app)
register_io(app)
register_features(app)
register_models(app)
register_recognition(app)
register_shots(app)
register_keyframes(app)
register_tags(app)
register_emotion(app)
register_export(app)
register_stream(app)
register_serve(app)
register_batch(app)
register_index(app)
register_dedup(app)
register_anomaly(app)
register_explain(app)
register_sync(app)
app.add_typer(data_app, name="data")
register_summarize_video(summarize_app)
app.add_typer(summarize_app, name="summarize")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors exit 2 (click's own handling), user errors print one line and exit 2."""
    try:
        app(args=argv, standalone_mode=True)
    except VidlensError as exc:
        if common.STATE.debug:
            raise
        # escape: messages hold paths and hints like 'vidlens[serve]' that rich would read as markup
        common.console_err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        common.console_err.print("aborted")
        sys.exit(130)


if __name__ == "__main__":
    main()
