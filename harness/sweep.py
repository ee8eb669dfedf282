"""The guidance sweep (docs/questions.md; docs/design.md, section 5): every trained mode x guidance scale x prior draw policy,
K samples for each of P held-out prompts, from paired noise.

Work is cut into cells (mode, seed, guidance, policy, prompt chunk). Each cell is sampled, read by the
evaluator (probe attributes, probe features, evaluation-CLIP embeddings) and saved atomically as soon as it
finishes, inside the sweep artifact's resumable work folder; a killed sweep restarts, finds the finished
cells and computes only the rest. Nothing here depends on which mode it samples: a mode says where its
vectors come from (`sampling_vector`) and which policies it compares (`draw_policies`).
"""

from __future__ import annotations

import dataclasses
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
from harness.cache import Artifact, ArtifactCache
from harness.conditioning.base import ModeInputs
from harness.config import Config
from harness.data.world import Prompt, ShapesWorld
from harness.decoder.diffusion import guided, make_sampler, make_train_scheduler, paired_noise, sample, \
    step_generators
from harness.decoder.stage import Decoder
from harness.decoder.unet import record_attention
from harness.device import effective_precision, resolve_device

log = logging.getLogger(__name__)
VERSION = "4"  # 2: DPM-Solver++ thresholds its x0 predictions; 3: attention mass per prompt; 4: prompts drawn right
REAL = "real"  # the pseudo-mode holding real reference images: the ceiling every mode is read against


@dataclass
class Sources:
    """Where sampling inputs come from."""
    encode_texts: Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]  # -> tokens [B,L], vectors [B,D]
    prior_sample: Callable[[torch.Tensor, torch.Tensor, int, torch.Generator], torch.Tensor] | None
    oracle_vectors: Callable[[list[int], int], torch.Tensor] | None  # prompt ids, k -> [P, k, D]


@dataclass
class Judge:
    """The evaluator, never the conditioning CLIP: probe readings and features, evaluation-CLIP embeddings."""
    read: Callable[[np.ndarray], list[dict]]
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

    @property
    def name(self) -> str:
        return f"{self.mode}__s{self.seed}__g{self.guidance:g}__{self.policy}__c{self.chunk}"


def chunks(n: int, size: int) -> list[range]:
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


def plan(cfg: Config, policies: dict[str, list[str]], n_prompts: int) -> list[Cell]:
    """Every cell of the sweep, in a fixed order (modes, seeds, guidance, policies, chunks)."""
    return [Cell(mode, seed, float(g), policy, c)
            for mode in policies for seed in cfg.seeds_for(mode) for g in cfg.sweep.guidance
            for policy in policies[mode] for c in range(len(chunks(n_prompts, cfg.sweep.cells_per_chunk)))]


def save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def judge_images(judge: Judge, images: np.ndarray) -> dict[str, np.ndarray]:
    """Evaluator outputs for uint8 images [P, K, H, W, 3], kept per (prompt, sample)."""
    p, k = images.shape[:2]
    flat = images.reshape(p * k, *images.shape[2:])
    out = {"images": images, "features": judge.features(flat).float().cpu().numpy().reshape(p, k, -1),
           "readings": np.array(json.dumps(judge.read(flat)))}
    if judge.embed_images is not None:
        out["clip"] = judge.embed_images(flat).float().cpu().numpy().reshape(p, k, -1)
    return out


