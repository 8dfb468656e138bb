"""3D networks: torchvision parity, width multipliers, Kinetics-400 weights from the torch cache."""

from __future__ import annotations

import pytest
import torch

from vidlens.errors import CheckpointError, ConfigError
from vidlens.models import build_model
from vidlens.models.video3d import build_mvit_v2_s, build_torchvision_video_resnet
from tests.models import one_thread  # noqa: F401  (autouse fixture)


def _shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    path = tmp_path / "torch_home" / "hub" / "checkpoints"
    return path


@pytest.mark.parametrize("arch", ["r3d_18", "mc3_18", "r2plus1d_18"])
def test_width_one_matches_torchvision(arch):
    import torchvision.models.video as V

    with torch.device("meta"):
        ours = build_model(arch, 400).net
        theirs = getattr(V, arch)(weights=None)
        assert _shapes(ours) == _shapes(theirs)
        assert _shapes(build_torchvision_video_resnet(arch, 400, 1.0)) == _shapes(theirs)


def test_mvit_default_size_matches_torchvision():
    from torchvision.models.video import mvit_v2_s

    with torch.device("meta"):
        assert _shapes(build_mvit_v2_s()) == _shapes(mvit_v2_s(weights=None))
        assert _shapes(build_model("mvit_v2_s", 400).net) == _shapes(mvit_v2_s(weights=None))


def test_swin_and_s3d_default_match_torchvision():
    from torchvision.models.video import s3d, swin3d_t

    with torch.device("meta"):
        assert _shapes(build_model("swin3d_t", 400).net) == _shapes(swin3d_t(weights=None))
        assert _shapes(build_model("s3d", 400).net) == _shapes(s3d(weights=None))


@pytest.mark.parametrize("arch", ["r3d_18", "r2plus1d_18"])
def test_width_multiplier_shrinks(arch):
    with torch.device("meta"):
        full = sum(p.numel() for p in build_model(arch, 10).parameters())
        quarter = sum(p.numel() for p in build_model(arch, 10, width=0.25).parameters())
    assert quarter < full / 10
    assert build_model(arch, 10, width=0.25).feature_dim == 128


@pytest.mark.parametrize("frames,size", [(1, 16), (3, 40), (16, 64)])
def test_c3d_any_clip_size(frames, size):
    model = build_model("c3d", 3, width=0.125).eval()
    with torch.no_grad():
        assert model(torch.randn(1, frames, 3, size, size)).shape == (1, 3)


def test_input_size_errors():
    mvit = build_model("mvit_v2_s", 3, spatial_size=32, temporal_size=4)
    with pytest.raises(ValueError, match="spatial_size/temporal_size"):
        mvit(torch.randn(1, 4, 3, 64, 64))
    with pytest.raises(ConfigError, match="multiple of 32"):
        build_model("mvit_v2_s", 3, spatial_size=40)
    with pytest.raises(ValueError, match="at least 8 frames"):
        build_model("s3d", 3)(torch.randn(1, 4, 3, 32, 32))
    with pytest.raises(ConfigError, match="not divisible"):
        build_model("swin3d_t", 3, embed_dim=16)
    with pytest.raises(ConfigError, match="default sizes"):
        build_model("swin3d_t", 3, embed_dim=24, weights="kinetics400")


def test_kinetics_missing_message(torch_home):
    with pytest.raises(CheckpointError) as info:
        build_model("r2plus1d_18", 5, weights="kinetics400")
    message = str(info.value)
    assert "r2plus1d_18-91a641e6.pth" in message
    assert str(torch_home) in message
    assert "https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth" in message


@pytest.mark.parametrize("arch", ["mc3_18", "s3d"])
def test_kinetics_file_in_torch_cache_loads(arch, torch_home):
    import torchvision.models.video as V

    torch.manual_seed(1)
    reference = getattr(V, arch)(weights=None)
    torch_home.mkdir(parents=True)
    filename = {"mc3_18": "mc3_18-a90a0ba3.pth", "s3d": "s3d-d76dad2f.pth"}[arch]
    torch.save(reference.state_dict(), torch_home / filename)

    same = build_model(arch, 400, weights="kinetics400")  # 400 classes: Kinetics head kept
    for key, value in reference.state_dict().items():
        assert torch.equal(same.net.state_dict()[key], value), key

    model = build_model(arch, 7, weights="kinetics400")  # classifier re-initialised for 7 classes
    theirs = reference.state_dict()
    ours = model.net.state_dict()
    head = "fc." if arch == "mc3_18" else "classifier.1."
    assert ours[head + "weight"].shape[0] == 7
    assert all(torch.equal(ours[k], v) for k, v in theirs.items() if not k.startswith(head))


@pytest.mark.parametrize("name,args,size", [
    ("r2plus1d_18", {"width": 0.25}, (4, 32, 32)),
    ("mvit_v2_s", {"spatial_size": 32, "temporal_size": 4}, (4, 32, 32)),
    ("swin3d_t", {"embed_dim": 24, "depths": [1, 1, 1, 1]}, (4, 32, 32)),
])
def test_wrapper_matches_torchvision_forward(name, args, size):
    """features() + classify() on (B,T,C,H,W) == the torchvision module's own forward on (B,C,T,H,W)."""
    model = build_model(name, 6, **args).eval()
    x = torch.randn(2, size[0], 3, *size[1:])
    with torch.no_grad():
        assert torch.allclose(model(x), model.net(x.permute(0, 2, 1, 3, 4)), atol=1e-4)
