"""The guidance sweep (docs/questions.md; docs/design.md, section 5): every trained mode x sampling arm x guidance
scale, K samples for each of P held-out prompts, from paired noise.

Work is cut into cells (mode, seed, guidance, arm, prompt chunk). Each cell is sampled, read by the
evaluator (probe attributes, probe features, evaluation-CLIP embeddings) and saved atomically as soon as it
finishes, inside the sweep artifact's resumable work folder; a killed sweep restarts, finds the finished
cells and computes only the rest. Nothing here depends on which mode or arm it samples: the conditioning package
says where a mode's vectors come from (`harness.conditioning.sampling`), an arm which modes it applies to, how it
perturbs their vectors and how it guides (`harness.arms`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.profiler import record_function

from harness.runtime import parallel, progress
from harness.arms.base import PLAIN, Guidance, Plain, SamplingArm, arm_class, draws_from_prior
from harness.runtime.cache import Artifact
from harness.conditioning.base import ModeInputs, mode_class
from harness.conditioning.sampling import VectorSources, draw_seed, sampling_vectors
from harness.config import MODE_KEYS, Config, key_fields
from harness.runtime.context import Context
from harness.seeds import REAL_REFERENCES, stream_seed
from harness.data.prompts import SweepPrompt
from harness.decoder.diffusion import NoiseLevels, make_sampler, make_train_scheduler, paired_noise, sample, \
    step_generators
from harness.decoder.stage import Decoder
from harness.decoder.attention_record import record_attention
from harness.metrics.table import NO_ABLATION, WITHOUT
from harness.runtime.device import effective_precision, resolve_device
from harness.errors import ConfigError

log = logging.getLogger(__name__)
# Labels of a cell's three parts in a torch.profiler trace (benchmarks/sweep_profile.py reads them); a label
# costs nothing when no profiler is running.
PROFILE_LABELS = {"vectors": "sweep.vectors", "sampling": "sweep.sampling", "judging": "sweep.judging"}
PER_TOKEN = "_per_token"  # attention group name suffix: mean mass per attendable token of the group
VERSION = "6"  # 2: DPM-Solver++ thresholds its x0 predictions; 3: attention mass per prompt; 4: prompts drawn right;
# 5: attention at every guidance scale, per token too; 6: sampling arms, each cell's sampling time
REAL = "real"  # the pseudo-mode holding real reference images: the ceiling every mode is read against
CELLS = "cells"  # the sweep artifact's folder of finished cells


@dataclass
class Sources:
    """Where sampling inputs come from: the modes' vectors (`harness.conditioning.sampling`) and the real images."""
    vectors: VectorSources
    # prompt ids, k, prompt id -> seed: uint8 [P, K, H, W, 3] real images, k per prompt on the world, on a
    # dataset as many as every held-out caption has (harness.data.prompts.real_images)
    real_images: Callable[[list[int], int, Callable[[int], int]], np.ndarray]


@dataclass
class Judge:
    """The evaluator, never the conditioning CLIP: features for the set and diversity metrics, evaluation-CLIP
    embeddings, and on the shapes world the probe's readings of each image's attributes."""
    read: Callable[[np.ndarray], list[dict]] | None
    features: Callable[[np.ndarray], torch.Tensor]
    embed_images: Callable[[np.ndarray], torch.Tensor] | None
    embed_texts: Callable[[list[str]], torch.Tensor] | None


@dataclass(frozen=True)
class Cell:
    mode: str
    seed: int
    guidance: float
    arm: str
    chunk: int
    ablation: str = NO_ABLATION  # a token group hidden from attention at sampling (the reliance test)
    text_guidance: float | None = None  # a separate text scale (two-pathway modes); None: one joint scale

    @property
    def name(self) -> str:
        scales = f"g{self.guidance:g}" + ("" if self.text_guidance is None else f"t{self.text_guidance:g}")
        name = f"{self.mode}__s{self.seed}__{scales}__{self.arm}__c{self.chunk}"
        return name if self.ablation == NO_ABLATION else f"{name}__{self.ablation}"

    @property
    def label(self) -> str:
        """The line this cell belongs to in the tables: the mode, the mode without a token group, or the mode at
        a separate text scale (`combined@text2`, a variant like a CLIP variant)."""
        label = self.mode if self.ablation == NO_ABLATION else f"{self.mode}{WITHOUT}{self.ablation}"
        return label if self.text_guidance is None else f"{label}@text{self.text_guidance:g}"


