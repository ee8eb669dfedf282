"""Question 2: does clip_text alone match or beat glide and unclip (the hypothesis that the CLIP text vector
is all the decoder needs)?

Per rival: fidelity at matched diversity (as in question 1) and every fidelity and diversity measure at each
shared guidance scale, each a paired difference; exploratory here, the primary contrasts are in Key findings."""

from __future__ import annotations

from typing import Any

from harness.report.contrasts import Comparison, better_sign, compare, first_measured, matched_difference
from harness.metrics.catalogue import DIVERSITY, FIDELITY
from harness.metrics.estimate import Sweep
from harness.report.markdown import (
    CANNOT_TELL,
    Section,
    as_json,
    fmt_est,
    name,
    table,
    verdict,
    where_clauses,
)

TITLE = "Q2. Does clip_text alone match or beat glide and unclip?"


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


def section(sweep: Sweep, matched: float) -> Section:
    # The core mode that reads the CLIP text vector alone, against the core modes with one other pathway.
    subjects = sweep.tagged("core", "vector_only", "text_vector")
    rivals = sweep.tagged("core", without=("two_pathway", "text_vector"))
    mine = [c for c in sweep.curves() if c.mode in subjects]
    others = [c for c in sweep.curves() if c.mode in rivals]
    if not mine or not others:
        return Section.absent(TITLE, "the run needs the core text-vector mode (clip_text) and at least one other "
                                     "core mode with one pathway (glide or unclip)")
    clip_text = mine[0]
    diversity = first_measured(sweep, DIVERSITY)
    fidelity = first_measured(sweep, FIDELITY)
    metrics = [m for m in (*FIDELITY, diversity) if m and sweep.has(m)]
    section = Section(TITLE, ["Exploratory comparisons (the primary contrasts, Holm-adjusted, are in Key "
                              "findings).", ""], {"measured": True, "versus": {}})
    for other in others:
        answer: dict[str, Any] = {"metrics": {}}
        section.lines += [f"### {clip_text.label} vs {other.label}", ""]
        if diversity and fidelity:
            diff = matched_difference(sweep, clip_text, other, diversity, fidelity, matched)
            section.lines += [verdict(
                f"{name(fidelity)} at matched diversity, {clip_text.label} − {other.label}", diff,
                f"{clip_text.label} is more faithful at equal diversity",
                f"{other.label} is more faithful at equal diversity", CANNOT_TELL), ""]
            answer["matched_difference"] = as_json(diff)
        for metric in metrics:
            cmp = compare(sweep, clip_text, other, metric)
            if cmp.points:
                section.lines += comparison_lines(cmp)
                answer["metrics"][metric] = comparison_json(cmp)
        section.answer["versus"][other.label] = answer
    return section
