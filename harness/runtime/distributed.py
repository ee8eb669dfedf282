"""The process group of a `torchrun` launch (docs/design.md, section 8), and the few collectives the harness needs.

`torchrun --standalone --nproc_per_node=N -m harness ...` starts N copies of the CLI with RANK, LOCAL_RANK and
WORLD_SIZE in their environment. `init` joins them into one process group (NCCL when CUDA is there, gloo on the
CPU); every helper here answers for a single process too (rank 0 of 1, collectives are no-ops), so the
single-process path needs no case of its own. Across several nodes, `cache_dir` must be on a filesystem they
all share: every rank loads the artifacts rank 0 wrote.

Who does what (the rest of the harness follows this):
- training stages (CLIP, probe, evaluation CLIP, priors, decoders) run on every rank, under DDP in
  `harness.training`; rank 0 alone writes files, logs and reports progress;
- other stages are built by rank 0 while the others wait, then loaded by all (`harness.runtime.cache`);
- after the last training stage the group is torn down and rank 0 carries on alone with the sweep, the
  metrics and the report (`release_workers`), so no rank sits in a collective that could time out.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

# Ranks other than 0 wait in a collective while rank 0 builds the dataset or the embeddings alone, or waits on
# another job's artifact lock; the default 30 minutes could expire on a large preset.
TIMEOUT = datetime.timedelta(hours=4)


def launched() -> bool:
    """Whether this process is one of several started by torchrun (read before the group exists)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init() -> None:
    """Join the process group torchrun set up: NCCL with one GPU per local rank, or gloo on the CPU."""
    if not launched() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        # `device=auto` resolves to "cuda", i.e. the current device: make that this rank's own GPU.
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=TIMEOUT, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)


def destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0: the process that writes files, logs and reports."""
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def share(value: T) -> T:
    """Rank 0's `value` on every rank (any picklable object; other ranks' arguments are ignored)."""
    if not dist.is_initialized():
        return value
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over ranks (gloo has no AVG reduction, hence a sum divided by the world size)."""
    if not dist.is_initialized():
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / world_size()


def release_workers() -> bool:
    """End the process group after the last training stage; True on rank 0, which carries on alone.

    Every rank calls this at the same point; the others should return right after it.
    """
    main = is_main()
    barrier()
    destroy()
    return main
