"""The guidance sweep (docs/questions.md; docs/design.md, section 5): every trained mode x guidance scale x prior draw policy,
K samples for each of P held-out prompts, from paired noise.

Work is cut into cells (mode, seed, guidance, policy, prompt chunk). Each cell is sampled, read by the
evaluator (probe attributes, probe features, evaluation-CLIP embeddings) and saved atomically as soon as it
finishes, inside the sweep artifact's resumable work folder; a killed sweep restarts, finds the finished
cells and computes only the rest. Nothing here depends on which mode it samples: a mode says where its
vectors come from (`sampling_vector`) and which policies it compares (`draw_policies`).
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

from harness import parallel, progress
from harness.cache import Artifact
from harness.conditioning.base import ModeInputs, mode_class
from harness.config import MODE_KEYS, Config, key_fields
from harness.context import Context
from harness.data.prompts import SweepPrompt
from harness.decoder.diffusion import guided, make_sampler, make_train_scheduler, paired_noise, sample, \
    step_generators
from harness.decoder.stage import Decoder
from harness.decoder.unet import record_attention
from harness.metrics.table import NO_ABLATION, WITHOUT
from harness.device import effective_precision, resolve_device

log = logging.getLogger(__name__)
PER_TOKEN = "_per_token"  # attention group name suffix: mean mass per attendable token of the group
VERSION = "5"  # 2: DPM-Solver++ thresholds its x0 predictions; 3: attention mass per prompt; 4: prompts drawn right;
# 5: attention at every guidance scale, per token too
REAL = "real"  # the pseudo-mode holding real reference images: the ceiling every mode is read against
CELLS = "cells"  # the sweep artifact's folder of finished cells


@dataclass
class Sources:
    """Where sampling inputs come from."""
    encode_texts: Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]  # -> tokens [B,L], vectors [B,D]
    prior_sample: Callable[[torch.Tensor, torch.Tensor, int, torch.Generator], torch.Tensor] | None
    oracle_vectors: Callable[[list[int], int], torch.Tensor] | None  # prompt ids, k -> [P, k, D]
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
    policy: str
    chunk: int
    ablation: str = NO_ABLATION  # a token group hidden from attention at sampling (the reliance test)

    @property
    def name(self) -> str:
        name = f"{self.mode}__s{self.seed}__g{self.guidance:g}__{self.policy}__c{self.chunk}"
        return name if self.ablation == NO_ABLATION else f"{name}__{self.ablation}"

    @property
    def label(self) -> str:
        """The line this cell belongs to in the tables: the mode, or the mode without a token group."""
        return self.mode if self.ablation == NO_ABLATION else f"{self.mode}{WITHOUT}{self.ablation}"


def chunks(n: int, size: int) -> list[range]:
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


def plan(cfg: Config, policies: dict[str, list[str]], n_prompts: int,
         token_groups: dict[str, tuple[str, ...]] | None = None) -> list[Cell]:
    """Every cell of the sweep, in a fixed order (modes, seeds, guidance, policies, chunks), then the reliance
    cells: for modes with two token groups, each group hidden in turn at `sweep.reliance_guidance`."""
    n_chunks = len(chunks(n_prompts, cfg.sweep.cells_per_chunk))
    cells = [Cell(mode, seed, float(g), policy, c)
             for mode in policies for seed in cfg.seeds_for(mode) for g in cfg.sweep.guidance
             for policy in policies[mode] for c in range(n_chunks)]
    groups = {mode: names for mode, names in (token_groups or {}).items() if mode in policies and len(names) > 1}
    cells += [Cell(mode, seed, float(g), policy, c, group)
              for mode, names in groups.items() for seed in cfg.seeds_for(mode) for g in cfg.sweep.reliance_guidance
              for policy in policies[mode] for group in names for c in range(n_chunks)]
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
    """Samples the cells of one sweep; the pipeline hands it the trained decoders and the evaluator."""

    def __init__(self, cfg: Config, prompts: list[SweepPrompt], decoders: dict[tuple[str, int], Callable[[], Decoder]],
                 sources: Sources, judge: Judge) -> None:
        self.cfg, self.prompts, self.decoders = cfg, prompts, decoders
        self.sources, self.judge = sources, judge
        self.device = resolve_device(cfg.device)
        train = make_train_scheduler(cfg.decoder.num_train_timesteps, cfg.decoder.beta_schedule,
                                     cfg.decoder.prediction)
        self.sampler = make_sampler(cfg.sweep.sampler, train, cfg.sweep.sample_steps)
        self.tokens, self.text_vectors = sources.encode_texts([p.caption for p in prompts])
        self._loaded: dict[tuple[str, int], Decoder] = {}

    def decoder(self, mode: str, seed: int) -> Decoder:
        if (mode, seed) not in self._loaded:
            self._loaded.clear()  # one decoder in memory at a time
            self._loaded[(mode, seed)] = self.decoders[(mode, seed)]()
        return self._loaded[(mode, seed)]

    def vectors(self, decoder: Decoder, cell: Cell, ids: list[int], k: int) -> torch.Tensor | None:
        """The CLIP image vectors [P, K, D] a mode samples from, or None when it reads text vectors."""
        mode = decoder.mode
        if mode.vector_source != "image":
            return None
        if mode.sampling_vector == "oracle":
            return self.sources.oracle_vectors(ids, k)
        # One generator per chunk and policy, shared by every guidance scale, so scales are paired.
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence(
            [self.cfg.sweep.seed, cell.chunk, cell.seed, 7]).generate_state(1)[0]))
        draws = 1 if cell.policy == "fixed" else k
        drawn = self.sources.prior_sample(self.text_vectors[ids], self.tokens[ids], draws, generator)
        return drawn.expand(len(ids), k, drawn.shape[-1]) if draws == 1 else drawn

    def sample_cell(self, cell: Cell, ids: list[int]) -> dict[str, np.ndarray]:
        k, res = self.cfg.sweep.samples_per_prompt, self.cfg.data.resolution
        decoder = self.decoder(cell.mode, cell.seed)
        vectors = self.vectors(decoder, cell, ids, k)
        rows = torch.tensor(ids).repeat_interleave(k)
        samples = torch.arange(k).repeat(len(ids))
        inputs = ModeInputs(self.tokens[rows].to(self.device), self.text_vectors[rows].to(self.device),
                            None if vectors is None else vectors.reshape(len(rows), -1).to(self.device))
        noise = paired_noise(self.cfg.sweep.seed, rows, samples, (3, res, res), device=self.device)
        generators = step_generators(self.cfg.sweep.seed, rows, samples) if self.cfg.sweep.sampler == "ddpm" else None
        with torch.no_grad():
            branches, weights = decoder.mode.guidance_branches(inputs, cell.guidance)
            if cell.ablation != NO_ABLATION:
                branches = [branch.without(cell.ablation) for branch in branches]
            model_fn = guided(decoder, branches, weights)
            # Attention mass at every guidance scale, of the conditional branch: it comes first in the guided
            # batch (`guidance_branches`), so its rows are the first len(rows) of each recorded forward.
            if decoder.mode.has_tokens:
                with record_attention(decoder.unet) as recorder:
                    x0 = sample(model_fn, noise, self.sampler, generators, precision=self.cfg.precision)
                # layer -> token group -> per-prompt mass (mean over the prompt's K samples)
                per_token = recorder.per_token()
                attention = {layer: {name + suffix: values[:len(rows)].reshape(len(ids), k).mean(dim=1).tolist()
                                     for suffix, source in (("", groups), (PER_TOKEN, per_token[layer]))
                                     for name, values in source.items()}
                             for layer, groups in recorder.per_sample().items()}
            else:
                x0 = sample(model_fn, noise, self.sampler, generators, precision=self.cfg.precision)
                attention = {}
        images = ((x0.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        images = images.permute(0, 2, 3, 1).reshape(len(ids), k, res, res, 3).numpy()
        out = judge_images(self.judge, images)
        out["attention"] = np.array(json.dumps(attention))
        out["prior_spread"] = (prior_spread(vectors) if vectors is not None and cell.policy == "per_sample"
                               else np.full(len(ids), np.nan))
        return out

    def run(self, cells: list[Cell], cell_dir: Path) -> int:
        """Sample and judge `cells`, saving each as it finishes; returns how many were computed."""
        cell_dir.mkdir(parents=True, exist_ok=True)
        prompt_chunks = chunks(len(self.prompts), self.cfg.sweep.cells_per_chunk)
        label = "sweep" if len({(c.mode, c.seed) for c in cells}) != 1 else f"sweep {cells[0].mode} s{cells[0].seed}"
        for cell in progress.bar(cells, desc=label, enabled=self.cfg.progress):
            ids = list(prompt_chunks[cell.chunk])
            save_npz(cell_dir / f"{cell.name}.npz", prompt_ids=np.array(ids), **self.sample_cell(cell, ids))
        return len(cells)

    def references(self, path: Path) -> None:
        """The real ceiling: each prompt's real images (K fresh ones on the world), judged like the samples."""
        seed = self.cfg.sweep.seed
        images = self.sources.real_images(list(range(len(self.prompts))), self.cfg.sweep.samples_per_prompt,
                                          lambda i: reference_seed(seed, i))
        save_npz(path, prompt_ids=np.arange(len(self.prompts)), **judge_images(self.judge, images))