class SweepRunner:
    """Samples the cells of one sweep; the pipeline hands it the trained decoders and the evaluator."""

    def __init__(self, cfg: Config, prompts: list[Prompt], decoders: dict[tuple[str, int], Callable[[], Decoder]],
                 sources: Sources, judge: Judge, world: ShapesWorld) -> None:
        self.cfg, self.prompts, self.decoders, self.world = cfg, prompts, decoders, world
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
            model_fn = guided(decoder, *decoder.mode.guidance_branches(inputs, cell.guidance))
            # Attention mass is recorded where the forward pass is purely conditional (guidance 1).
            if cell.guidance == 1.0 and decoder.mode.has_tokens:
                with record_attention(decoder.unet) as recorder:
                    x0 = sample(model_fn, noise, self.sampler, generators, precision=self.cfg.precision)
                # layer -> token group -> per-prompt mass (mean over the prompt's K samples)
                attention = {layer: {name: values.reshape(len(ids), k).mean(dim=1).tolist()
                                     for name, values in groups.items()}
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
        """The real ceiling: K fresh real images per prompt, judged like the samples."""
        refs = real_references(self.world, self.prompts, self.cfg.sweep.samples_per_prompt, self.cfg.sweep.seed,
                               self.judge)
        save_npz(path, prompt_ids=np.arange(len(self.prompts)), **refs)


def prior_spread(vectors: torch.Tensor) -> np.ndarray:
    """Per prompt, the mean pairwise cosine distance between the prior's draws [P, K, D]."""
    v = torch.nn.functional.normalize(vectors.float(), dim=-1)
    sims = v @ v.transpose(1, 2)
    k = v.shape[1]
    off_diagonal = (sims.sum(dim=(1, 2)) - sims.diagonal(dim1=1, dim2=2).sum(-1)) / (k * (k - 1))
    return (1 - off_diagonal).cpu().numpy()


def real_references(world: ShapesWorld, prompts: list[Prompt], k: int, seed: int, judge: Judge) -> dict:
    """K fresh real images per prompt (drawing what the caption leaves free) and the evaluator's view of them."""
    images = np.stack([world.references(p, k, seed=int(np.random.SeedSequence([seed, i, 11]).generate_state(1)[0]))[1]
                       for i, p in enumerate(prompts)])
    return judge_images(judge, images)


def load_cells(cell_dir: Path) -> Iterator[tuple[Cell, dict]]:
    for path in sorted(cell_dir.glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        mode, seed, guidance, policy, chunk = path.stem.split("__")
        with np.load(path) as data:
            yield Cell(mode, int(seed[1:]), float(guidance[1:]), policy, int(chunk[1:])), dict(data)


def sweep_config(cfg: Config, modes: list[str]) -> dict:
    return {"sweep": dataclasses.asdict(cfg.sweep), "train_seeds": {m: cfg.seeds_for(m) for m in modes},
            "precision": effective_precision(cfg.device, cfg.precision),
            "modes": {m: dataclasses.asdict(cfg.conditioning[m]) for m in modes}}


def run(cfg: Config, cache: ArtifactCache, runner_factory: Callable[[], SweepRunner], policies: dict[str, list[str]],
        n_prompts: int, upstream: list[Artifact], finish: Callable[[Path], dict]) -> Artifact:
    """The sweep artifact: all cells, then `finish(workdir)` (the metrics) once they are complete.

    The missing cells are sampled in one task per decoder, the longest first, in `cfg.workers` processes
    (`harness.parallel`); so `runner_factory` must pickle, and each task builds its own runner. A cell is
    written when it is done, so a killed sweep keeps every finished cell whichever worker made it.
    """
    cells = plan(cfg, policies, n_prompts)

    def build(workdir: Path) -> dict:
        started = time.perf_counter()
        cell_dir, real = workdir / "cells", workdir / f"{REAL}.npz"
        todo = [c for c in cells if not (cell_dir / f"{c.name}.npz").exists()]
        log.info("sweep: %d cells, %d reused from an earlier run, %d to compute", len(cells),
                 len(cells) - len(todo), len(todo))
        by_decoder: dict[tuple[str, int], list[Cell]] = {}
        for cell in todo:
            by_decoder.setdefault((cell.mode, cell.seed), []).append(cell)
        tasks: dict = {key: (_sample_cells, (runner_factory, group, cell_dir))
                       for key, group in sorted(by_decoder.items(), key=lambda kv: -len(kv[1]))}
        if not real.exists():
            tasks[REAL] = (_sample_references, (runner_factory, real))
        parallel.run_tasks(tasks, cfg.workers, labels=_task_label, desc="sweep tasks")
        sampled = time.perf_counter()
        meta = finish(workdir)
        # Sampling and the metrics apart: benchmarks count them separately.
        return {"cells": len(cells), "cells_computed": len(todo), "cells_reused": len(cells) - len(todo), **meta,
                "sampling_s": round(sampled - started, 2), "metrics_s": round(time.perf_counter() - sampled, 2)}

    return cache.build("sweep", VERSION, sweep_config(cfg, list(policies)), upstream, build)


def _sample_cells(runner_factory: Callable[[], SweepRunner], cells: list[Cell], cell_dir: Path) -> int:
    return runner_factory().run(cells, cell_dir)


def _sample_references(runner_factory: Callable[[], SweepRunner], path: Path) -> None:
    runner_factory().references(path)


def _task_label(key: tuple[str, int] | str) -> str:
    return f"sweep[{key}]" if isinstance(key, str) else f"sweep[{key[0]} seed {key[1]}]"


def _sample_images(cells: list[tuple[Cell, dict]], cfg: Config) -> dict[tuple[str, str, float], dict[int, np.ndarray]]:
    """(mode, policy, guidance) -> prompt id -> the prompt's K samples [K, H, W, 3], from each mode's first
    training seed."""
    images: dict[tuple[str, str, float], dict[int, np.ndarray]] = {}
    for cell, data in cells:
        if cell.seed == cfg.seeds_for(cell.mode)[0]:
            bucket = images.setdefault((cell.mode, cell.policy, cell.guidance), {})
            bucket.update({int(pid): data["images"][row] for row, pid in enumerate(data["prompt_ids"])})
    return images


def _curves_in_order(images: dict, cfg: Config) -> list[tuple[str, str]]:
    return sorted({(m, p) for m, p, _ in images}, key=lambda mp: (list(cfg.conditioning).index(mp[0]), mp[1]))


def _label(mode: str, policy: str, sep: str = "\n") -> str:
    return mode if policy == "-" else f"{mode}{sep}({policy})"


def _save(fig, path: Path, dpi: int) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _grid_prompt_ids(prompts: list[Prompt], cfg: Config, kind: str) -> list[int]:
    return [i for i, p in enumerate(prompts) if p.kind == kind][: cfg.sweep.grid_prompts]


def write_grids(cells: list[tuple[Cell, dict]], prompts: list[Prompt], cfg: Config, out_dir: Path) -> list[Path]:
    """One sheet per prompt kind: rows are modes (and draw policies), columns guidance scales; each cell
    shows the same prompts' first sample from the same noise, like the DALL-E 2 paper's vase figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = _sample_images(cells, cfg)
    rows = _curves_in_order(images, cfg)
    scales = sorted({g for _, _, g in images})
    written = []
    for kind in cfg.sweep.prompt_kinds:
        ids = _grid_prompt_ids(prompts, cfg, kind)
        if not ids or not rows:
            continue
        fig, axes = plt.subplots(len(rows), len(scales), figsize=(1.1 * len(ids) * len(scales) + 1.2,
                                                                  1.25 * len(rows) + 1.2), squeeze=False)
        for r, (mode, policy) in enumerate(rows):
            for c, g in enumerate(scales):
                tiles = images.get((mode, policy, g), {})
                blank = np.zeros_like(next(iter(tiles.values()))[0])
                strip = np.concatenate([tiles[i][0] if i in tiles else blank for i in ids], axis=1)
                ax = axes[r][c]
                ax.imshow(strip, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"guidance {g:g}", fontsize=8)
                if c == 0:
                    ax.set_ylabel(_label(mode, policy), fontsize=7)
        captions = "; ".join(f"{n + 1}: {prompts[i].caption}" for n, i in enumerate(ids))
        fig.suptitle(f"{kind} prompts (left to right) - {captions}", fontsize=7, wrap=True)
        written.append(_save(fig, out_dir / f"grid_{kind}.png", dpi=120))
    return written


def write_mode_sheets(cells: list[tuple[Cell, dict]], prompts: list[Prompt], cfg: Config,
                      out_dir: Path) -> list[Path]:
    """One contact sheet per mode (and draw policy): a row per prompt (the grid prompts of every kind), and
    for each guidance scale all K samples of that prompt, so the reader sees both what guidance fixes and
    what diversity it costs. Same prompts and noise on every sheet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = _sample_images(cells, cfg)
    scales = sorted({g for _, _, g in images})
    ids = [i for kind in cfg.sweep.prompt_kinds for i in _grid_prompt_ids(prompts, cfg, kind)]
    written = []
    for mode, policy in _curves_in_order(images, cfg):
        fig, axes = plt.subplots(1, len(scales), figsize=(0.2 * cfg.sweep.samples_per_prompt * len(scales) + 3.5,
                                                          0.22 * len(ids) + 0.9), squeeze=False)
        for c, g in enumerate(scales):
            tiles = images[(mode, policy, g)]
            # rows: prompts; columns: the prompt's K samples
            mosaic = np.concatenate([np.concatenate(list(tiles[i]), axis=1) for i in ids if i in tiles], axis=0)
            ax = axes[0][c]
            ax.imshow(mosaic, interpolation="nearest")
            ax.set_title(f"guidance {g:g}", fontsize=7)
            ax.set_xticks([])
            tile = mosaic.shape[0] // len(ids)
            ax.set_yticks([tile * (n + 0.5) for n in range(len(ids))])
            ax.set_yticklabels([prompts[i].caption for i in ids] if c == 0 else [], fontsize=4)
        fig.suptitle(f"{_label(mode, policy, ' ')}: {cfg.sweep.samples_per_prompt} samples per prompt", fontsize=8)
        written.append(_save(fig, out_dir / f"sheet_{mode}{'' if policy == '-' else '_' + policy}.png", dpi=150))
    return written
