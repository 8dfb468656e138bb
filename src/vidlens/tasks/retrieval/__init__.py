"""Video retrieval: a persistent index of videos and shots, search by clip / image / video / text,
near-duplicate detection.

Modules (import them directly; each loads its heavy dependency lazily):
`embed` (frame descriptors), `align` (temporal alignment of two descriptor sequences), `store`
(the on-disk vector store), `text` (the offline MiniLM sentence encoder), `index` (the video index),
`search` (the four searches), `dedup` (near-duplicate groups).
"""
