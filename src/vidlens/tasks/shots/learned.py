"""Run the learned transition detector (`ShotNet`, exported to ONNX) over a video: `--method learned`.

One pass: frames decoded straight to 48x27 (`FRAME_SIZE`, the decoder's scaler, deblocking
skipped), batched into chunks of `CHUNK` frames that overlap by the network's receptive field, so
the per-frame outputs equal one pass over the whole video while memory stays flat. onnxruntime on
one thread (it starts in ~0.2 s where importing torch takes ~1.5 s: this is a whole-process command).

The default model ships in the package (`models/shotnet.onnx`, trained by `vidlens shots train`,
see docs/shots.md); `ShotConfig.model` points at another `shotnet.onnx` or a folder holding one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidlens.tasks.shots.result import Boundary

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "shotnet.onnx"
FRAME_SIZE = (27, 48)  # (H, W) of ShotNet's input; defined here (net.py imports it) so inference never imports torch
RECEPTIVE_FIELD = 80  # context when a model does not say (its ONNX metadata `receptive_field` does)
CHUNK = 512  # frames whose outputs one network run produces (peak memory ~0.5 MB a frame of chunk + context)
FLUSH = 1024  # per-frame values are moved from Python objects into arrays this often (flat memory)
KIND_NAMES = ("dissolve", "fade", "wipe")


@dataclass
class LearnedScores:
    """Per-frame outputs over a video: `times` `float64 (N,)`, `indices` `int64 (N,)`, `probs` `float32 (N, 5)`
    (boundary, inside-transition, then the gradual kind's softmax over dissolve/fade/wipe), `diff` `float32 (N,)`
    mean absolute difference of consecutive 48x27 frames (0..1), a plain baseline curve for the plot."""

    times: np.ndarray
    indices: np.ndarray
    probs: np.ndarray
    diff: np.ndarray
    hists: np.ndarray  # float32 (N, 64): joint RGB histogram (4 levels a channel) of each 48x27 frame, sum 1


def model_path(model: str | os.PathLike[str] | None) -> Path:
    """The ONNX file for `model` (None: the packaged default); a clear error when it is missing."""
    p = Path(model) if model is not None else DEFAULT_MODEL
    if p.is_dir():
        p = p / "shotnet.onnx"
    if not p.is_file():
        where = "the packaged default model" if model is None else "the model given"
        raise FileNotFoundError(f"{where} is missing: no shotnet.onnx at {p}. Train one with `vidlens shots train VIDEOS -o DIR` and pass "
                                "--model DIR, or use --method classic")
    return p


def open_session(model: str | os.PathLike[str] | None = None, threads: int = 1):
    """An onnxruntime session for the model (one intra-op thread by default: small model, busy machines)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Without the arena, a chunk's intermediates are freed as they die: 1184 frames peaked at 693 MB
    # instead of 962 MB, at the same speed.
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(model_path(model)), options, providers=["CPUExecutionProvider"])


def _run(session, frames: np.ndarray) -> np.ndarray:
    """Logits `(T, 5)` -> probabilities: sigmoid on the two detection outputs, softmax over the kinds."""
    logits = session.run(None, {"frames": frames[None]})[0][0].astype(np.float32)
    out = np.empty_like(logits)
    out[:, :2] = 1.0 / (1.0 + np.exp(-logits[:, :2]))
    k = logits[:, 2:] - logits[:, 2:].max(axis=1, keepdims=True)
    e = np.exp(k)
    out[:, 2:] = e / e.sum(axis=1, keepdims=True)
    return out


def receptive_field(session) -> int:
    """Frames of context the model needs on each side (stored by `export_onnx`)."""
    value = session.get_modelmeta().custom_metadata_map.get("receptive_field")
    return int(value) if value else RECEPTIVE_FIELD


def chunked_probs(session, frames: Iterator[np.ndarray], chunk: int = CHUNK, context: int | None = None
                  ) -> Iterator[np.ndarray]:
    """Yield probabilities `(n, 5)` in order for frames streamed as `uint8 (H, W, 3)`, `chunk` at a time."""
    context = receptive_field(session) if context is None else context
    buf: list[np.ndarray] = []
    origin = 0  # video position of buf[0]
    done = 0  # frames whose outputs were yielded
    for frame in frames:
        buf.append(frame)
        if origin + len(buf) >= done + chunk + context:
            lo = done - origin
            probs = _run(session, np.stack(buf))
            yield probs[lo : lo + chunk]
            done += chunk
            drop = max(0, done - context - origin)
            del buf[:drop]
            origin += drop
    if origin + len(buf) > done:
        yield _run(session, np.stack(buf))[done - origin :]


