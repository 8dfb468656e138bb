"""All-or-nothing result folders: write into a staging folder, move into place only on success.

Every command that writes results does

    with staged_output(out) as stage:
        write_things(stage.path)          # a fresh hidden folder beside `out`
    # here every file is in `out`; on an exception nothing new is in `out` and the staging folder is gone

so a run that fails half-way never leaves a half-written result. Entries the run wrote replace
entries of the same name in `out` (a folder as a whole, so no stale files from an older run stay
inside it); other entries of `out` are left alone. Staging sits beside `out`, on the same file
system, so each move is a rename.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Staged", "staged_output", "STAGING_MARK"]

STAGING_MARK = ".partial-"  # staging folders are named `.<out name>.partial-<pid>-<random>`


@dataclass(frozen=True)
class Staged:
    """`path`: where the run writes now; `out`: where its entries land when it succeeds."""

    path: Path
    out: Path

    def final(self, p: str | os.PathLike[str]) -> Path:
        """Where a path written under `self.path` will be once moved (other paths unchanged)."""
        p = Path(p)
        try:
            return self.out / p.relative_to(self.path)
        except ValueError:
            return p


def _missing_parents(path: Path) -> list[Path]:
    """The folders above `path` that do not exist yet, innermost first."""
    missing = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


@contextmanager
def staged_output(out_dir: str | os.PathLike[str]) -> Iterator[Staged]:
    """Stage a run's outputs beside `out_dir`; move them into it on success, remove them on failure.

    Folders created on the way (missing parents of `out_dir`) are removed again when the run fails.
    Interrupts (KeyboardInterrupt) count as failures.
    """
    out = Path(os.path.abspath(out_dir))
    if out.exists() and not out.is_dir():
        from vidlens.errors import ConfigError

        raise ConfigError(out, "the output folder is an existing file")
    created = _missing_parents(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name or 'out'}{STAGING_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    stage.mkdir()  # honours the umask, unlike mkdtemp's 0700
    try:
        yield Staged(stage, out)
        _commit(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in created:  # innermost first; only if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _commit(stage: Path, out: Path) -> None:
    """Move every entry of `stage` into `out` (replacing same-named entries), then drop `stage`."""
    if not out.exists():
        os.rename(stage, out)
        return
    old = stage / f".replaced-{uuid.uuid4().hex[:8]}"
    old.mkdir()
    for entry in sorted(stage.iterdir()):
        if entry == old:
            continue
        dest = out / entry.name
        if dest.is_dir() and not dest.is_symlink():
            os.rename(dest, old / entry.name)  # a folder is replaced whole: no stale files stay inside it
        elif dest.exists() or dest.is_symlink():
            if entry.is_dir():
                os.rename(dest, old / entry.name)
        os.replace(entry, dest)
    shutil.rmtree(stage, ignore_errors=True)
