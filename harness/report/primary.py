"""Key findings: each question's primary contrasts as one Holm-adjusted family, and the DALL-E 2 paper's claims.

Each question declares its primary contrasts in config (`report.primary`). The family is every declared contrast
whose curves this run's design samples and can resolve: where a pilot study of the recipe says the run's seeds
and prompts cannot detect the contrast's `resolve` difference, it is exploratory instead. The family is adjusted
with Holm's step-down procedure, so that the chance of any false verdict among them stays below
1 - confidence; a member that comes out n/a (a matched level no curve reaches, a metric the data lacks) still
counts. Each member is given with its minimal detectable difference at the family's strictest level.

What a verdict may say depends on what its interval carries (harness/metrics/intervals.py):
- the training seeds' variance (the run's own seeds, or a pilot's borrowed for a one-seed run): a verdict about
  the modes, and the paper's claims are judged "consistent / inconsistent with the paper's claim in this
  setting / cannot tell";
- prompts only (one seed, no pilot of the recipe): a statement about the decoders this run trained, not about
  the modes, and no paper verdict;
- and in either case, a verdict needs samples the evaluation CLIP recognises (`recognisable`): decoders that
  draw nothing support none, and the line says which premise failed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.config import PrimaryContrast, ReportConfig
from harness.metrics.intervals import PROMPTS_ONLY, holm, with_pilot
from harness.report.contrasts import (
    difference,
    diversity_at_matched_fidelity,
    drop_difference,
    first_measured,
    matched_difference,
)
from harness.metrics.catalogue import DIVERSITY, FIDELITY, needs_probe
from harness.line import Line
from harness.metrics.estimate import Estimate, Sweep
from harness.report.markdown import CANNOT_TELL, Section, as_json, fmt, fmt_est, name
from harness.report.pilot import Pilot, choose, components_of
from harness.sampling.arms.base import PER_SAMPLE

CONSISTENT = "consistent with the paper's claim in this setting"
INCONSISTENT = "inconsistent with the paper's claim in this setting"
UNDECIDED = "cannot tell"
WITHHELD = "withheld"


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
    in_family: bool = False  # a member of the Holm family (else exploratory or outside the run's design)
    exploratory: str = ""  # why a contrast of the design is not in the family
    withheld: str = ""  # the premise a verdict needs that this run does not meet
    seed_note: str = ""  # one seed and no pilot: why no seed variance could be borrowed
    band: tuple = ()  # matched_fidelity: (level, estimate) over report.matched_band

    @property
    def measured(self) -> bool:
        return self.estimate is not None and math.isfinite(self.estimate.value) and math.isfinite(self.estimate.se)

    @property
    def unreached(self) -> bool:
        """Measured, but the matched level does not exist: a curve never comes down to the matched diversity, or
        two curves share no fidelity."""
        return self.estimate is not None and not math.isfinite(self.estimate.value)

    @property
    def mode_level(self) -> bool:
        """Whether a verdict about the modes may be read: the interval carries the training seeds' variance."""
        return self.measured and self.estimate.carries_seeds and not self.withheld

    def significant(self, alpha: float) -> int:
        """+1 / -1 when the adjusted test finds a > b / a < b (an equivalence contrast: +1 when a - b lies within
        its margin), 0 when it cannot tell; 0 outside the family."""
        if not self.measured or not self.in_family or not self.adjusted_p < alpha:
            return 0
        return 1 if self.spec.margin > 0 or self.estimate.value > 0 else -1

    def p_value(self) -> float:
        if not self.measured:
            return math.nan
        return self.estimate.equivalence_p(self.spec.margin) if self.spec.margin > 0 else self.estimate.p_value()


def _curve_text(spec: PrimaryContrast) -> tuple[Line, Line]:
    return Line.parse(spec.a), Line.parse(spec.b)


