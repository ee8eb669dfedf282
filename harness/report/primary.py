"""Key findings: each question's primary contrasts as one Holm-adjusted family, and the DALL-E 2 paper's claims.

Each question declares its primary contrasts in config (`report.primary`); the contrasts the run measured form
one family, adjusted with Holm's step-down procedure so that the chance of any false verdict among them stays
below 1 - confidence. Every other comparison in the report is exploratory. Each primary contrast is given with
its minimal detectable difference at the family's strictest level (alpha / m, Holm's first step): a "cannot
tell" with a detectable difference of 0.3 says the run was too small, not that there is no difference.

The paper's claims are judged from these contrasts (or, where no primary contrast applies, from exploratory
ones, which the sentence says): reproduced, not reproduced, or the data cannot tell.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.config import PrimaryContrast, ReportConfig
from harness.metrics.intervals import holm
from harness.report.contrasts import (
    difference,
    diversity_at_matched_fidelity,
    drop_difference,
    first_measured,
    matched_difference,
)
from harness.metrics.table import ATTRIBUTE_METRICS
from harness.report.estimate import DIVERSITY, FIDELITY, NO_ARM, Curve, Estimate, Sweep
from harness.report.markdown import CANNOT_TELL, Section, as_json, fmt, fmt_est, name

REPRODUCED, NOT_REPRODUCED, UNDECIDED = "reproduced", "not reproduced", "the data cannot tell"


@dataclass(frozen=True)
class PrimaryResult:
    spec: PrimaryContrast
    metric: str  # the metric compared: the spec's, or the run's primary measure when the spec leaves it empty
    statement: str  # what is estimated, in words
    estimate: Estimate | None  # None: not measured in this run
    adjusted_p: float = math.nan
    detectable: float = math.nan
    note: str = ""  # why a measured contrast has no value
    missing: str = ""  # why it was not measured, when the reason is the data rather than the run's modes
    matched_on: str = ""  # matched_diversity: the fidelity measure the two curves are matched on

    @property
    def measured(self) -> bool:
        return self.estimate is not None and math.isfinite(self.estimate.value) and math.isfinite(self.estimate.se)

    @property
    def unreached(self) -> bool:
        """Measured, but the matched level does not exist: a curve never comes down to the matched diversity, or
        two curves share no fidelity."""
        return self.estimate is not None and not math.isfinite(self.estimate.value)

    def significant(self, alpha: float) -> int:
        """+1 / -1 when the adjusted test finds a > b / a < b, 0 when it cannot tell."""
        if not self.measured or not self.adjusted_p < alpha:
            return 0
        return 1 if self.estimate.value > 0 else -1


def _curve_text(spec: PrimaryContrast) -> tuple[Curve, Curve]:
    return Curve.parse(spec.a), Curve.parse(spec.b)


def primary_metric(sweep: Sweep, spec: PrimaryContrast) -> str:
    """The metric a contrast compares: its own, else the run's first measured diversity measure (a drop) or
    fidelity measure (the rest), so the same defaults read the world's probe and a dataset's evaluation CLIP."""
    if spec.metric:
        return spec.metric
    if spec.contrast in ("drop_difference", "matched_diversity"):
        return first_measured(sweep, DIVERSITY) or DIVERSITY[0]
    return first_measured(sweep, FIDELITY) or FIDELITY[0]


def estimate_primary(sweep: Sweep, spec: PrimaryContrast, settings: ReportConfig) -> PrimaryResult:
    """The contrast `spec` declares, measured on this run (estimate None when a curve or cell is missing)."""
    a, b = _curve_text(spec)
    metric = primary_metric(sweep, spec)
    if metric in ATTRIBUTE_METRICS and not sweep.has(metric):
        return PrimaryResult(spec, metric, f"{a.label} − {b.label}, {name(metric)}", None,
                             missing=f"{name(metric)} needs the shapes world's attribute probe")
    if spec.contrast == "matched_fidelity":
        diversity = first_measured(sweep, DIVERSITY) or DIVERSITY[0]
        statement = (f"{name(metric)} at matched diversity ({settings.matched_diversity:.0%} of the real "
                     f"{name(diversity)}), {a.label} − {b.label}")
        if sweep.value(sweep.ceiling_cell(diversity)) is None:
            return PrimaryResult(spec, metric, statement, None,
                                 missing=f"the real images have no {name(diversity)} to match (on a dataset, each "
                                         "held-out caption needs two or more test images: captions that repeat)")
        estimate = matched_difference(sweep, a, b, diversity, metric, settings.matched_diversity)
        return PrimaryResult(spec, metric, statement, estimate, note=_ranges(sweep, (a, b), diversity))
    if spec.contrast == "matched_diversity":
        fidelity = first_measured(sweep, FIDELITY) or FIDELITY[0]
        bases = (Curve.parse(spec.a_base), Curve.parse(spec.b_base)) if spec.a_base else (None, None)
        if bases[0] is None:
            statement = (f"{name(metric)} at matched {name(fidelity)} (the middle of the range both reach), "
                         f"{a.label} − {b.label}")
            curves = (a, b)
        else:
            statement = (f"gain in {name(metric)} at matched {name(fidelity)} (each pair at the middle of the range "
                         f"both reach), ({a.label} − {bases[0].label}) − ({b.label} − {bases[1].label})")
            curves = (a, bases[0], b, bases[1])
        estimate = diversity_at_matched_fidelity(sweep, a, b, metric, fidelity, *bases)
        return PrimaryResult(spec, metric, statement, estimate, note=_ranges(sweep, curves, fidelity, relative=False),
                             matched_on=fidelity)
    if spec.contrast == "drop_difference":
        scales = sorted(set(sweep.guidances(a, metric)) & set(sweep.guidances(b, metric)))
        span = f"g = {scales[0]:g} → {scales[-1]:g}" if len(scales) >= 2 else "lowest → highest guidance"
        statement = f"drop({a.label}) − drop({b.label}) in {name(metric)}, {span}"
        return PrimaryResult(spec, metric, statement, drop_difference(sweep, a, b, metric))
    b_metric = spec.b_metric or metric
    right = f"{b.label} {name(b_metric)}" if b_metric != metric else b.label
    left = f"{a.label} {name(metric)}" if b_metric != metric else a.label
    statement = f"{left} − {right}" + ("" if b_metric != metric else f", {name(metric)}") + \
        f", g = {spec.guidance:g}"
    cells_exist = (spec.guidance in sweep.guidances(a, metric) and spec.guidance in sweep.guidances(b, b_metric))
    estimate = difference(sweep, sweep.cell(a, spec.guidance, metric),
                          sweep.cell(b, spec.guidance, b_metric)) if cells_exist else None
    return PrimaryResult(spec, metric, statement, estimate)


def _ranges(sweep: Sweep, curves: Sequence[Curve], metric: str, relative: bool = True) -> str:
    """Each curve's `metric` over its guidance scales, as fractions of the real images' (`relative`) or as
    values: where they do not overlap (or pass the matched level), the matched comparison does not exist."""
    ceiling = sweep.value(sweep.ceiling_cell(metric)) if relative else None
    if relative and ceiling is None:
        return ""
    spans = []
    for curve in curves:
        values = [sweep.value(sweep.cell(curve, g, metric)).value for g in sweep.guidances(curve, metric)]
        if values:
            spans.append(f"{curve.label} spans {min(values) / ceiling.value:.0%}-{max(values) / ceiling.value:.0%}"
                         if relative else f"{curve.label} spans {fmt(min(values))}-{fmt(max(values))}")
    return "; ".join(spans)


def primary_family(sweep: Sweep, settings: ReportConfig) -> list[PrimaryResult]:
    """Every declared primary contrast, the measured ones Holm-adjusted as one family."""
    results = [estimate_primary(sweep, spec, settings) for spec in settings.primary]
    measured = [r for r in results if r.measured]
    alpha = 1 - settings.confidence
    adjusted = holm([r.estimate.p_value() for r in measured])
    strictest = alpha / max(1, len(measured))
    done = {id(r): dataclasses.replace(r, adjusted_p=p, detectable=r.estimate.detectable(alpha=strictest))
            for r, p in zip(measured, adjusted)}
    return [done.get(id(r), r) for r in results]


def _outcome(result: PrimaryResult, alpha: float) -> str:
    a, b = _curve_text(result.spec)
    sign = result.significant(alpha)
    if result.spec.contrast == "drop_difference":
        words = {1: f"{a.label} loses more", -1: f"{b.label} loses more"}
    elif result.spec.contrast == "matched_fidelity":
        words = {1: f"{a.label} is more faithful at equal diversity", -1: f"{b.label} is more faithful at equal "
                                                                           "diversity"}
    elif result.spec.contrast == "matched_diversity":
        what = "gains more diversity" if result.spec.a_base else "is more diverse"
        words = {1: f"{a.label} {what} at equal fidelity", -1: f"{b.label} {what} at equal fidelity"}
    else:
        words = {1: f"{a.label} is higher", -1: f"{b.label} is higher"}
    custom = {1: result.spec.if_positive, -1: result.spec.if_negative}
    return (custom.get(sign) or words.get(sign)) or CANNOT_TELL


def finding_line(result: PrimaryResult, alpha: float) -> str:
    q = result.spec.question.upper()
    if result.unreached and result.spec.contrast == "matched_diversity":
        return (f"- **{q}** {result.statement}: n/a, two curves compared share no range of "
                f"{name(result.matched_on)} over their guidance scales ({result.note}), so their diversity cannot "
                "be read at equal fidelity.")
    if result.unreached:
        return (f"- **{q}** {result.statement}: n/a, the two curves do not both pass that level of diversity over "
                f"their guidance scales ({result.note} of the real images'), so their fidelity cannot be read at "
                "equal diversity.")
    if not result.measured:
        why = f": {result.missing}" if result.missing else ""
        return f"- **{q}** {result.statement}: not measured in this run{why}."
    e = result.estimate
    seeds = f"{e.seeds} training seed{'s' if e.seeds != 1 else ''}" + (" (prompt variation only)" if e.seeds == 1
                                                                          else "")
    return (f"- **{q}** {result.statement} = {fmt_est(e)}; Holm-adjusted p {_p(result.adjusted_p)}, minimal "
            f"detectable difference {fmt(result.detectable)} ({e.prompts} prompts, {seeds}): "
            f"**{_outcome(result, alpha)}**.")


def _p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else "< 0.001" if p < 0.001 else f"= {p:.3f}"


# ---------------------------------------------------------------- the paper's claims


@dataclass(frozen=True)
class Claim:
    text: str
    verdict: str
    evidence: str


def _find(results: Sequence[PrimaryResult], contrast: str, a: str, b: str, metric: str) -> PrimaryResult | None:
    return next((r for r in results if r.spec.contrast == contrast and r.metric == metric
                 and Curve.parse(r.spec.a) == Curve.parse(a) and Curve.parse(r.spec.b) == Curve.parse(b)
                 and r.measured), None)


def _by_sign(sign: int, positive: str, negative: str) -> str:
    return positive if sign > 0 else negative if sign < 0 else UNDECIDED


def _interval_sign(e: Estimate | None) -> int:
    return 0 if e is None or not e.excludes(0.0) else (1 if e.value > 0 else -1)


def _the(sweep: Sweep, *tags: str, without: Sequence[str] = (), default: str) -> str:
    """The mode of the paper's comparison with these tags (the first by name), or `default` when none has them."""
    found = sorted(sweep.tagged(*tags, without=without))
    return found[0] if found else default


