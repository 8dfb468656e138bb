"""Anomaly detection for fixed cameras: learn normal from a camera's own footage, score every frame,
raise events.

Modules (import them directly): `base` (method protocol, registry, model file), `prediction`
(future-frame prediction), `features` (frozen ImageNet patch features + memory of normal), `motion`
(optical-flow statistics per cell), `frames` (reading videos and frame folders at the working size),
`train`, `score` (per-frame scores, heat maps), `events` (hysteresis), `outputs` (JSON/CSV/PNG/MP4),
`datasets` + `evaluate` (UCSD Ped2, CUHK Avenue, ShanghaiTech layouts; frame-level AUC/EER). See docs/anomaly.md.
"""