def primary_metric(sweep: Sweep, spec: PrimaryContrast) -> str:
    """The metric a contrast compares: its own, else the run's first measured diversity measure (a drop) or
    fidelity measure (the rest), so the same defaults read the world's probe and a dataset's evaluation CLIP."""
    if spec.metric:
        return spec.metric
    if spec.contrast in ("drop_difference", "matched_diversity"):
        return first_measured(sweep, DIVERSITY) or DIVERSITY[0]
    return first_measured(sweep, FIDELITY) or FIDELITY[0]


def contrast_label(spec: PrimaryContrast, metric: str) -> str:
    """The contrast in a few words, a − b and its metric (a figure's row label; the statement says the rest)."""
    if spec.contrast == "drop_difference":
        return f"drop({spec.a}) − drop({spec.b}), {name(metric)}"
    if spec.a_base:
        return f"({spec.a} − {spec.a_base}) − ({spec.b} − {spec.b_base}), {name(metric)}"
    return f"{spec.a} − {spec.b}, {name(metric)}"


def estimate_primary(sweep: Sweep, spec: PrimaryContrast, settings: ReportConfig) -> PrimaryResult:
    """The contrast `spec` declares, measured on this run (estimate None when a curve or cell is missing)."""
    a, b = _curve_text(spec)
    metric = primary_metric(sweep, spec)
    if needs_probe(metric) and not sweep.has(metric):
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
        band = tuple((level, matched_difference(sweep, a, b, diversity, metric, level))
                     for level in band_levels(settings))
        return PrimaryResult(spec, metric, statement, estimate, note=_ranges(sweep, (a, b), diversity), band=band)
    if spec.contrast == "matched_diversity":
        fidelity = first_measured(sweep, FIDELITY) or FIDELITY[0]
        bases = (Line.parse(spec.a_base), Line.parse(spec.b_base)) if spec.a_base else (None, None)
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


def _ranges(sweep: Sweep, curves: Sequence[Line], metric: str, relative: bool = True) -> str:
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


def band_levels(settings: ReportConfig) -> list[float]:
    """Every 0.05 from the band's low to its high matched level."""
    low, high = sorted(settings.matched_band[:2])
    return [round(low + 0.05 * i, 2) for i in range(int(round((high - low) / 0.05)) + 1)]


def in_design(sweep: Sweep, spec: PrimaryContrast) -> bool:
    """Whether the run sampled every curve the contrast names (whatever the data let it measure)."""
    names = [spec.a, spec.b] + ([spec.a_base, spec.b_base] if spec.a_base else [])
    return all(sweep.has_curve(Line.parse(n)) for n in names)


def recognisable(sweep: Sweep, curves: Sequence[Line], settings: ReportConfig) -> str:
    """Why the samples of these curves support no verdict ("" when they do): the evaluation CLIP must retrieve
    their captions among the sweep's prompts clearly above chance, at least `min_recognisable` of the way from
    chance to the real images' rate, at some guidance scale. A decoder that draws noise fails; runs without
    the evaluation CLIP's retrieval are not checked."""
    metric = "clip_retrieval"
    real = sweep.value(sweep.ceiling_cell(metric))
    if settings.min_recognisable <= 0 or real is None or not sweep.has(metric):
        return ""
    chance = 1.0 / max(sweep.prompt_count, 1)
    for curve in curves:
        curve = curve.intact
        cells = [sweep.value(sweep.cell(curve, g, metric)) for g in sweep.guidances(curve, metric)]
        best = max(cells, key=lambda e: e.value, default=None)
        needed = chance + settings.min_recognisable * (real.value - chance)
        if best is not None and (best.value < needed or best.low <= chance):
            return (f"{curve.label}'s samples are barely recognisable: the evaluation CLIP retrieves their caption "
                    f"for {fmt(best.value)} of them at best (chance {fmt(chance)}, real images {fmt(real.value)}; "
                    f"a verdict needs {fmt(needed)})")
    return ""


