from vidlens.io import probe, read_clip
from vidlens.testing import read_pattern_index, write_pattern_video


def test_write_probe_read_roundtrip(tmp_path):
    path = write_pattern_video(tmp_path / "v.mp4", 30, fps=25)
    info = probe(path)
    assert (info.num_frames, info.fps, info.width, info.height) == (30, 25.0, 128, 96)
    clip = read_clip(path, [29, 0, 7])
    assert [read_pattern_index(f) for f in clip] == [29, 0, 7]
