"""Classic per-frame video features: HSV histograms, frame differences, optical flow, edges.

Per-frame functions work on one frame (or a consecutive pair): RGB `uint8 (H,W,3)` or
gray `uint8 (H,W)`. `FeatureExtractor` streams them with O(1) state, `extract_features`
runs it over a video file into a `FeatureTable` (NPZ/CSV). Definitions: docs/features.md.
"""

from vidlens.features.color import hsv_histogram, histogram_distance, hue_bin
from vidlens.features.edges import EdgeChange, canny_edges, dilate_edges, edge_change_ratio, edge_density
from vidlens.features.extract import (
    FEATURE_GROUPS,
    FeatureConfig,
    FeatureExtractor,
    extract_features,
    parse_which,
)
from vidlens.features.flow import (
    FarnebackParams,
    FlowStats,
    direction_degrees,
    flow_statistics,
    optical_flow,
)
from vidlens.features.motion import FrameDiff, frame_difference, to_gray
from vidlens.features.table import FeatureTable

__all__ = [
    "FEATURE_GROUPS",
    "EdgeChange",
    "FarnebackParams",
    "FeatureConfig",
    "FeatureExtractor",
    "FeatureTable",
    "FlowStats",
    "FrameDiff",
    "canny_edges",
    "dilate_edges",
    "direction_degrees",
    "edge_change_ratio",
    "edge_density",
    "extract_features",
    "flow_statistics",
    "frame_difference",
    "histogram_distance",
    "hsv_histogram",
    "hue_bin",
    "optical_flow",
    "parse_which",
    "to_gray",
]