def _curves(spec: PrimaryContrast) -> list[Line]:
    return [Line.parse(n) for n in (spec.a, spec.b, spec.a_base, spec.b_base) if n]


def primary_family(sweep: Sweep, settings: ReportConfig, recipe: dict | None = None) -> list[PrimaryResult]:
    """Every declared primary contrast, measured; a one-seed estimate given the pilot's seed variance when a pilot
    of the run's recipe has it; the family's members (in the design, resolvable) Holm-adjusted together."""
    pilots, why_none = choose(settings.pilot, recipe)
    alpha = 1 - settings.confidence
    results = []
    for spec in settings.primary:
        result = estimate_primary(sweep, spec, settings)
        result = _with_seed_term(result, pilots, why_none, settings)
        if in_design(sweep, spec):
            exploratory = ("exploratory by declaration (report.primary)" if spec.exploratory
                           else _unresolvable(result, pilots, sweep, settings))
            result = dataclasses.replace(result, in_family=not exploratory, exploratory=exploratory,
                                         withheld=recognisable(sweep, _curves(spec), settings))
        results.append(result)
    members = [r for r in results if r.in_family]
    adjusted = holm([r.p_value() for r in members])
    strictest = alpha / max(1, len(members))
    done = {id(r): dataclasses.replace(r, adjusted_p=p, detectable=r.estimate.detectable(alpha=strictest)
                                       if r.measured else math.nan)
            for r, p in zip(members, adjusted)}
    return [done.get(id(r), dataclasses.replace(r, detectable=r.estimate.detectable(alpha=alpha) if r.measured
                                                else math.nan)) for r in results]


def _with_seed_term(result: PrimaryResult, pilots: Sequence[Pilot], why_none: str,
                    settings: ReportConfig) -> PrimaryResult:
    e = result.estimate
    if e is None or e.seed_term != PROMPTS_ONLY:
        return result
    found = components_of(pilots, result.spec, result.metric)
    if found is None:
        why = why_none or f"no pilot of the recipe ({', '.join(p.name for p in pilots)}) measured this contrast"
        return dataclasses.replace(result, seed_note=why)
    pilot, parts = found
    return dataclasses.replace(result, estimate=with_pilot(e, parts, pilot.name, settings.confidence),
                               band=tuple((level, with_pilot(b, parts, pilot.name, settings.confidence) if b else b)
                                          for level, b in result.band))


def _unresolvable(result: PrimaryResult, pilots: Sequence[Pilot], sweep: Sweep, settings: ReportConfig) -> str:
    """Why the design cannot resolve the contrast ("" when it can, or when no pilot can say): the minimal
    detectable difference at this run's seeds and prompts, by the most-seeded pilot that measured the contrast,
    exceeds the contrast's `resolve`."""
    found = components_of(pilots, result.spec, result.metric)
    e = result.estimate
    if found is None or e is None or not e.prompts or not e.seeds:
        return ""
    pilot, parts = found
    alpha = (1 - settings.confidence) / max(1, sum(in_design(sweep, s) for s in settings.primary))
    planned = parts.detectable(e.seeds, e.prompts, alpha)
    if planned <= result.spec.resolve:
        return ""
    needed = parts.seeds_to_detect(result.spec.resolve, e.prompts, alpha, fewest=e.seeds + 1)
    more = (f"about {needed} seeds per decoder at these prompts would" if needed else
            "no number of seeds at these prompts would (more prompts are needed)")
    return (f"exploratory: at {e.seeds} training seed{'s' if e.seeds != 1 else ''} and {e.prompts} prompts the "
            f"pilot {pilot.name} gives a minimal detectable difference of {fmt(planned)} (at the strictest level of "
            f"a family of all the design's declared contrasts), above the {fmt(result.spec.resolve)} this contrast "
            f"must resolve ({more})")


