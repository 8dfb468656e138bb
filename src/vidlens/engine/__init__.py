"""The training and evaluation loops every task runs on (see docs/training.md).

    from vidlens.engine import TrainConfig, fit, evaluate
    result = fit(task, train_set, val_set, TrainConfig(epochs=20), "runs/exp1")
    report = evaluate(task, test_set, TrainConfig(batch_size=16))
"""

from vidlens.engine.checkpoint import load_checkpoint, save_checkpoint
from vidlens.engine.config import TrainConfig
from vidlens.engine.evaluate import EvalResult, evaluate
from vidlens.engine.fit import FitResult, fit

__all__ = ["EvalResult", "FitResult", "TrainConfig", "evaluate", "fit", "load_checkpoint", "save_checkpoint"]
