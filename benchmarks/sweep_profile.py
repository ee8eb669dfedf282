"""Where the sweep's time goes: one cell per mode of the quick preset, profiled, and the whole sweep's cost
rebuilt from those cells and its plan.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sweep_profile.py [--guidance 3] [--build] [hydra overrides...]

Reads quick's trained decoders, prior and evaluator from the cache `make run` left (--build trains what is
missing; a cell's cost does not depend on how long its decoder trained, so `decoder.train.steps=10 --build`
profiles an empty cache in a few minutes). For each mode and sampling arm it samples the first prompt chunk's
cell at --guidance, as the sweep does (`SweepRunner.sample_cell`), under torch.profiler, and reports:
- the cell's time and its split into the parts the sweep labels (`harness.sampling.runner.PROFILE_LABELS`): vectors
  (prior draws), sampling (the decoder's model evaluations) and judging (probe and evaluation CLIP);
- model evaluations (rows through the UNet, guidance branches included), their FLOPs (torch's FLOP counter on
  one of the cell's forwards) and the sampling part's MFU against this machine's fp32 matmul peak;
- the share of profiled operator time per kind (`_common.OP_KINDS`).
Then the whole sweep: every cell of the plan, its evaluations (images x steps x the branches its guidance
scales need: one at guidance 1, two for a joint scale, three for separate text scales) at the measured
seconds per evaluation of its mode and arm, plus their measured judging time per cell and vectors time per
prior stream (a chunk's cells share its draws: `VectorSources.prior_draws`). The sum, in CPU
seconds of one thread, is what `workers` processes share; set it beside the sweep's recorded task times.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

import _common
from harness.line import Line
from harness.sampling.cell import Cell
from harness.sampling.runner import PROFILE_LABELS, SweepRunner

MATMUL = 1024  # side of the peak-throughput matmul
PEAK_REPEATS = 10  # best of: a shared machine's slow spells lower single products


class EvaluationCounter:
    """Counts the rows through a UNet's forward and keeps one row of its first call, to count FLOPs on."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet, self.rows, self.first = unet, 0, None
        self.handle = unet.register_forward_pre_hook(self.hook, with_kwargs=False)

    def hook(self, module: torch.nn.Module, args: tuple) -> None:
        x, t, cond = args
        self.rows += x.shape[0]
        if self.first is None:
            self.first = (x.clone(), t.clone(), cond)

    def flops_per_row(self) -> float:
        """FLOPs of the first forward (matrix products, convolutions, attention) divided by its rows."""
        x, t, cond = self.first
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            self.unet(x, t, cond)
        return counter.get_total_flops() / x.shape[0]


def branches(runner: SweepRunner, cell: Cell) -> int:
    """Guidance branches a cell's forwards batch: those with a nonzero weight (`harness.decoder.guided`)."""
    from harness.conditioning.base import guidance_weights

    text_scale = cell.line.text_scale
    weights = (guidance_weights(cell.guidance) if text_scale is None
               else guidance_weights(vector_scale=cell.guidance, text_scale=text_scale))
    return sum(w != 0 for w in weights)


def profile_cell(runner: SweepRunner, cell: Cell, ids: list[int], peak: float) -> dict:
    """One cell sampled under the profiler: its parts' seconds, evaluations, FLOPs, MFU and operator kinds."""
    decoder = runner.decoder(cell.line.mode, cell.seed)
    runner.sources.vectors.drawn.clear()  # the cell draws its prior vectors, as the first cell of a chunk does
    counter = EvaluationCounter(decoder.unet)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        runner.sample_cell(cell, ids)
    wall = time.perf_counter() - start
    counter.handle.remove()
    parts = {part: next((e.cpu_time_total / 1e6 for e in prof.key_averages() if e.key == label), 0.0)
             for part, label in PROFILE_LABELS.items()}
    images = len(ids) * runner.cfg.sweep.samples_per_prompt
    flops = counter.flops_per_row() * counter.rows
    return {"cell": cell.name, "seconds": wall, "parts_s": parts, "images": images, "evaluations": counter.rows,
            "evaluations_per_image_and_branch": counter.rows / images / branches(runner, cell),
            "seconds_per_evaluation": parts["sampling"] / counter.rows, "sampling_flops": flops,
            "sampling_mfu_vs_fp32_peak": flops / parts["sampling"] / peak,
            "time_by_op_kind": _common.op_kind_shares(prof)}


