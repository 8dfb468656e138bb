"""`VideoWriter`: encode RGB frames (and optionally audio) to a video file with PyAV.

Default codec by extension: .mp4/.mov/.mkv -> H.264 (yuv420p, plays everywhere),
.webm -> VP9, .avi -> MPEG-4 part 2, .gif -> GIF. `codec="ffv1"` in .mkv is lossless
(used by tests that assert exact pixels). Odd frame sizes are padded by one
replicated row/column for H.264 4:2:0, which needs even sizes.
"""

from __future__ import annotations

import os
from fractions import Fraction
from types import TracebackType

import av
import numpy as np

from vidlens.errors import VidlensError

DEFAULT_CODECS = {
    ".mp4": "libx264",
    ".m4v": "libx264",
    ".mov": "libx264",
    ".mkv": "libx264",
    ".webm": "libvpx-vp9",
    ".avi": "mpeg4",
    ".gif": "gif",
}
PIX_FMTS = {"gif": "rgb8", "ffv1": "bgr0", "libx264rgb": "rgb24", "png": "rgb24", "mjpeg": "yuvj420p"}
# libx264 refuses odd sizes in 4:2:0; VP9, MPEG-4 and MJPEG accept them.
_EVEN_ONLY_CODECS = {"libx264"}
_EVEN_ONLY_PIX_FMTS = {"yuv420p", "yuvj420p", "nv12"}


class VideoWriter:
    """Write `uint8 (H,W,3)` RGB frames; use as a context manager.

    `fps` is the nominal rate; frames get consecutive timestamps unless `write(frame, pts=...)`
    gives one in units of `time_base` (default 1/fps), which writes variable frame rate.
    `audio_rate` adds an audio track fed by `write_audio(float32 (C,S))`.
    `rotation` stores a display rotation (counter-clockwise degrees), as phones do.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float | Fraction,
        *,
        codec: str | None = None,
        crf: int | None = 23,
        preset: str = "veryfast",
        pix_fmt: str | None = None,
        gop: int | None = None,
        time_base: Fraction | None = None,
        bit_rate: int | None = None,
        audio_rate: int | None = None,
        audio_channels: int = 1,
        audio_codec: str = "aac",
        rotation: int = 0,
        options: dict[str, str] | None = None,
        container_options: dict[str, str] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        ext = os.path.splitext(self.path)[1].lower()
        self.codec = codec or DEFAULT_CODECS.get(ext, "libx264")
        self.fps = Fraction(fps).limit_denominator(100000)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.time_base = time_base or 1 / self.fps
        self.pix_fmt = pix_fmt or PIX_FMTS.get(self.codec, "yuv420p")
        self._options = dict(options or {})
        if self.codec in ("libx264", "libx264rgb"):
            self._options.setdefault("preset", preset)
            # One slice per frame, as cameras and ffmpeg write it (PyAV's default slice threading
            # cuts frames into a machine-dependent number of slices).
            self._options.setdefault("x264-params", "sliced-threads=0")
            if crf is not None:
                self._options.setdefault("crf", str(crf))
        elif self.codec == "libvpx-vp9":
            self._options.setdefault("deadline", "realtime")
            self._options.setdefault("cpu-used", "8")
            if crf is not None:
                self._options.setdefault("crf", str(crf + 8))
                self._options.setdefault("b", "0")
        self._gop = gop
        self._rotation = rotation
        self._bit_rate = bit_rate
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            self._container = av.open(self.path, mode="w", options=container_options or {})
        except (av.FFmpegError, OSError) as exc:
            raise VidlensError(self.path, f"cannot create video file ({exc})") from None
        self._video = None
        self._size: tuple[int, int] | None = None
        self._count = 0
        self._audio = None
        self._audio_samples = 0
        if audio_rate:
            self._audio = self._container.add_stream(audio_codec, rate=int(audio_rate))
            self._audio.layout = "mono" if audio_channels == 1 else "stereo"
            self._audio_rate = int(audio_rate)

    @property
    def frames_written(self) -> int:
        return self._count

    def _open_video(self, h: int, w: int) -> None:
        stream = self._container.add_stream(self.codec, rate=self.fps, options=self._options)
        if self.codec in _EVEN_ONLY_CODECS and self.pix_fmt in _EVEN_ONLY_PIX_FMTS:
            h, w = h + h % 2, w + w % 2
        stream.width, stream.height = w, h
        stream.pix_fmt = self.pix_fmt
        stream.codec_context.time_base = self.time_base
        if self._gop:
            stream.codec_context.gop_size = self._gop
        if self._bit_rate:
            stream.codec_context.bit_rate = self._bit_rate
        if self._rotation:
            stream.set_display_rotation(self._rotation)  # display matrix, counter-clockwise degrees
        self._video = stream
        self._size = (h, w)

    def write(self, frame: np.ndarray, pts: int | None = None) -> None:
        """Append one `uint8 (H,W,3)` RGB frame, or a `(T,H,W,3)` stack."""
        frame = np.asarray(frame)
        if frame.ndim == 4:
            for single in frame:
                self.write(single)
            return
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected uint8 (H,W,3) RGB, got {frame.dtype} {frame.shape}")
        if self._video is None:
            self._open_video(frame.shape[0], frame.shape[1])
        assert self._size is not None
        h, w = self._size
        if frame.shape[:2] != (h, w):
            if frame.shape[0] > h or frame.shape[1] > w or h - frame.shape[0] > 1 or w - frame.shape[1] > 1:
                raise ValueError(f"frame size {frame.shape[:2]} differs from the video's {(h, w)}")
            frame = np.pad(frame, ((0, h - frame.shape[0]), (0, w - frame.shape[1]), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self._count if pts is None else int(pts)
        video_frame.time_base = self.time_base
        if pts is None and self.time_base != 1 / self.fps:
            video_frame.pts = int(round(self._count / self.fps / self.time_base))
        self._mux(self._video.encode(video_frame))
        self._count += 1

    def write_audio(self, samples: np.ndarray) -> None:
        """Append audio as `float32 (C,S)` in [-1, 1] at the writer's `audio_rate`."""
        if self._audio is None:
            raise ValueError("this writer was created without audio_rate")
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[None]
        channels = 1 if self._audio.layout.name == "mono" else 2
        if samples.shape[0] != channels:
            samples = np.repeat(samples.mean(axis=0, keepdims=True), channels, axis=0)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self._audio.layout.name)
        frame.sample_rate = self._audio_rate
        frame.pts = self._audio_samples
        frame.time_base = Fraction(1, self._audio_rate)
        self._audio_samples += samples.shape[1]
        self._mux(self._audio.encode(frame))

    def _mux(self, packets) -> None:
        for packet in packets:
            self._container.mux(packet)

    def close(self, flush: bool = True) -> None:
        """Flush the encoders and finish the file (`flush=False` only releases it, after an error)."""
        if self._container is None:
            return
        try:
            if flush and self._video is not None:
                self._mux(self._video.encode(None))
            if flush and self._audio is not None:
                self._mux(self._audio.encode(None))
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(flush=exc_type is None)
