"""Question 5: do fixed-length vectors lose attribute binding ("a red circle and a blue square") that a token
sequence keeps, and does a CLIP trained with hard-negative captions fix it?

Binding accuracy: the share of samples of two-object prompts that show each named object with its own shape
and colour (the spatial relation is scored apart, as relation accuracy). Swap binding: among samples that show both named shapes in both named colours, the share that give each
shape its own colour (chance 0.5), with the share of samples eligible. The designed ablations add or remove one
pathway and nothing else; they are Q5's primary contrasts (`report.primary`): by default clip_text against
clip_text_seq (the CLIP vector without and with the GLIDE token sequence) and glide against glide_seq (the GLIDE
sequence with and without its pooled token). Vector-only and sequence modes are those their YAML tags say."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import reduce

from harness.report.contrasts import compare
from harness.line import NONE, Line
from harness.metrics.estimate import Estimate, Sweep
from harness.report.markdown import NOT_MEASURED, Section, as_json, by_sign, fmt_est, metric_table, name, table
from harness.report.q2_clip_text import comparison_json, comparison_lines

TITLE = "Q5. Do fixed-length vectors lose attribute binding? Do hard-negative captions fix it?"
BINDING, SWAP, ELIGIBLE, RELATION = "binding_accuracy", "swap_binding", "swap_eligible", "relation_accuracy"


@dataclass(frozen=True)
class GroupContrast:
    """Mean over two groups of curves at one guidance scale, and the difference a - b."""

    guidance: float
    a: Estimate
    b: Estimate
    difference: Estimate


def group_curves(sweep: Sweep, modes: Sequence[str], metric: str) -> list[Line]:
    """Curves of the given modes with the run's own CLIP (other CLIP variants are the second part)."""
    return [c for c in sweep.curves(metric) if c.mode in modes and c.clip_variant == NONE]


def group_contrast(sweep: Sweep, a: Sequence[Line], b: Sequence[Line], metric: str) -> list[GroupContrast]:
    """Mean of `metric` over the curves of a (each line counts once) against that of b, per shared scale."""
    if not a or not b:
        return []
    shared = reduce(set.intersection, (set(sweep.guidances(c, metric)) for c in [*a, *b]))
    rows = []
    for g in sorted(shared):
        cells_a, cells_b = [sweep.cell(c, g, metric) for c in a], [sweep.cell(c, g, metric) for c in b]
        mean_a, mean_b = [1.0 / len(a)] * len(a), [1.0 / len(b)] * len(b)
        rows.append(GroupContrast(g, sweep.contrast(cells_a, mean_a), sweep.contrast(cells_b, mean_b),
                                  sweep.contrast(cells_a + cells_b, mean_a + [-w for w in mean_b])))
    return rows


def hard_negative_pairs(sweep: Sweep, metric: str) -> list[tuple[Line, Line]]:
    """(a CLIP variant's curve, the same line with the standard CLIP) for every variant measured: the joint
    report of a standard and a hard-negative CLIP job (`harness.report.join`)."""
    curves = set(sweep.curves(metric))
    return [(c, replace(c, clip_variant=NONE)) for c in sweep.curves(metric)
            if c.clip_variant != NONE and replace(c, clip_variant=NONE) in curves]


def section(sweep: Sweep, ablations: Sequence[tuple[str, str]] = ()) -> Section:
    """`ablations`: (with the pathway, without it) pairs of curves, Q5's primary contrasts."""
    if not sweep.has(BINDING):
        return Section.absent(TITLE, "the run has no binding accuracy (no two-object prompts)")
    section = Section(TITLE, [f"{name(BINDING)} on two-object prompts (both objects with their own shape and "
                              "colour):", "", *metric_table(sweep, BINDING, sweep.curves(BINDING))], {"measured": True})
    if sweep.has(RELATION):
        section.lines += [f"{name(RELATION)} (the named spatial relation holds; a different skill from binding):", "",
                          *metric_table(sweep, RELATION, sweep.curves(RELATION))]
    if sweep.has(SWAP):
        section.lines += [f"{name(SWAP)} (among samples showing both named shapes in both named colours, the share "
                          "paired correctly; chance 0.5):", "", *metric_table(sweep, SWAP, sweep.curves(SWAP)),
                          "Share of samples eligible for it:", "", *metric_table(sweep, ELIGIBLE,
                                                                                sweep.curves(ELIGIBLE))]
    section.lines += ["### The designed ablations (one pathway added or removed)", ""]
    compared = [compare(sweep, Line.parse(a), Line.parse(b), BINDING) for a, b in ablations]
    compared = [cmp for cmp in compared if cmp.points]
    if not compared:
        pairs = "; ".join(f"{a} with {b}" for a, b in ablations) or "none declared"
        section.lines += [f"{NOT_MEASURED}: the run has none of Q5's ablation pairs ({pairs}).", ""]
    for cmp in compared:
        section.lines += comparison_lines(cmp)
    section.answer["ablations"] = [comparison_json(cmp) for cmp in compared]
    section.lines += _vector_against_sequence(sweep, section.answer)
    section.lines += ["### Hard-negative CLIP", ""]
    pairs = hard_negative_pairs(sweep, BINDING)
    if not pairs:
        section.lines += ["The run did not include a hard-negative CLIP: not measured.", ""]
    comparisons = [compare(sweep, hard, plain, BINDING) for hard, plain in pairs]
    for cmp in comparisons:
        section.lines += comparison_lines(cmp)
    section.answer["hard_negative"] = [comparison_json(cmp) for cmp in comparisons] or None
    return section


def _vector_against_sequence(sweep: Sweep, answer: dict) -> list[str]:
    # The oracle is left out: it sees the true image vector, a reconstruction ceiling, not text-to-image.
    vector = group_curves(sweep, sweep.tagged("vector_only", without=("oracle",)), BINDING)
    sequence = group_curves(sweep, sweep.tagged("sequence"), BINDING)
    rows = group_contrast(sweep, vector, sequence, BINDING)
    if not rows:
        answer["vector_only_vs_sequence"] = None
        return [f"Vector-only against sequence modes: {NOT_MEASURED.lower()} (needs binding accuracy for both "
                "kinds at a shared guidance scale).", ""]
    labels = (", ".join(c.label for c in vector), ", ".join(c.label for c in sequence))
    summary = by_sign([(r.guidance, r.difference) for r in rows], "vector-only modes bind better",
                      "sequence modes bind better")
    answer["vector_only_vs_sequence"] = {
        "vector_only": [c.label for c in vector], "sequence": [c.label for c in sequence],
        "points": [{"guidance": r.guidance, "vector_only": as_json(r.a), "sequence": as_json(r.b),
                    "difference": as_json(r.difference)} for r in rows]}
    return ["### Vector-only against sequence modes", "",
            f"Vector-only ({labels[0]}) against sequence ({labels[1]}), mean over each group's lines, these modes "
            f"differ in more than the pathway (exploratory), vector-only − sequence: {summary}", "",
            *table(["guidance", "vector-only", "sequence", "vector-only − sequence"],
                   [[f"{r.guidance:g}", fmt_est(r.a), fmt_est(r.b), fmt_est(r.difference)] for r in rows])]
