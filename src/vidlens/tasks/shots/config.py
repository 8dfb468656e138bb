"""`ShotConfig`: every knob of shot boundary detection, validated on construction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from vidlens.errors import ConfigError

METHODS = ("learned", "classic", "both")


@dataclass
class ShotConfig:
    """Settings of `detect_shots` (see docs/shots.md for how each one is used).

    `method`: "learned" runs the packaged ShotNet (see `vidlens.tasks.shots.learned`), "classic" the
    hand-made rules configured by the remaining fields, "both" runs the two and keeps every learned
    boundary plus the classic ones farther than `min_shot_s` from any of them.

    Classic scores are computed on frames decoded at `size` pixels on the shorter side.
    Cut detection: a frame is a cut candidate when its cut score exceeds both
    `min_score` (absolute floor, score units in [0, 1]) and `threshold` times the
    rolling local level of the score (median of the `window` frames on each side).
    """

    method: str = "learned"  # learned (ShotNet), classic (the rules below) or both (union, learned preferred)
    model: str | None = None  # learned: a shotnet.onnx or a folder holding one (None: the packaged default)
    learned_threshold: float = 0.5  # learned: boundary probability a frame must exceed
    size: int = 96  # shorter side of the analysed frames, pixels
    threshold: float = 3.0  # cut score / local level ratio a cut must exceed
    min_score: float = 0.12  # absolute floor on the cut score, in [0, 1]
    window: int = 6  # frames on each side used for the rolling local level
    min_shot_s: float = 0.5  # shortest shot kept; closer boundaries keep the stronger one
    flash_frames: int = 3  # a bright/dark burst up to this long that returns to the old shot is not a cut
    flash_similarity: float = 0.5  # ...when frame-before vs frame-after differs < this x the cut score
    gradual: bool = True  # detect fades through black and dissolves
    black_level: float = 0.06  # mean luma (0..1) below which a frame counts as black (fades)
    long_range: int = 8  # k: frames between the two compared by the long-range (gradual) score
    gradual_threshold: float = 0.25  # long-range histogram distance a dissolve must reach
    edges: bool = False  # also compute the edge change ratio (slower; shown in the scores)
    deep: bool = False  # also compute MobileNetV2 feature distances (needs the ImageNet weights)
    deep_every: int = 1  # deep features on every n-th frame (1 = all)
    threads: int | None = None  # decoder threads (None: library default)
    fast_decode: bool = True  # skip H.264/HEVC deblocking while decoding (~25% faster at 720p; scores barely change)

    def __post_init__(self) -> None:
        checks = [
            (self.method in METHODS, f"method must be one of {', '.join(METHODS)}, got {self.method!r}"),
            (_finite(self.learned_threshold) and 0 < self.learned_threshold < 1,
             f"learned_threshold must be in (0, 1), got {self.learned_threshold}"),
            (isinstance(self.size, int) and 16 <= self.size <= 1080, f"size must be an int in 16..1080, got {self.size}"),
            (_finite(self.threshold) and self.threshold > 1.0, f"threshold must be > 1 (a ratio), got {self.threshold}"),
            (_finite(self.min_score) and 0.0 <= self.min_score < 1.0, f"min_score must be in [0, 1), got {self.min_score}"),
            (isinstance(self.window, int) and 1 <= self.window <= 100, f"window must be an int in 1..100, got {self.window}"),
            (_finite(self.min_shot_s) and self.min_shot_s >= 0, f"min_shot_s must be >= 0, got {self.min_shot_s}"),
            (isinstance(self.flash_frames, int) and 0 <= self.flash_frames <= 10,
             f"flash_frames must be an int in 0..10, got {self.flash_frames}"),
            (_finite(self.flash_similarity) and 0 < self.flash_similarity <= 1,
             f"flash_similarity must be in (0, 1], got {self.flash_similarity}"),
            (_finite(self.black_level) and 0 <= self.black_level < 0.5, f"black_level must be in [0, 0.5), got {self.black_level}"),
            (isinstance(self.long_range, int) and 2 <= self.long_range <= 60,
             f"long_range must be an int in 2..60, got {self.long_range}"),
            (_finite(self.gradual_threshold) and 0 < self.gradual_threshold < 1,
             f"gradual_threshold must be in (0, 1), got {self.gradual_threshold}"),
            (isinstance(self.deep_every, int) and self.deep_every >= 1, f"deep_every must be an int >= 1, got {self.deep_every}"),
            (self.threads is None or (isinstance(self.threads, int) and self.threads >= 0),
             f"threads must be None or an int >= 0, got {self.threads}"),
        ]
        for ok, reason in checks:
            if not ok:
                raise ConfigError(None, reason)

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