def paper_claims(sweep: Sweep, results: Sequence[PrimaryResult], settings: ReportConfig) -> list[Claim]:
    """The paper's systems are picked by their tags: GLIDE (the core sequence-only mode), unCLIP (the core
    vector-only prior mode) and DALL-E 2 as shipped (the core two-pathway prior mode), prior draws per sample."""
    alpha = 1 - settings.confidence
    diversity = first_measured(sweep, DIVERSITY) or "free_entropy"
    glide_mode = _the(sweep, "core", "sequence", without=("two_pathway",), default="glide")
    unclip_mode = _the(sweep, "core", "vector_only", "prior", default="unclip")
    combined_mode = _the(sweep, "core", "two_pathway", "prior", default="combined")
    glide, unclip, combined = Curve(glide_mode), Curve(unclip_mode, "per_sample"), Curve(combined_mode, "per_sample")
    claims = []

    keeps = _find(results, "drop_difference", glide.label, f"{unclip_mode}/per_sample", diversity)
    if keeps is not None:
        claims.append(Claim("unCLIP keeps diversity under decoder guidance with the prior latents fixed per sample "
                            "(more than GLIDE keeps)", _by_sign(keeps.significant(alpha), REPRODUCED, NOT_REPRODUCED),
                            f"primary contrast {keeps.statement} = {fmt_est(keeps.estimate)}, Holm-adjusted p "
                            f"{_p(keeps.adjusted_p)}, detectable {fmt(keeps.detectable)}"))
    else:
        claims.append(Claim("unCLIP keeps diversity under decoder guidance with the prior latents fixed per sample",
                            UNDECIDED, f"not measured: needs {glide.label} and {unclip.label} on a guidance sweep"))

    scales = sweep.guidances(glide, diversity)
    if len(scales) >= 2:
        drop = difference(sweep, sweep.cell(glide, scales[0], diversity), sweep.cell(glide, scales[-1], diversity))
        claims.append(Claim("GLIDE's diversity collapses under guidance", _by_sign(_interval_sign(drop), REPRODUCED,
                                                                                   NOT_REPRODUCED),
                            f"exploratory: drop of {glide.label}'s {name(diversity)} from g = {scales[0]:g} to "
                            f"{scales[-1]:g} = {fmt_est(drop)}"))
    else:
        claims.append(Claim("GLIDE's diversity collapses under guidance", UNDECIDED,
                            f"not measured: no {glide.label} sweep"))

    fid = drop_difference(sweep, unclip, glide, "fid") if sweep.has("fid") else None
    claims.append(Claim("Guidance hurts unCLIP's FID less than GLIDE's",
                        UNDECIDED if fid is None else _by_sign(_interval_sign(fid), REPRODUCED, NOT_REPRODUCED),
                        f"not measured: needs {glide.label}, {unclip.label} and FID" if fid is None else
                        f"exploratory: rise of FID from the lowest to the highest guidance, {glide.label}'s − "
                        f"{unclip.label}'s = {fmt_est(fid)} (> 0: {glide.label}'s FID rises more)"))

    g = settings.binding_guidance
    binding = "binding_accuracy"
    if g in sweep.guidances(combined, binding) and g in sweep.guidances(unclip, binding):
        added = difference(sweep, sweep.cell(combined, g, binding), sweep.cell(unclip, g, binding))
        margin = settings.binding_margin
        verdict = (REPRODUCED if -margin <= added.low and added.high <= margin else
                   NOT_REPRODUCED if added.low > margin or added.high < -margin else UNDECIDED)
        claims.append(Claim("The GLIDE pathway adds little to binding", verdict,
                             f"exploratory: binding accuracy of {combined_mode} − {unclip_mode} (both per_sample) at "
                             f"g = {g:g} = {fmt_est(added)}; 'little' means the interval lies within ±{fmt(margin)}"))
    else:
        claims.append(Claim("The GLIDE pathway adds little to binding", UNDECIDED,
                            f"not measured: needs {combined_mode} and {unclip_mode} (per_sample) binding accuracy"))
    return claims


