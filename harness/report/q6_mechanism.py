"""Question 6: why does a fresh prior draw per sample keep diversity? Which property of the draws carries it: their
location, their second moment, their multimodal structure, or that they belong to the caption?

The sampling arms of the run (harness/sampling/arms/) are read against each mode's own way of sampling (its baseline
arm: plain guidance, or a prior-draw policy) on the same decoder: controls that keep some of the draws' properties
(`prior_gaussian`, `isotropic`, `shuffled_draws`), reranked draws (`rerank`), condition noise (`text_noise`,
`cads`) and guidance variants (`interval`, `apg`). Each comparison is diversity
at matched fidelity (where both curves reach the middle of the fidelity range they share), fidelity at matched
diversity (as in Q1) and the diversity drop from the lowest to the highest guidance; exploratory here, the
primary contrasts are in Key findings. Arms are told apart by the run's summary (`arms`: module, parameters and
whether an arm is a baseline), so no mode or arm name is written here.
"""

from __future__ import annotations

from pathlib import Path

from harness.report.contrasts import (
    diversity_at_matched_fidelity,
    diversity_drop,
    drop_difference,
    first_measured,
    matched_difference,
)
from harness.metrics.catalogue import DIVERSITY, FIDELITY, FREE_JSD
from harness.line import NONE, Line
from harness.metrics.estimate import Sweep
from harness.report.markdown import CANNOT_TELL, Section, as_json, fmt_est, metric_table, name, table, verdict

TITLE = "Q6. Why does a fresh prior draw keep diversity? Prior draws against controls on the same decoder"
SPREAD = "prior_spread"


def is_baseline(curve: Line, arms: dict) -> bool:
    """A mode's own way of sampling: plain, or an arm the run's summary marks as a baseline (a prior-draw
    policy)."""
    return curve.arm == NONE or bool(arms[curve.arm]["baseline"])


def arm_modes(sweep: Sweep, arms: dict) -> dict[Line, list[Line]]:
    """Per line without its arm (a mode's decoder under one CLIP, at one text scale) with at least one non-baseline
    arm: all its curves, baselines first. Arms are read against each other within such a group only."""
    by_group: dict[Line, list[Line]] = {}
    for curve in sweep.curves():
        by_group.setdefault(curve.unarmed, []).append(curve)
    return {group: sorted(curves, key=lambda c: (not is_baseline(c, arms), c.sort_key()))
            for group, curves in by_group.items() if any(not is_baseline(c, arms) for c in curves)}


def section(sweep: Sweep, arms: dict, matched: float, figures: dict[Line, list[Path]] | None = None,
            out_dir: Path | None = None) -> Section:
    modes = arm_modes(sweep, arms)
    if not modes:
        return Section.absent(TITLE, "the run sampled no control arm beside each mode's own sampling "
                                     "(experiment=mechanism adds them to quick's decoders)")
    diversity, fidelity = first_measured(sweep, DIVERSITY), first_measured(sweep, FIDELITY)
    if diversity is None or fidelity is None:
        return Section.absent(TITLE, "the run has no diversity or no fidelity measure")
    lines = ["The arms of this run, with their parameters (each arm's YAML in conf/arms/):", "",
             *table(["arm", "module", "parameters", "modes"],
                    [[arm, info.get("module", arm), _params(info) or "none", ", ".join(info.get("modes", [])) or "-"]
                     for arm, info in arms.items()]),
             "Exploratory comparisons (the primary contrasts, Holm-adjusted, are in Key findings). Each arm is read "
             f"against its mode's own sampling: {name(diversity)} at matched {name(fidelity)} (the middle of the "
             "range both curves reach), > 0 when the arm keeps more diversity at equal fidelity; "
             f"{name(fidelity)} at matched diversity ({matched:.0%} of the real {name(diversity)}), > 0 when the "
             f"arm is more faithful at equal diversity; and drop(arm) − drop(own) in {name(diversity)} from the "
             "lowest to the highest guidance, < 0 when the arm keeps more diversity. n/a: the two curves do not "
             "reach a common level. "
             "A comparison across two modes (such as prior draws on unclip against text noise on clip_text) also "
             "carries the difference between their decoders, which Q2 measures.", ""]
    answer: dict = {"measured": True, "diversity": diversity, "fidelity": fidelity, "arms": arms, "modes": {}}
    for group, curves in modes.items():
        own = [c for c in curves if is_baseline(c, arms)]
        lines += [f"### {group.label}", ""]
        if figures and group in figures and out_dir is not None:
            lines += [f"![{group.label} arms]({figure.relative_to(out_dir)})" for figure in figures[group]] + [""]
        lines += [f"{name(diversity)}:", "", *metric_table(sweep, diversity, curves),
                  f"{name(fidelity)}:", "", *metric_table(sweep, fidelity, curves)]
        rows, mode_answer = [], {}
        for arm_curve in (c for c in curves if not is_baseline(c, arms)):
            for base in own:
                more_diverse = diversity_at_matched_fidelity(sweep, arm_curve, base, diversity, fidelity)
                matched_gap = matched_difference(sweep, arm_curve, base, diversity, fidelity, matched)
                drop_gap = drop_difference(sweep, arm_curve, base, diversity)
                rows.append([f"{arm_curve.label} − {base.label}", fmt_est(more_diverse), fmt_est(matched_gap),
                             fmt_est(drop_gap)])
                mode_answer[f"{arm_curve.label} - {base.label}"] = {
                    "matched_diversity": as_json(more_diverse), "matched_fidelity": as_json(matched_gap),
                    "drop_difference": as_json(drop_gap)}
        lines += table(["arm − own sampling", f"{name(diversity)} at matched {name(fidelity)}",
                        f"{name(fidelity)} at matched diversity", f"drop difference in {name(diversity)}"], rows)
        for curve in curves:
            drop = diversity_drop(sweep, curve, diversity)
            if drop is not None:
                lines.append(verdict(f"- {curve.label}: drop in {name(diversity)}, g = {drop.low_guidance:g} → "
                                     f"{drop.high_guidance:g}", drop.drop, "diversity falls", "diversity rises",
                                     f"{CANNOT_TELL} whether it changes"))
        lines.append("")
        answer["modes"][group.label] = mode_answer
    every = [c for curves in modes.values() for c in curves]
    for metric, what in ((FREE_JSD, "How far the free attributes' spread is from the world's exact distribution "
                                    "for the caption (0 on true draws; entropy rewards any spread, this only the "
                                    "right one)"),
                         (SPREAD, "Spread of the CLIP vectors each prompt's samples read (mean pairwise cosine "
                                  "distance)"),
                         ("vector_nearest_real", "Where those vectors sit: the mean cosine distance to the nearest "
                                                 "real image vector"),
                         ("vector_log_density", "and their mean log-density among the real image vectors (a "
                                                "Gaussian kernel density)")):
        measured = [c for c in every if sweep.guidances(c, metric)]
        if measured:
            lines += [f"{what}:", "", *metric_table(sweep, metric, measured)]
    return Section(TITLE, lines, answer)


def _params(info: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("module", "baseline", "modes"))