def chunks(n: int, size: int) -> list[range]:
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


@dataclass(frozen=True)
class ModePlan:
    """How one mode is swept."""
    arms: list[str]  # every arm it is sampled under
    baselines: list[str]  # its own way of sampling (plain, or prior-draw policies): the reliance cells use these
    token_groups: tuple[str, ...]  # what its attention sees; with two, each is hidden in turn (reliance)
    text_arms: list[str]  # arms also sampled at each separate text scale (modes with two pathways)


def plan(cfg: Config, modes: dict[str, ModePlan], n_prompts: int) -> list[Cell]:
    """Every cell of the sweep, in a fixed order (modes, seeds, guidance, arms, chunks), then the reliance
    cells: for modes with two token groups, each group hidden in turn at `sweep.reliance_guidance`, under each
    of the mode's baseline arms; then the cells at separate text scales."""
    n_chunks = len(chunks(n_prompts, cfg.sweep.cells_per_chunk))
    cells = [Cell(mode, seed, float(g), arm, c)
             for mode, p in modes.items() for seed in cfg.seeds_for(mode) for g in cfg.sweep.guidance
             for arm in p.arms for c in range(n_chunks)]
    cells += [Cell(mode, seed, float(g), arm, c, group)
              for mode, p in modes.items() if len(p.token_groups) > 1 for seed in cfg.seeds_for(mode)
              for g in cfg.sweep.reliance_guidance for arm in p.baselines for group in p.token_groups
              for c in range(n_chunks)]
    cells += [Cell(mode, seed, float(g), arm, c, text_guidance=float(t))
              for mode, p in modes.items() for seed in cfg.seeds_for(mode) for t in cfg.sweep.text_guidance
              for g in cfg.sweep.guidance for arm in p.text_arms for c in range(n_chunks)]
    return cells


def save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def judge_images(judge: Judge, images: np.ndarray) -> dict[str, np.ndarray]:
    """Evaluator outputs for uint8 images [P, K, H, W, 3], kept per (prompt, sample)."""
    p, k = images.shape[:2]
    flat = images.reshape(p * k, *images.shape[2:])
    out = {"images": images, "features": judge.features(flat).float().cpu().numpy().reshape(p, k, -1)}
    if judge.read is not None:
        out["readings"] = np.array(json.dumps(judge.read(flat)))
    if judge.embed_images is not None:
        out["clip"] = judge.embed_images(flat).float().cpu().numpy().reshape(p, k, -1)
    return out