def reference_seed(seed: int, prompt_id: int) -> int:
    """The seed of prompt `prompt_id`'s real reference images on the world (what its caption leaves free)."""
    return int(np.random.SeedSequence([seed, prompt_id, 11]).generate_state(1)[0])


def prior_spread(vectors: torch.Tensor) -> np.ndarray:
    """Per prompt, the mean pairwise cosine distance between the prior's draws [P, K, D]."""
    v = torch.nn.functional.normalize(vectors.float(), dim=-1)
    sims = v @ v.transpose(1, 2)
    k = v.shape[1]
    off_diagonal = (sims.sum(dim=(1, 2)) - sims.diagonal(dim1=1, dim2=2).sum(-1)) / (k * (k - 1))
    return (1 - off_diagonal).cpu().numpy()


def load_cells(cell_dir: Path) -> Iterator[tuple[Cell, dict]]:
    for path in sorted(cell_dir.glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        mode, seed, guidance, policy, chunk, *ablation = path.stem.split("__")
        with np.load(path) as data:
            yield Cell(mode, int(seed[1:]), float(guidance[1:]), policy, int(chunk[1:]),
                       *ablation), dict(data)


def sweep_config(cfg: Config, modes: list[str]) -> dict:
    """What keys the sweep: the fields the schema marks for it (the sweep's settings, each mode's), each mode's
    training seeds and the precision."""
    return {**key_fields(cfg, "sweep"), "train_seeds": {m: cfg.seeds_for(m) for m in modes},
            "precision": effective_precision(cfg.device, cfg.precision),
            "modes": {m: key_fields(cfg.conditioning[m], "sweep", MODE_KEYS) for m in modes}}


def policies_and_token_groups(cfg: Config) -> tuple[dict[str, list[str]], dict[str, tuple[str, ...]]]:
    """Per mode, the prior-draw policies its sweep compares ("-" for a mode that draws nothing) and the names
    of the token groups its decoder attends to (the reliance cells hide each in turn)."""
    policies, token_groups = {}, {}
    for mode in cfg.conditioning:
        mode_cls = mode_class(cfg.conditioning[mode].module)
        is_prior_mode = mode_cls.vector_source == "image" and mode_cls.sampling_vector == "prior"
        policies[mode] = list(cfg.conditioning[mode].prior_draws) if is_prior_mode else ["-"]
        token_groups[mode] = mode_cls.token_group_names(cfg.conditioning[mode])
    return policies, token_groups


def run(ctx: Context) -> Artifact:
    """The sweep artifact: every cell of `plan` in `cells/` and the real references in `real.npz`.

    The missing cells are sampled in one task per decoder, the longest first, in `cfg.workers` processes
    (`harness.parallel`); each task loads its own runner from the context. A cell is written when it is done,
    so a killed sweep keeps every finished cell whichever worker made it.
    """
    from harness.data.prompts import sweep_prompts, train_captions

    cfg = ctx.cfg
    prompts = sweep_prompts(ctx)
    policies, token_groups = policies_and_token_groups(cfg)
    cells = plan(cfg, policies, len(prompts), token_groups)
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
        tasks: dict = {key: (_sample_cells, (ctx, prompts, group, cell_dir))
                       for key, group in sorted(by_decoder.items(), key=lambda kv: -len(kv[1]))}
        if not real.exists():
            tasks[REAL] = (_sample_references, (ctx, prompts, real))
        parallel.run_tasks(tasks, cfg.workers, labels=_task_label, desc="sweep tasks")
        seen = train_captions(ctx)
        return {"cells": len(cells), "cells_computed": len(todo), "cells_reused": len(cells) - len(todo),
                "prompts": len(prompts), "unseen_prompts": sum(p.caption not in seen for p in prompts),
                "sampling_s": round(time.perf_counter() - started, 2)}

    return ctx.cache.build("sweep", VERSION, sweep_config(cfg, list(policies)), upstream, build)


def _sample_cells(ctx: Context, prompts: list[SweepPrompt], cells: list[Cell], cell_dir: Path) -> int:
    from harness.sweep_inputs import load_runner

    return load_runner(ctx, prompts).run(cells, cell_dir)


def _sample_references(ctx: Context, prompts: list[SweepPrompt], path: Path) -> None:
    from harness.sweep_inputs import load_runner

    load_runner(ctx, prompts).references(path)


def _task_label(key: tuple[str, int] | str) -> str:
    return f"sweep[{key}]" if isinstance(key, str) else f"sweep[{key[0]} seed {key[1]}]"