def learned_scores(path: str | os.PathLike[str], model: str | os.PathLike[str] | None = None, *,
                   progress: Callable[[int], None] | None = None, threads: int | None = None,
                   fast_decode: bool = True) -> LearnedScores:
    """Decode `path` at 48x27 and run the model over every frame (see the module doc)."""
    from vidlens.io.prefetch import prefetch
    from vidlens.io.reader import iter_frames

    session = open_session(model)
    staged: list[tuple[float, int, float, np.ndarray]] = []  # per frame, moved into arrays every FLUSH frames
    kept: dict[str, list[np.ndarray]] = {"times": [], "indices": [], "diff": [], "hists": []}
    count = [0]
    prev: list[np.ndarray] = []

    def flush() -> None:
        if staged:
            kept["times"].append(np.array([r[0] for r in staged], np.float64))
            kept["indices"].append(np.array([r[1] for r in staged], np.int64))
            kept["diff"].append(np.array([r[2] for r in staged], np.float32))
            kept["hists"].append(np.stack([r[3] for r in staged]))
            staged.clear()

    def images() -> Iterator[np.ndarray]:
        options = {"skip_loop_filter": "noref"} if fast_decode else None
        for f in prefetch(iter_frames(path, size=FRAME_SIZE, keep_aspect=False, threads=threads, decoder_options=options), 64):
            img = f.image
            now = img.astype(np.int16)
            d = float(np.abs(now - prev[0]).mean()) / 255.0 if prev else 0.0
            prev[:] = [now]
            staged.append((f.time_s, f.index, d, colour_histogram(img)))
            count[0] += 1
            if len(staged) >= FLUSH:
                flush()
            if progress and count[0] % 100 == 0:
                progress(count[0])
            yield img

    parts = list(chunked_probs(session, images()))
    flush()
    if progress:
        progress(count[0])
    probs = np.concatenate(parts) if parts else np.zeros((0, 5), np.float32)

    def joined(name: str, dtype, shape: tuple[int, ...]) -> np.ndarray:
        return np.concatenate(kept[name]) if kept[name] else np.zeros(shape, dtype)

    return LearnedScores(joined("times", np.float64, (0,)), joined("indices", np.int64, (0,)), probs,
                         joined("diff", np.float32, (0,)), joined("hists", np.float32, (0, 64)))


def colour_histogram(image: np.ndarray) -> np.ndarray:
    """`float32 (64,)` joint RGB histogram (4 levels a channel, sum 1) of a `uint8 (H, W, 3)` frame."""
    q = (image >> 6).reshape(-1, 3).astype(np.int32)
    return (np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64) / len(q)).astype(np.float32)


MIN_CHANGE = 0.25  # half L1 distance of the histograms before and after a gradual transition, at least


def drop_same_scene(boundaries: list[Boundary], hists: np.ndarray, diff: np.ndarray,
                    min_change: float = MIN_CHANGE) -> list[Boundary]:
    """Check each gradual boundary against the colours before and after it (positions in the analysed sequence).

    A transition joins two shots, so the colour histogram just before its span and just after it differ
    (half L1 distance >= `min_change`; every real transition of the EVAL split measured 0.33 or more).
    Fast pans and vehicles crossing close to the camera can look "inside a transition" to the network
    (bikes.mp4: 0.05-0.30). Such a span is dropped, unless one frame in it carries a cut-like jump of the
    frame difference (above 0.05 and 3x the span's median): that frame is kept as a cut."""
    n = len(hists)
    out = []
    for b in boundaries:
        if b.kind == "cut" or n == 0:
            out.append(b)
            continue
        a, e = max(0, b.start_frame - 2), min(n - 1, b.end_frame + 1)
        if 0.5 * float(np.abs(hists[a] - hists[e]).sum()) >= min_change:
            out.append(b)
            continue
        span = diff[b.start_frame : max(b.end_frame, b.start_frame + 1)]
        t = int(np.argmax(span))
        if span[t] > 0.05 and span[t] > 3 * float(np.median(span)):
            f = b.start_frame + t
            out.append(Boundary(f, 0.0, "cut", b.score, f, f, b.confidence))
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """`[start, end)` of each run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def learned_boundaries(probs: np.ndarray, threshold: float = 0.5, gradual_threshold: float = 0.5,
                       min_gradual: int = 3) -> list[Boundary]:
    """Boundaries (positions in the analysed sequence, `time_s` unset) from probabilities `(N, 5)`.

    Two kinds of evidence, as TransNet V2's two heads give them: a run of frames whose boundary
    probability exceeds `threshold` (its most probable frame is the boundary; sharp for cuts), and a
    run of at least `min_gradual` frames "inside a transition" above `gradual_threshold` (a long
    dissolve spreads its boundary probability thinly over many frames, but every frame of it is
    clearly inside). Each boundary's transition is the run of "inside" frames around it: 2 frames or
    fewer make a cut, longer ones take the kind with the highest mean probability over the span.
    Confidence: the boundary probability, or for a run found by the second rule its mean "inside"
    probability (both 0.5 at the default thresholds)."""
    n = len(probs)
    p, g = probs[:, 0], probs[:, 1]
    inside = _runs(g > gradual_threshold)
    found: dict[int, float] = {}
    for a, b in _runs(p > threshold):
        peak = a + int(np.argmax(p[a:b]))
        found[peak] = float(p[peak])
    for a, b in inside:
        if b - a >= min_gradual and not any(a <= t < b for t in found):
            peak = a + int(np.argmax(p[a:b]))
            found[peak] = max(float(p[peak]), float(g[a:b].mean()))
    out: list[Boundary] = []
    for peak in sorted(found):
        if peak == 0:
            continue  # frame 0 starts the video: never a boundary
        lo, hi = next(((a, b) for a, b in inside if a <= peak < b), (peak, peak + 1))
        if out and out[-1].kind != "cut" and out[-1].end_frame > peak:
            continue  # a second peak inside the same gradual transition
        conf = found[peak]
        if hi - lo <= 2:
            out.append(Boundary(peak, 0.0, "cut", conf, peak, peak, conf))
        else:
            kind = KIND_NAMES[int(np.argmax(probs[lo:hi, 2:].mean(axis=0)))]
            out.append(Boundary(peak, 0.0, kind, conf, lo, hi, conf))
    return out
