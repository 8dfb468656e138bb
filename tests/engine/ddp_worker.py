"""Runs `fit` on the tiny task of `tests.engine` in its own process: under torchrun (DDP) or plain.

    python -m torch.distributed.run --nproc_per_node 2 tests/engine/ddp_worker.py --run-dir D --epochs 3
    python tests/engine/ddp_worker.py --run-dir D --epochs 3 --hang-after 20   # for kill-and-resume tests

Writes `result_rank{RANK}.json` (history, best metric, ...) into the run directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import torch  # noqa: E402

from tests.engine import HangingDataset, TrendDataset, make_task  # noqa: E402
from vidlens.engine import TrainConfig, evaluate, fit, load_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--config", required=True, help="TrainConfig as JSON")
    parser.add_argument("--n-train", type=int, default=64)
    parser.add_argument("--n-val", type=int, default=30)
    parser.add_argument("--bad", default="", help="comma-separated train items that break collate")
    parser.add_argument("--hang-after", type=int, default=0, help="once last.pt exists, hang after N more items")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bad = {int(x) for x in args.bad.split(",") if x}
    if args.hang_after:
        train = HangingDataset(args.n_train, seed=1, bad=bad, run_dir=args.run_dir, after=args.hang_after)
    else:
        train = TrendDataset(args.n_train, seed=1, bad=bad)
    val = TrendDataset(args.n_val, seed=2, augment=False)
    cfg = TrainConfig.from_dict(json.loads(args.config))
    task = make_task()
    result = fit(task, train, val, cfg, args.run_dir, progress=False)
    # Then evaluate the best weights with the same script (under torchrun: sharded and gathered again).
    task.model.load_state_dict(load_checkpoint(Path(args.run_dir) / "best.pt")["state_dict"])
    evaluated = evaluate(task, val, cfg)
    rank = int(os.environ.get("RANK", "0"))
    out = {"eval_metrics": evaluated.metrics, "eval_paths": evaluated.paths, "eval_scores": evaluated.scores.tolist(),
           "rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", "1")), "history": result.history,
           "best_metric": result.best_metric, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
           "bad_batches": result.bad_batches}
    (Path(args.run_dir) / f"result_rank{rank}.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