def _outcome(result: PrimaryResult, alpha: float) -> str:
    a, b = _curve_text(result.spec)
    sign = result.significant(alpha)
    if result.spec.margin > 0:
        words = {1: f"{a.label} and {b.label} are equivalent within ±{fmt(result.spec.margin)}"}
    elif result.spec.contrast == "drop_difference":
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
    if sign == 0 and result.spec.margin > 0:
        return f"{CANNOT_TELL} whether they are equivalent within ±{fmt(result.spec.margin)}"
    return (custom.get(sign) or words.get(sign)) or CANNOT_TELL


def _seeds_text(e: Estimate) -> str:
    if e.seed_term.startswith("pilot"):
        sd = f" (sd {fmt(e.components.seed ** 0.5)})" if e.components is not None else ""
        return f"1 training seed, its seed variance{sd} borrowed from {e.seed_term}, df {e.df:.1f}"
    return f"{e.seeds} training seed{'s' if e.seeds != 1 else ''}" + (" (prompt variation only)"
                                                                       if e.seed_term == PROMPTS_ONLY else "")


def _band_text(result: PrimaryResult, alpha: float) -> str:
    """The matched-level contrast over the band: where it is defined and whether its sign holds."""
    if not result.band:
        return ""
    defined = [(level, e) for level, e in result.band if e is not None and math.isfinite(e.value)]
    if not defined:
        return " Over matched levels " + f"{result.band[0][0]:.0%}-{result.band[-1][0]:.0%}: defined at none."
    signs = {1 if e.low > 0 else -1 if e.high < 0 else 0 for _, e in defined}
    levels = f"{defined[0][0]:.0%}-{defined[-1][0]:.0%}" if len(defined) > 1 else f"{defined[0][0]:.0%}"
    reading = ("the unadjusted interval excludes 0 on the same side at every one" if len(signs) == 1 and 0 not in signs
               else "the unadjusted interval contains 0 at every one" if signs == {0}
               else "the reading changes with the level")
    values = ", ".join(f"{level:.0%}: {fmt(e.value)}" for level, e in defined)
    return (f" Sensitivity over the matched level: defined at {levels} of the band "
            f"{result.band[0][0]:.0%}-{result.band[-1][0]:.0%} ({values}); {reading}.")


def finding_line(result: PrimaryResult, alpha: float) -> str:
    q = result.spec.question.upper()
    tag = "" if result.in_family else " (exploratory)"
    if result.unreached and result.spec.contrast == "matched_diversity":
        return (f"- **{q}**{tag} {result.statement}: n/a, two curves compared share no range of "
                f"{name(result.matched_on)} over their guidance scales ({result.note}), so their diversity cannot "
                "be read at equal fidelity.")
    if result.unreached:
        return (f"- **{q}**{tag} {result.statement}: n/a, the two curves do not both pass that level of diversity "
                f"over their guidance scales ({result.note} of the real images'), so their fidelity cannot be read "
                f"at equal diversity.{_band_text(result, alpha)}")
    if not result.measured:
        why = f": {result.missing}" if result.missing else ""
        return f"- **{q}**{tag} {result.statement}: not measured in this run{why}."
    e = result.estimate
    test = f"equivalence within ±{fmt(result.spec.margin)}, " if result.spec.margin > 0 else ""
    numbers = (f"{result.statement} = {fmt_est(e)}; {test}"
               + (f"Holm-adjusted p {_p(result.adjusted_p)}, " if result.in_family else
                  f"unadjusted p {_p(result.p_value())}, ")
               + f"minimal detectable difference {fmt(result.detectable)} ({e.prompts} prompts, {_seeds_text(e)})")
    if result.withheld:
        verdict = f"verdict withheld: {result.withheld}"
    elif not result.in_family:
        unadjusted = dataclasses.replace(result, in_family=True, adjusted_p=result.p_value())
        verdict = f"{result.exploratory}; unadjusted, it reads: {_outcome(unadjusted, alpha)}" \
            if result.exploratory else CANNOT_TELL
    elif e.seed_term == PROMPTS_ONLY:
        verdict = (f"for the decoders this run trained, {_outcome(result, alpha)}; no verdict about the modes "
                   f"({result.seed_note})")
    else:
        verdict = f"**{_outcome(result, alpha)}**"
    return f"- **{q}**{tag} {numbers}: {verdict}.{_band_text(result, alpha)}"


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
                 and Line.parse(r.spec.a) == Line.parse(a) and Line.parse(r.spec.b) == Line.parse(b)
                 and r.measured), None)