def q6_answer(results: Sequence[PrimaryResult], arms: dict, alpha: float) -> str:
    """Q6 in one sentence, from its primary contrasts: those that set a mode's own prior draws (a baseline arm)
    against an arm that adds randomness say whether plausibility or randomness keeps diversity; those that set a
    guidance variant against plain guidance say whether the variant helps."""
    from harness.report.q6_mechanism import is_baseline

    mine = [r for r in results if r.spec.question == "q6" and r.measured]
    unread = [r for r in results if r.spec.question == "q6" and r.unreached]
    if not mine:
        if any(r.spec.question == "q6" and r.unreached for r in results):
            return (f"- **Q6 answer**: {CANNOT_TELL}: no pair of Q6's curves can be read at a matched level over "
                    "its guidance scales.")
        return ("- **Q6 answer**: not measured in this run (its arms are sampled by experiment=mechanism, on quick's "
                "decoders).")
    prior = [r for r in mine if is_baseline(Curve.parse(r.spec.a), arms) and Curve.parse(r.spec.a).arm != NO_ARM
             and not is_baseline(Curve.parse(r.spec.b), arms)]
    variants = [r for r in mine if r not in prior]
    parts = []
    unread_prior = [r for r in unread if is_baseline(Curve.parse(r.spec.a), arms)
                    and not is_baseline(Curve.parse(r.spec.b), arms)]
    caveat = (f"; {len(unread_prior)} more could not be read at a matched level" if unread_prior else "")
    if prior:
        signs = [r.significant(alpha) for r in prior]
        smallest = min(r.detectable for r in prior)
        if all(sign > 0 for sign in signs):
            parts.append("the prior's draws keep more diversity at equal fidelity than the arms that only add "
                         f"randomness, in every contrast that could be read ({len(prior)} of {len(prior)}{caveat}): "
                         "randomness alone does not reproduce the diversity the prior's draws keep; it comes from "
                         "what the draws contain, not from their being random")
        elif any(sign < 0 for sign in signs):
            parts.append(f"randomness alone keeps more diversity at equal fidelity than the prior's draws in "
                         f"{signs.count(-1)} of {len(prior)} contrasts (less in {signs.count(1)}{caveat}): the "
                         "prior's knowledge of plausibility is not what keeps diversity here")
        else:
            parts.append(f"plausibility against randomness: better for the prior in {signs.count(1)} of {len(prior)} "
                         f"contrasts, worse in none; {CANNOT_TELL} the rest (minimal detectable difference "
                         f"{fmt(smallest)}){caveat}")
    if variants:
        signs = [r.significant(alpha) for r in variants]
        parts.append(f"guidance variants against plain guidance: more diverse at equal fidelity in {signs.count(1)} "
                     f"of {len(variants)} contrasts, less in {signs.count(-1)}, {CANNOT_TELL} in {signs.count(0)}")
    return "- **Q6 answer**: " + "; ".join(parts) + "."