def whole_sweep(runner: SweepRunner, cells: list[Cell], measured: dict[tuple[str, str], dict],
                n_prompts: int) -> dict:
    """The plan's cells at the measured costs of their mode and arm: CPU seconds per part, evaluations, per mode."""
    from harness.sampling.cell import chunks

    cfg = runner.cfg
    sizes = [len(c) for c in chunks(n_prompts, cfg.sweep.cells_per_chunk)]
    out: dict[str, dict] = {}
    streams = set()  # (mode, seed, chunk, draws): prior draws made once and reused by the chunk's other cells
    for cell in cells:
        m = measured[cell.line.mode, cell.line.arm]
        images = sizes[cell.chunk] * cfg.sweep.samples_per_prompt
        evaluations = images * branches(runner, cell) * m["evaluations_per_image_and_branch"]
        scale = images / m["images"]  # vectors and judging grow with the cell's images
        row = out.setdefault(cell.line.mode, {"cells": 0, "evaluations": 0.0, "sampling_s": 0.0, "vectors_s": 0.0,
                                         "judging_s": 0.0, "other_s": 0.0})
        row["cells"] += 1
        row["evaluations"] += evaluations
        row["sampling_s"] += evaluations * m["seconds_per_evaluation"]
        stream = (cell.line.mode, cell.seed, cell.chunk, runner.arms[cell.line.arm].draws)
        row["vectors_s"] += 0.0 if stream in streams else m["parts_s"]["vectors"] * scale
        streams.add(stream)
        row["judging_s"] += m["parts_s"]["judging"] * scale
        row["other_s"] += (m["seconds"] - sum(m["parts_s"].values())) * scale
    return out


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--guidance", type=float, default=3.0, help="the profiled cells' guidance scale")
    _common.add_build_flag(parser)
    args, overrides = parser.parse_known_args()
    _common.set_threads(args.threads)
    from harness.runtime import pipeline
    from harness.cli import compose
    from harness.data.prompts import sweep_prompts
    from harness.sampling.cell import mode_plans, plan
    from harness.sampling.load import load_runner

    cfg = compose(["experiment=quick", *overrides])
    if args.guidance not in cfg.sweep.guidance:
        parser.error(f"--guidance {args.guidance:g} is not one of the sweep's scales {list(cfg.sweep.guidance)}")
    ctx = pipeline.build(_common.pipeline_context(cfg, args.build),
                         through=("decoder", "prior", *pipeline.judge_stages(cfg)))
    prompts = sweep_prompts(ctx)
    cells = plan(cfg, mode_plans(cfg), len(prompts))
    runner = load_runner(ctx, prompts)
    peak = _common.peak_matmul_flops(MATMUL, torch.float32, PEAK_REPEATS, runner.device)["wall"]
    ids = list(range(min(cfg.sweep.cells_per_chunk, len(prompts))))
    print(f"{torch.get_num_threads()} thread(s); fp32 matmul peak {peak / 1e9:.1f} GFLOP/s; one cell per mode and arm: "
          f"{len(ids)} prompts x {cfg.sweep.samples_per_prompt} samples, guidance {args.guidance:g}, "
          f"{cfg.sweep.sampler} {cfg.sweep.sample_steps} steps")
    measured = {}
    for mode, arm in dict.fromkeys((c.line.mode, c.line.arm) for c in cells):
        cell = next(c for c in cells if c.line == Line(mode, arm) and c.guidance == args.guidance and c.chunk == 0)
        measured[mode, arm] = m = profile_cell(runner, cell, ids, peak)
        p = m["parts_s"]
        print(f"{mode + ' ' + arm:>20}: {m['seconds']:5.1f} s = sampling {p['sampling']:5.1f} + vectors {p['vectors']:4.1f} + "
              f"judging {p['judging']:4.1f} + other {m['seconds'] - sum(p.values()):4.1f}; "
              f"{m['evaluations']} evaluations, {m['seconds_per_evaluation'] * 1e3:.2f} ms each, "
              f"MFU {m['sampling_mfu_vs_fp32_peak']:.0%}")
        print(f"{'':>22}ops: " + ", ".join(f"{k} {v:.0%}" for k, v in m["time_by_op_kind"].items() if v >= 0.01))
    sweep = whole_sweep(runner, cells, measured, len(prompts))
    total = {k: sum(r[k] for r in sweep.values()) for k in next(iter(sweep.values()))}
    seconds = total["sampling_s"] + total["vectors_s"] + total["judging_s"] + total["other_s"]
    print(f"whole sweep: {total['cells']} cells, {total['evaluations'] / 1e6:.2f} M evaluations; "
          f"{seconds:.0f} CPU-s of one thread: sampling {total['sampling_s'] / seconds:.0%}, "
          f"vectors {total['vectors_s'] / seconds:.0%}, judging {total['judging_s'] / seconds:.0%}, "
          f"other {total['other_s'] / seconds:.0%}")
    for mode, r in sweep.items():
        print(f"{mode:>10}: {r['cells']} cells, {r['evaluations'] / 1e6:.2f} M evaluations, "
              f"{sum(v for k, v in r.items() if k.endswith('_s')):.0f} CPU-s")
    _common.write_result("sweep_profile", {
        "guidance": args.guidance, "prompts_per_cell": len(ids), "samples_per_prompt": cfg.sweep.samples_per_prompt,
        "sampler": cfg.sweep.sampler, "sample_steps": cfg.sweep.sample_steps, "fp32_peak_flops_per_s": peak,
        "cells": [{"mode": mode, "arm": arm, **m} for (mode, arm), m in measured.items()], "whole_sweep": {"per_mode": sweep, "total": total, "cpu_seconds": seconds}})


if __name__ == "__main__":
    main()
