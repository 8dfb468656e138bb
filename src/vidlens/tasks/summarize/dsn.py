"""DSN: the deep summarization network trained by reinforcement learning with a
diversity-representativeness reward (K. Zhou, Y. Qiao, T. Xiang, AAAI 2018; code:
KaiyangZhou/pytorch-vsumm-reinforce, `models.py`, `rewards.py`, `main.py`).

Layouts: `features` `(N, D)` one row per subsampled step of one video; `actions` `(N,)` 0/1;
the model maps `(B, N, D)` to `(B, N)` importance probabilities.

Unsupervised: training uses only the features. Features are fed raw (no normalisation), as in
the paper's code. The reward's representativeness term uses raw squared Euclidean distances by
default (`reward_features="raw"`, the paper's code); `reward_features="l2"` computes it on
L2-normalised features, which keeps `exp(-mean distance)` away from 0 for large unnormalised
features (see `DSNConfig`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from vidlens.threads import one_torch_thread


class DSN(nn.Module):
    """Bi-directional LSTM + linear + sigmoid: `(B, N, in_dim)` -> `(B, N)` probabilities of picking each step."""

    def __init__(self, in_dim: int, hidden: int = 256, layers: int = 1) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.layers = int(in_dim), int(hidden), int(layers)
        self.rnn = nn.LSTM(self.in_dim, self.hidden, num_layers=self.layers, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(self.hidden * 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0)
        h, _ = self.rnn(x)
        return torch.sigmoid(self.fc(h)).squeeze(-1)

    def forward_shots(self, x: Tensor, bounds: Sequence[tuple[int, int]]) -> Tensor:
        """`(N, D)` -> `(N,)`: the LSTM runs over each shot `[a, b)` of steps on its own (fresh start state),
        so a step's probability depends on its shot's content, never on where the shot sits in the video."""
        chunks = [x[a:b] for a, b in bounds]
        packed = nn.utils.rnn.pack_sequence(chunks, enforce_sorted=False)
        h, lengths = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
        out = torch.sigmoid(self.fc(h)).squeeze(-1)  # (shots, longest)
        return torch.cat([out[i, : int(n)] for i, n in enumerate(lengths)])

    def model_args(self) -> dict[str, int]:
        return {"in_dim": self.in_dim, "hidden": self.hidden, "layers": self.layers}


@dataclass
class DSNConfig:
    """REINFORCE training of `DSN`. Defaults are the paper's (`main.py` of pytorch-vsumm-reinforce)
    except where noted.

    For one video with no corpus, call `train_dsn([feats], DSNConfig(epochs=60, lr=1e-4))`: one
    update per epoch, 5 sampled summaries per update, the moving-average baseline of that video;
    the step schedule (x0.1 at epoch 30) is the paper's. `reward_features="l2"` is advisable for
    features whose squared distances are large (e.g. 1280-d ImageNet embeddings), where the raw
    representativeness reward `exp(-mean dist)` is ~0 for every summary and only diversity is learned.
    """

    hidden: int = 256
    layers: int = 1
    epochs: int = 60
    lr: float = 1e-5
    weight_decay: float = 1e-5
    lr_step: int = 30  # StepLR step size in epochs (0: constant lr)
    lr_gamma: float = 0.1
    episodes: int = 5  # summaries sampled per update
    beta: float = 0.01  # weight of the (mean prob - 0.5)^2 summary-length regulariser
    baseline_momentum: float = 0.9  # baseline <- m * baseline + (1 - m) * mean episode reward
    clip_grad: float = 5.0
    ignore_far_sim: bool = True
    temp_dist_thre: int = 20
    reward_features: Literal["raw", "l2"] = "raw"
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dsn_reward(features: Tensor, actions: Tensor, ignore_far_sim: bool = True, temp_dist_thre: int = 20) -> Tensor:
    """Reward of one summary, exactly `rewards.compute_reward` of the paper's code.

    `features` `(N, D)`, `actions` `(N,)` 0/1. Diversity: mean over ordered pairs of distinct picks of
    `1 - cos` (pairs more than `temp_dist_thre` steps apart count as 1 when `ignore_far_sim`);
    0 with a single pick. Representativeness: `exp(-mean_i min_{j picked} ||x_i - x_j||^2)`.
    Reward = 0.5 * (diversity + representativeness); 0 when nothing is picked.
    """
    seq = features.detach().float()
    picks = torch.nonzero(actions.detach().reshape(-1) > 0).reshape(-1)
    k = len(picks)
    if k == 0:
        return torch.tensor(0.0)
    if k == 1:
        div = torch.tensor(0.0)
    else:
        normed = seq / seq.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12)
        dissim = 1.0 - normed[picks] @ normed[picks].t()
        if ignore_far_sim:
            far = (picks[:, None] - picks[None, :]).abs() > temp_dist_thre
            dissim = dissim.masked_fill(far, 1.0)
        div = dissim.sum() / (k * (k - 1.0))
    sq = seq.pow(2).sum(1)
    dist = sq[:, None] + sq[picks][None, :] - 2.0 * seq @ seq[picks].t()
    rep = torch.exp(-dist.min(1).values.mean())
    return 0.5 * (div + rep)


class RewardCache:
    """The same reward as `dsn_reward`, fast for many episodes on one video: the banded cosine
    similarities (`temp_dist_thre` diagonals) and the squared distance matrix `(N, N)` are computed
    once (above 4096 steps the distances are recomputed per call in row chunks)."""

    def __init__(self, features: Tensor, ignore_far_sim: bool = True, temp_dist_thre: int = 20, reward_features: str = "raw") -> None:
        seq = features.detach().float()
        self.n = len(seq)
        self.ignore_far_sim, self.thre = ignore_far_sim, int(temp_dist_thre)
        self.normed = seq / seq.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12)
        self.rep_seq = self.normed if reward_features == "l2" else seq
        width = max(0, min(self.thre, self.n - 1))
        # band[d-1, i] = 1 - cos(x_i, x_{i+d}) for d = 1..width (0 beyond the end); shift[d-1, i] = i + d (n beyond)
        steps = torch.arange(self.n)
        self.shift = torch.clamp(steps[None, :] + torch.arange(1, width + 1)[:, None], max=self.n)
        self.band = torch.zeros(width, self.n)
        for d in range(1, width + 1):
            self.band[d - 1, : self.n - d] = 1.0 - (self.normed[:-d] * self.normed[d:]).sum(1)
        self.dist = _sq_dist(self.rep_seq, self.rep_seq) if self.n <= 4096 else None

    def __call__(self, actions: Tensor) -> float:
        a = actions.detach().reshape(-1) > 0
        picks = torch.nonzero(a).reshape(-1)
        k = len(picks)
        if k == 0:
            return 0.0
        if k == 1:
            div = 0.0
        elif self.ignore_far_sim:
            a_pad = torch.cat([a, torch.zeros(1, dtype=torch.bool)])
            both = a[None, :] & a_pad[self.shift]
            near_pairs, near_sum = int(both.sum()), float((self.band * both).sum())
            total_pairs = k * (k - 1)
            div = (2 * near_sum + (total_pairs - 2 * near_pairs)) / total_pairs
        else:
            s = self.normed[picks].sum(0)
            div = float(k * k - s.dot(s)) / (k * (k - 1))
        if self.dist is not None:
            mins = torch.amin(self.dist[picks], 0)  # the matrix is symmetric: rows of picks = columns
        else:
            mins = torch.cat([_sq_dist(chunk, self.rep_seq[picks]).min(1).values for chunk in self.rep_seq.split(2048)])
        rep = float(torch.exp(-mins.mean()))
        return 0.5 * (div + rep)


def _sq_dist(a: Tensor, b: Tensor) -> Tensor:
    return a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :] - 2.0 * a @ b.t()


def train_dsn(
    sequences: Sequence[np.ndarray],
    config: DSNConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    shots: Sequence[Sequence[tuple[int, int]]] | None = None,
) -> tuple[DSN, list[dict[str, Any]]]:
    """Train a DSN by REINFORCE on `sequences` (each `(N_i, D)`), one update per video per epoch.

    Per update: probabilities p = DSN(x); `episodes` Bernoulli(p) summaries; cost =
    beta * (mean p - 0.5)^2 - sum_e mean_t log pi(a_t) * (R_e - baseline_video); Adam, gradient norm
    clipped; the video's baseline moves towards the mean episode reward. Seeded (model init,
    sampling, video order). Returns the model (eval mode, on CPU) and one history row per epoch:
    `epoch`, `reward` (mean sampled reward), `cost`, `mean_prob`, `lr`, `seconds`.
    `progress(done_epochs, epochs)` is called after every epoch. Runs on one CPU thread (`vidlens.threads.one_torch_thread`).
    `shots`: per sequence, `[a, b)` step ranges tiling it; the LSTM then restarts at every shot
    (`DSN.forward_shots`) while the reward still judges the whole video's summary.
    """
    with one_torch_thread():
        return _train_dsn(sequences, config, progress=progress, shots=shots)


def _train_dsn(
    sequences: Sequence[np.ndarray],
    config: DSNConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    shots: Sequence[Sequence[tuple[int, int]]] | None = None,
) -> tuple[DSN, list[dict[str, Any]]]:
    """The body of `train_dsn`."""
    config = config or DSNConfig()
    if not sequences:
        raise ValueError("train_dsn needs at least one sequence")
    dims = {np.asarray(s).shape[1] for s in sequences}
    if len(dims) != 1:
        raise ValueError(f"all sequences must have the same feature dimension, got {sorted(dims)}")
    device = torch.device(config.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = DSN(dims.pop(), config.hidden, config.layers).to(device)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    order_rng = np.random.default_rng(config.seed)
    seqs = [torch.as_tensor(np.asarray(s, dtype=np.float32), device=device) for s in sequences]
    caches = [RewardCache(s, config.ignore_far_sim, config.temp_dist_thre, config.reward_features) for s in seqs]
    baselines = [0.0] * len(seqs)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma) if config.lr_step > 0 else None
    history: list[dict[str, Any]] = []
    model.train()
    for epoch in range(config.epochs):
        start = time.perf_counter()
        rewards, costs, probs_mean = [], [], []
        for idx in order_rng.permutation(len(seqs)):
            out = model(seqs[idx].unsqueeze(0))[0] if shots is None else model.forward_shots(seqs[idx], shots[idx])
            probs = out.clamp(1e-6, 1 - 1e-6)
            cost = config.beta * (probs.mean() - 0.5) ** 2
            episode_rewards = []
            for _ in range(config.episodes):
                actions = torch.bernoulli(probs.detach(), generator=gen)
                log_probs = actions * probs.log() + (1 - actions) * (1 - probs).log()
                reward = caches[idx](actions)
                cost = cost - log_probs.mean() * (reward - baselines[idx])
                episode_rewards.append(reward)
            optimizer.zero_grad()
            cost.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            optimizer.step()
            mean_reward = float(np.mean(episode_rewards))
            baselines[idx] = config.baseline_momentum * baselines[idx] + (1 - config.baseline_momentum) * mean_reward
            rewards.append(mean_reward)
            costs.append(float(cost.detach()))
            probs_mean.append(float(probs.detach().mean()))
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        history.append({"epoch": epoch + 1, "reward": float(np.mean(rewards)), "cost": float(np.mean(costs)),
                        "mean_prob": float(np.mean(probs_mean)), "lr": lr, "seconds": time.perf_counter() - start})
        if progress is not None:
            progress(epoch + 1, config.epochs)
    model.eval()
    return model.cpu(), history


@torch.no_grad()
def dsn_scores(model: DSN, features: np.ndarray, shots: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
    """Importance probabilities `(N,)` of one video's features `(N, D)` (model in eval mode, no grad);
    with `shots` (`[a, b)` step ranges tiling the video) the LSTM restarts at every shot."""
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    x = torch.as_tensor(np.asarray(features, dtype=np.float32), device=param.device)
    out = (model(x.unsqueeze(0))[0] if shots is None else model.forward_shots(x, shots)).cpu().numpy().astype(np.float32)
    model.train(was_training)
    return out


@torch.no_grad()
def expected_reward(features: np.ndarray, scores: np.ndarray, *, samples: int = 32, seed: int = 0, config: DSNConfig | None = None) -> float:
    """Mean `dsn_reward` of `samples` Bernoulli(scores) summaries of `features` `(N, D)`: how good a policy is."""
    config = config or DSNConfig()
    cache = RewardCache(torch.as_tensor(np.asarray(features, dtype=np.float32)), config.ignore_far_sim, config.temp_dist_thre, config.reward_features)
    gen = torch.Generator().manual_seed(seed)
    p = torch.as_tensor(np.asarray(scores, dtype=np.float32))
    return float(np.mean([cache(torch.bernoulli(p, generator=gen)) for _ in range(samples)]))