def _the(sweep: Sweep, *tags: str, without: Sequence[str] = (), default: str) -> str:
    """The mode of the paper's comparison with these tags (the first by name), or `default` when none has them."""
    found = sorted(sweep.tagged(*tags, without=without))
    return found[0] if found else default


def _judge(text: str, result: PrimaryResult | None, alpha: float, consistent_sign: int, needs: str) -> Claim:
    """A paper claim read from one primary contrast: its verdict only when the contrast is a family member with a
    mode-level interval and recognisable samples; otherwise withheld, saying which premise failed."""
    if result is None:
        return Claim(text, UNDECIDED, f"not measured: needs {needs}")
    evidence = (f"primary contrast {result.statement} = {fmt_est(result.estimate)}, Holm-adjusted p "
                f"{_p(result.adjusted_p)}, detectable {fmt(result.detectable)}")
    if result.withheld:
        return Claim(text, WITHHELD, f"{evidence}; {result.withheld}")
    if not result.in_family:
        return Claim(text, WITHHELD, f"{evidence}; {result.exploratory or 'not a primary contrast of this run'}")
    if not result.mode_level:
        return Claim(text, WITHHELD, f"{evidence}; one training seed and {result.seed_note}: a reading of these "
                                     "decoders, not of the modes")
    sign = result.significant(alpha)
    return Claim(text, UNDECIDED if sign == 0 else CONSISTENT if sign == consistent_sign else INCONSISTENT, evidence)


def paper_claims(sweep: Sweep, results: Sequence[PrimaryResult], settings: ReportConfig) -> list[Claim]:
    """The paper's systems are picked by their tags: GLIDE (the core sequence-only mode), unCLIP (the core
    vector-only prior mode) and DALL-E 2 as shipped (the core two-pathway prior mode), prior draws per sample.
    Each claim is judged from the primary contrast that tests it; FID's, declared by no primary contrast, from its
    unadjusted interval where FID is clear of its real-vs-real floor (`fid_claim`)."""
    alpha = 1 - settings.confidence
    diversity = first_measured(sweep, DIVERSITY) or "free_entropy"
    glide_mode = _the(sweep, "core", "sequence", without=("two_pathway",), default="glide")
    unclip_mode = _the(sweep, "core", "vector_only", "prior", default="unclip")
    combined_mode = _the(sweep, "core", "two_pathway", "prior", default="combined")
    glide, unclip = Line(glide_mode), Line(unclip_mode, PER_SAMPLE)
    claims = [_judge("unCLIP keeps diversity under decoder guidance with the prior latents fixed per sample (more "
                     "than GLIDE keeps)",
                     _find(results, "drop_difference", glide.label, unclip.label, diversity), alpha, 1,
                     f"{glide.label} and {unclip.label} on a guidance sweep")]

    scales = sweep.guidances(glide, diversity)
    if len(scales) >= 2:
        drop = difference(sweep, sweep.cell(glide, scales[0], diversity), sweep.cell(glide, scales[-1], diversity))
        claims.append(Claim("GLIDE's diversity collapses under guidance", WITHHELD,
                            f"exploratory, not a primary contrast: drop of {glide.label}'s {name(diversity)} from "
                            f"g = {scales[0]:g} to {scales[-1]:g} = {fmt_est(drop)}"))
    else:
        claims.append(Claim("GLIDE's diversity collapses under guidance", UNDECIDED,
                            f"not measured: no {glide.label} sweep"))

    claims.append(fid_claim(sweep, glide, unclip, settings))

    binding = next((r for r in results if r.measured and r.spec.margin > 0 and r.metric == "binding_accuracy"
                    and Line.parse(r.spec.a).mode == combined_mode and Line.parse(r.spec.b).mode == unclip_mode),
                   None)
    claims.append(_judge("The GLIDE pathway adds little to binding", binding, alpha, 1,
                         f"{combined_mode} and {unclip_mode} (per_sample) binding accuracy, declared as an "
                         "equivalence contrast"))
    return claims


