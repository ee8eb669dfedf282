"""`write_report`: report.md, curves.png and the answers in summary.json, every sentence generated from numbers.

Each research question (docs/questions.md) gets a section that states values with 95% intervals. A sentence that
compares two things says which is higher only when the interval of their difference excludes 0, and otherwise
that the data cannot tell; a question whose inputs the run lacks gets a section saying it was not measured.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.report.frontier import (
    ATTENTION_CLIP,
    ATTENTION_TEXT,
    DIVERSITY,
    FIDELITY,
    REAL_CURVE,
    SEQUENCE,
    VECTOR_ONLY,
    Comparison,
    Curve,
    Estimate,
    Sweep,
    area_difference,
    attention_layers,
    attention_split,
    better_sign,
    compare,
    diversity_drop,
    draw_pairs,
    drop_gap,
    first_measured,
    frontier,
    frontier_area,
    group_contrast,
    group_curves,
    hard_negative_pairs,
    split_by_sign,
)

NOT_MEASURED = "Not measured in this run"
CANNOT_TELL = "the data cannot tell"
BINDING = "binding_accuracy"
PRIOR_SPREAD = "prior_spread"
DRAWN_RIGHT = "shape_color_majority"
NAMES = {
    "attribute_accuracy": "attribute accuracy",
    "shape_color_majority": "prompts drawn right",
    "binding_accuracy": "binding accuracy",
    "clip_score": "CLIP score (eval. CLIP)",
    "precision": "precision",
    "free_entropy": "free-attribute entropy",
    "pairwise_distance": "pairwise feature distance",
    "vendi": "Vendi score",
    "recall": "recall",
    "coverage": "coverage",
}
SETUP_FIELDS = (  # summary["setup"] keys in reading order, with their labels
    ("data", "data"), ("resolution", "resolution (px)"), ("num_images", "training images"),
    ("decoder_size", "decoder size"), ("decoder_steps", "decoder training steps"), ("train_seeds", "training seeds"),
    ("sampler", "sampler"), ("sample_steps", "sampling steps"), ("prompts_per_kind", "prompts per kind"),
    ("samples_per_prompt", "samples per prompt"), ("machine", "machine"), ("device", "device"),
)


# ---------------------------------------------------------------- formatting


def fmt(x: float) -> str:
    """Three decimals below 10, one below 1000, none above: enough for accuracies, entropies and FIDs."""
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    digits = 3 if abs(x) < 10 else 1 if abs(x) < 1000 else 0
    text = f"{x:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text  # no "-0.000"


def fmt_est(e: Estimate | None) -> str:
    return "n/a" if e is None else f"{fmt(e.value)} [{fmt(e.low)}, {fmt(e.high)}]"


def fmt_scales(scales: Iterable[float]) -> str:
    return "g = " + ", ".join(f"{g:g}" for g in scales)


def name(metric: str) -> str:
    return NAMES.get(metric, metric)


def verdict(statement: str, diff: Estimate | None, above: str, below: str, neither: str) -> str:
    """`statement = diff: <outcome>`: above/below only when the interval excludes 0, else `neither`."""
    if diff is None:
        return f"{statement}: n/a."
    outcome = above if diff.low > 0 else below if diff.high < 0 else neither
    return f"{statement} = {fmt_est(diff)}: {outcome}."


def where_clauses(above: str, up: list[float], below: str, down: list[float], neither: list[float]) -> str:
    """One clause per outcome that holds somewhere, listing its guidance scales."""
    clauses = [f"{above} at {fmt_scales(up)}"] if up else []
    clauses += [f"{below} at {fmt_scales(down)}"] if down else []
    clauses += [f"{CANNOT_TELL} at {fmt_scales(neither)}"] if neither else []
    return "; ".join(clauses) + "." if clauses else "no shared guidance scale."


def by_sign(points: Sequence[tuple[float, Estimate]], above: str, below: str) -> str:
    """Where the interval lies above 0 (`above`), below 0 (`below`), or contains 0."""
    up, down, neither = split_by_sign(points)
    return where_clauses(above, up, below, down, neither)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def as_json(e: Estimate | None) -> dict | None:
    if e is None:
        return None
    finite = (lambda x: x if math.isfinite(x) else None)
    return {"value": finite(e.value), "low": finite(e.low), "high": finite(e.high), "paired": e.paired}


def metric_table(sweep: Sweep, metric: str, curves: Sequence[Curve]) -> list[str]:
    """Curves x guidance scales of one metric, then the real ceiling when measured."""
    scales = sorted({g for c in curves for g in sweep.guidances(c, metric)})
    rows = [[c.label] + [fmt_est(sweep.value(sweep.cell(c, g, metric))) for g in scales] for c in curves]
    lines = table(["curve"] + [f"g = {g:g}" for g in scales], rows)
    ceiling = sweep.value(sweep.ceiling_cell(metric))
    if ceiling is not None:
        lines += [f"Real images of the same prompts (ceiling): {fmt_est(ceiling)}.", ""]
    return lines


def drawn_right_lines(sweep: Sweep) -> list[str]:
    """What the sheets show, counted: the share of prompts most of whose samples have every named shape and
    colour, per curve and guidance scale."""
    curves = sweep.curves(DRAWN_RIGHT)
    if not curves:
        return []
    return ["Prompts drawn right: the share of prompts for which most samples show every shape and colour the "
            "prompt names (probe readings; 95% interval over prompts).", "",
            *metric_table(sweep, DRAWN_RIGHT, curves)]


def comparison_lines(cmp: Comparison) -> list[str]:
    """A sentence saying where each curve wins on the metric, and the per-scale table behind it."""
    a, b = cmp.a.label, cmp.b.label
    better = "lower is better" if better_sign(cmp.metric) < 0 else "higher is better"
    a_better, b_better, neither = cmp.verdicts()
    lines = [f"- {name(cmp.metric)} ({better}): "
             + where_clauses(f"{a} beats {b}", a_better, f"{b} beats {a}", b_better, neither), ""]
    rows = [[f"{p.guidance:g}", fmt_est(p.a), fmt_est(p.b), fmt_est(p.difference)] for p in cmp.points]
    return lines + table(["guidance", a, b, f"{a} − {b}"], rows)


def comparison_json(cmp: Comparison) -> dict:
    a_better, b_better, neither = cmp.verdicts()
    return {"a": cmp.a.label, "b": cmp.b.label, "metric": cmp.metric, "a_better_at": a_better,
            "b_better_at": b_better, "cannot_tell_at": neither,
            "points": [{"guidance": p.guidance, "a": as_json(p.a), "b": as_json(p.b),
                        "difference": as_json(p.difference)} for p in cmp.points]}


# ---------------------------------------------------------------- sections


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def absent(cls, title: str, reason: str) -> Section:
        return cls(title, [f"{NOT_MEASURED}: {reason}.", ""], {"measured": False, "reason": reason})


def q1_frontier(sweep: Sweep) -> Section:
    title = "Q1. Which mode has the best diversity–fidelity frontier?"
    diversity = first_measured(sweep, DIVERSITY)
    pairs = [f for f in FIDELITY if diversity and sweep.curves(diversity, f)]
    if not pairs:
        return Section.absent(title, "the run has no curve with both a fidelity and a diversity measure")
    section = Section(title, [
        f"Frontier area: the area the curve's guidance points dominate in the ({name(diversity)}, fidelity) "
        "plane, measured from the origin (hypervolume; larger is better; on 0..1 measures it is the share of the "
        "perfect unit square). Each line is scored on its own guidance scales.", ""],
        {"measured": True, "diversity": diversity, "by_fidelity": {}})
    for fidelity in pairs:
        curves = sweep.curves(diversity, fidelity)
        areas = {c: frontier_area(sweep, c, diversity, fidelity) for c in curves}
        best = max(curves, key=lambda c: areas[c].value)
        rows = [[c.label, fmt_est(areas[c]), ", ".join(f"{g:g}" for g in sweep.guidances(c, diversity, fidelity))]
                for c in curves]
        real = frontier_area(sweep, REAL_CURVE, diversity, fidelity)
        if real is not None:
            rows.append(["real images (ceiling)", fmt_est(real), "-"])
        versus = {c: area_difference(sweep, best, c, diversity, fidelity) for c in curves if c != best}
        sentences = [verdict(f"- {best.label} − {c.label}", d, f"{best.label}'s frontier is larger",
                             f"{c.label}'s frontier is larger", f"{CANNOT_TELL} {best.label} from {c.label}")
                     for c, d in versus.items()]
        tied = [c.label for c, d in versus.items() if not d.excludes(0.0)]
        lead = (f"Largest frontier area: {best.label}, {fmt_est(areas[best])}."
                + (f" It is not separated from {', '.join(tied)}: {CANNOT_TELL} which of these is best."
                   if tied else " Its lead over every other line exceeds the intervals."))
        section.lines += [f"### {name(fidelity)} against {name(diversity)}", "",
                          *table(["curve", "frontier area", "guidance scales"], rows), lead, "", *sentences, ""]
        section.answer["by_fidelity"][fidelity] = {
            "areas": {c.label: as_json(e) for c, e in areas.items()}, "real": as_json(real), "best": best.label,
            "best_minus": {c.label: as_json(d) for c, d in versus.items()}, "cannot_tell_best_from": tied}
    return section


def q2_clip_text(sweep: Sweep) -> Section:
    title = "Q2. Does clip_text alone match or beat glide and unclip?"
    mine = [c for c in sweep.curves() if c.mode == "clip_text"]
    others = [c for c in sweep.curves() if c.mode in ("glide", "unclip")]
    if not mine or not others:
        return Section.absent(title, "the run needs clip_text and at least one of glide or unclip")
    clip_text = mine[0]
    diversity = first_measured(sweep, DIVERSITY)
    metrics = [m for m in (*FIDELITY, diversity) if m and sweep.has(m)]
    fidelity = first_measured(sweep, FIDELITY)
    section = Section(title, [], {"measured": True, "versus": {}})
    for other in others:
        answer: dict[str, Any] = {"metrics": {}}
        section.lines += [f"### {clip_text.label} vs {other.label}", ""]
        if diversity and fidelity:
            diff = area_difference(sweep, clip_text, other, diversity, fidelity)
            section.lines += [verdict(
                f"Frontier area ({name(fidelity)} against {name(diversity)}), {clip_text.label} − {other.label}",
                diff, f"{clip_text.label}'s frontier is larger", f"{other.label}'s frontier is larger",
                f"{CANNOT_TELL} the two frontiers apart"), ""]
            answer["frontier_area_difference"] = as_json(diff)
        for metric in metrics:
            cmp = compare(sweep, clip_text, other, metric)
            if cmp.points:
                section.lines += comparison_lines(cmp)
                answer["metrics"][metric] = comparison_json(cmp)
        section.answer["versus"][other.label] = answer
    return section


def q3_diversity(sweep: Sweep) -> Section:
    title = "Q3. Does diversity survive strong guidance? Fixed vs per-sample prior draws"
    metric = first_measured(sweep, DIVERSITY)
    if metric is None:
        return Section.absent(title, "the run has no diversity measure")
    curves = sweep.curves(metric)
    section = Section(title, [f"Diversity measure: {name(metric)} (higher is more diverse).", "",
                              *metric_table(sweep, metric, curves)],
                      {"measured": True, "metric": metric, "drops": {}, "fixed_vs_per_sample": {}})
    has_ceiling = sweep.value(sweep.ceiling_cell(metric)) is not None
    if not has_ceiling:
        section.lines += [f"Fraction of the real ceiling: {NOT_MEASURED.lower()} (no real-image row for "
                          f"{metric}).", ""]
    section.lines += ["Change from the lowest to the highest guidance scale (drop = start − end; a positive "
                      "drop is lost diversity):", ""]
    for curve in curves:
        drop = diversity_drop(sweep, curve, metric)
        if drop is None:
            section.lines.append(f"- {curve.label}: one guidance scale only, no change to measure.")
            continue
        g0, g1 = f"{drop.low_guidance:g}", f"{drop.high_guidance:g}"
        text = verdict(f"- {curve.label}: {fmt_est(drop.start)} at g = {g0}, {fmt_est(drop.end)} at g = {g1}; drop",
                       drop.drop, "diversity falls", "diversity rises",
                       f"{CANNOT_TELL} whether it changes")
        if drop.end_of_ceiling is not None:
            text += (f" Fraction of the real ceiling: {fmt_est(drop.start_of_ceiling)} at g = {g0}, "
                     f"{fmt_est(drop.end_of_ceiling)} at g = {g1}.")
        section.lines.append(text)
        section.answer["drops"][curve.label] = {
            "low_guidance": drop.low_guidance, "high_guidance": drop.high_guidance, "start": as_json(drop.start),
            "end": as_json(drop.end), "drop": as_json(drop.drop),
            "start_of_ceiling": as_json(drop.start_of_ceiling), "end_of_ceiling": as_json(drop.end_of_ceiling)}
    section.lines.append("")
    section.lines += _versus_glide_at_top(sweep, metric, curves, section.answer)
    section.lines += _fixed_vs_per_sample(sweep, metric, section.answer)
    return section


def _versus_glide_at_top(sweep: Sweep, metric: str, curves: Sequence[Curve], answer: dict) -> list[str]:
    """unCLIP-style curves against glide at the highest guidance scale both were swept at."""
    glide = Curve("glide")
    challengers = [c for c in curves if c.base_mode in ("unclip", "combined")]
    if glide not in curves or not challengers:
        return [f"unclip against glide at high guidance: {NOT_MEASURED.lower()} (needs glide and an unclip "
                "mode).", ""]
    lines, answer["versus_glide_at_highest_guidance"] = ["At the highest guidance scale both were swept at:", ""], {}
    for curve in challengers:
        points = compare(sweep, curve, glide, metric).points
        if not points:
            continue
        top = points[-1]
        lines.append(verdict(f"- g = {top.guidance:g}: {curve.label} − glide", top.difference,
                             f"{curve.label} keeps more diversity", "glide keeps more diversity",
                             f"{CANNOT_TELL} {curve.label} from glide"))
        answer["versus_glide_at_highest_guidance"][curve.label] = {"guidance": top.guidance,
                                                                    "difference": as_json(top.difference)}
    return lines + [""]


def _fixed_vs_per_sample(sweep: Sweep, metric: str, answer: dict) -> list[str]:
    lines = ["### One fixed prior draw per prompt vs a fresh draw per sample", ""]
    pairs = draw_pairs(sweep, metric)
    if not pairs:
        return lines + [f"{NOT_MEASURED}: no mode was swept with both fixed and per-sample prior draws.", ""]
    for fixed, per_sample in pairs:
        gap = drop_gap(sweep, fixed, per_sample, metric)
        cmp = compare(sweep, per_sample, fixed, metric)
        lines += [verdict(f"- {fixed.mode}: drop(fixed) − drop(per_sample)", gap,
                          "the fixed draw loses more diversity under guidance",
                          "the per-sample draw loses more diversity under guidance",
                          f"{CANNOT_TELL} which policy loses more"), *comparison_lines(cmp)]
        answer["fixed_vs_per_sample"][fixed.mode] = {"drop_gap": as_json(gap), "comparison": comparison_json(cmp)}
    spread_curves = sweep.curves(PRIOR_SPREAD)
    if spread_curves:
        lines += ["Spread of the prior's vectors per prompt (mean pairwise cosine distance):", "",
                  *metric_table(sweep, PRIOR_SPREAD, spread_curves)]
    return lines


def q4_attention(sweep: Sweep) -> Section:
    title = "Q4. In combined, does attention fixate on the CLIP tokens and ignore the text?"
    # The question is about combined: its lines first, then the other modes with both kinds of tokens.
    curves = sorted(sweep.curves(ATTENTION_CLIP, ATTENTION_TEXT), key=lambda c: c.base_mode != "combined")
    if not curves:
        return Section.absent(title, "no mode with both CLIP and text tokens recorded its attention mass")
    section = Section(title, ["Mean attention mass on the CLIP tokens and on the text tokens (the rest goes to "
                              "image positions).", ""], {"measured": True, "curves": {}})
    for curve in curves:
        splits = attention_split(sweep, curve)
        summary = by_sign([(s.guidance, s.difference) for s in splits], "CLIP tokens get more mass than text tokens",
                          "text tokens get more mass than CLIP tokens")
        rows = [[f"{s.guidance:g}", fmt_est(s.clip), fmt_est(s.text), fmt_est(s.difference)] for s in splits]
        section.lines += [f"### {curve.label}", "", f"- CLIP − text mass: {summary}", "",
                          *table(["guidance", "CLIP tokens", "text tokens", "CLIP − text"], rows),
                          *_layer_table(sweep, curve)]
        section.answer["curves"][curve.label] = [
            {"guidance": s.guidance, "clip": as_json(s.clip), "text": as_json(s.text),
             "clip_minus_text": as_json(s.difference)} for s in splits]
    return section


def _layer_table(sweep: Sweep, curve: Curve) -> list[str]:
    layers = [(layer, attention_split(sweep, curve, layer)) for layer in attention_layers(sweep)]
    layers = [(layer, splits) for layer, splits in layers if splits]
    if not layers:
        return []
    scales = sorted({s.guidance for _, splits in layers for s in splits})
    rows = [[layer] + [next((f"{fmt(s.clip.value)} / {fmt(s.text.value)}" for s in splits if s.guidance == g), "-")
                       for g in scales] for layer, splits in layers]
    return ["Per layer, CLIP / text mass:", "", *table(["layer"] + [f"g = {g:g}" for g in scales], rows)]


def q5_binding(sweep: Sweep) -> Section:
    title = "Q5. Do fixed-length vectors lose attribute binding? Do hard-negative captions fix it?"
    if not sweep.has(BINDING):
        return Section.absent(title, "the run has no binding accuracy (no two-object prompts)")
    section = Section(title, [f"{name(BINDING)} on two-object prompts:", "",
                              *metric_table(sweep, BINDING, sweep.curves(BINDING))], {"measured": True})
    vector, sequence = group_curves(sweep, VECTOR_ONLY, BINDING), group_curves(sweep, SEQUENCE, BINDING)
    rows = group_contrast(sweep, vector, sequence, BINDING)
    if rows:
        labels = (", ".join(c.label for c in vector), ", ".join(c.label for c in sequence))
        summary = by_sign([(r.guidance, r.difference) for r in rows], "vector-only modes bind better",
                          "sequence modes bind better")
        section.lines += [f"Vector-only ({labels[0]}) against sequence ({labels[1]}), mean over each group's "
                          f"lines, vector-only − sequence: {summary}", "",
                          *table(["guidance", "vector-only", "sequence", "vector-only − sequence"],
                                 [[f"{r.guidance:g}", fmt_est(r.a), fmt_est(r.b), fmt_est(r.difference)]
                                  for r in rows])]
        section.answer["vector_only_vs_sequence"] = {
            "vector_only": [c.label for c in vector], "sequence": [c.label for c in sequence],
            "points": [{"guidance": r.guidance, "vector_only": as_json(r.a), "sequence": as_json(r.b),
                        "difference": as_json(r.difference)} for r in rows]}
    else:
        section.lines += [f"Vector-only against sequence modes: {NOT_MEASURED.lower()} (needs binding accuracy "
                          "for both kinds at a shared guidance scale).", ""]
        section.answer["vector_only_vs_sequence"] = None
    section.lines += ["### Hard-negative CLIP", ""]
    pairs = hard_negative_pairs(sweep, BINDING)
    if not pairs:
        section.lines += ["The run did not include a hard-negative CLIP: not measured.", ""]
    comparisons = [compare(sweep, hard, plain, BINDING) for hard, plain in pairs]
    for cmp in comparisons:
        section.lines += comparison_lines(cmp)
    section.answer["hard_negative"] = [comparison_json(cmp) for cmp in comparisons] or None
    return section


QUESTIONS = (q1_frontier, q2_clip_text, q3_diversity, q4_attention, q5_binding)


# ---------------------------------------------------------------- setup


def setup_lines(summary: dict, sweep: Sweep) -> list[str]:
    setup = summary.get("setup", {})
    rows = [[label, _plain(setup[key]) if key in setup else "not recorded"] for key, label in SETUP_FIELDS]
    rows += [[key, _plain(value)] for key, value in setup.items() if key not in dict(SETUP_FIELDS)]
    curves = sweep.curves()
    paired = sweep.per_prompt is not None
    lines = ["## Setup", "", *table(["setting", "value"], rows),
             "Lines measured: " + "; ".join(f"{c.label} at {fmt_scales(sweep.guidances(c))}" for c in curves) + ".",
             "",
             "Intervals are 95%. Differences, drops, ratios and frontier areas are "
             + (f"paired percentile bootstraps over prompts ({sweep.resamples} resamples) where per-prompt values "
                "exist, otherwise " if paired else "")
             + "propagated from each cell's interval by interval arithmetic (a difference excludes 0 exactly when "
             "the two intervals do not overlap). Training seeds: rows pooled by the sweep are used as given; "
             "otherwise the value is the mean over seeds and the interval the envelope of the seeds' intervals.", ""]
    lines += _wall_time_lines(summary)
    lines += ["### Quality of the pieces", ""]
    for key, label in (("clip", "Conditioning CLIP"), ("probe", "Attribute probe (evaluator)"),
                       ("decoders", "Decoders")):
        flat = _flatten(summary.get(key) or {})
        lines += [f"{label}: " + ("; ".join(f"{k} {v}" for k, v in flat.items()) if flat else "not recorded") + ".",
                  ""]
    priors = summary.get("priors") or {}
    lines += (table(["prior", "cosine to true image vector", "retrieval accuracy"],
                    [[p, _plain(q.get("cosine")), _plain(q.get("retrieval"))] for p, q in priors.items()])
              if priors else ["Priors: not recorded.", ""])
    return lines


def _wall_time_lines(summary: dict) -> list[str]:
    jobs = summary.get("jobs")
    if jobs:  # a joint report (harness.report.join): each job's own report keeps its wall time per stage
        rows = [[job["job"], job["folder"], _plain(job["modes"]), _plain(job["wall_time_total_s"])] for job in jobs]
        rows.append(["sum", "", "", _plain(summary.get("jobs_wall_time_total_s"))])
        return ["### Jobs joined", "", f"This report joins {len(jobs)} jobs; each job's own report, with its wall "
                "time per stage, stays in its folder.", "", *table(["job", "folder", "modes", "wall time (s)"], rows)]
    wall = summary.get("wall_time_s")
    return ["### Wall time per stage", "",
            *(table(["stage", "seconds"], [[k, _plain(v)] for k, v in wall.items()] + [_total_row(summary, wall)])
              if wall else ["not recorded", ""])]


def _plain(value: Any) -> str:
    if isinstance(value, dict):  # a setting that differs between joined jobs: {job: value}
        return "; ".join(f"{key}: {_plain(v)}" for key, v in value.items())
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    return "not recorded" if value is None else str(value)


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = _plain(value)
    return flat


# ---------------------------------------------------------------- the figure


def plot_curves(sweep: Sweep, path: Path) -> Path:
    """One panel per fidelity measure (columns) against free-attribute entropy and a second diversity measure
    (rows): one line per curve, guidance scales as labelled points, 95% intervals both ways, the real ceiling
    as a star with dotted guides. Fixed prior draws are dashed, hard-negative CLIP variants use squares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fidelities = [f for f in FIDELITY if sweep.has(f)]
    primary = first_measured(sweep, DIVERSITY)
    second = first_measured(sweep, [m for m in ("pairwise_distance", "recall") if m != primary])
    diversities = [d for d in (primary, second) if d]
    rows, cols = max(1, len(diversities)), max(1, len(fidelities))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.9 * rows + 1.0), squeeze=False)
    if not fidelities or not diversities:
        axes[0][0].text(0.5, 0.5, f"{NOT_MEASURED}: no fidelity and diversity measures", ha="center", va="center")
        axes[0][0].axis("off")
    modes = list(dict.fromkeys(c.mode for c in sweep.curves()))
    # Past ten modes (the cpu preset joined with its hard-negative job has eleven) the default cycle would give
    # two modes one colour; tab20 keeps every mode apart.
    palette = [f"C{i}" for i in range(10)] if len(modes) <= 10 else list(plt.get_cmap("tab20").colors)
    colors = {mode: palette[i % len(palette)] for i, mode in enumerate(modes)}
    handles: dict[str, Any] = {}
    for row, diversity in enumerate(diversities):
        for col, fidelity in enumerate(fidelities):
            _panel(axes[row][col], sweep, diversity, fidelity, colors, handles)
    legend_rows = -(-len(handles) // 4) if handles else 0
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(4, len(handles)),
                   frameon=False, fontsize=8.5)
    fig.suptitle("Diversity–fidelity curves: numbers at points are guidance scales, bars are 95% intervals", fontsize=11)
    bottom = min(0.4, (0.1 + 0.2 * legend_rows) / fig.get_figheight())
    fig.tight_layout(rect=(0, bottom, 1, 0.97))
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=130)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _panel(ax: Any, sweep: Sweep, diversity: str, fidelity: str, colors: dict[str, str],
           handles: dict[str, Any]) -> None:
    from matplotlib.lines import Line2D

    curves = sweep.curves(diversity, fidelity)
    for curve in curves:
        points = frontier(sweep, curve, diversity, fidelity)
        x, y = [p.diversity for p in points], [p.fidelity for p in points]
        color = colors[curve.mode]
        style = dict(color=color, linestyle="--" if curve.prior_draw == "fixed" else "-",
                     marker="s" if curve.hard_negative else "o", markersize=4.5, linewidth=1.6)
        ax.errorbar([e.value for e in x], [e.value for e in y], xerr=_bar(x), yerr=_bar(y), elinewidth=0.7,
                    capsize=2, alpha=0.9, **style)
        handles.setdefault(curve.label, Line2D([], [], **style))
        for p in points:
            ax.annotate(f"{p.guidance:g}", (p.diversity.value, p.fidelity.value), textcoords="offset points",
                        xytext=(4, 3), fontsize=6.5, color=color)
    real_x, real_y = (sweep.value(sweep.ceiling_cell(m)) for m in (diversity, fidelity))
    if real_x is not None:
        ax.axvline(real_x.value, color="0.45", linestyle=":", linewidth=1)
    if real_y is not None:
        ax.axhline(real_y.value, color="0.45", linestyle=":", linewidth=1)
    if real_x is not None and real_y is not None:
        star = dict(color="black", marker="*", markersize=12, linestyle="none")
        ax.errorbar([real_x.value], [real_y.value], xerr=_bar([real_x]), yerr=_bar([real_y]), elinewidth=0.7,
                    capsize=2, **star)
        handles.setdefault("real images (ceiling, dotted)", Line2D([], [], **star))
    if not curves:
        ax.text(0.5, 0.5, NOT_MEASURED, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_title(f"{name(fidelity)} vs {name(diversity)}", fontsize=9.5)
    ax.set_xlabel(f"{name(diversity)} (more diverse →)", fontsize=9)
    ax.set_ylabel(f"{name(fidelity)} (better ↑)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)


def _bar(estimates: Sequence[Estimate]) -> list[list[float]]:
    # Distances from the value to each bound; a bound that is missing (NaN) draws no bar on that side.
    below = [max(0.0, e.value - e.low) if math.isfinite(e.low) else 0.0 for e in estimates]
    above = [max(0.0, e.high - e.value) if math.isfinite(e.high) else 0.0 for e in estimates]
    return [below, above]


# ---------------------------------------------------------------- the report


def write_report(metrics: pd.DataFrame, summary: dict, out_dir: Path, per_prompt: pd.DataFrame | None = None,
                 grids: dict[str, Path] | None = None, sheets: dict[str, Path] | None = None,
                 resamples: int = 1000) -> Path:
    """Write report.md and curves.png in `out_dir` and merge `summary` plus the answers (numbers with intervals,
    per question) into its summary.json; returns the path of report.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep = Sweep(metrics, per_prompt, resamples=resamples)
    plot_curves(sweep, out_dir / "curves.png")
    sections = {question.__name__: question(sweep) for question in QUESTIONS}
    lines = [f"# Report: {summary.get('experiment', 'experiment')}", "", *setup_lines(summary, sweep),
             "## Diversity–fidelity curves", "",
             "One line per mode (and prior-draw policy, fixed dashed), guidance scales as labelled points, 95% "
             "intervals in both directions, real images of the same prompts as the star and dotted lines.", "",
             "![curves](curves.png)", ""]
    for section in sections.values():
        lines += [f"## {section.title}", "", *section.lines]
    if grids:
        lines += ["## Image grids", "", "Rows: modes; columns: guidance scales; same prompt and noise.", ""]
        for label, grid in grids.items():
            lines += [f"### {label}", "", f"![{label}]({os.path.relpath(Path(grid), out_dir)})", ""]
    if sheets:
        lines += ["## Samples per mode", "", "Rows: prompts; for each guidance scale, all samples of the prompt "
                  "(same noise on every sheet).", "", *drawn_right_lines(sweep)]
        for label, sheet in sheets.items():
            lines += [f"### {label}", "", f"![{label}]({os.path.relpath(Path(sheet), out_dir)})", ""]
    report = out_dir / "report.md"
    _write_atomic(report, "\n".join(lines).rstrip() + "\n")
    summary_path = out_dir / "summary.json"
    merged = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    merged.update(summary)
    merged["answers"] = {key: section.answer for key, section in sections.items()}
    _write_atomic(summary_path, json.dumps(merged, indent=2, default=str))
    return report


def _total_row(summary: dict, wall: dict) -> list[str]:
    # Stages that ran side by side (workers > 1) sum to more than the run took: the run's own clock wins.
    if "wall_time_total_s" in summary:
        return ["total (wall clock)", _plain(summary["wall_time_total_s"])]
    return ["total", _plain(sum(v for v in wall.values() if isinstance(v, (int, float))))]


def _write_atomic(path: Path, text: str) -> None:
    # A reader (or a resumed run) never sees a half-written file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
