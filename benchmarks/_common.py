"""What the benchmark scripts share: the --threads flag, machine info, the decoder training step they time,
spread statistics, json output, and access to the artifacts a `make run` left in the cache.

Results go to `results/benchmarks/<name>.json`, each with the machine it ran on and the exact command.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from harness.runtime.cache import META_FILE, ArtifactCache, artifact_key
from harness.conditioning.condition import Condition
from harness.runtime.context import Context
from harness.decoder import diffusion_loss, make_train_scheduler
from harness.runtime.device import autocast

if TYPE_CHECKING:
    from harness.config import Config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "benchmarks"


#################################################################################
#                         Command line and machine                              #
#################################################################################

def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with `--threads` (default 1: the machine is shared, see README's OMP note)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    return p


def set_threads(threads: int) -> None:
    # OMP_NUM_THREADS also reaches processes this one spawns (the memory probes of unet_vs_diffusers).
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_bf16_units() -> bool:
    """Whether the CPU advertises bf16 matrix instructions: recorded beside figures, never used to choose."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def machine_info() -> dict[str, Any]:
    from importlib.metadata import version

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_bf16_units": cpu_has_bf16_units(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "diffusers": version("diffusers"), "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "note": "shared machine: other jobs may have run during the measurement; prefer side-by-side ratios"}


#################################################################################
#                         One decoder training step                             #
#################################################################################

def random_condition(unet: nn.Module, batch: int, tokens: int, device: torch.device) -> Condition:
    """A vector and `tokens` context tokens, as `combined` hands the decoder (see decoder_throughput.py)."""
    g = torch.Generator().manual_seed(0)
    return Condition(vector=torch.randn(batch, unet.emb_dim, generator=g),
                     tokens=torch.randn(batch, tokens, unet.ctx_dim, generator=g)).to(device)


def training_step(unet: nn.Module, resolution: int, batch: int, tokens: int, precision: str,
                  device: torch.device) -> Callable[[], None]:
    """One decoder training step on a fixed batch: epsilon loss (DDPMScheduler.add_noise through the harness's
    `diffusion_loss`), backward, fused AdamW as in `harness.training.train`. `unet(x_t, t, cond)` may be any
    module with `emb_dim` and `ctx_dim` attributes."""
    unet.to(device).train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4, fused=True)
    scheduler = make_train_scheduler(1000, "linear", "epsilon")
    x0 = (torch.rand(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
    cond = random_condition(unet, batch, tokens, device)
    generator = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = diffusion_loss(lambda x, t: unet(x, t, cond), x0, scheduler, generator)
        loss.backward()
        optimizer.step()

    return step


def peak_matmul_flops(n: int, dtype: torch.dtype, repeats: int, device: torch.device) -> dict[str, float]:
    """Best FLOP/s of an n x n by n x n matrix product over `repeats` runs (after one warm-up run), per
    wall-clock second and per CPU-second of this process: the peak MFU is read against."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))
    torch.mm(a, b)
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        sync(device)
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
    return {"wall": 2 * n ** 3 / wall, "cpu": 2 * n ** 3 / cpu}


# Operator kinds of the time breakdowns: the first kind whose fragment is in an aten operator's name takes it.
OP_KINDS = {"convolution backward": ("convolution_backward",), "convolution forward": ("convolution",),
            "normalisation": ("group_norm", "layer_norm"), "attention": ("attention", "softmax"),
            "activations": ("silu", "gelu"), "matrix products": ("mm", "matmul", "linear"),
            "copies and concatenation": ("copy", "cat", "contiguous", "to_copy"), "optimiser": ("adamw",)}


def op_kind_shares(prof: "torch.profiler.profile") -> dict[str, float]:
    """Share of a finished profile's self CPU time per kind of aten operator (`OP_KINDS`), largest first."""
    by_kind: dict[str, float] = {}
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue  # autograd and optimizer wrappers, labels: their time is in the aten operators they call
        kind = next((k for k, fragments in OP_KINDS.items() if any(f in event.key for f in fragments)), "other")
        by_kind[kind] = by_kind.get(kind, 0.0) + event.self_cpu_time_total
    total = sum(by_kind.values())
    return {kind: seconds / total for kind, seconds in sorted(by_kind.items(), key=lambda kv: -kv[1])}


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so that wall-clock timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#################################################################################
#                              Figures and output                               #
#################################################################################

def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and range of repeated measurements (robust to the odd slow repeat on a shared box)."""
    v = np.asarray(values, dtype=float)
    q1, median, q3 = np.quantile(v, [0.25, 0.5, 0.75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "min": float(v.min()),
            "max": float(v.max()), "n": int(len(v))}


def fmt_spread(s: Mapping[str, float], digits: int = 3) -> str:
    """A `spread` as one line: median (IQR, range, n)."""
    return f"{s['median']:.{digits}f} (IQR {s['q1']:.{digits}f}-{s['q3']:.{digits}f}, " \
           f"range {s['min']:.{digits}f}-{s['max']:.{digits}f}, n={s['n']})"


def write_result(name: str, payload: Mapping[str, Any]) -> Path:
    """results/benchmarks/<name>.json with the machine and the command line that produced it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    threads = [f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ else []
    record = {"command": " ".join([*threads, ".venv/bin/python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
              "machine": machine_info(), **payload}
    path.write_text(json.dumps(record, indent=2, default=float) + "\n")
    print(f"wrote {os.path.relpath(path, ROOT)}")
    return path


#################################################################################
#                           Cached pipeline artifacts                           #
#################################################################################

class ReuseOnlyCache(ArtifactCache):
    """An artifact cache that refuses to build (module level, so that pipeline workers can unpickle it)."""

    def __init__(self, root: Path, experiment: str) -> None:
        super().__init__(root)
        self.experiment = experiment

    def build(self, stage, version, config, inputs, builder, **options):
        key = artifact_key(stage, version, config, inputs)
        if not (self.root / stage / key / META_FILE).exists():
            sys.exit(f"error: no cached {stage} artifact {key} for this config in {self.root}; build it "
                     f"with `make run` (experiment={self.experiment}) or pass --build")
        return super().build(stage, version, config, inputs, builder, **options)


def pipeline_context(cfg: Config, allow_build: bool = False) -> Context:
    """The run's context, over its artifact cache, for `harness.runtime.pipeline.build`. By default the cache refuses
    to build: a benchmark should measure what `make run` trained, and silently retraining (after a code or
    config change moved a key) can take half an hour. With `allow_build` (the scripts' --build) missing
    artifacts are built by the harness's own stages."""
    ctx = Context.start(cfg)
    return ctx if allow_build else dataclasses.replace(ctx, cache=ReuseOnlyCache(ctx.cache.root, cfg.experiment_name))


def add_build_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--build", action="store_true",
                   help="build missing pipeline artifacts (default: use only what `make run` left in the cache)")
