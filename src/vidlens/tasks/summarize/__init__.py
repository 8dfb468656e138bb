"""Video summarization: DSN (unsupervised RL), a supervised attention regressor, baselines, and the
standard SumMe/TVSum keyshot protocol (HDF5 layout, splits, knapsack, F-score). See docs/summarization.md."""

from vidlens.tasks.summarize.baselines import kmeans_scores, random_scores, uniform_scores
from vidlens.tasks.summarize.checkpoint import load_summarizer, save_summarizer
from vidlens.tasks.summarize.dsn import DSN, DSNConfig, RewardCache, dsn_reward, dsn_scores, expected_reward, train_dsn
from vidlens.tasks.summarize.evaluate import (
    METHODS, TRAINED, EvalConfig, EvalResult, FoldResult, evaluate_h5, score_video, train_model, write_outputs,
)
from vidlens.tasks.summarize.knapsack import knapsack
from vidlens.tasks.summarize.protocol import (
    REQUIRED_FIELDS, VideoRecord, evaluate_summary, frame_scores_from_picks, generate_summary, load_h5, load_splits,
    make_splits, resolve_metric, resolve_split_keys,
)
from vidlens.tasks.summarize.supervised import AttentionRegressor, SupervisedConfig, normalise_target, predict_scores, train_supervised

__all__ = [
    "DSN", "METHODS", "REQUIRED_FIELDS", "TRAINED", "AttentionRegressor", "DSNConfig", "EvalConfig", "EvalResult",
    "FoldResult", "RewardCache", "SupervisedConfig", "VideoRecord", "dsn_reward", "dsn_scores", "evaluate_h5",
    "evaluate_summary", "expected_reward", "frame_scores_from_picks", "generate_summary", "kmeans_scores", "knapsack",
    "load_h5", "load_splits", "load_summarizer", "make_splits", "normalise_target", "predict_scores", "random_scores",
    "resolve_metric", "resolve_split_keys", "save_summarizer", "score_video", "train_dsn", "train_model",
    "train_supervised", "uniform_scores", "write_outputs",
]
