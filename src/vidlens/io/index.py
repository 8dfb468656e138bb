"""The frame index of a video: how frame `i` is found, identified and timed.

Frame `i` is the i-th frame FFmpeg's decoder outputs (`ffmpeg -i F -vf "select=eq(n\\,i)"`
numbering, and `ffprobe -count_frames` counts), so indices agree with the ffmpeg CLI.

Two ways to build it:
- **From packets** (most files: mp4, mkv, webm, gif, avi without B-frames). Demuxing without
  decoding (~75,000 packets/s at 720p); frames in presentation order are the sorted packet
  timestamps. Headers lie (missing in mkv/webm, stale in cut avi), so nothing is taken from them.
- **From a decode pass** (AVI, and raw streams, whose codec reorders frames: XviD/DivX and H.264
  with B-frames, packed bitstreams with N-VOP placeholders). AVI stores no presentation time:
  the timestamps FFmpeg guesses for its packets are not in display order, and a packed B-frame
  leaves a placeholder packet behind. The decoder's own output order is the truth, so the file is
  decoded once at low cost (reduced resolution where the codec can) and each output frame's pts
  is recorded as its identity; seeking uses the keyframe packets' decode timestamps.

Cached per (path, size, mtime) so a dataset that reads many clips from one file indexes it once
per process; decode-pass indexes are also kept on disk (`$VIDLENS_CACHE_DIR`, default
`~/.cache/vidlens/frame-index/`), so fresh DataLoader workers do not decode the file again.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import av
import numpy as np

from vidlens.errors import VideoDecodeError
from vidlens.io._open import av_reason, check_readable_file, is_url, open_input

# Containers without presentation timestamps: their packet order is decode order.
_NO_PTS_FORMATS = frozenset({"avi", "h264", "hevc", "m4v", "mpegvideo", "h263", "cavsvideo", "vc1"})
# Containers whose seeking goes by decode timestamps (and file position), not presentation time.
_SEEK_BY_DTS_FORMATS = _NO_PTS_FORMATS | {"mpeg", "mpegts", "flv"}
# Of those, the ones whose timestamps arrive on the wrong packets right after a jump (MPEG-PS/TS).
_SEEK_EARLY_FORMATS = frozenset({"mpeg", "mpegts"})
# Codecs whose decoders accept `lowres` (decode at 1/2^n size): the decode pass only needs the order.
_LOWRES_CODECS = frozenset({"mpeg4", "h263", "msmpeg4v3", "msmpeg4v2", "msmpeg4v1", "mjpeg", "mpeg1video", "mpeg2video"})
# Frames reached from the start only: the index of a file whose frames cannot be identified after a seek.
SEQUENTIAL = "sequential"


@dataclass(frozen=True)
class FrameIndex:
    """Where every frame of one video stream is and when it is shown.

    `pts`: int64, one per frame in frame order: the timestamp a decoded frame carries, which is how a
    frame is recognised after a seek (sorted when `order == "pts"`, not necessarily otherwise).
    `display_ts`: int64, one per frame, increasing: when frame i is shown, in `time_base` units.
    `keyframes`: sorted frame numbers a decoder can start from; `keyframe_seek`: for each, the
    timestamp to hand to `container.seek` (pts, or dts for `order == "decode"`).
    `order`: "pts" (built from packets), "decode" (from a decode pass) or "sequential" (frames cannot
    be told apart after a seek: readers decode from the start).
    `last_duration`: how long the last frame is shown, in `time_base` units (0: unknown).
    `complete`: False when the scan stopped early (truncated or corrupt container); `problem` says why.
    """

    pts: np.ndarray
    keyframes: np.ndarray
    keyframe_seek: np.ndarray
    time_base: Fraction
    display_ts: np.ndarray
    order: str = "pts"
    last_duration: int = 0
    complete: bool = True
    problem: str = ""
    _lookup: tuple[np.ndarray, np.ndarray] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        order = np.argsort(self.pts, kind="stable")
        object.__setattr__(self, "_lookup", (self.pts[order], order))

    @property
    def num_frames(self) -> int:
        return int(self.pts.size)

    @cached_property
    def times(self) -> np.ndarray:
        """Seconds from the first frame, float64, one per frame (computed once: readers look it up per frame)."""
        return (self.display_ts - self.display_ts[0]).astype(np.float64) * float(self.time_base)

    def frame_durations(self) -> np.ndarray:
        """Seconds each frame stays on screen; the last one from its packet, else the median interval."""
        times = self.times
        last = float(self.last_duration * self.time_base)
        if times.size < 2:
            return np.full_like(times, last)
        deltas = np.diff(times)
        return np.append(deltas, last if last > 0 else np.median(deltas))

    def number_of(self, pts: int | None) -> int | None:
        """Frame number of a decoded frame carrying `pts`; None for a frame not in the index."""
        if pts is None:
            return None
        sorted_pts, order = self._lookup
        pos = int(np.searchsorted(sorted_pts, pts))
        if pos < sorted_pts.size and sorted_pts[pos] == pts:
            return int(order[pos])
        return None

    def keyframe_position(self, frame: int) -> int:
        """Position in `keyframes` of the last keyframe at or before frame number `frame` (0 if none)."""
        return max(0, int(np.searchsorted(self.keyframes, frame, side="right")) - 1)

    def is_keyframe(self, frame: int) -> bool:
        """True when frame number `frame` is one the index seeks to."""
        pos = int(np.searchsorted(self.keyframes, frame))
        return pos < self.keyframes.size and int(self.keyframes[pos]) == frame

    def index_of_time(self, seconds: np.ndarray | float) -> np.ndarray:
        """Frame on screen at each time (seconds from the first frame), clipped to the video."""
        pos = np.searchsorted(self.times, np.asarray(seconds, dtype=np.float64) + 1e-9, side="right") - 1
        return np.clip(pos, 0, self.num_frames - 1)

    def frame_at_or_before(self, pts: int) -> int:
        """Frame on screen at timestamp `pts` (for frames whose exact pts is not in the index)."""
        exact = self.number_of(pts)
        if exact is not None:
            return exact
        pos = int(np.searchsorted(self.display_ts, pts, side="right")) - 1
        return int(np.clip(pos, 0, self.num_frames - 1))


def _format_names(container: av.container.InputContainer) -> set[str]:
    """The demuxer's names (FFmpeg gives several for one demuxer, e.g. "mov,mp4,m4a,...")."""
    return set((container.format.name or "").split(","))


