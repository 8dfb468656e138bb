import numpy as np
import pytest

from vidlens.errors import VideoDecodeError
from vidlens.io import VideoWriter, probe, read_audio, read_clip
from vidlens.testing import pattern_frame, read_pattern_index, sample_media, write_audio_only


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


def test_read_audio_resamples_and_downmixes(av_video):
    audio = read_audio(av_video, sample_rate=8000)
    assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[0] == 1
    assert audio.shape[1] == pytest.approx(2 * 8000, rel=0.06)
    assert dominant_frequency(audio[0, 2000:10000], 8000) == pytest.approx(440, abs=5)
    assert 0.2 < np.abs(audio).max() <= 1.0


def test_read_audio_window(av_video):
    part = read_audio(av_video, 16000, start=0.5, end=1.5)
    assert part.shape[1] == pytest.approx(16000, abs=200)


def test_source_channels_are_kept_when_asked():
    path = sample_media("bigbuckbunny.mp4")  # real 5.1 AAC
    audio = read_audio(path, 16000, mono=False)
    assert audio.shape[0] == probe(path).audio_channels == 6
    assert audio.shape[1] == pytest.approx(16000 * 5.3, rel=0.05)


def test_no_audio_is_a_clear_error(format_videos):
    with pytest.raises(VideoDecodeError, match="no audio stream"):
        read_audio(format_videos["h264.mp4"])


def test_audio_only_file_reads_as_audio(tmp_path):
    audio = read_audio(write_audio_only(tmp_path / "a.m4a", seconds=1.0), 16000)
    assert audio.shape[1] == pytest.approx(16000, rel=0.1)


@pytest.mark.parametrize("suffix, codec", [(".mp4", "h264"), (".webm", "vp9"), (".avi", "mpeg4"), (".gif", "gif"), (".mkv", "h264")])
def test_writer_picks_a_codec_by_extension(tmp_path, suffix, codec):
    path = tmp_path / f"out{suffix}"
    with VideoWriter(path, fps=10) as writer:
        for i in range(12):
            writer.write(pattern_frame(i, 64, 96))
    info = probe(path)
    assert info.codec == codec and info.num_frames == 12 and info.fps == pytest.approx(10, rel=1e-3)
    assert [read_pattern_index(f) for f in read_clip(path, [0, 11])] == [0, 11]


def test_writer_with_audio_and_odd_size(tmp_path):
    path = tmp_path / "odd_av.mp4"
    rate = 16000
    with VideoWriter(path, fps=25, audio_rate=rate) as writer:
        writer.write(np.stack([pattern_frame(i, 97, 131) for i in range(25)]))
        t = np.arange(rate) / rate
        writer.write_audio(0.5 * np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    info = probe(path)
    assert info.has_audio and info.audio_sample_rate == rate
    # H.264 4:2:0 needs even sizes: one replicated row and column are added.
    assert (info.width, info.height) == (132, 98)
    assert dominant_frequency(read_audio(path, rate)[0, 2000:12000], rate) == pytest.approx(1000, abs=5)


def test_writer_rejects_bad_frames(tmp_path):
    with VideoWriter(tmp_path / "x.mp4", fps=10) as writer:
        writer.write(pattern_frame(0, 64, 96))
        with pytest.raises(ValueError):
            writer.write(np.zeros((64, 96), np.uint8))
        with pytest.raises(ValueError):
            writer.write(pattern_frame(1, 32, 32))
