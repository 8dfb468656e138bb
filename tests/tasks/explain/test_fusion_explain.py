"""Which modality carried an audio-visual fusion model's decision, on models trained here.

Clips from the synthetic audio-visual generator (cartoon faces, tones): with signal "video" only the mouth
tells the class (the tone stays flat), with signal "audio" only the pitch glide does (the mouth stays
straight). A model trained on one of them must give that modality the larger share.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidlens.data.synthetic import AV_CLASSES, render_face_clip, render_tone_audio
from vidlens.errors import ConfigError
from vidlens.features.audio import log_mel
from vidlens.models import build_model
from vidlens.tasks.audiovisual import AVSpec, build_av_model
from vidlens.tasks.explain import explain_clip
from vidlens.tasks.explain.attribution import integrated_gradients
from vidlens.tasks.explain.fusion import fusion_inputs, modality_baselines, modality_shares, shapley_values

pytestmark = pytest.mark.usefixtures("one_thread")

T, SIZE, SECONDS, N_MELS = 4, 32, 0.5, 32
NEUTRAL = AV_CLASSES.index("neutral")


def av_set(signal: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`video (N,T,C,H,W)` in [0,1], `audio (N,1,n_mels,frames)` log-mel dB, labels; only `signal` carries the class."""
    videos, audios, labels = [], [], []
    for ci, label in enumerate(AV_CLASSES):
        for k in range(n):
            rng = np.random.default_rng([seed, ci, k, 5])
            video_cue, audio_cue = (label, "neutral") if signal == "video" else ("neutral", label)
            frames, _ = render_face_clip(video_cue, rng, T, SIZE)
            samples, _ = render_tone_audio(audio_cue, rng, SECONDS)
            videos.append(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
            audios.append(torch.from_numpy(log_mel(samples, 16000, N_MELS))[None])
            labels.append(ci)
    return torch.stack(videos), torch.stack(audios), torch.tensor(labels)


@pytest.fixture(scope="module")
def sets():
    return {s: {"train": av_set(s, 60, 0), "test": av_set(s, 8, 1)} for s in ("video", "audio")}


@pytest.fixture(scope="module")
def trained(sets):
    cache: dict[tuple[str, str], torch.nn.Module] = {}

    def get(kind: str, signal: str) -> torch.nn.Module:
        if (kind, signal) not in cache:
            v, a, y = sets[signal]["train"]
            torch.manual_seed(0)
            model = build_av_model(AVSpec(fusion=kind, num_frames=T, size=SIZE, n_mels=N_MELS, seconds=SECONDS), 3)
            opt = torch.optim.Adam(model.parameters(), 2e-3)
            for _ in range(18):
                model.train()
                perm = torch.randperm(len(y))
                for i in range(0, len(y), 16):
                    b = perm[i:i + 16]
                    loss = torch.nn.functional.cross_entropy(model({"video": v[b], "audio": a[b]}), y[b])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            cache[kind, signal] = model.eval()
        return cache[kind, signal]

    return get


def _example(test, i: int) -> dict:
    v, a, y = test
    return {"video": v[i:i + 1], "audio": a[i:i + 1], "label": int(y[i])}


# Measured (mean carrier share over the correctly classified non-neutral test clips): 0.78-1.0 for every
# kind, signal and method (test accuracy 0.79-1.0); single clips can go to 0 when the flat video baseline
# itself scores high for the target (late fusion).
@pytest.mark.parametrize("kind", ["early", "late", "attention"])
@pytest.mark.parametrize("signal", ["video", "audio"])
def test_the_modality_that_carries_the_label_gets_the_larger_share(trained, sets, kind, signal):
    model = trained(kind, signal)
    v, a, y = sets[signal]["test"]
    with torch.no_grad():
        pred = model({"video": v, "audio": a}).argmax(1)
    assert (pred == y).float().mean() >= 0.6, f"{kind} fusion did not learn the {signal}-carried set"
    keep = [i for i in range(len(y)) if pred[i] == y[i] and y[i] != NEUTRAL]  # neutral: neither modality shows a cue
    assert len(keep) >= 8
    other = "audio" if signal == "video" else "video"
    for method in ("occlusion", "integrated-gradients"):
        shares = []
        for i in keep:
            e = explain_clip(model, _example(sets[signal]["test"], i), target=int(y[i]), method=method,
                             **({"spatial": False} if method == "occlusion" else {"n_steps": 16}))
            assert set(e.modalities) == {"video", "audio"}
            assert e.modalities[signal] + e.modalities[other] == pytest.approx(1.0)
            shares.append(e.modalities[signal])
        assert np.mean(shares) >= 0.6, (method, shares)
        assert np.mean(np.array(shares) > 0.5) >= 0.7, (method, shares)


def test_shapley_values_add_up_and_match_direct_forwards(trained, sets):
    model = trained("early", "audio")
    ex = _example(sets["audio"]["test"], 2)
    inputs = fusion_inputs(model, ex)
    base = modality_baselines(inputs)
    phi, values = shapley_values(model, inputs, base, ex["label"])

    def prob(video, audio):
        with torch.no_grad():
            return float(torch.softmax(model({"video": video, "audio": audio}), 1)[0, ex["label"]])

    p_va, p_v0, p_0a, p_00 = (prob(inputs["video"], inputs["audio"]), prob(inputs["video"], base["audio"]),
                              prob(base["video"], inputs["audio"]), prob(base["video"], base["audio"]))
    assert values[frozenset({"video", "audio"})] == pytest.approx(p_va, abs=1e-5)
    assert phi["video"] == pytest.approx(0.5 * (p_va - p_0a + p_v0 - p_00), abs=1e-5)
    assert phi["video"] + phi["audio"] == pytest.approx(p_va - p_00, abs=1e-5)
    assert modality_shares({"video": -1.0, "audio": 2.0}) == {"video": 0.0, "audio": 1.0}
    assert modality_shares({"video": -1.0, "audio": -3.0}) == {"video": 0.25, "audio": 0.75}
    assert modality_shares({"video": 0.0, "audio": 0.0}) == {"video": 0.5, "audio": 0.5}


def test_integrated_gradients_over_both_inputs_is_complete(trained, sets):
    model = trained("late", "video")
    ex = _example(sets["video"]["test"], 0)
    inputs = fusion_inputs(model, ex)
    base = modality_baselines(inputs)
    res = integrated_gradients(lambda v, a: model({"video": v, "audio": a}), (inputs["video"], inputs["audio"]),
                               (base["video"], base["audio"]), ex["label"], n_steps=64)
    total = sum(float(t.sum()) for t in res.attributions)
    assert total == pytest.approx(res.f_input - res.f_baseline, abs=0.03 * abs(res.f_input - res.f_baseline) + 0.01)
    e = explain_clip(model, ex, target=ex["label"], method="integrated-gradients", n_steps=16)
    assert e.heat.shape == (T, SIZE, SIZE) and e.temporal.shape == (T,) and e.temporal.sum() == pytest.approx(1.0, abs=1e-5)
    assert "completeness gap" in e.notes[1]


def test_occlusion_gives_video_heat_and_temporal_curve(trained, sets):
    model = trained("attention", "audio")
    ex = _example(sets["audio"]["test"], 20)
    e = explain_clip(model, ex, method="occlusion", patch=8, patch_stride=8, patch_frames=2)
    assert e.heat.shape == (T, SIZE, SIZE) and e.heat.dtype == np.float32 and 0 <= e.heat.min() <= e.heat.max() <= 1
    assert e.temporal.shape == (T,) and e.temporal.sum() == pytest.approx(1.0, abs=1e-5)
    assert e.notes[0].startswith("modalities: exact Shapley values")
    assert 0.0 <= e.score <= 1.0


def test_gradcam_on_a_fusion_model_names_the_methods_that_apply(trained, sets):
    model = trained("early", "video")
    with pytest.raises(ConfigError, match="occlusion, integrated-gradients"):
        explain_clip(model, _example(sets["video"]["test"], 0), method="gradcam")


def test_bad_fusion_inputs_raise_config_error(trained, sets):
    from vidlens.tasks.explain.attribution import explain_occlusion
    from vidlens.tasks.explain.fusion import explain_fusion

    model = trained("early", "video")
    ex = _example(sets["video"]["test"], 0)
    v, a = ex["video"], ex["audio"]
    bad = [  # through explain_clip: the model's own forward accepts these, the explainer must not
        ({"video": torch.cat([v, v]), "audio": torch.cat([a, a])}, "occlusion", {}),  # two examples
        ({"video": v, "audio": a.clone().fill_(float("nan"))}, "integrated-gradients", {}),
        (ex, "integrated-gradients", {"baselines": {"audio": "mean"}}),  # constant spectrogram: a useless IG path
        (ex, "occlusion", {"baselines": {"text": "mean"}}),
        (ex, "occlusion", {"baselines": {"audio": "hold"}}),
        (ex, "occlusion", {"baselines": "mean"}),
        (ex, "integrated-gradients", {"window": 2}),
        (ex, "occlusion", {"n_steps": 8}),
    ]
    for clip, method, options in bad:
        with pytest.raises(ConfigError):
            explain_clip(model, clip, method=method, **options)
    # inputs the model's forward itself rejects: the explainers' own checks (explain_clip's: the next test)
    for clip in ({"video": v}, {"video": v[0, 0], "audio": a}, v):
        with pytest.raises(ConfigError):
            explain_fusion(model, clip, 0)
    with pytest.raises(ConfigError, match="not a fusion model"):  # a batch dict for a plain video model
        explain_occlusion(build_model("c3d", 3, load_weights=False, width=0.125).eval(), {"video": v}, 0)
    with pytest.raises(ConfigError, match="'occlusion' or 'integrated-gradients'"):
        explain_fusion(model, ex, 0, method="gradcam")


def test_explain_clip_checks_the_input_before_the_model_runs(trained, sets):
    """A missing modality, a tensor for a fusion model, a dict for a video model: ConfigError naming the problem,
    raised before any forward pass (the model's own forward would give KeyError/TypeError)."""
    fusion = trained("early", "video")
    video = build_model("c3d", 3, load_weights=False, width=0.125).eval()
    ex = _example(sets["video"]["test"], 0)
    v, a = ex["video"], ex["audio"]
    calls = []
    handles = [m.register_forward_pre_hook(lambda *_: calls.append(1)) for m in (fusion, video)]
    try:
        for model, clip, method, match in [
            (fusion, {"video": v}, "occlusion", "no 'audio' tensor"),
            (fusion, {"video": v, "audio": a.long()}, "integrated-gradients", "float input"),
            (fusion, v, "occlusion", "batch dict"),
            (video, {"video": v, "audio": a}, "gradcam", "not a fusion model"),
            (video, {"video": v}, "occlusion", "not a fusion model"),
            (video, [v], "gradcam", "got list"),
            (video, v[0, 0], "gradcam", r"one clip \(1,T,C,H,W\)"),
            (video, v.clone().fill_(float("inf")), "gradcam", "NaN or infinite"),
        ]:
            with pytest.raises(ConfigError, match=match):
                explain_clip(model, clip, method=method)
        assert calls == []
        with pytest.raises(ConfigError, match="C3D cannot run this input"):  # one channel for an RGB model: the forward says
            explain_clip(video, v[:, :, :1])
    finally:
        for h in handles:
            h.remove()
    assert explain_clip(fusion, ex, method="occlusion", spatial=False).modalities  # a good input still explains