def needs_decode_order(container: av.container.InputContainer, stream) -> bool:
    """True when packet timestamps cannot give display order: no-pts containers whose codec reorders."""
    return bool(_format_names(container) & _NO_PTS_FORMATS) and bool(stream.codec_context.has_b_frames)


@dataclass
class _PacketScan:
    pts: list[int] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)
    dts_of_pts: dict[int, int] = field(default_factory=dict)
    monotonic: bool = True
    timestamps_missing: bool = False
    last_pts: int | None = None
    last_duration: int = 0
    max_end: int = 0
    complete: bool = True
    problem: str = ""


def _scan_packets(container: av.container.InputContainer, stream) -> _PacketScan:
    scan = _PacketScan()
    previous = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or getattr(packet, "is_discard", False):
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                # No timestamps at all (raw streams): number packets in decode order.
                scan.timestamps_missing = True
                ts = 0 if previous is None else previous + 1
            if previous is not None and ts <= previous:
                scan.monotonic = False
            previous = ts
            scan.pts.append(ts)
            if packet.dts is not None:
                scan.dts_of_pts.setdefault(ts, int(packet.dts))
            duration = int(packet.duration or 0)
            if scan.last_pts is None or ts >= scan.last_pts:
                scan.last_pts, scan.last_duration = ts, duration
            scan.max_end = max(scan.max_end, ts + max(duration, 1))
            if packet.is_keyframe:
                scan.keys.append(ts)
    except (av.FFmpegError, OSError) as exc:
        scan.complete, scan.problem = False, f"container damaged after {len(scan.pts)} frames ({av_reason(exc)})"
    return scan


