"""Video I/O: probe, decode frames and audio at the size and rate asked for, write video.

Decoded frames are `uint8 (T,H,W,C)` RGB; audio is `float32 (C,S)`. Every failure to
read raises `VideoDecodeError(path, reason)`; partial damage warns with
`PartialDecodeWarning` and returns what decodes. One backend: PyAV (FFmpeg).
"""

from vidlens.errors import VideoDecodeError
from vidlens.io.audio import read_audio
from vidlens.io.convert import output_geometry, resize_image
from vidlens.io.index import FrameIndex, frame_index
from vidlens.io.probe import VideoInfo, probe
from vidlens.io.reader import Frame, PartialDecodeWarning, iter_frames, read_clip
from vidlens.io.writer import VideoWriter

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".gif", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp")

__all__ = [
    "VIDEO_EXTENSIONS",
    "Frame",
    "FrameIndex",
    "PartialDecodeWarning",
    "VideoDecodeError",
    "VideoInfo",
    "VideoWriter",
    "frame_index",
    "iter_frames",
    "output_geometry",
    "probe",
    "read_audio",
    "read_clip",
    "resize_image",
]