def fid_claim(sweep: Sweep, glide: Line, unclip: Line, settings: ReportConfig) -> Claim:
    """Whether guidance hurts unclip's FID less than glide's: glide's rise in FID from the lowest to the highest
    guidance − unclip's (> 0: consistent with the paper). Not a declared primary contrast, so its interval is
    unadjusted, and it is judged only where that means something: its interval carries the training seeds, the
    samples are recognisable, and every FID of both curves lies clear of FID's real-vs-real floor (real images
    against an independent draw of them, at the same sizes: what no model can beat). Near the floor a flat FID
    is saturated, and a difference of rises says nothing."""
    text = "Guidance hurts unCLIP's FID less than GLIDE's"
    rise = drop_difference(sweep, unclip, glide, "fid") if sweep.has("fid") else None
    if rise is None:
        return Claim(text, UNDECIDED, f"not measured: needs {glide.label}, {unclip.label} and FID")
    evidence = (f"exploratory (not in the Holm family, unadjusted): rise of FID from the lowest to the highest "
                f"guidance, {glide.label}'s − {unclip.label}'s = {fmt_est(rise)}")
    floor = sweep.value(sweep.floor_cell("fid"))
    if floor is None:
        return Claim(text, WITHHELD, f"{evidence}; FID's real-vs-real floor is not in this run's tables (a dataset has "
                                     "no second draw of real images; tables made before the floor lack it), so a "
                                     "saturated FID cannot be told apart")
    fids = [(curve, g, sweep.value(sweep.cell(curve, g, "fid"))) for curve in (glide, unclip)
            for g in sweep.guidances(curve, "fid")]
    curve, g, lowest = min(fids, key=lambda item: item[2].low)
    evidence += (f"; real-vs-real floor {fmt_est(floor)}, the FID nearest it {fmt_est(lowest)} ({curve.label}, "
                 f"g = {g:g})")
    if not lowest.low > floor.high:  # the lowest lower bound: every FID's interval clear of the floor's, or not
        return Claim(text, WITHHELD, f"{evidence}: FID is not clear of its floor")
    unreadable = recognisable(sweep, [glide, unclip], settings)
    if unreadable:
        return Claim(text, WITHHELD, f"{evidence}; {unreadable}")
    if not rise.carries_seeds:
        return Claim(text, WITHHELD, f"{evidence}; its interval omits the training seeds: a reading of these "
                                     "decoders, not of the modes")
    sign = 0 if rise.low <= 0 <= rise.high else (1 if rise.value > 0 else -1)
    verdict = UNDECIDED if sign == 0 else CONSISTENT if sign > 0 else INCONSISTENT
    return Claim(text, f"{verdict} (exploratory, unadjusted)", evidence)