def _index_from_packets(scan: _PacketScan, time_base: Fraction, seek_by_dts: bool, seek_early: bool) -> FrameIndex:
    pts = np.unique(np.asarray(scan.pts, dtype=np.int64))
    keys = np.unique(np.asarray(scan.keys or [pts[0]], dtype=np.int64))
    keys = keys[np.isin(keys, pts)]
    key_frames = np.searchsorted(pts, keys)
    if key_frames.size == 0 or key_frames[0] > 0:
        # Open-GOP or leading frames before the first keyframe: they are only reachable from the start.
        key_frames = np.concatenate([[0], key_frames])
        keys = np.concatenate([[pts[0]], keys])
    seek = keys
    if seek_by_dts:
        # MPEG-PS/TS: one tick before the keyframe's decode time, so the demuxer resynchronises its
        # timestamps on the packet before (right after a jump it attaches them to the wrong packets).
        seek = np.asarray([scan.dts_of_pts.get(int(k), int(k)) - int(seek_early) for k in keys], dtype=np.int64)
        seek[0] = min(int(seek[0]), min(scan.dts_of_pts.values(), default=int(seek[0])))
    return FrameIndex(
        pts=pts,
        keyframes=key_frames.astype(np.int64),
        keyframe_seek=seek.astype(np.int64),
        time_base=time_base,
        display_ts=pts,
        order="pts",
        last_duration=scan.last_duration,
        complete=scan.complete,
        problem=scan.problem,
    )


def _index_from_decoding(container, stream, scan: _PacketScan, time_base: Fraction, path: str) -> FrameIndex:
    """Decode the whole stream once (cheaply) and number frames in the decoder's output order."""
    ctx = stream.codec_context
    options = {"skip_loop_filter": "all"}
    if ctx.name in _LOWRES_CODECS:
        options["lowres"] = "3"
    ctx.options = {**ctx.options, **options}
    stream.thread_type = "SLICE"
    stream.thread_count = 1
    container.seek(0, stream=stream, backward=True, any_frame=False)
    frame_pts: list[int | None] = []
    trigger_dts: list[int | None] = []
    is_key: list[bool] = []
    errors = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.FFmpegError:
            errors += 1
            continue
        for frame in frames:
            frame_pts.append(frame.pts)
            trigger_dts.append(frame.dts)
            is_key.append(bool(frame.key_frame) or int(frame.pict_type) == 1)
    if not frame_pts:
        raise VideoDecodeError(path, "no decodable video frame (corrupt or truncated)")
    display = _increasing(trigger_dts)
    complete, problem = scan.complete, scan.problem
    if errors and complete:
        complete, problem = False, f"{errors} packets failed to decode"
    known = [p for p in frame_pts if p is not None]
    if len(known) != len(frame_pts) or len(set(known)) != len(known):
        # Frames cannot be told apart after a seek: number them by counting from the start.
        n = len(frame_pts)
        return FrameIndex(
            pts=np.arange(n, dtype=np.int64), keyframes=np.zeros(1, np.int64), keyframe_seek=np.zeros(1, np.int64),
            time_base=time_base, display_ts=display, order=SEQUENTIAL, last_duration=scan.last_duration,
            complete=complete, problem=problem,
        )
    pts = np.asarray(frame_pts, dtype=np.int64)
    anchors = [0]
    seeks = [min(scan.dts_of_pts.values(), default=0)]
    for i in range(1, pts.size):
        dts = scan.dts_of_pts.get(int(pts[i]))
        if is_key[i] and dts is not None and dts > seeks[-1]:
            anchors.append(i)
            seeks.append(dts)
    return FrameIndex(
        pts=pts,
        keyframes=np.asarray(anchors, dtype=np.int64),
        keyframe_seek=np.asarray(seeks, dtype=np.int64),
        time_base=time_base,
        display_ts=display,
        order="decode",
        last_duration=scan.last_duration,
        complete=complete,
        problem=problem,
    )


def _increasing(values: list[int | None]) -> np.ndarray:
    """Fill unknown or non-increasing timestamps with the previous one plus the typical step."""
    known = np.asarray([v for v in values if v is not None], dtype=np.int64)
    step = int(np.median(np.diff(known))) if known.size > 1 else 1
    step = max(step, 1)
    out = np.empty(len(values), dtype=np.int64)
    previous = None
    for i, value in enumerate(values):
        if value is None or (previous is not None and value <= previous):
            value = (previous + step) if previous is not None else 0
        out[i] = previous = value
    return out


