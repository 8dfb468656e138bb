"""Synthetic media and tiny models for tests, shipped so users' tests can use them too."""

from vidlens.testing.media import (
    corrupt_middle,
    make_bad_files,
    pattern_frame,
    read_pattern_index,
    sample_media,
    write_audio_only,
    write_lossless_video,
    write_pattern_video,
)
from vidlens.testing.threads import single_thread

__all__ = [
    "corrupt_middle",
    "make_bad_files",
    "pattern_frame",
    "read_pattern_index",
    "sample_media",
    "single_thread",
    "write_audio_only",
    "write_lossless_video",
    "write_pattern_video",
]
