"""Model FLOPs utilisation (MFU) of decoder training: achieved FLOP/s of a training step over this machine's
measured peak matrix-multiply FLOP/s.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mfu.py                 # tiny and small, 16 px, batch 64

- Peak: the best of --peak-repeats products of two --matmul x --matmul matrices (2 n^3 FLOPs each), in bf16
  and in fp32, with --threads threads and with all cores. bf16 is the figure the issue asks MFU against; on a
  CPU without bf16 matrix units (as the development machine) training runs in fp32 and the fp32 peak is the
  honest denominator.
- Step FLOPs: torch.utils.flop_counter.FlopCounterMode over one training step (forward + backward of the
  epsilon loss; the fused AdamW update has no counted FLOPs, as MFU conventions leave the optimiser out). It
  counts matrix products, convolutions and attention, not normalisation or element-wise work, so MFU is the
  share of peak spent on useful matrix work.
- Step time: median of --steps timed steps after a warm-up, same step as benchmarks/unet_vs_diffusers.py.
- Where the step's time goes: torch.profiler's self CPU time of --steps steps, summed by kind of operator
  (`_common.OP_KINDS`: convolution forward and backward, normalisation, attention, activations, matrix products,
  copies and concatenation, the optimiser), as shares of the profiled time.
The step runs with --threads threads, so MFU is read against the peak at that thread count. MFU is given per
wall-clock second (the usual figure) and per CPU-second of this process, step and peak alike: on a shared
machine with one thread the second leaves out the time other jobs held the core.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import _common
from harness.decoder import UNET_SIZES, build_unet
from harness.runtime.device import autocast, resolve_device

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
def peaks(n: int, repeats: int, thread_counts: list[int], device: torch.device) -> dict[str, dict[int, dict]]:
    """{precision: {threads: {"wall": FLOP/s, "cpu": FLOP per CPU-second}}}; restores the thread count."""
    own = torch.get_num_threads()
    out: dict[str, dict[int, dict]] = {p: {} for p in DTYPES}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for precision, dtype in DTYPES.items():
            out[precision][threads] = _common.peak_matmul_flops(n, dtype, repeats, device)
    torch.set_num_threads(own)
    return out


def step_flops(step: Callable[[], None]) -> int:
    """FLOPs of one call of `step`, as FlopCounterMode counts them."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def step_seconds(step: Callable[[], None], steps: int, warmup: int,
                 device: torch.device) -> tuple[list[float], list[float]]:
    """(wall-clock, process CPU) seconds of each timed step."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(steps):
        _common.sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        _common.sync(device)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def time_by_op_kind(step: Callable[[], None], steps: int) -> dict[str, float]:
    """Share of the profiled self CPU time of `steps` calls of `step` per kind of operator (`_common.OP_KINDS`)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return _common.op_kind_shares(prof)


def forward_flops_per_image(size: str, resolution: int, tokens: int, device: torch.device) -> float:
    """Forward FLOPs of one image (what the preset comments in harness/decoder/unet.py quote)."""
    unet = build_unet(size, resolution).to(device)
    cond = _common.random_condition(unet, 1, tokens, device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(torch.zeros(1, 3, resolution, resolution, device=device), torch.zeros(1, device=device), cond)
    return counter.get_total_flops()


def measure(size: str, args: argparse.Namespace, peak: dict[str, dict[int, dict]], device: torch.device) -> dict:
    """FLOPs, time and MFU of one decoder size's training step."""
    torch.manual_seed(0)
    unet = build_unet(size, args.resolution)
    step = _common.training_step(unet, args.resolution, args.batch, args.tokens, args.precision, device)
    with autocast(device, args.precision):
        flops = step_flops(step)
    wall, cpu = step_seconds(step, args.steps, args.warmup, device)
    seconds, cpu_seconds = float(np.median(wall)), float(np.median(cpu))
    achieved = flops / seconds
    return {"size": size, "parameters": sum(p.numel() for p in unet.parameters()),
            "forward_flops_per_image": forward_flops_per_image(size, args.resolution, args.tokens, device),
            "step_flops": flops, "step_seconds": _common.spread(wall), "step_cpu_seconds": _common.spread(cpu),
            "images_per_s": args.batch / seconds, "achieved_flops_per_s": achieved,
            "mfu_vs_bf16_peak": achieved / peak["bf16"][args.threads]["wall"],
            "mfu_vs_fp32_peak": achieved / peak["fp32"][args.threads]["wall"],
            "mfu_vs_fp32_peak_cpu_time": flops / cpu_seconds / peak["fp32"][args.threads]["cpu"],
            "time_by_op_kind": time_by_op_kind(step, args.steps)}


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=sorted(UNET_SIZES))
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=20, help="context tokens, as decoder_throughput.py")
    parser.add_argument("--precision", default="fp32", choices=list(DTYPES), help="precision of the training step")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--matmul", type=int, default=2048, help="side of the square peak-throughput matmul")
    parser.add_argument("--peak-repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    _common.set_threads(args.threads)
    device = resolve_device(args.device)

    thread_counts = sorted({args.threads, os.cpu_count() or 1}) if device.type == "cpu" else [args.threads]
    peak = peaks(args.matmul, args.peak_repeats, thread_counts, device)
    for precision, by_threads in peak.items():
        print(f"peak {precision} matmul {args.matmul}: " +
              ", ".join(f"{f['wall'] / 1e9:.1f} GFLOP/s ({f['cpu'] / 1e9:.1f} per CPU-s) on {t} thread(s)"
                        for t, f in by_threads.items()))
    results = []
    for size in args.sizes:
        r = measure(size, args, peak, device)
        results.append(r)
        print(f"{size:>6} @ {args.resolution} px, batch {args.batch}, {args.precision}: "
              f"{r['step_flops'] / 1e9:.2f} GFLOP/step ({r['forward_flops_per_image'] / 1e6:.0f} MFLOP forward/image), "
              f"{r['step_seconds']['median']:.3f} s/step, {r['achieved_flops_per_s'] / 1e9:.2f} GFLOP/s: "
              f"MFU {r['mfu_vs_bf16_peak']:.1%} of bf16 peak, {r['mfu_vs_fp32_peak']:.1%} of fp32 peak "
              f"({r['mfu_vs_fp32_peak_cpu_time']:.1%} in CPU time)")
        print("        time: " + ", ".join(f"{kind} {share:.0%}" for kind, share in r["time_by_op_kind"].items()))
    _common.write_result("mfu", {"resolution": args.resolution, "batch": args.batch, "context_tokens": args.tokens,
                                 "precision": args.precision, "matmul_size": args.matmul,
                                 "peak_flops_per_s": {p: {str(t): f for t, f in v.items()} for p, v in peak.items()},
                                 "decoders": results})


if __name__ == "__main__":
    main()
