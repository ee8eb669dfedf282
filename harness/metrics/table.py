"""From sweep cells to the long-form results table (docs/design.md, section 5; the columns are listed in docs/reading-the-report.md).

Per group (mode, guidance, prior draw, train seed) and prompt kind:
- per-prompt metrics (a mean over the prompt's K samples) get a percentile-bootstrap interval over prompts:
  attribute and binding accuracy, shape-and-colour accuracy and whether most samples show them (whose mean is
  the share of prompts drawn right), CLIP score, free-attribute entropy, pairwise distance, Vendi, prior spread;
- set metrics compare the group's samples with real images of the same prompts (FID, KID, precision,
  recall, density, coverage) and get their interval by resampling prompts and recomputing;
- attention mass (recorded at guidance 1) is a per-prompt metric too, per layer (`attention_clip@mid.0.attn`)
  and averaged over layers (`attention_clip`).
The pseudo-mode `real` scores the real reference images the same way: the ceiling for every column.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from harness.data.world import Prompt, ShapesWorld, attribute_value
from harness.metrics.bootstrap import bootstrap_ci, bootstrap_statistic
from harness.metrics.clip_score import clip_score
from harness.metrics.distribution import SetMetrics
from harness.metrics.diversity import mean_pairwise_distance, normalised_entropy, vendi_score

COLUMNS = ["mode", "guidance", "prior_draw", "train_seed", "prompt_kind", "metric", "value", "ci_low", "ci_high",
           "n_prompts", "n_samples"]
PER_PROMPT_COLUMNS = ["mode", "guidance", "prior_draw", "train_seed", "prompt_kind", "prompt_id", "metric", "value"]
SET_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")


@dataclass
class Group:
    """All samples of one (mode, guidance, policy, seed), prompts in sweep order."""
    mode: str
    guidance: float
    policy: str
    seed: int | str
    prompt_ids: np.ndarray  # [P]
    features: np.ndarray  # [P, K, F]
    readings: list[list[dict]]  # [P][K]
    clip: np.ndarray | None  # [P, K, D]
    prior_spread: np.ndarray  # [P]
    attention: dict[str, dict[str, np.ndarray]]  # layer -> token group -> [P] mass (empty if not recorded)


def per_prompt_values(group: Group, prompts: list[Prompt], world: ShapesWorld,
                      text_embeddings: np.ndarray | None) -> dict[str, np.ndarray]:
    """metric -> [P] values (NaN where a metric does not apply to a prompt)."""
    n = len(group.prompt_ids)
    out = {name: np.full(n, np.nan) for name in ("attribute_accuracy", "shape_color_accuracy", "shape_color_majority",
                                                  "binding_accuracy", "free_entropy",
                                                  "pairwise_distance", "vendi", "clip_score", "prior_spread")}
    for row, pid in enumerate(group.prompt_ids):
        prompt, readings = prompts[pid], group.readings[row]
        checks = [world.check(prompt, r) for r in readings]
        out["attribute_accuracy"][row] = np.mean([np.mean(list(c.values())) for c in checks])
        # The two attributes a reader looks at first: does each object have the named shape and colour?
        if any(key.endswith((".shape", ".color")) for key in checks[0]):
            out["shape_color_accuracy"][row] = np.mean([all(ok for key, ok in c.items()
                                                             if key.endswith((".shape", ".color"))) for c in checks])
            # 1 when most samples show them: its mean is the share of prompts a reader of the sheets sees drawn.
            out["shape_color_majority"][row] = float(out["shape_color_accuracy"][row] > 0.5)
        if prompt.kind == "binding":
            out["binding_accuracy"][row] = np.mean([all(c.values()) for c in checks])
        free = prompt.free_attributes(world.vocab)
        if free:
            # A sample where the probe finds no object for a key shows no value for it: it is left out.
            values = {key: [v for r in readings if (v := attribute_value(prompt, r, key)) is not None]
                      for key in free}
            entropies = [normalised_entropy(values[key], count) for key, count in free.items() if values[key]]
            out["free_entropy"][row] = np.mean(entropies) if entropies else np.nan
        feats = torch.as_tensor(group.features[row])
        out["pairwise_distance"][row] = mean_pairwise_distance(feats)
        out["vendi"][row] = vendi_score(feats)
        if group.clip is not None and text_embeddings is not None:
            texts = torch.as_tensor(text_embeddings[pid]).expand(len(readings), -1)
            out["clip_score"][row] = clip_score(torch.as_tensor(group.clip[row]), texts).mean().item()
        out["prior_spread"][row] = group.prior_spread[row]
    for layer, masses in group.attention.items():
        for name, mass in masses.items():
            out[f"attention_{name}@{layer}"] = np.asarray(mass, dtype=float)
    for name in sorted({n for masses in group.attention.values() for n in masses}):
        # A layer without this token group puts no mass on it.
        out[f"attention_{name}"] = np.mean([masses.get(name, np.zeros(n)) for masses in group.attention.values()],
                                           axis=0)
    return out


def set_metric_intervals(fake: np.ndarray, real: np.ndarray, resamples: int, seed: int) -> dict[str, tuple]:
    """FID/KID and PRDC of fake vs real features ([P, K, F] and [P, K_real, F]), with intervals from
    resampling prompts."""
    metrics = SetMetrics(torch.as_tensor(real.reshape(-1, real.shape[-1])),
                         torch.as_tensor(fake.reshape(-1, fake.shape[-1])), k=3, kid_subset_size=1000,
                         kid_subsets=10, seed=seed)

    def compute(ids: np.ndarray) -> np.ndarray:
        # A drawn prompt brings all its samples (twice if drawn twice).
        real_rows, fake_rows = (torch.as_tensor((ids[:, None] * x.shape[1] + np.arange(x.shape[1])).ravel())
                                for x in (real, fake))
        dist, pr = metrics.fid_kid(real_rows, fake_rows), metrics.prdc(real_rows, fake_rows)
        return np.array([dist["fid"], dist["kid"], pr["precision"], pr["recall"], pr["density"], pr["coverage"]])

    interval = bootstrap_statistic(np.arange(len(fake)), compute, resamples=resamples, seed=seed)
    return {name: (float(interval.value[i]), float(interval.low[i]), float(interval.high[i]))
            for i, name in enumerate(SET_METRICS)}


def group_rows(group: Group, prompts: list[Prompt], world: ShapesWorld, real_features: np.ndarray,
               text_embeddings: np.ndarray | None, resamples: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Table rows and per-prompt rows of one group, for each prompt kind and for all kinds pooled."""
    values = per_prompt_values(group, prompts, world, text_embeddings)
    kinds = np.array([prompts[pid].kind for pid in group.prompt_ids])
    k = group.features.shape[1]
    key = {"mode": group.mode, "guidance": group.guidance, "prior_draw": group.policy, "train_seed": group.seed}
    rows, per_prompt = [], []
    for kind in [*sorted(set(kinds)), "all"]:
        select = np.ones(len(kinds), bool) if kind == "all" else kinds == kind
        base = {**key, "prompt_kind": kind, "n_prompts": int(select.sum()), "n_samples": int(select.sum()) * k}
        for metric, per in values.items():
            chosen = per[select]
            if np.all(np.isnan(chosen)):
                continue
            interval = bootstrap_ci(chosen, resamples=resamples, seed=seed)
            rows.append({**base, "metric": metric, "value": interval.value, "ci_low": interval.low,
                         "ci_high": interval.high})
            if kind != "all":
                per_prompt += [{**key, "prompt_kind": kind, "prompt_id": int(pid), "metric": metric, "value": v}
                               for pid, v in zip(group.prompt_ids[select], chosen) if not math.isnan(v)]
        if select.sum() >= 2:
            fake = group.features[select]
            real = real_features[group.prompt_ids[select]]
            for metric, (v, lo, hi) in set_metric_intervals(fake, real, max(10, resamples // 10), seed).items():
                rows.append({**base, "metric": metric, "value": v, "ci_low": lo, "ci_high": hi})
    return rows, per_prompt


def build_table(groups: list[Group], real: Group, prompts: list[Prompt], world: ShapesWorld,
                text_embeddings: np.ndarray | None, resamples: int, seed: int,
                workers: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long-form metrics table and the per-prompt table, `real` ceiling rows included.

    Groups are scored independently (their bootstraps are most of the sweep's metrics time), so with `workers`
    > 1 they are cut into contiguous batches scored in that many processes; the rows come back in group order,
    so the table does not depend on `workers`."""
    from harness import parallel

    ordered = [real, *groups]
    size = max(1, math.ceil(len(ordered) / (2 * max(workers, 1))))  # two batches a worker evens out the load
    batches = {f"metrics[groups {i + 1}-{min(i + size, len(ordered))} of {len(ordered)}]":
               (_batch_rows, (ordered[i:i + size], prompts, world, real.features, text_embeddings, resamples, seed))
               for i in range(0, len(ordered), size)}
    scored, _ = parallel.run_tasks(batches, workers, desc="metrics batches")
    rows = [row for batch_rows, _ in scored.values() for row in batch_rows]
    per_prompt = [row for _, batch_per_prompt in scored.values() for row in batch_per_prompt]
    table = pd.DataFrame(rows, columns=COLUMNS)
    table = table[~((table["mode"] == "real") & table["metric"].isin(SET_METRICS))]  # real vs itself: trivial
    table["train_seed"] = table["train_seed"].astype(str)  # seeds and "-" (the real ceiling) in one column
    return table.reset_index(drop=True), pd.DataFrame(per_prompt, columns=PER_PROMPT_COLUMNS)


def _batch_rows(groups: list[Group], prompts: list[Prompt], world: ShapesWorld, real_features: np.ndarray,
                text_embeddings: np.ndarray | None, resamples: int, seed: int) -> tuple[list[dict], list[dict]]:
    rows, per_prompt = [], []
    for group in groups:
        r, p = group_rows(group, prompts, world, real_features, text_embeddings, resamples, seed)
        rows += r
        per_prompt += p
    return rows, per_prompt


def assemble_groups(cells, n_prompts: int) -> list[Group]:
    """Join the chunks of each (mode, seed, guidance, policy) back into one group in prompt order."""
    by_key: dict[tuple, list[tuple]] = {}
    for cell, data in cells:
        by_key.setdefault((cell.mode, cell.seed, cell.guidance, cell.policy), []).append((cell.chunk, data))
    groups = []
    for (mode, seed, guidance, policy), parts in sorted(by_key.items()):
        parts = [d for _, d in sorted(parts, key=lambda x: x[0])]
        attention = _join_attention([json.loads(str(d["attention"])) for d in parts])
        groups.append(Group(mode, guidance, policy, seed,
                            np.concatenate([d["prompt_ids"] for d in parts]),
                            np.concatenate([d["features"] for d in parts]),
                            [row for d in parts for row in _split_readings(d)],
                            np.concatenate([d["clip"] for d in parts]) if "clip" in parts[0] else None,
                            np.concatenate([d["prior_spread"] for d in parts]), attention))
    return groups


def real_group(data: dict) -> Group:
    return Group("real", float("nan"), "-", "-", data["prompt_ids"], data["features"], _split_readings(data),
                 data.get("clip"), np.full(len(data["prompt_ids"]), np.nan), {})


def _split_readings(data: dict) -> list[list[dict]]:
    flat = json.loads(str(data["readings"]))
    k = data["features"].shape[1]
    return [flat[i:i + k] for i in range(0, len(flat), k)]


def _join_attention(parts: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    """Per-prompt attention masses of a group's chunks, concatenated in prompt order."""
    if not all(parts):
        return {}  # recorded at guidance 1 only: every chunk of a group has it or none does
    return {layer: {name: np.concatenate([np.asarray(part[layer][name], dtype=float) for part in parts])
                    for name in groups}
            for layer, groups in parts[0].items()}
