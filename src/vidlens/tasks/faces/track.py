"""Face tracking by detection: match each frame's boxes to the live tracks (IoU / centre distance).

`FaceTracker.update(frame_index, time_s, boxes)` assigns every detection a track id (Hungarian
matching on `1 - IoU + centre distance / box size` against where each track is predicted to be
from its last velocity); a track survives `max_missed` updates without a detection; ids are
never reused. Tracks shorter than `min_length` detections are dropped when they end (their ids
were returned by `update` but never appear among finished tracks). `missed` counts *updates*,
so when frames are sampled (every k-th frame) it is in sampled frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from vidlens.tasks.faces.detect import FaceBox, iou


@dataclass
class Track:
    """One face over time: parallel lists of source `frames` (indices), `times` (seconds) and `boxes`."""

    id: int
    frames: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    boxes: list[FaceBox] = field(default_factory=list)
    missed: int = field(default=0, repr=False)  # consecutive updates without a detection
    velocity: tuple[float, float] = field(default=(0.0, 0.0), repr=False)  # centre px per frame

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def start_frame(self) -> int:
        return self.frames[0]

    @property
    def end_frame(self) -> int:
        return self.frames[-1]

    @property
    def start_s(self) -> float:
        return self.times[0]

    @property
    def end_s(self) -> float:
        return self.times[-1]

    def add(self, frame_index: int, time_s: float, box: FaceBox) -> None:
        if self.frames:
            gap = frame_index - self.frames[-1]
            if gap > 0:
                (cx0, cy0), (cx1, cy1) = self.boxes[-1].center, box.center
                v = ((cx1 - cx0) / gap, (cy1 - cy0) / gap)
                # Smooth the velocity: detector jitter would otherwise throw the prediction around.
                self.velocity = v if len(self.frames) == 1 else (
                    0.5 * v[0] + 0.5 * self.velocity[0], 0.5 * v[1] + 0.5 * self.velocity[1])
        self.frames.append(int(frame_index))
        self.times.append(float(time_s))
        self.boxes.append(box)
        self.missed = 0

    def predict(self, frame_index: int, use_velocity: bool = True) -> FaceBox:
        """Where the face should be at `frame_index`: the last box moved by the last velocity."""
        last = self.boxes[-1]
        if not use_velocity:
            return last
        gap = frame_index - self.frames[-1]
        return replace(last, x=last.x + self.velocity[0] * gap, y=last.y + self.velocity[1] * gap)

    def to_dict(self) -> dict:
        return {"id": self.id, "start_frame": self.start_frame, "end_frame": self.end_frame,
                "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "detections": len(self),
                "frames": list(self.frames), "times": [round(t, 3) for t in self.times],
                "boxes": [b.to_dict() for b in self.boxes]}


class FaceTracker:
    """IoU / centre-distance tracker with stable ids.

    A detection may join a track when its IoU with the track's predicted box is at least
    `iou_threshold` or its centre lies within `max_center_distance` x the box size of the
    prediction. `max_missed`: updates a track survives without a detection. `min_length`:
    detections a finished track needs to be kept. `predict`: extrapolate with the last velocity.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5, min_length: int = 3,
                 max_center_distance: float = 0.5, predict: bool = True) -> None:
        self.iou_threshold, self.max_missed, self.min_length = iou_threshold, max_missed, min_length
        self.max_center_distance, self.predict = max_center_distance, predict
        self._active: list[Track] = []
        self._finished: list[Track] = []
        self._next_id = 0
        self.dropped = 0  # tracks that ended shorter than min_length

    @property
    def active_tracks(self) -> list[Track]:
        return list(self._active)

    def _cost(self, pred: FaceBox, det: FaceBox) -> float | None:
        overlap = iou(pred, det)
        (px, py), (dx, dy) = pred.center, det.center
        size = max(1e-6, 0.25 * (pred.w + pred.h + det.w + det.h))
        distance = float(np.hypot(px - dx, py - dy)) / size
        if overlap < self.iou_threshold and distance > self.max_center_distance:
            return None
        return (1.0 - overlap) + distance

    def update(self, frame_index: int, time_s: float, boxes: Sequence[FaceBox]) -> list[tuple[int, FaceBox]]:
        """Add one frame's detections; returns `(track_id, box)` for each of `boxes`, in their order."""
        from scipy.optimize import linear_sum_assignment

        boxes = list(boxes)
        assigned: list[int | None] = [None] * len(boxes)
        if self._active and boxes:
            preds = [t.predict(frame_index, self.predict) for t in self._active]
            big = 1e6
            cost = np.full((len(preds), len(boxes)), big)
            for i, pred in enumerate(preds):
                for j, det in enumerate(boxes):
                    c = self._cost(pred, det)
                    if c is not None:
                        cost[i, j] = c
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] < big:
                    self._active[i].add(frame_index, time_s, boxes[j])
                    assigned[j] = self._active[i].id
        matched = set(a for a in assigned if a is not None)
        still: list[Track] = []
        for track in self._active:
            if track.id not in matched:
                track.missed += 1
                if track.missed > self.max_missed:
                    self._end(track)
                    continue
            still.append(track)
        self._active = still
        for j, box in enumerate(boxes):
            if assigned[j] is None:
                track = Track(self._next_id)
                self._next_id += 1
                track.add(frame_index, time_s, box)
                self._active.append(track)
                assigned[j] = track.id
        return [(int(a), b) for a, b in zip(assigned, boxes)]  # type: ignore[arg-type]

    def _end(self, track: Track) -> None:
        if len(track) >= self.min_length:
            self._finished.append(track)
        else:
            self.dropped += 1

    def pop_finished(self) -> list[Track]:
        """Tracks that ended (and are long enough) since the last call, by id (for streaming use)."""
        done, self._finished = sorted(self._finished, key=lambda t: t.id), []
        return done

    def finish(self) -> list[Track]:
        """End every live track; returns all kept tracks not yet popped, by id."""
        for track in self._active:
            self._end(track)
        self._active = []
        return self.pop_finished()


def track_faces(detections: Sequence[tuple[int, float, Sequence[FaceBox]]], **tracker_args) -> list[Track]:
    """Convenience: run a `FaceTracker` over `(frame_index, time_s, boxes)` triples; returns the kept tracks."""
    tracker = FaceTracker(**tracker_args)
    for frame_index, time_s, boxes in detections:
        tracker.update(frame_index, time_s, boxes)
    return tracker.finish()
