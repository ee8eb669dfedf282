"""Data parallelism for the shared training loop: N processes train exactly the recipe one process trains.

`cfg.batch_size` stays the global batch and the learning rate is unchanged. At every step each rank takes
its contiguous slice of the step's indices (the same indices a single process would use), computes the
loss of its slice under DistributedDataParallel, and DDP averages the gradients. Because every loss here
is a mean over examples and the slices are equal, that average is the gradient of the global batch.

The random draws of a loss (diffusion noise, timesteps, condition dropout) must match too, or two
processes would train on other noise than one. Loss functions draw from the loop's generator with
`torch.rand/randn/randint`, deep inside code that knows only its own batch (the conditioning modes, the
noise process). `ShardedDraws` intercepts those calls while the loss runs: a draw whose first dimension is
the local batch size is made at the global batch size and sliced to this rank's rows, so every example
gets the numbers it would get in a single process and every rank's generator stays in step with it. Draws
of any other shape (one seed per step) are made as they are, identically on every rank (CLIP's hard
negatives then mix in the rank: see `harness.clip.train`). A draw from the generator through any other
function cannot be sharded this way and stops the run with a clear error.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.overrides import TorchFunctionMode

from harness.runtime import distributed
from harness.errors import HarnessError

LossFn = Callable[[Any, torch.Generator], torch.Tensor]
_SHARDABLE = (torch.rand, torch.randn, torch.randint)

# DDP compares each gradient's strides with its bucket's, including those of size-1 dimensions, which carry no
# layout: a 1x1 convolution's weight gradient trips the check although the copy into the bucket is as cheap.
warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
# open_clip gathers features across ranks with this function; the replacement is theirs to adopt.
warnings.filterwarnings("ignore", message="torch.distributed.nn.functional.all_gather is deprecated")


class ShardedDraws(TorchFunctionMode):
    """While active, per-example draws from `generator` are drawn for all `total` rows and sliced to `rows`."""

    def __init__(self, generator: torch.Generator, rows: slice, total: int) -> None:
        super().__init__()
        self.generator, self.rows, self.total = generator, rows, total
        self.local = rows.stop - rows.start

    def __torch_function__(self, func, types, args=(), kwargs=None):
        # Every torch call of the loss passes through here (a few microseconds each): keep the common case short.
        if kwargs is None or kwargs.get("generator") is not self.generator:
            return func(*args, **(kwargs or {}))
        if func not in _SHARDABLE:
            raise HarnessError(f"under torchrun, losses may draw from the training generator only with "
                               f"torch.rand, torch.randn or torch.randint; {getattr(func, '__name__', func)} "
                               f"cannot be split over ranks")
        head, size = _split_size(func, args, kwargs)
        if not size or size[0] != self.local:
            return func(*args, **kwargs)
        rest = {k: v for k, v in kwargs.items() if k != "size"}
        return func(*head, (self.total, *size[1:]), **rest)[self.rows]


def _split_size(func, args: tuple, kwargs: dict) -> tuple[tuple, tuple[int, ...]]:
    """(the arguments before the size, the size) of a rand/randn/randint call."""
    if "size" in kwargs:
        return args, tuple(kwargs["size"])
    if func is torch.randint:  # randint(high, size) or randint(low, high, size)
        return args[:-1], tuple(args[-1])
    if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):  # rand(size) or rand(*size)
        return (), tuple(args[0])
    return (), tuple(args)


def check_split(batch_size: int, desc: str) -> None:
    """A global batch must split into equal slices, or the mean of the slices' losses is not the batch's."""
    world = distributed.world_size()
    if batch_size % world:
        raise HarnessError(f"{desc}: a batch of {batch_size} does not split evenly over {world} processes")


class _Loss(nn.Module):
    """DDP synchronises the gradients of what its forward computed, so the whole loss runs inside forward
    (the loss functions call submodules and helpers of the model, not its own forward)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch: Any, generator: torch.Generator) -> torch.Tensor:
        return self.loss_fn(batch, generator)


class DataParallel:
    """One training step's loss on this rank's slice of the global batch, with DDP-averaged gradients.

    Building it broadcasts rank 0's weights to every rank, so all ranks start from the same ones.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, generator: torch.Generator) -> None:
        self.generator = generator
        self.ddp = DistributedDataParallel(_Loss(model, loss_fn))

    def loss(self, fetch: Callable[[np.ndarray], Any], indices: np.ndarray) -> torch.Tensor:
        """This rank's loss on its slice of `indices` (the step's global batch), ready for backward."""
        local = len(indices) // distributed.world_size()
        rows = slice(distributed.rank() * local, (distributed.rank() + 1) * local)
        with ShardedDraws(self.generator, rows, len(indices)):
            return self.ddp(fetch(indices[rows]), self.generator)
