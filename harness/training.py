"""One training loop for every trained artifact: CLIP, the probe, the prior and the decoders.

What it guarantees, so the stages don't each reinvent it:
- exact resumption: the data order is a function of (seed, step) and every random draw of the loss comes
  from a generator whose state is checkpointed with the weights, the optimiser, the EMA and torch's global
  RNG; a run killed with SIGKILL and restarted ends with the same weights as one that never stopped;
- checkpoints are written atomically (temp file, then rename) every `checkpoint_every` steps;
- a NaN or infinite loss stops the run with a one-line error, and the last good checkpoint is kept;
- AdamW with linear warm-up (then a constant or cosine-decayed rate), gradient clipping, optional EMA, bf16
  autocast where it pays, and a progress bar with the loss and images per second;
- under torchrun, data parallelism that trains the same recipe as one process (`harness.runtime.data_parallel`):
  `batch_size` is the global batch, the logged loss is its mean over ranks, and rank 0 alone writes the
  checkpoint and shows progress; a checkpoint resumes under any number of processes that divides the batch.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from harness.runtime import distributed, tracking
from harness.config import TrainConfig
from harness.runtime.data_parallel import DataParallel, check_split
from harness.runtime.device import autocast
from harness.errors import HarnessError
from harness.runtime.progress import bar as progress_bar

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


class TrainingDiverged(HarnessError):
    """The loss became NaN or infinite; the last good checkpoint stays on disk."""


@dataclass
class TrainResult:
    model: nn.Module
    ema: nn.Module | None
    history: list[dict] = field(default_factory=list)
    images_per_s: float = 0.0
    resumed_from: int = 0

    @property
    def final(self) -> nn.Module:
        """The weights to use for inference: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def summary(self) -> dict:
        """The figures a trained artifact records in its meta: last logged loss, throughput, resumed step."""
        last = self.history[-1]["loss"] if self.history else math.nan
        return {"final_loss": last, "images_per_s": round(self.images_per_s, 1), "resumed_from_step": self.resumed_from}


def batch_indices(dataset_size: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """The example indices of `step`: epochs are seeded permutations, so the order depends only on (seed, step)."""
    per_epoch = max(1, dataset_size // batch_size)
    epoch, offset = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(dataset_size)
    return order[offset * batch_size:(offset + 1) * batch_size]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """The learning rate at `step` as a fraction of `cfg.lr`: linear warm-up, then constant or a cosine decay to 0."""
    warmup = max(1, cfg.warmup_steps)
    if step < warmup or cfg.lr_schedule == "constant":
        return min(1.0, (step + 1) / warmup)
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train(model: nn.Module, loss_fn: Callable[[Any, torch.Generator], torch.Tensor],
          fetch: Callable[[np.ndarray], Any], dataset_size: int, cfg: TrainConfig, workdir: Path | None,
          device: torch.device, *, precision: str = "auto", desc: str = "train", progress: bool = True,
          log_every: int = 25) -> TrainResult:
    """Train `model` for `cfg.steps` steps, resuming from `workdir/checkpoint.pt` when one is there.

    `fetch(indices)` returns a batch already on `device`; `loss_fn(batch, generator)` returns a scalar loss,
    a mean over the batch's examples, and must draw all its randomness from `generator` (noise, timesteps,
    condition dropout) so resumption is exact. Every trainable parameter of `model` is optimised. Without a
    `workdir` nothing is checkpointed. The curves go live to a wandb run named `desc` of the process's active
    tracker (`harness.runtime.tracking`), from rank 0 alone under torchrun.
    """
    tracker = tracking.active() if distributed.is_main() else tracking.Tracker.disabled()
    with tracker.run(desc, job_type="train") as tracked:
        result = _train(model, loss_fn, fetch, dataset_size, cfg, workdir, device, precision=precision, desc=desc,
                        progress=progress, log_every=log_every, tracked=tracked)
        tracked.summary(result.summary())
    return result


def _train(model: nn.Module, loss_fn: Callable[[Any, torch.Generator], torch.Tensor],
           fetch: Callable[[np.ndarray], Any], dataset_size: int, cfg: TrainConfig, workdir: Path | None,
           device: torch.device, *, precision: str, desc: str, progress: bool, log_every: int,
           tracked: tracking.TrackerRun) -> TrainResult:
    check_split(min(cfg.batch_size, dataset_size), desc)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel over all parameters; the text pathways' 49k-row token tables made the per-tensor
    # update the most expensive part of a step on the CPU.
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay)) if cfg.ema_decay > 0 else None
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    history: list[dict] = []

    path = workdir / CHECKPOINT if workdir is not None else None
    start = 0
    if path is not None and path.exists():
        state = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        if "optimizer" in state:  # the finished run's last checkpoint keeps no optimiser state: no step is left
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        generator.set_state(state["generator"].cpu() if device.type == "cpu" else state["generator"])
        torch.set_rng_state(state["torch_rng"].cpu())
        history, start = state["history"], state["step"]
        log.info("%s: resuming from step %d of %d", desc, start, cfg.steps)
    else:
        torch.manual_seed(cfg.seed)  # dropout and other layers that use the global RNG
    # Under torchrun every rank has read the same checkpoint (or none) before DDP starts, and rank 0 writes the
    # next one only after a step that every rank has joined.
    parallel = DataParallel(model, loss_fn, generator) if distributed.world_size() > 1 else None
    main = distributed.is_main()

    def save(step: int) -> None:
        # The last one drops the optimiser's moments (twice the weights): a finished artifact resumes nothing.
        optimizer_state = {"optimizer": optimizer.state_dict()} if step < cfg.steps else {}
        state = {"model": model.state_dict(), **optimizer_state,
                 "scheduler": scheduler.state_dict(), "ema": ema.state_dict() if ema is not None else {},
                 "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                 "history": history, "step": step}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    model.train()
    bar = progress_bar(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps, enabled=progress and main)
    seen, clock = 0, time.perf_counter()
    for step in bar:
        indices = batch_indices(dataset_size, cfg.batch_size, step, cfg.seed)
        with autocast(device, precision):
            loss = parallel.loss(fetch, indices) if parallel else loss_fn(fetch(indices), generator)
        # The batch's loss: with several ranks, the mean of their slices' losses. Every rank sees the same
        # value, so a NaN on any rank stops all of them together.
        reported = distributed.mean(loss.detach()) if parallel else loss.detach()
        if not torch.isfinite(reported):
            last = (step // cfg.checkpoint_every) * cfg.checkpoint_every if path is not None and path.exists() else None
            kept = f"last good checkpoint (step {last}) kept at {path}" if last is not None else "no checkpoint yet"
            raise TrainingDiverged(f"{desc}: loss became {reported.item()} at step {step}; {kept}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        seen += cfg.batch_size
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            rate = seen / max(time.perf_counter() - clock, 1e-9)
            record = {"step": step + 1, "loss": float(reported), "lr": scheduler.get_last_lr()[0],
                      "images_per_s": rate}
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{rate:.0f}", refresh=False)  # drawn at its own pace
            tracked.on_log(step + 1, record)
        if path is not None and main and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
            save(step + 1)
    bar.close()
    elapsed = time.perf_counter() - clock
    model.eval()
    rate = seen / elapsed if seen and elapsed > 0 else (history[-1]["images_per_s"] if history else math.nan)
    return TrainResult(model, ema, history, rate, start)