def q6_answer(results: Sequence[PrimaryResult], alpha: float) -> str:
    """Q6 in one sentence: which property of the prior's draws carries the diversity they keep, from the contrasts
    that set fresh draws per sample against controls on the same decoder at matched fidelity. A Gaussian of the
    draws' mean and covariance (`prior_gaussian`) keeps their location and second moment; isotropic noise of their
    spread (`isotropic`) their location and total spread; another caption's draws (`shuffled_draws`) are plausible
    but not the caption's."""
    q6 = [r for r in results if r.spec.question == "q6" and r.spec.contrast == "matched_diversity"
          and Line.parse(r.spec.a).arm == PER_SAMPLE]
    # Contrasts of the design, in the family or exploratory (a pilot may find them unresolvable): the latter
    # decide nothing (`significant` is 0 outside the family) and read as "cannot tell".
    read = {Line.parse(r.spec.b).arm: r for r in q6 if r.measured and (r.in_family or r.exploratory)}
    if not read:
        why = ("no pair of Q6's curves can be read at a matched level over its guidance scales"
               if any(r.unreached for r in q6) else
               "its controls are sampled by experiment=mechanism, on quick's decoders")
        return f"- **Q6 answer**: not measured in this run ({why})."

    def sign(arm: str) -> int | None:
        return read[arm].significant(alpha) if arm in read else None

    def detectable(*arms: str) -> str:
        return ", ".join(f"{fmt(read[a].detectable)}" for a in arms if a in read)

    gaussian, isotropic = sign("prior_gaussian"), sign("isotropic")
    if gaussian == 1:
        carried = ("their multimodal structure: a Gaussian with the draws' mean and covariance keeps less diversity "
                   "at equal fidelity")
    elif gaussian == -1:
        carried = ("not their structure: a Gaussian with the draws' mean and covariance keeps more diversity at "
                   "equal fidelity than the draws")
    elif isotropic == -1:
        carried = ("not their second moment or structure: isotropic noise of their spread keeps more diversity at "
                   "equal fidelity than the draws")
    elif gaussian == 0 and isotropic == 1:
        carried = ("their second moment: a Gaussian with their mean and covariance cannot be told from them "
                   f"(detectable {detectable('prior_gaussian')}), isotropic noise of the same spread keeps less")
    elif gaussian == 0 and isotropic is not None:
        # Neither control differs detectably: the Gaussian, which lacks only the multimodal structure, is the
        # stronger reading (the smaller detectable difference); the isotropic one leaves the covariance's shape open.
        carried = ("their location and second moment, as far as this run can tell: a Gaussian with the draws' mean "
                   "and covariance, which lacks their multimodal structure, cannot be told from them (detectable "
                   f"{detectable('prior_gaussian')}); nor can isotropic noise of their total spread (detectable "
                   f"{detectable('isotropic')}), so whether the covariance's shape matters is open")
    else:
        carried = f"{CANNOT_TELL} (the Gaussian controls were not both read)"
    shuffled = sign("shuffled_draws")
    caption = {1: "; the caption matters: another caption's draws keep less",
               -1: "; another caption's draws keep more, so the caption's own draws are not what keeps it",
               0: f"; {CANNOT_TELL} whether another caption's draws would do (detectable "
                  f"{detectable('shuffled_draws')})", None: ""}[shuffled]
    if shuffled is None and any(r.unreached and Line.parse(r.spec.b).arm == "shuffled_draws" for r in q6):
        caption = ("; another caption's draws are no substitute: their fidelity shares no range with the draws', "
                   "so they lose the caption rather than spread it")
    scope = "" if all(r.mode_level for r in read.values()) else (
        "for the decoders this run trained (some intervals lack the training-seed variance, or a verdict is "
        "withheld): ")
    return (f"- **Q6 answer**: {scope}the diversity the prior's draws keep at equal fidelity comes from "
            f"{carried}{caption}.")


