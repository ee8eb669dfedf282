"""Samplers on the same trained decoder and the same paired noise: DDIM 100 steps against DPM-Solver++ 10, 20
and 25 steps, each with classifier-free guidance run as one batched forward (`harness.decoder.guided`).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/samplers.py [--prompts-per-kind 32] [hydra overrides...]

Reads the quick preset's trained `clip_text` decoder, conditioning CLIP and attribute probe from the cache
left by `make run` (it trains nothing unless given --build). Every sampler starts sample j of prompt i from the same
noise (`paired_noise`), so the samplers are compared sample by sample. Per sampler it reports:
- model evaluations per image, counted at the model (guidance doubles them);
- images/s of sampling alone (judging excluded), per wall-clock second and per CPU-second of this process
  (with one thread on a shared machine the second leaves out the time other jobs held the core);
- attribute accuracy (probe, share of the caption's attributes a sample shows) and FID (probe features against
  fresh real images of the same prompts), with 95% intervals over prompts, as the sweep computes them;
- against DDIM 100: the paired interval of the accuracy and FID differences (per-prompt differences, so prompt
  difficulty cancels), the pixel RMSE between paired samples, and the share of samples the
  probe reads identically.
Any extra argument is a Hydra override of the composed config (e.g. `conditioning=[glide]`).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np
import torch

import _common
from harness.conditioning.base import ModeInputs
from harness.config import Config
from harness.config.schema import IMAGE
from harness.runtime.context import Context
from harness.data.prompts import real_images
from harness.data.world import Prompt
from harness.decoder.diffusion import SAMPLERS as SAMPLER_CLASSES, ModelFn, guided, make_sampler, \
    make_train_scheduler, paired_noise, sample
from harness.decoder.stage import Decoder
from harness.metrics.intervals import mean_interval
from harness.metrics.table import Group, per_prompt_values, set_metric_contributions
from harness.sampling.runner import Judge, judge_images, reference_seed

SAMPLERS = ["ddim:100", "dpmpp:10", "dpmpp:20", "dpmpp:25"]  # the default --samplers; the first is the reference
SAMPLER_NAMES = tuple(SAMPLER_CLASSES)
PROMPTS_PER_BATCH = 16  # x samples per prompt x guidance branches = rows per forward


@dataclass
class Setup:
    cfg: Config
    decoder: Decoder
    ctx: Context  # the pipeline's artifacts and the world
    prompts: list[Prompt]
    tokens: torch.Tensor  # [P, L]
    text_vectors: torch.Tensor  # [P, D]
    judge: Judge


def load_setup(overrides: list[str], device: torch.device, allow_build: bool) -> Setup:
    """The trained decoder, prompts and judge of the composed config, from the cache (see --build)."""
    from harness.runtime import pipeline
    from harness.cli import compose
    from harness.clip import encode_texts, load_clip
    from harness.data.prompts import sweep_prompts
    from harness.decoder import stage as decoder_stage
    from harness.evaluator import probe as probe_stage

    # clip_text by default: its condition needs no prior, so the sampler is all that differs between runs.
    cfg = compose(["experiment=quick", "conditioning=[clip_text]", *overrides])
    mode, seed = next(iter(cfg.conditioning)), cfg.seeds_for(next(iter(cfg.conditioning)))[0]
    ctx = pipeline.build(_common.pipeline_context(cfg, allow_build), through=("embeddings", "probe"))
    artifact = pipeline.run_stage("decoder", ctx.for_task(mode=mode, seed=seed))
    context = decoder_stage.clip_context(ctx["clip"], ctx["embeddings"], device, cfg.precision)
    decoder = decoder_stage.load(artifact, cfg, mode, context, device)
    if decoder.mode.cfg.vector_source == IMAGE:
        raise SystemExit(f"error: {mode} samples image vectors from the prior; pick a text-conditioned mode")
    prompts = sweep_prompts(ctx)
    clip_model, tokenizer = load_clip(ctx["clip"], device)
    captions = [p.caption for p in prompts]
    probe = probe_stage.load_probe(ctx["probe"], device)
    return Setup(cfg, decoder, ctx, prompts, tokenizer(captions).long(),
                 encode_texts(clip_model, tokenizer, captions, precision=cfg.precision).cpu(),
                 Judge(read=probe.read, features=probe.features, embed_images=None, embed_texts=None))


#################################################################################
#                                   Sampling                                    #
#################################################################################

class CountingModel:
    """A guided model_fn that counts model evaluations: rows of x_t times the guidance branches it batches."""

    def __init__(self, model_fn: ModelFn, branches: int) -> None:
        self.model_fn, self.branches, self.rows = model_fn, branches, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0] * self.branches
        return self.model_fn(x, t)


def run_sampler(setup: Setup, name: str, steps: int, guidance: float, device: torch.device) -> dict:
    """uint8 images [P, K, H, W, 3] from every prompt's paired noise, with sampling time and evaluation count."""
    cfg, decoder = setup.cfg, setup.decoder
    k, res = cfg.sweep.samples_per_prompt, cfg.data.resolution
    train = make_train_scheduler(cfg.decoder.num_train_timesteps, cfg.decoder.beta_schedule, cfg.decoder.prediction)
    sampler = make_sampler(name, train, steps)
    images, seconds, cpu_seconds, evaluations = [], 0.0, 0.0, 0
    for start in range(0, len(setup.prompts), PROMPTS_PER_BATCH):
        ids = torch.arange(start, min(len(setup.prompts), start + PROMPTS_PER_BATCH))
        rows, samples = ids.repeat_interleave(k), torch.arange(k).repeat(len(ids))
        inputs = ModeInputs(setup.tokens[rows].to(device), setup.text_vectors[rows].to(device))
        noise = paired_noise(cfg.sweep.seed, rows, samples, (3, res, res), device=device)
        with torch.no_grad():
            branches, weights = decoder.mode.guidance_branches(inputs, guidance)
            # `guided` evaluates the branches with a non-zero weight, in one batched forward.
            counted = CountingModel(guided(decoder, branches, weights), sum(w != 0 for w in weights))
            _common.sync(device)
            clock, cpu_clock = time.perf_counter(), time.process_time()
            x0 = sample(counted, noise, sampler, precision=cfg.precision)
            _common.sync(device)
        seconds += time.perf_counter() - clock
        cpu_seconds += time.process_time() - cpu_clock
        evaluations += counted.rows
        pixels = ((x0.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        images.append(pixels.reshape(len(ids), k, res, res, 3).numpy())
    images = np.concatenate(images)
    n = images.shape[0] * images.shape[1]
    return {"images": images, "seconds": seconds, "evaluations_per_image": evaluations / n,
            "images_per_s": n / seconds, "images_per_cpu_s": n / cpu_seconds}


#################################################################################
#                                   Scoring                                     #
#################################################################################

def judged_group(setup: Setup, label: str, images: np.ndarray) -> Group:
    """The probe's readings and features of images [P, K, H, W, 3], as a metrics-table group."""
    judged = judge_images(setup.judge, images)
    k = images.shape[1]
    readings = json.loads(str(judged["readings"]))
    return Group(label, float("nan"), "-", 0, np.arange(len(images)), judged["features"],
                 [readings[i:i + k] for i in range(0, len(readings), k)], None, np.full(len(images), np.nan), {})


def interval(values: np.ndarray) -> list[float]:
    ci = mean_interval(values)
    return [ci.value, ci.low, ci.high]


def score(setup: Setup, group: Group, real: np.ndarray) -> tuple[dict, dict]:
    """(figures, per-prompt values) of one sampler's samples; FID enters as per-prompt pseudo-values."""
    values = per_prompt_values(group, setup.prompts, setup.ctx.world, None)
    values["fid"] = set_metric_contributions(group.features, real)["fid"]
    figures = {m: interval(values[m]) for m in ("attribute_accuracy", "binding_accuracy", "fid")}
    return figures, values


def versus_reference(ours: dict, ref: dict) -> dict:
    """Paired comparisons of one sampler with the reference on the same prompts and noise: the mean of the
    per-prompt differences (pseudo-value differences for FID) with its t interval."""
    acc, binding, fid_diff = (mean_interval(ours["values"][m] - ref["values"][m])
                              for m in ("attribute_accuracy", "binding_accuracy", "fid"))
    a, b = ours["images"].astype(np.float64) / 127.5 - 1, ref["images"].astype(np.float64) / 127.5 - 1
    same = [x == y for x, y in zip(flat_readings(ours["group"]), flat_readings(ref["group"]))]
    return {"attribute_accuracy_difference": [acc.value, acc.low, acc.high],
            "binding_accuracy_difference": [binding.value, binding.low, binding.high],
            "fid_difference": [fid_diff.value, fid_diff.low, fid_diff.high],
            "pixel_rmse": float(np.sqrt(np.mean((a - b) ** 2))), "same_probe_reading": float(np.mean(same))}


def flat_readings(group: Group) -> list[dict]:
    return [r for prompt in group.readings for r in prompt]


#################################################################################
#                                      Main                                     #
#################################################################################

def parse_sampler(parser: argparse.ArgumentParser, spec: str) -> tuple[str, int]:
    """("dpmpp", 15) from "dpmpp:15"; a malformed spec stops with a one-line usage error naming it."""
    name, _, steps = spec.partition(":")
    if name not in SAMPLER_NAMES or not steps.isdigit() or int(steps) < 1:
        parser.error(f"--samplers: {spec!r} is not NAME:STEPS with NAME one of {', '.join(SAMPLER_NAMES)} and "
                     f"STEPS >= 1")
    return name, int(steps)


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--prompts-per-kind", type=int, default=32)
    parser.add_argument("--samples-per-prompt", type=int, default=6)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--samplers", nargs="+", default=SAMPLERS, metavar="NAME:STEPS",
                        help="samplers to compare, the first being the reference (default: %(default)s)")
    parser.add_argument("--out", default="samplers", help="results/benchmarks/<OUT>.json")
    _common.add_build_flag(parser)
    args, overrides = parser.parse_known_args()
    samplers = [parse_sampler(parser, spec) for spec in args.samplers]  # checked before any work
    _common.set_threads(args.threads)
    from harness.runtime.device import resolve_device

    device = resolve_device(args.device)
    setup = load_setup([f"sweep.prompts_per_kind={args.prompts_per_kind}",
                        f"sweep.samples_per_prompt={args.samples_per_prompt}", *overrides], device, args.build)
    cfg = setup.cfg
    seed = cfg.sweep.seed
    references = real_images(setup.ctx, setup.prompts, list(range(len(setup.prompts))), args.samples_per_prompt,
                             lambda i: reference_seed(seed, i))
    real = judge_images(setup.judge, references)["features"]
    print(f"{len(setup.prompts)} prompts x {args.samples_per_prompt} samples, mode {next(iter(cfg.conditioning))}, "
          f"guidance {args.guidance:g}, {torch.get_num_threads()} thread(s)")

    runs = []
    for name, steps in samplers:
        run = run_sampler(setup, name, steps, args.guidance, device)
        run["group"] = judged_group(setup, f"{name}{steps}", run["images"])
        run["figures"], run["values"] = score(setup, run["group"], real)
        run["figures"].update(sampler=name, steps=steps, model_evaluations_per_image=run["evaluations_per_image"],
                              sampling_seconds=run["seconds"], images_per_s=run["images_per_s"],
                              images_per_cpu_s=run["images_per_cpu_s"])
        runs.append(run)
    for run in runs[1:]:
        run["figures"]["versus_" + "".join(map(str, samplers[0]))] = versus_reference(run, runs[0])
    for run in runs:
        print_figures(run["figures"])
    _common.write_result(args.out, {
        "mode": next(iter(cfg.conditioning)), "guidance": args.guidance, "prompts": len(setup.prompts),
        "samples_per_prompt": args.samples_per_prompt, "prompt_kinds": list(cfg.sweep.prompt_kinds),
        "intervals": "95% t intervals over prompts (FID: jackknife pseudo-values); differences are paired (same "
                     "prompts and noise)",
        "results": [run["figures"] for run in runs]})


def print_figures(f: dict) -> None:
    acc, fid = f["attribute_accuracy"], f["fid"]
    line = (f"{f['sampler']:>5} {f['steps']:>3}: {f['model_evaluations_per_image']:5.0f} evals/image, "
            f"{f['images_per_s']:6.1f} images/s, attribute accuracy {acc[0]:.3f} [{acc[1]:.3f}, {acc[2]:.3f}], "
            f"FID {fid[0]:.1f} [{fid[1]:.1f}, {fid[2]:.1f}]")
    versus = next((v for k, v in f.items() if k.startswith("versus_")), None)
    if versus:
        d, e = versus["attribute_accuracy_difference"], versus["fid_difference"]
        line += (f"\n{'':>10}vs reference: accuracy {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}], "
                 f"FID {e[0]:+.1f} [{e[1]:+.1f}, {e[2]:+.1f}], pixel RMSE {versus['pixel_rmse']:.3f}, "
                 f"same probe reading {versus['same_probe_reading']:.1%}")
    print(line)


if __name__ == "__main__":
    main()
