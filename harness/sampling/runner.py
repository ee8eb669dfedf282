"""Sampling one cell: a line of one decoder at one guidance scale over a chunk of prompts, from paired noise,
judged by the evaluator and saved atomically with its key (`harness.sampling.cell.Cell`).

Nothing here depends on which mode or arm it samples: `harness.sampling.vectors` says where a mode's vectors come
from, the arm (`harness.sampling.arms`) how it perturbs them and how it guides.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.profiler import record_function

from harness.conditioning.base import ModeInputs
from harness.config import Config
from harness.data.prompts import SweepPrompt
from harness.decoder.attention_record import record_attention
from harness.decoder.diffusion import NoiseLevels, make_sampler, make_train_scheduler, paired_noise, sample, \
    step_generators
from harness.decoder.stage import Decoder
from harness.line import NONE
from harness.runtime import progress
from harness.runtime.device import resolve_device
from harness.sampling.arms.base import Guidance
from harness.sampling.cell import Cell, build_arms, chunks
from harness.sampling.readings import none_read, vector_readings
from harness.sampling.vectors import VectorSources, draw_seed, sampling_vectors
from harness.seeds import REAL_REFERENCES, stream_seed

# Labels of a cell's three parts in a torch.profiler trace (benchmarks/sweep_profile.py reads them); a label
# costs nothing when no profiler is running.
PROFILE_LABELS = {"vectors": "sweep.vectors", "sampling": "sweep.sampling", "judging": "sweep.judging"}
PER_TOKEN = "_per_token"  # attention group name suffix: mean mass per attendable token of the group
KEY = "key"  # the array of a cell's file that holds its key (JSON)


@dataclass
class Sources:
    """Where sampling inputs come from: the modes' vectors (`harness.sampling.vectors`) and the real images."""
    vectors: VectorSources
    # prompt ids, k, prompt id -> seed: uint8 [P, K, H, W, 3] real images, k per prompt on the world, on a
    # dataset as many as every held-out caption has (harness.data.prompts.real_images)
    real_images: Callable[[list[int], int, Callable[[int], int]], np.ndarray]
    # [N, D] the conditioning CLIP's vectors of real training images: where the vectors a mode reads sit
    real_vectors: torch.Tensor | None = None


@dataclass
class Judge:
    """The evaluator, never the conditioning CLIP: features for the set and diversity metrics, evaluation-CLIP
    embeddings, and on the shapes world the probe's readings of each image's attributes."""
    read: Callable[[np.ndarray], list[dict]] | None
    features: Callable[[np.ndarray], torch.Tensor]
    embed_images: Callable[[np.ndarray], torch.Tensor] | None
    embed_texts: Callable[[list[str]], torch.Tensor] | None


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
        line = cell.line
        decoder = self.decoder(line.mode, cell.seed)
        arm = self.arms[line.arm]
        # One stream per chunk, shared by every guidance scale and arm, so that they are paired.
        seed = draw_seed(self.cfg.sweep.seed, cell.chunk, cell.seed)
        with record_function(PROFILE_LABELS["vectors"]):
            path = decoder.mode.vector_path
            reads = None if path is None else path.reads().cpu()
            vectors = sampling_vectors(decoder.mode.cfg, arm, self.sources.vectors, ids, k, seed, reads)
        rows = torch.tensor(ids).repeat_interleave(k)
        samples = torch.arange(k).repeat(len(ids))
        inputs = ModeInputs(self.sources.vectors.tokens[rows].to(self.device),
                            vectors.text.reshape(len(rows), -1).to(self.device),
                            None if vectors.image is None else vectors.image.reshape(len(rows), -1).to(self.device))
        noise = paired_noise(self.cfg.sweep.seed, rows, samples, (3, res, res), device=self.device)
        generators = step_generators(self.cfg.sweep.seed, rows, samples) if self.cfg.sweep.sampler == "ddpm" else None

        with torch.no_grad(), record_function(PROFILE_LABELS["sampling"]):
            branches, weights = decoder.mode.guidance_branches(inputs, cell.guidance, text_scale=line.text_scale)
            if line.ablation != NONE:
                branches = [branch.without(line.ablation) for branch in branches]
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
        out.update(none_read(len(ids)) if decoder.mode.vector_path is None
                   else vector_readings(read, self.sources.real_vectors))
        return out

    def run(self, cells: list[Cell], cell_dir: Path) -> int:
        """Sample and judge `cells`, saving each as it finishes; returns how many were computed."""
        cell_dir.mkdir(parents=True, exist_ok=True)
        prompt_chunks = chunks(len(self.prompts), self.cfg.sweep.cells_per_chunk)
        decoders = {(c.line.mode, c.seed) for c in cells}
        label = "sweep" if len(decoders) != 1 else f"sweep {cells[0].line.mode} s{cells[0].seed}"
        for cell in progress.bar(cells, desc=label, enabled=self.cfg.progress):
            ids = list(prompt_chunks[cell.chunk])
            started = time.perf_counter()
            out = self.sample_cell(cell, ids)
            save_npz(cell_dir / f"{cell.name}.npz", **{KEY: np.array(json.dumps(cell.key()))}, prompt_ids=np.array(ids),
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


def load_cells(cell_dir: Path) -> Iterator[tuple[Cell, dict]]:
    """Every finished cell of `cell_dir` with its arrays, the cell read from the key saved beside them."""
    for path in sorted(cell_dir.glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        with np.load(path) as data:
            arrays = dict(data)
        yield Cell.from_key(json.loads(str(arrays.pop(KEY)))), arrays