class SweepRunner:
    """Samples the cells of one sweep; the pipeline hands it the trained decoders, the arms and the evaluator."""

    def __init__(self, cfg: Config, prompts: list[SweepPrompt], decoders: dict[tuple[str, int], Callable[[], Decoder]],
                 sources: Sources, judge: Judge) -> None:
        self.cfg, self.prompts, self.decoders = cfg, prompts, decoders
        self.sources, self.judge = sources, judge
        self.device = resolve_device(cfg.device)
        train = make_train_scheduler(cfg.decoder.num_train_timesteps, cfg.decoder.beta_schedule,
                                     cfg.decoder.prediction)
        self.sampler = make_sampler(cfg.sweep.sampler, train, cfg.sweep.sample_steps)
        self.levels = NoiseLevels(train)
        self.arms = build_arms(cfg)
        self._loaded: dict[tuple[str, int], Decoder] = {}

    def decoder(self, mode: str, seed: int) -> Decoder:
        if (mode, seed) not in self._loaded:
            self._loaded.clear()  # one decoder in memory at a time
            self._loaded[(mode, seed)] = self.decoders[(mode, seed)]()
        return self._loaded[(mode, seed)]

    def sample_cell(self, cell: Cell, ids: list[int]) -> dict[str, np.ndarray]:
        k, res = self.cfg.sweep.samples_per_prompt, self.cfg.data.resolution
        decoder = self.decoder(cell.mode, cell.seed)
        arm = self.arms[cell.arm]
        # One stream per chunk, shared by every guidance scale and arm, so that they are paired.
        seed = draw_seed(self.cfg.sweep.seed, cell.chunk, cell.seed)
        with record_function(PROFILE_LABELS["vectors"]):
            vectors = sampling_vectors(type(decoder.mode), arm, self.sources.vectors, ids, k, seed)
        rows = torch.tensor(ids).repeat_interleave(k)
        samples = torch.arange(k).repeat(len(ids))
        inputs = ModeInputs(self.sources.vectors.tokens[rows].to(self.device),
                            vectors.text.reshape(len(rows), -1).to(self.device),
                            None if vectors.image is None else vectors.image.reshape(len(rows), -1).to(self.device))
        noise = paired_noise(self.cfg.sweep.seed, rows, samples, (3, res, res), device=self.device)
        generators = step_generators(self.cfg.sweep.seed, rows, samples) if self.cfg.sweep.sampler == "ddpm" else None

        with torch.no_grad(), record_function(PROFILE_LABELS["sampling"]):
            branches, weights = decoder.mode.guidance_branches(inputs, cell.guidance, text_scale=cell.text_guidance)
            if cell.ablation != NO_ABLATION:
                branches = [branch.without(cell.ablation) for branch in branches]
            model_fn = arm.model_fn(decoder, Guidance(branches, weights, cell.guidance, self.levels, vectors.seed))
            # Attention mass at every guidance scale, of the conditional branch: it comes first in the guided
            # batch (`guidance_branches`), so its rows are the first len(rows) of each recorded forward.
            if decoder.mode.has_tokens:
                with record_attention(decoder.unet, rows=len(rows)) as recorder:
                    x0 = sample(model_fn, noise, self.sampler, generators, precision=self.cfg.precision)
                # layer -> token group -> per-prompt mass (mean over the prompt's K samples)
                per_token = recorder.per_token()
                attention = {layer: {name + suffix: values.reshape(len(ids), k).mean(dim=1).tolist()
                                     for suffix, source in (("", groups), (PER_TOKEN, per_token[layer]))
                                     for name, values in source.items()}
                             for layer, groups in recorder.per_sample().items()}
            else:
                x0 = sample(model_fn, noise, self.sampler, generators, precision=self.cfg.precision)
                attention = {}
        images = ((x0.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        images = images.permute(0, 2, 3, 1).reshape(len(ids), k, res, res, 3).numpy()
        with record_function(PROFILE_LABELS["judging"]):
            out = judge_images(self.judge, images)
        out["attention"] = np.array(json.dumps(attention))
        read = vectors.image if vectors.image is not None else vectors.text
        out["prior_spread"] = (vector_spread(read) if decoder.mode.vector_path is not None and varies(read)
                               else np.full(len(ids), np.nan))
        return out

    def run(self, cells: list[Cell], cell_dir: Path) -> int:
        """Sample and judge `cells`, saving each as it finishes; returns how many were computed."""
        cell_dir.mkdir(parents=True, exist_ok=True)
        prompt_chunks = chunks(len(self.prompts), self.cfg.sweep.cells_per_chunk)
        label = "sweep" if len({(c.mode, c.seed) for c in cells}) != 1 else f"sweep {cells[0].mode} s{cells[0].seed}"
        for cell in progress.bar(cells, desc=label, enabled=self.cfg.progress):
            ids = list(prompt_chunks[cell.chunk])
            started = time.perf_counter()
            out = self.sample_cell(cell, ids)
            save_npz(cell_dir / f"{cell.name}.npz", prompt_ids=np.array(ids),
                     sampling_s=np.array(time.perf_counter() - started), **out)
        return len(cells)

    def references(self, path: Path) -> None:
        """The real ceiling: each prompt's real images (K fresh ones on the world), judged like the samples."""
        seed = self.cfg.sweep.seed
        images = self.sources.real_images(list(range(len(self.prompts))), self.cfg.sweep.samples_per_prompt,
                                          lambda i: reference_seed(seed, i))
        save_npz(path, prompt_ids=np.arange(len(self.prompts)), **judge_images(self.judge, images))


def reference_seed(seed: int, prompt_id: int) -> int:
    """The seed of prompt `prompt_id`'s real reference images on the world (what its caption leaves free)."""
    return stream_seed(seed, prompt_id, REAL_REFERENCES)


def varies(vectors: torch.Tensor) -> bool:
    """Whether the samples of a prompt read different vectors [P, K, D] (prior draws per sample, added noise)."""
    return bool((vectors != vectors[:, :1]).any())


def vector_spread(vectors: torch.Tensor) -> np.ndarray:
    """Per prompt, the mean pairwise cosine distance between the CLIP vectors [P, K, D] its samples read: the
    prior's draws, or a text vector plus noise (the metric `prior_spread`)."""
    v = torch.nn.functional.normalize(vectors.float(), dim=-1)
    sims = v @ v.transpose(1, 2)
    k = v.shape[1]
    off_diagonal = (sims.sum(dim=(1, 2)) - sims.diagonal(dim1=1, dim2=2).sum(-1)) / (k * (k - 1))
    return (1 - off_diagonal).cpu().numpy()


def load_cells(cell_dir: Path) -> Iterator[tuple[Cell, dict]]:
    for path in sorted(cell_dir.glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        mode, seed, scales, arm, chunk, *ablation = path.stem.split("__")
        guidance, _, text = scales[1:].partition("t")
        with np.load(path) as data:
            yield Cell(mode, int(seed[1:]), float(guidance), arm, int(chunk[1:]), *ablation,
                       text_guidance=float(text) if text else None), dict(data)


def sweep_config(cfg: Config, modes: list[str]) -> dict:
    """What keys the sweep: the fields the schema marks for it (the sweep's settings, each mode's and arm's),
    each mode's training seeds and the precision."""
    return {**key_fields(cfg, "sweep"), "train_seeds": {m: cfg.seeds_for(m) for m in modes},
            "precision": effective_precision(cfg.device, cfg.precision),
            "modes": {m: key_fields(cfg.conditioning[m], "sweep", MODE_KEYS) for m in modes},
            "arms": {a: key_fields(cfg.arms[a], "sweep", ("sweep",)) for a in cfg.arms}}


def build_arms(cfg: Config) -> dict[str, SamplingArm]:
    """The run's sampling arms by name, and the plain arm `-` of modes that draw nothing."""
    arms: dict[str, SamplingArm] = {PLAIN: Plain(PLAIN)}
    for name, arm_cfg in cfg.arms.items():
        arms[name] = arm_class(arm_cfg.module)(name, dict(arm_cfg.params))
    return arms


def describe_arms(cfg: Config) -> dict:
    """The run's arms as the report prints them: module, parameters, whether it is a baseline (a mode's own way
    of sampling) and the modes it was sampled with."""
    built, modes = build_arms(cfg), mode_plans(cfg)
    return {name: {**built[name].describe(), "baseline": built[name].baseline,
                   "modes": [mode for mode, p in modes.items() if name in p.arms]} for name in cfg.arms}


def mode_plans(cfg: Config) -> dict[str, ModePlan]:
    """How each mode is swept: a mode that draws nothing is sampled plain (`-`) and under each arm that applies to
    it; a mode that draws from the prior under its draw arms and the others that apply."""
    built = build_arms(cfg)
    plans = {}
    for mode in cfg.conditioning:
        mode_cls = mode_class(cfg.conditioning[mode].module)
        chosen = [name for name, arm_cfg in cfg.arms.items()
                  if type(built[name]).applies_to(mode_cls) and (not arm_cfg.modes or mode in arm_cfg.modes)]
        arms = chosen if draws_from_prior(mode_cls) else [PLAIN, *chosen]
        baselines = [name for name in arms if built[name].baseline]
        if not baselines:
            raise ConfigError("arms", f"mode {mode} samples from the prior but no chosen arm says how many draws: "
                                      "add fixed or per_sample (arms=[fixed,per_sample,...])")
        two_pathways = mode_cls.vector_source is not None and mode_cls.uses_text_sequence
        plans[mode] = ModePlan(arms, baselines, mode_cls.token_group_names(cfg.conditioning[mode]),
                               [name for name in arms if built[name].separate_scales] if two_pathways else [])
    return plans


def run(ctx: Context) -> Artifact:
    """The sweep artifact: every cell of `plan` in `cells/` and the real references in `real.npz`.

    The missing cells are sampled in one task per decoder, the longest first, in `cfg.workers` processes
    (`harness.runtime.parallel`); each task loads its own runner from the context. A cell is written when it is done,
    so a killed sweep keeps every finished cell whichever worker made it.
    """
    from harness.data.prompts import sweep_prompts, train_captions

    cfg = ctx.cfg
    prompts = sweep_prompts(ctx)
    modes = mode_plans(cfg)
    cells = plan(cfg, modes, len(prompts))
    upstream = [ctx[name] for name in ("data", "clip", "prior", "probe", "eval_clip") if name in ctx]
    upstream += ctx.decoders().values()

    def build(workdir: Path) -> dict:
        started = time.perf_counter()
        cell_dir, real = workdir / CELLS, workdir / f"{REAL}.npz"
        todo = [c for c in cells if not (cell_dir / f"{c.name}.npz").exists()]
        log.info("sweep: %d cells, %d reused from an earlier run, %d to compute", len(cells),
                 len(cells) - len(todo), len(todo))
        by_decoder: dict[tuple[str, int], list[Cell]] = {}
        for cell in todo:
            by_decoder.setdefault((cell.mode, cell.seed), []).append(cell)
        tasks: dict = {key: (_sample_cells, (ctx, prompts, group, cell_dir)) for key, group in by_decoder.items()}
        costs = {key: len(group) for key, group in by_decoder.items()}  # cells: the references cost next to none
        if not real.exists():
            tasks[REAL], costs[REAL] = (_sample_references, (ctx, prompts, real)), 0
        parallel.run_tasks(tasks, cfg.workers, labels=_task_label, desc="sweep tasks", costs=costs)
        seen = train_captions(ctx)
        by_arm: dict[str, float] = {}
        for cell in cells:  # each cell's own sampling time, summed per arm (reused cells keep theirs)
            with np.load(cell_dir / f"{cell.name}.npz") as data:
                by_arm[cell.arm] = by_arm.get(cell.arm, 0.0) + float(data["sampling_s"])
        return {"cells": len(cells), "cells_computed": len(todo), "cells_reused": len(cells) - len(todo),
                "prompts": len(prompts), "unseen_prompts": sum(p.caption not in seen for p in prompts),
                "sampling_s": round(time.perf_counter() - started, 2),
                "sampling_s_by_arm": {arm: round(seconds, 1) for arm, seconds in by_arm.items()}}

    return ctx.cache.build("sweep", VERSION, sweep_config(cfg, list(modes)), upstream, build)


def _sample_cells(ctx: Context, prompts: list[SweepPrompt], cells: list[Cell], cell_dir: Path) -> int:
    from harness.sweep_inputs import load_runner

    return load_runner(ctx, prompts).run(cells, cell_dir)


def _sample_references(ctx: Context, prompts: list[SweepPrompt], path: Path) -> None:
    from harness.sweep_inputs import load_runner

    load_runner(ctx, prompts).references(path)


def _task_label(key: tuple[str, int] | str) -> str:
    return f"sweep[{key}]" if isinstance(key, str) else f"sweep[{key[0]} seed {key[1]}]"
