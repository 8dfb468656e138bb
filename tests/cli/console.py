"""Run `vidlens ARGS` through the console entry point in-process, as a user's shell would (shared by the CLI tests)."""

from __future__ import annotations

from vidlens.cli.main import main


def run_main(capsys, *args, quiet: bool = False) -> tuple[int, str]:
    """(exit code, stdout + stderr) of `vidlens [--quiet] ARGS`; user errors exit 2 with one line, as in a shell."""
    capsys.readouterr()
    try:
        main((["--quiet"] if quiet else []) + [str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out + captured.err
