"""From sweep cells to the per-prompt table behind every number (docs/design.md, section 5; the columns are
listed in docs/reading-the-report.md).

Per group (line, guidance, train seed; `harness.line.Line`), each prompt's contribution to every metric (the metrics
table and the report are built from these by `harness.metrics.estimate.Sweep`, which gives each number its
interval over prompts and training seeds):
- per-prompt metrics (a mean over the prompt's K samples): on the shapes world, from the probe's readings,
  attribute accuracy, shape-and-colour accuracy and whether most samples show them (whose mean is the share
  of prompts drawn right), on two-object prompts binding (each object with its own shape and colour),
  relation and swap-binding accuracy, free-attribute entropy and the free attributes' divergence to the world's
  exact distribution (`free_attribute_jsd`); on any data, CLIP score and retrieval of
  the prompt among the sweep's captions (evaluation CLIP), pairwise distance and Vendi (judge features),
  prior spread;
- set metrics compare the group's samples with real images of the same prompts (FID, KID, precision,
  recall, density, coverage); a prompt's contribution is its jackknife pseudo-value (the metric recomputed
  without that prompt), so no sample is ever duplicated;
- attention mass (of the conditional branch, at every guidance scale) is a per-prompt metric too, per layer
  (`attention_clip@mid.0.attn`) and averaged over layers (`attention_clip`), per group and per attendable token
  (`attention_clip_per_token`).
The pseudo-mode `real` scores the real reference images the same way: the ceiling for every per-prompt column;
its `floor` arm, a second draw of real images, scores the set metrics against the reference: what a perfect
decoder would score at these sizes (`harness.metrics.stage.floor_group`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from harness.data.prompts import SweepPrompt
from harness.data.world import Prompt, ShapesWorld, attribute_value, paired_correctly
from harness.line import COLUMNS as LINE_COLUMNS, FLOOR_LINE, NONE, REAL_LINE, Line
from harness.metrics.catalogue import FROM_PROBE, PER_PROMPT
from harness.metrics.clip_score import clip_score
from harness.metrics.distribution import leave_one_prompt_out
from harness.metrics.diversity import free_attribute_jsd, mean_pairwise_distance, normalised_entropy, vendi_score
from harness.metrics.intervals import pseudo_values
from harness.sampling.readings import READINGS, none_read

POOLED_KIND = "all"  # prompt_kind of a set metric computed on every prompt at once
COLUMNS = [*LINE_COLUMNS, "guidance", "train_seed", "prompt_kind", "metric", "value", "ci_low", "ci_high",
           "n_prompts", "n_samples", "n_seeds"]
PER_PROMPT_COLUMNS = [*LINE_COLUMNS, "guidance", "train_seed", "prompt_kind", "prompt_id", "metric", "value"]

@dataclass
class Group:
    """All samples of one line at one guidance scale and training seed, prompts in sweep order."""
    line: Line
    guidance: float
    seed: int | str
    prompt_ids: np.ndarray  # [P]
    features: np.ndarray  # [P, K, F]
    readings: list[list[dict]] | None  # [P][K]: the probe's, on the shapes world only
    clip: np.ndarray | None  # [P, K, D]
    vector_readings: dict[str, np.ndarray]  # reading -> [P] (harness.sampling.readings)
    attention: dict[str, dict[str, np.ndarray]]  # layer -> token group -> [P] mass (empty if not recorded)


def per_prompt_values(group: Group, prompts: list[SweepPrompt], world: ShapesWorld | None,
                      text_embeddings: np.ndarray | None) -> dict[str, np.ndarray]:
    """metric -> [P] values (NaN where a metric does not apply to a prompt). The attribute metrics need the
    world and the probe's readings; the rest need only the judge's features and the evaluation CLIP."""
    n = len(group.prompt_ids)
    out = {name: np.full(n, np.nan) for name in PER_PROMPT}
    all_right: list[np.ndarray | None] = [None] * n  # per prompt, per sample: every named attribute shown
    if world is not None and group.readings is not None:
        attributes, all_right = _attribute_values(group, prompts, world)
        out.update(attributes)
    for row, pid in enumerate(group.prompt_ids):
        feats = torch.as_tensor(group.features[row])
        out["pairwise_distance"][row] = mean_pairwise_distance(feats)
        out["vendi"][row] = vendi_score(feats)
        if group.clip is not None and text_embeddings is not None:
            images = torch.as_tensor(group.clip[row])
            texts = torch.as_tensor(text_embeddings[pid]).expand(len(images), -1)
            out["clip_score"][row] = clip_score(images, texts).mean().item()
            # Does the evaluation CLIP pick the sample's own caption among the sweep's prompts? On the world, the
            # two judges side by side: does it exactly when the probe finds every named attribute?
            similarity = F.cosine_similarity(images[:, None].float(), torch.as_tensor(text_embeddings)[None].float(), dim=-1)
            retrieved = similarity.argmax(dim=1).numpy() == pid
            out["clip_retrieval"][row] = retrieved.mean()
            if all_right[row] is not None:
                out["judge_agreement"][row] = (retrieved == all_right[row]).mean()
    out.update(group.vector_readings)
    for layer, masses in group.attention.items():
        for name, mass in masses.items():
            out[f"attention_{name}@{layer}"] = np.asarray(mass, dtype=float)
    for name in sorted({n for masses in group.attention.values() for n in masses}):
        # A layer without this token group puts no mass on it.
        out[f"attention_{name}"] = np.mean([masses.get(name, np.zeros(n)) for masses in group.attention.values()],
                                           axis=0)
    return out


def _attribute_values(group: Group, prompts: list[Prompt], world: ShapesWorld
                      ) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """The probe's readings against each prompt: the attribute metrics ([P] each) and, per prompt, whether each
    sample shows every attribute its caption names."""
    n = len(group.prompt_ids)
    out = {name: np.full(n, np.nan) for name in FROM_PROBE}
    all_right = []
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
            # Attribute binding: each named object shows its own shape and colour. The spatial relation is a
            # different skill, scored on its own.
            out["binding_accuracy"][row] = out["shape_color_accuracy"][row]
            out["relation_accuracy"][row] = np.mean([c["relation"] for c in checks])
            pairings = [p for r in readings if (p := paired_correctly(prompt, r)) is not None]
            out["swap_eligible"][row] = len(pairings) / len(readings)
            out["swap_binding"][row] = np.mean(pairings) if pairings else np.nan
        free = world.free_attributes(prompt)
        if free:
            # A sample where the probe finds no object for a key shows no value for it: it is left out.
            values = {key: [v for r in readings if (v := attribute_value(prompt, r, key)) is not None]
                      for key in free}
            entropies = [normalised_entropy(values[key], count) for key, count in free.items() if values[key]]
            out["free_entropy"][row] = np.mean(entropies) if entropies else np.nan
            out["free_attribute_jsd"][row] = free_attribute_jsd(values, free)
        all_right.append(np.array([all(c.values()) for c in checks]))
        out["all_attributes"][row] = all_right[-1].mean()
    return out, all_right


def set_metric_contributions(fake: np.ndarray, real: np.ndarray) -> dict[str, np.ndarray]:
    """Each set metric's per-prompt contributions (centred jackknife pseudo-values, whose mean is the metric on
    all prompts) for fake vs real features ([P, K, F] and [P, K_real, F])."""
    return {name: pseudo_values(value, loo) for name, (value, loo) in leave_one_prompt_out(real, fake).items()}


def group_contributions(group: Group, prompts: list[SweepPrompt], world: ShapesWorld | None, real_features: np.ndarray,
                        text_embeddings: np.ndarray | None) -> list[dict]:
    """The per-prompt rows of one group: each prompt's contribution to each metric.

    For a mean metric it is the prompt's own value (rows of each prompt kind; the kind `all` is their union);
    for a set metric, the prompt's jackknife pseudo-value (rows of each kind and of the kind `all`, a statistic
    of its own). The metrics table and the report read every number from these rows
    (`harness.metrics.estimate.Sweep`)."""
    # The floor is a reference for the set metrics alone; the real images' own readings are the ceiling's.
    values = {} if group.line == FLOOR_LINE else per_prompt_values(group, prompts, world, text_embeddings)
    kinds = np.array([prompts[pid].kind for pid in group.prompt_ids])
    key = {**group.line.columns(), "guidance": group.guidance, "train_seed": group.seed}
    rows = []

    def add(kind: str, metric: str, ids: np.ndarray, contributions: np.ndarray) -> None:
        keep = ~np.isnan(contributions)
        rows.extend({**key, "prompt_kind": kind, "prompt_id": int(pid), "metric": metric, "value": float(v)}
                    for pid, v in zip(ids[keep], contributions[keep]))

    for kind in sorted(set(kinds)):
        select = kinds == kind
        for metric, per in values.items():
            add(kind, metric, group.prompt_ids[select], per[select])
    if not group.line.is_real or group.line == FLOOR_LINE:  # the reference against itself would be trivial
        for kind in [*sorted(set(kinds)), POOLED_KIND]:
            select = np.ones(len(kinds), bool) if kind == POOLED_KIND else kinds == kind
            ids = group.prompt_ids[select]
            if len(ids) >= 2:
                for metric, per in set_metric_contributions(group.features[select], real_features[ids]).items():
                    add(kind, metric, ids, per)
    return rows


def build_table(groups: list[Group], real: Group, prompts: list[SweepPrompt], world: ShapesWorld | None,
                text_embeddings: np.ndarray | None, workers: int = 1) -> pd.DataFrame:
    """The per-prompt table of every group, `real` ceiling rows included.

    Groups are scored independently (their set metrics' jackknives are most of the sweep's metrics time), so
    with `workers` > 1 they are cut into contiguous batches scored in that many processes; the rows come back
    in group order, so the table does not depend on `workers`."""
    from harness.runtime import parallel

    ordered = [real, *groups]
    size = max(1, math.ceil(len(ordered) / (2 * max(workers, 1))))  # two batches a worker evens out the load
    batches = {f"metrics[groups {i + 1}-{min(i + size, len(ordered))} of {len(ordered)}]":
               (_batch_rows, (ordered[i:i + size], prompts, world, real.features, text_embeddings))
               for i in range(0, len(ordered), size)}
    scored, _ = parallel.run_tasks(batches, workers, desc="metrics batches")
    table = pd.DataFrame([row for rows in scored.values() for row in rows], columns=PER_PROMPT_COLUMNS)
    table["train_seed"] = table["train_seed"].astype(str)  # seeds and "-" (the real ceiling) in one column
    return table


def _batch_rows(groups: list[Group], prompts: list[SweepPrompt], world: ShapesWorld | None, real_features: np.ndarray,
                text_embeddings: np.ndarray | None) -> list[dict]:
    return [row for group in groups
            for row in group_contributions(group, prompts, world, real_features, text_embeddings)]


def assemble_groups(cells, n_prompts: int) -> list[Group]:
    """Join the chunks of each (line, seed, guidance) back into one group in prompt order."""
    by_key: dict[tuple, list[tuple]] = {}
    for cell, data in cells:
        by_key.setdefault((cell.line, cell.seed, cell.guidance), []).append((cell.chunk, data))
    groups = []
    for (line, seed, guidance), parts in sorted(by_key.items(), key=lambda item: (item[0][0].sort_key(),
                                                                                  *item[0][1:])):
        parts = [d for _, d in sorted(parts, key=lambda x: x[0])]
        attention = _join_attention([json.loads(str(d["attention"])) for d in parts])
        groups.append(Group(line, guidance, seed,
                            np.concatenate([d["prompt_ids"] for d in parts]),
                            np.concatenate([d["features"] for d in parts]),
                            _join_readings(parts),
                            np.concatenate([d["clip"] for d in parts]) if "clip" in parts[0] else None,
                            {name: np.concatenate([d[name] for d in parts]) for name in READINGS}, attention))
    return groups


def real_group(data: dict, line: Line = REAL_LINE) -> Group:
    """Judged real images (`prompt_ids`, `features`, and `readings`, `clip` where judged) as the group of `line`:
    the reference, or the floor's independent draw."""
    return Group(line, float("nan"), NONE, data["prompt_ids"], data["features"], _join_readings([data]),
                 data.get("clip"), none_read(len(data["prompt_ids"])), {})


def _join_readings(parts: list[dict]) -> list[list[dict]] | None:
    """The probe's readings of a group's chunks, per prompt; None where there is no probe (a dataset)."""
    return [row for d in parts for row in _split_readings(d)] if "readings" in parts[0] else None


def _split_readings(data: dict) -> list[list[dict]]:
    flat = json.loads(str(data["readings"]))
    k = data["features"].shape[1]
    return [flat[i:i + k] for i in range(0, len(flat), k)]


def _join_attention(parts: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    """Per-prompt attention masses of a group's chunks, concatenated in prompt order."""
    if not all(parts):
        return {}  # recorded for modes with tokens only: every chunk of a group has it or none does
    return {layer: {name: np.concatenate([np.asarray(part[layer][name], dtype=float) for part in parts])
                    for name in groups}
            for layer, groups in parts[0].items()}