def key_findings(sweep: Sweep, settings: ReportConfig, arms: dict | None = None) -> Section:
    """The report's opening section: one line per primary contrast, then the paper's claims."""
    alpha = 1 - settings.confidence
    results = primary_family(sweep, settings)
    measured = [r for r in results if r.measured]
    lines = [f"Primary contrasts, one family of {len(measured)} measured, Holm-adjusted to a family-wise error of "
             f"{alpha:.0%}; each with its {settings.confidence:.0%} interval and the smallest difference it would "
             f"detect with 80% power at the family's strictest level. Everything after this section is "
             "exploratory. † marks an interval that rests on one training seed (prompt variation only).", ""]
    lines += [finding_line(r, alpha) for r in results]
    lines += [q6_answer(results, arms or {}, alpha), ""]
    if not sweep.read_by_probe:
        lines += [f"This run has no exact attributes to read (a dataset, not the shapes world): fidelity is "
                  f"{name(first_measured(sweep, FIDELITY) or FIDELITY[0])} and diversity "
                  f"{name(first_measured(sweep, DIVERSITY) or DIVERSITY[0])}. Binding (Q5) and free-attribute "
                  "entropy, the diversity the paper's claim is about, need the shapes world's attribute probe; "
                  "what needs them is marked not measured.", ""]
    claims = paper_claims(sweep, results, settings)
    lines += ["The DALL-E 2 paper's claims:", ""]
    lines += [f"- {c.text}: **{c.verdict}** ({c.evidence})." for c in claims] + [""]
    answer = {"q6": q6_answer(results, arms or {}, alpha), "primary": [{"question": r.spec.question, "statement": r.statement, "estimate": as_json(r.estimate),
                           "adjusted_p": r.adjusted_p if math.isfinite(r.adjusted_p) else None,
                           "detectable": r.detectable if math.isfinite(r.detectable) else None,
                           "outcome": _outcome(r, alpha) if r.measured else
                           "matched level not reached" if r.unreached else "not measured"} for r in results],
              "claims": [{"claim": c.text, "verdict": c.verdict, "evidence": c.evidence} for c in claims]}
    return Section("Key findings", lines, answer)
