"""Question 3: does unclip keep diversity at high guidance while glide collapses?

Two readings of what DALL-E 2 did are kept apart. The paper's Fig. 9 fixes one prior draw per sample (per
column) and holds it across guidance scales, with paired diffusion noise: the `per_sample` policy. The blog post
this project started from read it as one draw for every sample of a prompt: the `fixed` policy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.report.contrasts import compare, diversity_drop, draw_pairs, drop_difference, first_measured
from harness.metrics.catalogue import DIVERSITY, FREE_JSD
from harness.line import Line
from harness.metrics.estimate import Sweep
from harness.report.markdown import (
    CANNOT_TELL,
    NOT_MEASURED,
    Section,
    as_json,
    fmt_est,
    metric_table,
    name,
    verdict,
)
from harness.report.figures import plot_against_guidance
from harness.report.q2_clip_text import comparison_json, comparison_lines
from harness.sampling.arms.base import FIXED, PER_SAMPLE

TITLE = "Q3. Does diversity survive strong guidance? Fixed vs per-sample prior draws"
PRIOR_SPREAD = "prior_spread"
READINGS = {
    PER_SAMPLE: "the paper's reading (Fig. 9: one prior draw per sample, held across guidance scales)",
    FIXED: "the blog post's reading (one prior draw shared by every sample of a prompt)",
}


def section(sweep: Sweep, out_dir: Path | None = None) -> Section:
    """The section; with `out_dir`, also `q3_diversity.png`: the diversity measure against guidance."""
    metric = first_measured(sweep, DIVERSITY)
    if metric is None:
        return Section.absent(TITLE, "the run has no diversity measure")
    curves = sweep.curves(metric)
    readings = [f"- `{policy}`: {text}." for policy, text in READINGS.items()
                if any(c.arm == policy for c in curves)]
    section = Section(TITLE, [f"Diversity measure: {name(metric)} (higher is more diverse). Prior-draw policies:",
                              "", *readings, "", *metric_table(sweep, metric, curves)],
                      {"measured": True, "metric": metric, "drops": {}, "fixed_vs_per_sample": {}})
    figure = None if out_dir is None else plot_against_guidance(
        sweep, metric, curves, out_dir / "q3_diversity.png", f"{name(metric)} against guidance (bars: 95% intervals)")
    if figure is not None:
        section.lines += [f"![{name(metric)} against guidance]({figure.name})", ""]
    right = sweep.curves(FREE_JSD)
    if right:  # entropy rewards any spread; this says whether the spread is the world's
        section.lines += [f"Beside it, {name(FREE_JSD)} (0 on draws from the world's exact distribution for the "
                          "caption, higher is further from it):", "", *metric_table(sweep, FREE_JSD, right)]
    if sweep.value(sweep.ceiling_cell(metric)) is None:
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
                       drop.drop, "diversity falls", "diversity rises", f"{CANNOT_TELL} whether it changes")
        if drop.end_of_ceiling is not None:
            text += (f" Fraction of the real ceiling: {fmt_est(drop.start_of_ceiling)} at g = {g0}, "
                     f"{fmt_est(drop.end_of_ceiling)} at g = {g1}.")
        section.lines.append(text)
        section.answer["drops"][curve.label] = {
            "low_guidance": drop.low_guidance, "high_guidance": drop.high_guidance, "start": as_json(drop.start),
            "end": as_json(drop.end), "drop": as_json(drop.drop),
            "start_of_ceiling": as_json(drop.start_of_ceiling), "end_of_ceiling": as_json(drop.end_of_ceiling)}
    section.lines.append("")
    section.lines += _versus_glide(sweep, metric, curves, section.answer)
    section.lines += _fixed_vs_per_sample(sweep, metric, section.answer)
    return section


def _versus_glide(sweep: Sweep, metric: str, curves: Sequence[Line], answer: dict) -> list[str]:
    """drop(glide) - drop(unCLIP-style curve), and the two at the highest guidance scale both were swept at."""
    glide = next((Line(m) for m in sorted(sweep.tagged("core", "sequence", without=("two_pathway",)))), None)
    prior_modes = sweep.tagged("prior")
    challengers = [c for c in curves if c.mode in prior_modes]
    if glide not in curves or not challengers:
        return [f"A prior mode against the core sequence-only mode (GLIDE) at high guidance: {NOT_MEASURED.lower()} "
                "(needs both).", ""]
    lines, answer["versus_glide"] = [f"Against {glide.label} (exploratory unless listed in Key findings):", ""], {}
    for curve in challengers:
        gap = drop_difference(sweep, glide, curve, metric)
        points = compare(sweep, curve, glide, metric).points
        lines.append(verdict(f"- drop({glide.label}) − drop({curve.label})", gap, f"{glide.label} loses more "
                             f"diversity than {curve.label}", f"{curve.label} loses more diversity than {glide.label}",
                             f"{CANNOT_TELL} which loses more"))
        top = points[-1] if points else None
        if top is not None:
            lines.append(verdict(f"- g = {top.guidance:g}: {curve.label} − {glide.label}", top.difference,
                                 f"{curve.label} keeps more diversity", f"{glide.label} keeps more diversity",
                                 f"{CANNOT_TELL} {curve.label} from {glide.label}"))
        answer["versus_glide"][curve.label] = {
            "drop_difference": as_json(gap),
            "at_highest_guidance": None if top is None else {"guidance": top.guidance,
                                                             "difference": as_json(top.difference)}}
    return lines + [""]


def _fixed_vs_per_sample(sweep: Sweep, metric: str, answer: dict) -> list[str]:
    lines = ["### One fixed prior draw per prompt vs a fresh draw per sample", ""]
    pairs = draw_pairs(sweep, metric)
    if not pairs:
        return lines + [f"{NOT_MEASURED}: no mode was swept with both fixed and per-sample prior draws.", ""]
    for fixed, per_sample in pairs:
        gap = drop_difference(sweep, fixed, per_sample, metric)
        cmp = compare(sweep, per_sample, fixed, metric)
        lines += [verdict(f"- {fixed.unarmed.label}: drop(fixed) − drop(per_sample)", gap,
                          "the fixed draw loses more diversity under guidance",
                          "the per-sample draw loses more diversity under guidance",
                          f"{CANNOT_TELL} which policy loses more"), *comparison_lines(cmp)]
        answer["fixed_vs_per_sample"][fixed.unarmed.label] = {"drop_gap": as_json(gap),
                                                              "comparison": comparison_json(cmp)}
    spread_curves = sweep.curves(PRIOR_SPREAD)
    if spread_curves:
        lines += ["Spread of the prior's vectors per prompt (mean pairwise cosine distance):", "",
                  *metric_table(sweep, PRIOR_SPREAD, spread_curves)]
    return lines