def scan_index(container: av.container.InputContainer, path: str) -> FrameIndex:
    """Index the first video stream of an open container (packets only, or a decode pass; see module doc)."""
    stream = container.streams.video[0]
    time_base = Fraction(stream.time_base or Fraction(1, 1000))
    scan = _scan_packets(container, stream)
    if not scan.pts:
        raise VideoDecodeError(path, scan.problem or "video stream has no frames")
    formats = _format_names(container)
    no_pts = bool(formats & _NO_PTS_FORMATS)
    # Reordering shows in the codec's header (has_b_frames) or, when a header says nothing, in
    # parser-made timestamps that run backwards.
    if needs_decode_order(container, stream) or (not scan.monotonic and (no_pts or scan.timestamps_missing)):
        index = _index_from_decoding(container, stream, scan, time_base, path)
    else:
        index = _index_from_packets(scan, time_base, seek_by_dts=bool(formats & _SEEK_BY_DTS_FORMATS),
                                    seek_early=bool(formats & _SEEK_EARLY_FORMATS))
    claimed = stream.frames or 0
    if index.complete and claimed and index.num_frames < claimed * 0.98 and not is_url(path):
        # AVI "repeat the previous frame" entries (zero-size packets) count in the header but
        # carry no frame: the timestamps still reach the claimed length in an intact file.
        rate = stream.average_rate or stream.guessed_rate
        frame_ticks = (1 / (Fraction(rate) * time_base)) if rate else 0
        if not frame_ticks or scan.max_end < claimed * frame_ticks * 0.98:
            index = replace(index, complete=False,
                            problem=f"header claims {claimed} frames but only {index.num_frames} are present (truncated?)")
    return index


_SAVED_VERSION = 1


def _saved_path(key: tuple[str, int, int]) -> Path | None:
    """Where a decode-order index is kept between processes: $VIDLENS_CACHE_DIR or ~/.cache/vidlens."""
    root = os.environ.get("VIDLENS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vidlens")
    if not root:
        return None
    digest = hashlib.sha1(repr((_SAVED_VERSION, *key)).encode()).hexdigest()
    return Path(root) / "frame-index" / f"{digest}.npz"


def _save(key: tuple[str, int, int], index: FrameIndex) -> None:
    target = _saved_path(key)
    if target is None:
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, pts=index.pts, keyframes=index.keyframes, keyframe_seek=index.keyframe_seek,
                 display_ts=index.display_ts, time_base=np.array([index.time_base.numerator, index.time_base.denominator]),
                 last_duration=np.array([index.last_duration]), complete=np.array([index.complete]),
                 problem=np.array([index.problem]), order=np.array([index.order]))
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only or full disk only costs the decode pass next time


def _load_saved(key: tuple[str, int, int]) -> FrameIndex | None:
    target = _saved_path(key)
    if target is None or not target.is_file():
        return None
    try:
        with np.load(target, allow_pickle=False) as data:
            num, den = (int(v) for v in data["time_base"])
            return FrameIndex(pts=data["pts"], keyframes=data["keyframes"], keyframe_seek=data["keyframe_seek"],
                              time_base=Fraction(num, den), display_ts=data["display_ts"], order=str(data["order"][0]),
                              last_duration=int(data["last_duration"][0]), complete=bool(data["complete"][0]),
                              problem=str(data["problem"][0]))
    except (OSError, KeyError, ValueError):
        return None


_CACHE_SIZE = 1024
_CACHE: OrderedDict[tuple[str, int, int], FrameIndex] = OrderedDict()


def frame_index(path: str | os.PathLike[str]) -> FrameIndex:
    """The frame index of a local video file, cached per (path, size, mtime) in this process."""
    path = os.fspath(path)
    if is_url(path):
        raise VideoDecodeError(path, "frame-accurate access needs a local file; read streams with iter_frames")
    check_readable_file(path)
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    cached = _CACHE.get(key)
    if cached is not None:
        _CACHE.move_to_end(key)
        return cached
    index = _load_saved(key)
    if index is None:
        with open_input(path) as container:
            index = scan_index(container, path)
        if index.order == "decode":
            _save(key, index)  # the decode pass costs real time: keep it for the next process (DataLoader workers)
    _CACHE[key] = index
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return index
