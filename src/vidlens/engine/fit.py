"""`fit`: train a task, evaluate it each epoch, keep the best and the last checkpoint, resume exactly.

One loop for every task (it only sees the `Task` protocol of `vidlens.tasks.base`):
epoch -> batches -> `task.train_step` -> `StepOutput.loss` -> backward (accumulated over
`accumulate` micro-batches, under autocast, GradScaler for fp16) -> clip -> optimizer ->
LR schedule -> EMA; then `evaluate` on the validation set (EMA weights when on), best /
early stopping on `task.monitor`, `best.pt` then `last.pt`, `log.csv`, TensorBoard,
`curves.png`. See docs/training.md for the guarantees (exact resume, DDP, bad data).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from vidlens.engine.checkpoint import load_checkpoint, save_checkpoint
from vidlens.engine.config import TrainConfig
from vidlens.engine.distributed import (
    DistContext, EpochSampler, ShardSampler, all_ranks_ok, all_reduce_sum, barrier, broadcast_buffers,
    distributed_context, item_weights,
)
from vidlens.engine.evaluate import (
    EvalResult, autocast, batch_meta, eval_generator, make_loader, run_eval, swapped_model, to_device,
)
from vidlens.engine.logging import RunLogger, make_progress
from vidlens.engine.optim import LRSchedule, ModelEMA, build_optimizer
from vidlens.engine.state import get_rng_state, seed_epoch, set_rng_state, to_cpu
from vidlens.errors import CheckpointError, ConfigError, DatasetError

logger = logging.getLogger("vidlens.engine")


@dataclass
class FitResult:
    """What a run achieved. `best_metric` is `monitor` on the validation set (None if never evaluated)."""

    best_metric: float | None
    best_epoch: int
    epochs_run: int
    history: list[dict[str, Any]]
    stopped_early: bool
    substitutions: int
    bad_batches: int
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    monitor: str = ""
    run_dir: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # caveats for the run's summary (e.g. a tiny validation split)
    steps: int = 0  # optimizer steps made


def fit(task: Any, train_set: Dataset, val_set: Dataset | None, cfg: TrainConfig, run_dir: str | Path, *,
        resume: bool | str | Path = False, progress: bool | None = None,
        extra_checkpoint: dict[str, Any] | None = None, save_config: bool = True) -> FitResult:
    """Train `task` on `train_set`, evaluating on `val_set` (None: monitor the training loss).

    `resume`: True = continue from `run_dir/last.pt` when it exists (else start fresh), a
    path = continue from that checkpoint. `progress`: rich bars on stderr (None = only on a
    terminal). `extra_checkpoint`: more fields for both checkpoints. `save_config=False`: leave
    `run_dir/config.yaml` to the caller (a workflow that saves a whole recipe there). Under torchrun
    (WORLD_SIZE > 1) this runs data-parallel; only rank 0 writes files.
    """
    with distributed_context(cfg.device) as ctx:
        trainer = _Trainer(task, train_set, val_set, cfg, Path(run_dir), ctx, extra_checkpoint or {})
        trainer.save_config = save_config
        return trainer.run(resume, progress)


def _epoch_plan(per_rank: int, cfg: TrainConfig) -> tuple[int, int]:
    """(batches per epoch, passes over the training set per epoch) for `cfg.steps` / `cfg.min_steps`.

    One pass makes `per_rank // batch_size` batches (all items in one batch when they fit in one).
    With a step target, every epoch makes `ceil(total_steps / epochs)` optimizer steps and the
    sampler repeats the set (fresh shuffles) as often as that needs.
    """
    one_pass = per_rank // cfg.batch_size if per_rank > cfg.batch_size else 1
    pass_steps = math.ceil(one_pass / cfg.accumulate)
    total = cfg.steps if cfg.steps else max(pass_steps * cfg.epochs, cfg.min_steps)
    steps = max(1, math.ceil(total / cfg.epochs))
    if steps <= pass_steps:
        return min(one_pass, steps * cfg.accumulate), 1
    batches = steps * cfg.accumulate
    return batches, math.ceil(batches * cfg.batch_size / per_rank)


def _selection(task: Any, val_set: Dataset | None, cfg: TrainConfig, notes: list[str]) -> tuple[str, str]:
    """(monitor, mode) that chooses `best.pt`: the training loss without a validation set, else the task's
    metric or the validation loss (`cfg.select_by`; "auto" = the loss on a split too small to trust)."""
    if val_set is None:
        return "train_loss", "min"
    n = len(val_set)
    if n < cfg.min_val_size:
        notes.append(f"the validation split has only {n} items (fewer than {cfg.min_val_size}): its accuracy moves "
                     f"by chance, so treat the validation figures and the best epoch with caution")
    if cfg.select_by == "loss" or (cfg.select_by == "auto" and n < cfg.min_val_size):
        if cfg.select_by == "auto":
            notes.append("best.pt is chosen by the validation loss (ties to the later epoch), not by "
                         f"{task.monitor}; use select_by=metric to change that")
        return "loss", "min"
    mode = getattr(task, "monitor_mode", "max")
    if mode not in ("max", "min"):
        raise ConfigError(None, f"task.monitor_mode must be 'max' or 'min' (got {mode!r})")
    return task.monitor, mode


class _EpochStats:
    """Running sums of one epoch (tensors stay on the device: no sync per step)."""

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.counted = self.items = self.subs = self.bad = self.micro = 0


class _Trainer:
    def __init__(self, task: Any, train_set: Dataset, val_set: Dataset | None, cfg: TrainConfig, run_dir: Path,
                 ctx: DistContext, extra: dict[str, Any]) -> None:
        self.task, self.train_set, self.val_set, self.cfg = task, train_set, val_set, cfg
        self.run_dir, self.ctx = run_dir, ctx
        self.extra = extra
        self.model: torch.nn.Module = task.model.to(ctx.device)
        self.notes: list[str] = []
        self.monitor, self.mode = _selection(task, val_set, cfg, self.notes)
        weights = item_weights(train_set) if cfg.balanced_sampler else None
        per_rank = -(-len(train_set) // ctx.world_size)
        batches, passes = _epoch_plan(per_rank, cfg)
        self.sampler = EpochSampler(len(train_set), seed=cfg.seed, num_replicas=ctx.world_size, rank=ctx.rank,
                                    weights=weights, passes=passes)
        self.batches_per_epoch = batches
        if cfg.max_steps_per_epoch:
            self.batches_per_epoch = min(batches, cfg.max_steps_per_epoch * cfg.accumulate)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / cfg.accumulate)
        self.optimizer = build_optimizer(self.model, cfg)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.schedule = LRSchedule(self.optimizer, cfg, self.steps_per_epoch, self.mode)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=cfg.amp == "fp16")
        autocast(cfg.amp, ctx.device)  # validates amp against the device now, not mid-run
        self.ema = ModelEMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.ddp: torch.nn.Module | None = None
        # Progress of the run (all of it goes into last.pt's train_state).
        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.best: float | None = None
        self.best_epoch = 0
        self.bad_evals = 0
        self.stopped_early = False
        self.history: list[dict[str, Any]] = []
        self.ctrl_group = None
        self.save_config = True

    # ------------------------------------------------------------------ run

    def run(self, resume: bool | str | Path, progress: bool | None) -> FitResult:
        cfg, ctx = self.cfg, self.ctx
        resumed = self._resume(resume) if resume else False
        if ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
            if ctx.device.type == "cuda":  # flags for skipped batches travel on the CPU: no GPU sync per step
                import torch.distributed as dist

                self.ctrl_group = dist.new_group(backend="gloo")
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.save_config:
                cfg.save_yaml(self.run_dir / "config.yaml")
        val_sampler = None if self.val_set is None else ShardSampler(len(self.val_set), ctx.world_size, ctx.rank)
        log = RunLogger(self.run_dir, enabled=ctx.is_main, purge_step=self.global_step + 1 if resumed else None)
        ran = False
        try:
            with make_progress(progress if ctx.is_main else False) as bars:
                while self.epoch < cfg.epochs and not self.stopped_early:
                    row = self._epoch(val_sampler, bars, log)
                    ran = True
                    if bars is not None:
                        bars.summary(row, cfg.epochs)
                    log.epoch(row, self.history, final=self.epoch >= cfg.epochs or self.stopped_early)
            if resumed and not ran and self.history:  # nothing left to do: still leave complete logs
                log.epoch(self.history[-1], self.history, final=True)
        finally:
            log.close()
        barrier(ctx)
        return self._result()

    def _epoch(self, val_sampler: ShardSampler | None, bars: Any, log: RunLogger) -> dict[str, Any]:
        cfg, ctx, epoch = self.cfg, self.ctx, self.epoch
        start = time.perf_counter()
        generator = seed_epoch(cfg.seed, epoch, ctx.rank)
        self.sampler.set_epoch(epoch)
        if callable(getattr(self.train_set, "set_epoch", None)):
            self.train_set.set_epoch(epoch)
        loader = make_loader(self.train_set, cfg, self.sampler, train=True, device=ctx.device, generator=generator)
        train = self._train_epoch(loader, bars, log)
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], **train}
        evaluated = val_sampler is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs)
        metrics: dict[str, float] = {}
        if evaluated:
            # A new loader each time, with the same fixed generator: evaluation draws nothing from
            # the run's RNG and its workers get the same seeds in every epoch (and after a resume).
            val_loader = make_loader(self.val_set, cfg, val_sampler, train=False, device=ctx.device,
                                     generator=eval_generator(cfg.seed))
            result = self._validate(val_loader, bars)
            metrics = result.metrics
            row.update({f"val_{k}": v for k, v in metrics.items()})
            row["val_substitutions"] = result.substitutions
        row["seconds"] = time.perf_counter() - start
        improved = False
        if val_sampler is None or evaluated:
            value = row["train_loss"] if val_sampler is None else self._monitored(metrics)
            self.schedule.observe(value)
            better = math.isfinite(value) and (
                self.best is None or (value > self.best if self.mode == "max" else value < self.best))
            tie = math.isfinite(value) and self.best is not None and value == self.best
            improved = better or tie  # a tie moves best.pt to the later (longer-trained) epoch
            if improved:
                self.best, self.best_epoch = float(value), epoch + 1
            if better:
                self.bad_evals = 0
            else:  # a tie is no progress for early stopping
                self.bad_evals += 1
                if cfg.early_stopping_patience and self.bad_evals >= cfg.early_stopping_patience:
                    self.stopped_early = True
        self.epoch = epoch + 1
        self.history.append(row)
        if ctx.is_main:
            ckpt_metrics = {"epoch": epoch + 1, **(metrics or {"train_loss": row["train_loss"]})}
            if improved:  # best first: a kill between the two writes never loses the best weights
                save_checkpoint(self.run_dir / "best.pt", self._payload(ckpt_metrics, with_state=False))
            save_checkpoint(self.run_dir / "last.pt", self._payload(ckpt_metrics, with_state=True))
        return row

    def _monitored(self, metrics: dict[str, float]) -> float:
        if self.monitor not in metrics:
            raise ConfigError(None, f"task.monitor {self.monitor!r} is not among the validation metrics "
                                    f"({', '.join(sorted(metrics)) or 'none'})")
        return float(metrics[self.monitor])

    # ------------------------------------------------------------------ training

    def _train_epoch(self, loader: Any, bars: Any, log: RunLogger) -> dict[str, Any]:
        cfg, ctx = self.cfg, self.ctx
        self.model.train()
        limit = min(len(loader), self.batches_per_epoch)
        bar = bars.add_task(f"epoch {self.epoch + 1}/{cfg.epochs}", total=limit) if bars is not None else None
        self.optimizer.zero_grad(set_to_none=True)
        st = _EpochStats(ctx.device)
        start = time.perf_counter()
        iterator = iter(loader)
        try:
            with swapped_model(self.task, self.ddp if self.ddp is not None else self.model):
                self._loop(iterator, limit, bars, bar, log, st, start)
        finally:  # stop the workers now, even if an exception keeps the iterator referenced
            shutdown = getattr(iterator, "_shutdown_workers", None)
            if callable(shutdown):
                shutdown()
            del iterator
        if st.micro:  # the epoch's last batches failed after some micro-batches were accumulated
            self._sync_pending_grads()
            self._optimizer_step(st.micro)
        seconds = time.perf_counter() - start
        if bar is not None:
            bars.remove_task(bar)
        sums = torch.tensor([float(st.loss_sum), float(st.correct), st.counted, st.items, st.subs, st.bad],
                            dtype=torch.float64)
        loss_sum, correct, counted, items, subs, bad = all_reduce_sum(sums, ctx).tolist()
        return {
            "train_loss": loss_sum / items if items else float("nan"),
            "train_acc": correct / counted if counted else float("nan"),
            "clips_per_s": items / seconds if seconds > 0 else float("nan"),
            "substitutions": int(subs),
            "bad_batches": int(bad),
        }

    def _loop(self, iterator: Any, limit: int, bars: Any, bar: Any, log: RunLogger, st: _EpochStats,
              start: float) -> None:
        """The batches of one epoch: fetch (skipping failures), forward/backward, optimizer steps."""
        cfg, ctx, task, dev = self.cfg, self.ctx, self.task, self.ctx.device
        bad_in_row = 0
        for index in range(limit):
            batch, error = None, None
            try:
                batch = next(iterator)
            except StopIteration:
                break
            except Exception as exc:  # a collate error, a dataset that gave up: skip the batch
                error = f"{type(exc).__name__}: {exc}"  # a string: keeping `exc` would tie this frame in a cycle
            if not all_ranks_ok(error is None, ctx, self.ctrl_group):  # every rank skips the step together
                st.bad += error is not None  # counted where it failed
                bad_in_row += 1
                logger.log(logging.WARNING if error is not None else logging.INFO,
                           "skipped a training batch (epoch %d, batch %d): %s", self.epoch + 1, index + 1,
                           error if error is not None else "it failed on another rank")
                if bad_in_row >= max(1, cfg.max_bad_batches):
                    raise DatasetError(None, f"{bad_in_row} training batches in a row failed; last error: {error}")
                continue
            bad_in_row = 0
            st.subs += batch_meta(batch)[1]
            batch = to_device(batch, dev)
            st.micro += 1
            boundary = st.micro == cfg.accumulate or index == limit - 1
            sync = self.ddp.no_sync() if self.ddp is not None and not boundary else contextlib.nullcontext()
            with sync:
                with autocast(cfg.amp, dev):
                    out = task.train_step(batch)
                loss = out.loss / cfg.accumulate if cfg.accumulate > 1 else out.loss
                if self.scaler.is_enabled():
                    self.scaler.scale(loss).backward()
                else:
                    loss.backward()
            n = int(out.scores.shape[0])
            st.items += n
            st.loss_sum.add_(out.loss.detach(), alpha=n)
            if out.targets.ndim == 1 and out.scores.ndim == 2:
                st.correct.add_((out.scores.argmax(dim=-1) == out.targets).sum())
                st.counted += n
            info = None
            if boundary:
                self._optimizer_step(st.micro)
                st.micro = 0
                if self.global_step % cfg.log_every == 0:
                    value = out.loss.item()
                    log.step(self.global_step, value, self.optimizer.param_groups[0]["lr"])
                    info = f"loss {value:.4f}  {st.items / max(time.perf_counter() - start, 1e-9):.1f} clips/s"
                    if st.counted:
                        info += f"  acc {float(st.correct) / st.counted:.3f}"
            if bar is not None:
                bars.advance(bar, info)

    def _optimizer_step(self, micro: int) -> None:
        cfg = self.cfg
        grads = [p.grad for p in self.params if p.grad is not None]
        if micro != cfg.accumulate and grads:  # a short accumulation: make it a mean over what was seen
            torch._foreach_mul_(grads, cfg.accumulate / micro)
        if cfg.clip_grad_norm > 0:
            if self.scaler.is_enabled():
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, cfg.clip_grad_norm)
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.global_step += 1

    def _sync_pending_grads(self) -> None:
        """Average gradients accumulated under `no_sync` by hand (only when an epoch ends on failed batches)."""
        if self.ddp is None:
            return
        import torch.distributed as dist

        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad.div_(self.ctx.world_size)

    def _validate(self, loader: Any, bars: Any) -> EvalResult:
        eval_module = self.ema.module if self.ema is not None else self.model
        broadcast_buffers(eval_module, self.ctx)
        with swapped_model(self.task, eval_module):
            return run_eval(self.task, loader, self.ctx, self.cfg.amp, bars, f"val {self.epoch + 1}")

    # ------------------------------------------------------------------ checkpoints

    def _payload(self, metrics: dict[str, Any], with_state: bool) -> dict[str, Any]:
        weights = self.ema.module if self.ema is not None else self.model
        payload = {**self.task.checkpoint_fields(), **self.extra,
                   "state_dict": to_cpu(weights.state_dict()), "config": self.cfg.to_dict(), "metrics": metrics}
        if with_state:
            payload["train_state"] = self._train_state()
        return payload

    def _train_state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "global_step": self.global_step, "best_metric": self.best,
            "best_epoch": self.best_epoch, "bad_evals": self.bad_evals, "stopped_early": self.stopped_early,
            "monitor": self.monitor, "history": self.history, "world_size": self.ctx.world_size,
            "optimizer": to_cpu(self.optimizer.state_dict()), "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            # With EMA on, `state_dict` holds the EMA weights; the raw weights are needed to go on training.
            "model": to_cpu(self.model.state_dict()) if self.ema is not None else None,
            "rng_state": get_rng_state(),
        }

    def _resume(self, resume: bool | str | Path) -> bool:
        path = self.run_dir / "last.pt" if resume is True else Path(resume)
        if resume is True and not path.is_file():
            logger.info("no %s to resume from: starting a new run", path)
            return False
        ckpt = load_checkpoint(path, map_location="cpu")
        state = ckpt.get("train_state")
        if not isinstance(state, dict):
            raise CheckpointError(path, "has no train_state to resume from (best.pt holds weights only; use last.pt)")
        try:
            self.model.load_state_dict(state["model"] if state.get("model") is not None else ckpt["state_dict"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["scheduler"])
            if self.scaler.is_enabled() and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            if self.ema is not None:
                if state.get("ema") is not None:
                    self.ema.load_state_dict(state["ema"])
                else:  # EMA switched on at resume: start it from the saved weights
                    self.ema.module.load_state_dict(ckpt["state_dict"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(path, f"does not match this task/config ({str(exc).splitlines()[0]})") from None
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.best = None if state["best_metric"] is None else float(state["best_metric"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_evals = int(state["bad_evals"])
        self.stopped_early = bool(state["stopped_early"])
        self.history = list(state["history"])
        set_rng_state(state["rng_state"])
        saved = ckpt.get("config", {})
        changed = {k: (saved.get(k), v) for k, v in self.cfg.to_dict().items() if k in saved and saved[k] != v}
        if changed:
            logger.info("resuming %s with changed options: %s", path, changed)
        return True

    def _result(self) -> FitResult:
        best_path, last_path = self.run_dir / "best.pt", self.run_dir / "last.pt"
        subs = sum(int(r.get("substitutions", 0)) + int(r.get("val_substitutions", 0)) for r in self.history)
        return FitResult(
            best_metric=self.best, best_epoch=self.best_epoch, epochs_run=self.epoch, history=list(self.history),
            stopped_early=self.stopped_early, substitutions=subs,
            bad_batches=sum(int(r.get("bad_batches", 0)) for r in self.history),
            best_checkpoint=best_path if best_path.is_file() else None,
            last_checkpoint=last_path if last_path.is_file() else None,
            monitor=self.monitor, run_dir=self.run_dir, notes=list(self.notes), steps=self.global_step,
        )