def key_findings(sweep: Sweep, settings: ReportConfig, recipe: dict | None = None) -> Section:
    """The report's opening section: one line per primary contrast of the run's design, then the paper's claims."""
    alpha = 1 - settings.confidence
    results = primary_family(sweep, settings, recipe)
    designed = [r for r in results if r.in_family or r.exploratory]
    members = [r for r in results if r.in_family]
    pilots, why_none = choose(settings.pilot, recipe)
    seeds = {r.estimate.seed_term for r in designed if r.measured}
    borrowed = [p for p in pilots if f"pilot {p.name}" in seeds]
    lines = [f"Primary contrasts: one family of {len(members)}, Holm-adjusted to a family-wise error of {alpha:.0%} "
             "(a member that comes out n/a still counts); each with its "
             f"{settings.confidence:.0%} interval and the smallest difference it would detect with 80% power at the "
             "family's strictest level. Contrasts marked exploratory, and everything after this section, are not "
             "adjusted.", ""]
    if any(s.startswith("pilot") for s in seeds):
        lines += ["This run trained one decoder per mode. A verdict about modes needs the variance of training, "
                  "which one seed cannot show: each primary interval adds the training-seed variance measured for "
                  "the same contrast by a pilot study of this very recipe, with its degrees of freedom ("
                  + "; ".join(f"{p.name}: {p.source}" for p in borrowed) + "). † marks an interval of prompts only "
                  "(exploratory tables below).", ""]
    elif PROMPTS_ONLY in seeds:
        lines += [f"This run trained one decoder per mode and {why_none}: its intervals cover the prompts, not "
                  "the training. Each contrast below is a fact about the decoders this run trained; no verdict "
                  "about the modes and no paper verdict is stated. More training seeds (or a pilot of this recipe, "
                  "harness/report/pilot.py) make them verdicts. † marks such an interval.", ""]
    lines += [finding_line(r, alpha) for r in designed]
    outside = [r for r in results if not r.in_family and not r.exploratory]
    if outside:
        lines += ["", "Declared but outside this run's design (its modes or arms were not sampled): "
                  + "; ".join(f"{r.spec.question.upper()} {r.statement}" for r in outside) + "."]
    lines += ["", q6_answer(results, alpha), ""]
    if not sweep.read_by_probe:
        lines += [f"This run has no exact attributes to read (a dataset, not the shapes world): fidelity is "
                  f"{name(first_measured(sweep, FIDELITY) or FIDELITY[0])} and diversity "
                  f"{name(first_measured(sweep, DIVERSITY) or DIVERSITY[0])}. Binding (Q5) and free-attribute "
                  "entropy, the diversity the paper's claim is about, need the shapes world's attribute probe; "
                  "what needs them is marked not measured.", ""]
    claims = paper_claims(sweep, results, settings)
    lines += ["The DALL-E 2 paper's claims, in this setting (a small world at low resolution, not a replication):",
              ""]
    lines += [f"- {c.text}: **{c.verdict}** ({c.evidence})." for c in claims] + [""]
    answer = {"q6": q6_answer(results, alpha),
              "pilot": ", ".join(p.name for p in borrowed) or None,
              "primary": [{"question": r.spec.question, "statement": r.statement, "contrast": contrast_label(r.spec, r.metric),
                           "estimate": as_json(r.estimate),
                           "family": "primary" if r.in_family else "exploratory" if r.exploratory else "outside",
                           "seed_term": r.estimate.seed_term if r.estimate is not None else None,
                           "df": r.estimate.df if r.measured else None,
                           "adjusted_p": r.adjusted_p if math.isfinite(r.adjusted_p) else None,
                           "detectable": r.detectable if math.isfinite(r.detectable) else None,
                           "withheld": r.withheld or None,
                           "mode_level": r.mode_level and r.in_family,
                           "band": [{"level": level, "estimate": as_json(e)} for level, e in r.band],
                           "outcome": _outcome(r, alpha) if r.measured and r.in_family else
                           "exploratory, unadjusted: " + _outcome(dataclasses.replace(r, in_family=True,
                                                                                      adjusted_p=r.p_value()), alpha)
                           if r.measured else
                           "matched level not reached" if r.unreached else "not measured"} for r in results],
              "claims": [{"claim": c.text, "verdict": c.verdict, "evidence": c.evidence} for c in claims]}
    return Section("Key findings", lines, answer)
