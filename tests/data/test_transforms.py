"""vidlens.data.transforms: one set of random parameters per clip, layouts, and the plain functions."""

from __future__ import annotations

import pickle

import pytest
import torch

from vidlens.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TransformConfig,
    add_gaussian_noise,
    build_eval_transform,
    build_train_transform,
    center_crop,
    denormalize,
    frame_differences,
    grayscale,
    hflip,
    normalize,
    three_crop,
    to_float,
)
from vidlens.errors import ConfigError

T, H, W = 4, 40, 56
IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # output = to_float(...)


def _frame(seed: int = 0, h: int = H, w: int = W) -> torch.Tensor:
    """A random, asymmetric uint8 (3,H,W) frame with smooth-ish structure."""
    g = torch.Generator().manual_seed(seed)
    small = torch.randint(0, 256, (3, h // 4 + 1, w // 4 + 1), generator=g, dtype=torch.uint8)
    return small.repeat_interleave(4, 1).repeat_interleave(4, 2)[:, :h, :w].contiguous()


def _static_clip(t: int = T, seed: int = 0) -> torch.Tensor:
    """(T,3,H,W) uint8 clip whose frames are all the same image."""
    return _frame(seed).expand(t, -1, -1, -1).contiguous()


def _all_frames_equal(out: torch.Tensor) -> bool:
    return all(torch.equal(out[0], out[i]) for i in range(1, out.shape[0]))


# ---------------------------------------------------------------- one draw per clip

# Each op alone (so a per-frame draw in any one of them is caught), then all together.
PER_OP = {
    "random_resized": {"crop": "random_resized", "hflip": False},
    "scale_jitter": {"crop": "scale_jitter", "hflip": False},
    "hflip": {"crop": "center", "hflip": True},
    "rotation": {"crop": "center", "hflip": False, "rotation": 40.0},
    "color_jitter": {"crop": "center", "hflip": False, "color_jitter": 0.8},
    "grayscale": {"crop": "center", "hflip": False, "grayscale_p": 0.5},
    "everything": {"crop": "random_resized", "rotation": 20.0, "color_jitter": 0.5, "grayscale_p": 0.3},
}


@pytest.mark.parametrize("name", list(PER_OP))
def test_train_transform_draws_parameters_once_per_clip(name):
    transform = build_train_transform(TransformConfig(size=32, **PER_OP[name]))
    clip = _static_clip(t=6)
    outputs = []
    for seed in range(8):
        torch.manual_seed(seed)
        out = transform(clip)
        assert out.shape == (6, 3, 32, 32) and out.dtype == torch.float32
        assert _all_frames_equal(out), f"{name}: frames of one clip were transformed differently (seed {seed})"
        outputs.append(out[0])
    # The op really is random: different seeds give different clips (so the check above is not vacuous).
    assert any(not torch.equal(outputs[0], o) for o in outputs[1:]), f"{name} never changed anything"


def _marker_clip(size: int = 32, t: int = T) -> torch.Tensor:
    """Frames with different random content and a white bar on the left edge of every frame."""
    clip = torch.stack([_frame(seed, size, size) for seed in range(t)]) // 2  # content <= 127
    clip[:, :, :, :3] = 255
    return clip


def test_flip_applies_to_every_frame_and_happens_about_half_the_time():
    clip = _marker_clip()
    transform = build_train_transform(TransformConfig(size=32, crop="center", resize=32, hflip=True, **IDENTITY))
    expected_plain, expected_flipped = to_float(clip), to_float(clip).flip(-1)
    flips = 0
    for seed in range(40):
        torch.manual_seed(seed)
        out = transform(clip)
        left = out[:, :, :, :3].amin(dim=(1, 2, 3))  # per frame: is the bar on the left?
        right = out[:, :, :, -3:].amin(dim=(1, 2, 3))
        if torch.all(right == 1.0):
            assert torch.all(left < 1.0)
            torch.testing.assert_close(out, expected_flipped)
            flips += 1
        else:
            assert torch.all(left == 1.0), "some frames were flipped and others not"
            torch.testing.assert_close(out, expected_plain)
    assert 8 <= flips <= 32


@pytest.mark.parametrize("crop", ["random_resized", "scale_jitter", "center"])
def test_hflip_false_never_flips(crop):
    clip = _marker_clip(size=48)
    cfg = TransformConfig(
        size=48, resize=48, crop=crop, crop_scale=(1.0, 1.0), jitter_range=(48, 48), hflip=False, **IDENTITY
    )
    transform = build_train_transform(cfg)
    for seed in range(30):
        torch.manual_seed(seed)
        out = transform(clip)
        # The bar survives on the left (random_resized with scale 1 may only change the aspect
        # ratio, never the horizontal order), and never appears on the right.
        assert torch.all(out[:, :, :, 0] > 0.9)
        assert torch.all(out[:, :, :, -1].amin(dim=(1, 2)) < 0.9)


# ---------------------------------------------------------------- shapes, dtypes, determinism


@pytest.mark.parametrize("crop", ["random_resized", "scale_jitter", "center"])
@pytest.mark.parametrize("shape", [(T, 3, H, W), (1, 3, H, W), (3, 3, 10, 14), (2, 3, 64, 20)])
def test_train_shapes_including_small_clips(crop, shape):
    clip = torch.randint(0, 256, shape, dtype=torch.uint8)
    out = build_train_transform(TransformConfig(size=32, crop=crop, rotation=5.0, noise_std=0.01))(clip)
    assert out.shape == (shape[0], 3, 32, 32) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("test_crop,views", [("center", 1), ("three", 3)])
@pytest.mark.parametrize("shape", [(T, 3, H, W), (1, 3, 10, 14), (2, 3, 64, 20)])
def test_eval_shapes_including_small_clips(test_crop, views, shape):
    clip = torch.randint(0, 256, shape, dtype=torch.uint8)
    out = build_eval_transform(TransformConfig(size=32, test_crop=test_crop))(clip)
    assert out.shape == (views, shape[0], 3, 32, 32) and out.dtype == torch.float32


def test_float_input_matches_uint8_input():
    clip = _static_clip()
    cfg = TransformConfig(size=32, test_crop="three")
    a = build_eval_transform(cfg)(clip)
    b = build_eval_transform(cfg)(to_float(clip))
    torch.testing.assert_close(a, b, atol=0.03, rtol=0)  # uint8 vs float resampling rounding


def test_eval_transform_is_deterministic_and_centred():
    clip = torch.randint(0, 256, (T, 3, H, W), dtype=torch.uint8)
    cfg = TransformConfig(size=32, resize=40, **IDENTITY)
    transform = build_eval_transform(cfg)
    torch.manual_seed(0)
    a = transform(clip)
    torch.manual_seed(1)
    b = transform(clip)
    assert torch.equal(a, b)
    # The clip's shorter side is already 40: no resize, a plain centre crop.
    torch.testing.assert_close(a[0], to_float(clip[:, :, 4:36, 12:44]))


def test_eval_default_resize():
    assert TransformConfig(size=112).eval_resize == 128  # round(112 * 1.14)
    assert TransformConfig(size=112, test_crop="three").eval_resize == 112  # crops span the long side
    assert TransformConfig(size=112, resize=150, test_crop="three").eval_resize == 150


def test_train_transform_deterministic_under_manual_seed():
    clip = torch.randint(0, 256, (T, 3, H, W), dtype=torch.uint8)
    transform = build_train_transform(TransformConfig(size=32, rotation=10.0, color_jitter=0.4, noise_std=0.05))
    torch.manual_seed(123)
    a = transform(clip)
    torch.manual_seed(123)
    b = transform(clip)
    torch.manual_seed(124)
    c = transform(clip)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_transforms_pickle_for_dataloader_workers():
    cfg = TransformConfig(size=32, color_jitter=0.3, test_crop="three")
    clip = _static_clip()
    for build in (build_train_transform, build_eval_transform):
        transform = build(cfg)
        clone = pickle.loads(pickle.dumps(transform))
        torch.manual_seed(5)
        a = transform(clip)
        torch.manual_seed(5)
        assert torch.equal(a, clone(clip))


def test_channels_last_clip_is_rejected_with_a_hint():
    clip = torch.zeros(T, H, W, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="permute"):
        build_train_transform(TransformConfig(size=32))(clip)
    with pytest.raises(ValueError, match="permute"):
        build_eval_transform(TransformConfig(size=32))(clip)


# ---------------------------------------------------------------- plain functions


def test_to_float_scales_uint8_only():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3)
    torch.testing.assert_close(to_float(x), torch.tensor([0.0, 0.2, 1.0]).view(1, 1, 1, 3))
    f = torch.rand(1, 3, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(to_float(f), f.float())


def test_normalize_denormalize_round_trip():
    clip = torch.rand(T, 3, 8, 8)
    out = normalize(clip, IMAGENET_MEAN, IMAGENET_STD)
    assert out.shape == clip.shape
    torch.testing.assert_close(denormalize(out, IMAGENET_MEAN, IMAGENET_STD), clip)
    # Per channel: a pixel equal to the mean becomes 0, mean + std becomes 1.
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(normalize(mean.expand(2, 3, 4, 4)), torch.zeros(2, 3, 4, 4))
    torch.testing.assert_close(normalize((mean + std).expand(2, 3, 4, 4)), torch.ones(2, 3, 4, 4))
    # Leading view axis (V,T,C,H,W) works too.
    batch = torch.rand(3, T, 3, 4, 4)
    torch.testing.assert_close(normalize(batch)[1], normalize(batch[1]))


def test_train_output_is_normalised_with_config_stats():
    clip = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    cfg = TransformConfig(size=32, crop="center", resize=32, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    out = build_train_transform(cfg)(clip)
    x = 128 / 255
    expected = torch.tensor([(x - 0.5) / 0.5, (x - 0.25) / 0.25, x]).view(1, 3, 1, 1).expand_as(out)
    torch.testing.assert_close(out, expected)


def test_normalize_rejects_uint8_and_wrong_channel_count():
    with pytest.raises(TypeError):
        normalize(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError):
        normalize(torch.zeros(1, 4, 2, 2))


def _coordinate_clip(h: int, w: int, t: int = 2) -> torch.Tensor:
    """(T,3,H,W) float: channel 0 = x coordinate, channel 1 = y coordinate, channel 2 = frame number."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([torch.stack([xs, ys, torch.full_like(xs, i)]) for i in range(t)])


def test_three_crop_landscape_left_centre_right():
    crops = three_crop(_coordinate_clip(32, 80), 32)
    assert crops.shape == (3, 2, 3, 32, 32)
    assert [int(c[0, 0, 0, 0]) for c in crops] == [0, 24, 48]  # left edges
    assert int(crops[2, 0, 0, 0, -1]) == 79  # the right crop touches the right edge
    assert torch.all(crops[:, :, 1, 0, 0] == 0)  # vertically: the whole (short) side
    assert torch.equal(crops[:, 1, 2], torch.ones(3, 32, 32))  # frame order kept
    torch.testing.assert_close(crops[1], center_crop(_coordinate_clip(32, 80), 32))


def test_three_crop_portrait_top_centre_bottom():
    crops = three_crop(_coordinate_clip(100, 40), 32)
    assert crops.shape == (3, 2, 3, 32, 32)
    assert [int(c[0, 1, 0, 0]) for c in crops] == [0, 34, 68]  # top edges
    assert int(crops[2, 0, 1, -1, 0]) == 99
    assert torch.all(crops[:, :, 0, 0, 0] == 4)  # horizontally centred: (40 - 32) // 2


def test_three_crop_small_clip_is_resized_up():
    crops = three_crop(torch.randint(0, 256, (2, 3, 10, 20), dtype=torch.uint8), 16)
    assert crops.shape == (3, 2, 3, 16, 16) and crops.dtype == torch.uint8


def test_eval_three_crop_views_match_three_crop():
    clip = torch.randint(0, 256, (T, 3, 32, 80), dtype=torch.uint8)
    out = build_eval_transform(TransformConfig(size=32, test_crop="three", **IDENTITY))(clip)
    torch.testing.assert_close(out, to_float(three_crop(clip, 32)))
    assert not torch.equal(out[0], out[2])


def test_hflip_function():
    clip = _coordinate_clip(4, 6)
    flipped = hflip(clip)
    assert torch.equal(flipped[:, 0, :, 0], torch.full((2, 4), 5.0))
    assert torch.equal(hflip(flipped), clip)


def test_add_gaussian_noise_has_the_right_std():
    clip = torch.full((T, 3, 64, 64), 0.5)
    g = torch.Generator().manual_seed(0)
    out = add_gaussian_noise(clip, 0.05, generator=g)
    noise = out - clip
    assert out.dtype == torch.float32 and out.shape == clip.shape
    assert abs(noise.std().item() - 0.05) < 0.0025
    assert abs(noise.mean().item()) < 0.002
    assert not torch.equal(noise[0], noise[1])  # independent per pixel, frames included
    # Same generator seed -> same noise; the input is untouched; std 0 is a copy.
    assert torch.equal(out, add_gaussian_noise(clip, 0.05, generator=torch.Generator().manual_seed(0)))
    assert torch.all(clip == 0.5)
    assert torch.equal(add_gaussian_noise(clip, 0.0), clip)
    # Clamped to [0, 1] by default; uint8 input is put on the [0, 1] scale first.
    big = add_gaussian_noise(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 1.0)
    assert big.min() >= 0 and big.max() <= 1 and big.dtype == torch.float32


def test_train_noise_std_adds_noise():
    clip = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    cfg = TransformConfig(size=32, crop="center", resize=32, hflip=False, noise_std=0.1, **IDENTITY)
    out = build_train_transform(cfg)(clip)
    assert abs((out - 128 / 255).std().item() - 0.1) < 0.01


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_grayscale_gives_equal_channels(dtype):
    clip = torch.randint(0, 256, (T, 3, 8, 8), dtype=torch.uint8)
    clip = clip if dtype == torch.uint8 else to_float(clip)
    out = grayscale(clip)
    assert out.shape == clip.shape and out.dtype == dtype
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    torch.testing.assert_close(grayscale(red), torch.full((1, 3, 2, 2), 0.299), atol=1e-3, rtol=0)


def test_train_grayscale_p1_gives_equal_channels():
    clip = torch.randint(0, 256, (T, 3, H, W), dtype=torch.uint8)
    out = build_train_transform(TransformConfig(size=32, grayscale_p=1.0, **IDENTITY))(clip)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


def test_frame_differences():
    clip = torch.zeros(3, 3, 2, 2, dtype=torch.uint8)
    clip[1] = 200
    clip[2] = 10
    out = frame_differences(clip)
    assert out.shape == clip.shape and out.dtype == torch.float32
    assert torch.all(out[0] == 0)
    torch.testing.assert_close(out[1], torch.full((3, 2, 2), 200 / 255))
    torch.testing.assert_close(out[2], torch.full((3, 2, 2), -190 / 255))  # signed, no uint8 wrap-around


# ---------------------------------------------------------------- config


def test_config_round_trip():
    cfg = TransformConfig(size=64, crop="scale_jitter", jitter_range=(72, 90), rotation=5, test_crop="three")
    d = cfg.to_dict()
    assert d["jitter_range"] == [72, 90] and d["mean"] == list(IMAGENET_MEAN)
    back = TransformConfig.from_dict(d)
    assert back == cfg and isinstance(back.crop_scale, tuple) and isinstance(back.std, tuple)
    assert TransformConfig.from_dict({}) == TransformConfig()
    assert TransformConfig(size=224).scale_jitter_range == (256, 320)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 0},
        {"size": 112, "resize": 100},
        {"crop": "five"},
        {"test_crop": "ten"},
        {"crop_scale": (0.0, 1.0)},
        {"crop_scale": (0.8, 0.5)},
        {"crop_scale": (0.5,)},
        {"size": 112, "jitter_range": (100, 140)},
        {"rotation": -1.0},
        {"color_jitter": 3.0},
        {"noise_std": -0.1},
        {"grayscale_p": 1.5},
        {"mean": (0.5, 0.5)},
        {"std": (0.2, 0.0, 0.2)},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ConfigError):
        TransformConfig(**kwargs)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="flip"):
        TransformConfig.from_dict({"flip": True})


def test_torchvision_random_grayscale_still_skips_videos():
    """Why RandomGrayscaleClip exists: v2.RandomGrayscale returns a Video untouched (torchvision 0.29).

    If this starts failing after a torchvision upgrade, v2.RandomGrayscale handles videos
    now and could replace RandomGrayscaleClip.
    """
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    video = tv_tensors.Video(torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8))
    assert torch.equal(v2.RandomGrayscale(p=1.0)(video), video)
