"""Every metric the harness measures, described once: its label, range, direction, role, what it needs and how its
interval is made. The metrics table, the report, the figures and the logger read these properties from here.

A metric's `kind` says how a prompt contributes to it: `unit`, the prompt's own value (a mean over prompts);
`set`, the prompt's jackknife pseudo-value (a statistic of the whole sample set: FID, KID, the k-NN metrics);
`attention`, the attention mass the decoder puts on a token group (recorded names `attention_<group>` and
`attention_<group>@<layer>`). `source` is what computes it: the attribute probe's readings (`probe`), the judge's
features (`features`), the evaluation CLIP (`clip`), the CLIP vectors the samples read (`vectors`), the
sample sets (`set`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

UNIT, SET, ATTENTION = "unit", "set", "attention"
FIDELITY_ROLE, DIVERSITY_ROLE = "fidelity", "diversity"
LAYER = "@"  # `attention_clip@mid.0`: the mass at one attention layer
# Read beside the first diversity measure (entropy rewards any spread; this one only the world's own).
FREE_JSD = "free_attribute_jsd"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    kind: str = UNIT
    source: str = "probe"
    low: float = 0.0
    high: float = 1.0
    higher_is_better: bool | None = True  # None: neither (a share of eligible samples, a spread)
    role: str = ""  # fidelity or diversity: what the questions read it as
    other_table: bool = False  # tabulated in the report's "Other metrics" (no question section shows it)
    line_plot: bool = False  # one of the logger's line plots over guidance

    @property
    def range(self) -> tuple[float, float]:
        return self.low, self.high

    @property
    def needs_probe(self) -> bool:
        """Whether only the shapes world's attribute probe can measure it."""
        return self.source == "probe" or self.name == "judge_agreement"


INF = math.inf
# In the order of the per-prompt table's rows, then the set metrics. Within a role, the order is the preference:
# the questions read the first fidelity and diversity measure a run has.
CATALOGUE: tuple[Metric, ...] = (
    Metric("attribute_accuracy", "attribute accuracy", role=FIDELITY_ROLE, other_table=True, line_plot=True),
    Metric("shape_color_accuracy", "named shape and colour right"),
    Metric("shape_color_majority", "prompts drawn right"),
    Metric("binding_accuracy", "binding accuracy", role=FIDELITY_ROLE, line_plot=True),
    Metric("relation_accuracy", "relation accuracy"),
    Metric("swap_binding", "swap-binding accuracy"),
    Metric("swap_eligible", "samples eligible for swap-binding", higher_is_better=None),
    Metric("all_attributes", "all attributes right"),
    Metric("clip_retrieval", "eval. CLIP retrieves the caption", source="clip"),
    Metric("judge_agreement", "the two judges agree", source="clip"),
    Metric("free_entropy", "free-attribute entropy", role=DIVERSITY_ROLE, line_plot=True),
    # Distance of the free attributes' spread to the world's exact distribution, bias-corrected (0 on true draws).
    Metric(FREE_JSD, "free-attribute JSD to the world", low=-1.0, higher_is_better=False,
           other_table=True, line_plot=True),
    Metric("pairwise_distance", "pairwise feature distance", source="features", high=INF, role=DIVERSITY_ROLE,
           other_table=True, line_plot=True),
    Metric("vendi", "Vendi score", source="features", low=1.0, high=INF, role=DIVERSITY_ROLE, other_table=True,
           line_plot=True),
    Metric("clip_score", "CLIP score (eval. CLIP)", source="clip", high=100.0, role=FIDELITY_ROLE, other_table=True,
           line_plot=True),
    # What the samples read (harness/sampling/readings.py): the spread of their CLIP vectors, and where those sit
    # against the real image vectors.
    Metric("prior_spread", "prior draws' spread", source="vectors", low=-INF, high=INF, higher_is_better=None),
    Metric("vector_nearest_real", "vectors' distance to the nearest real image vector", source="vectors", high=2.0,
           higher_is_better=None, other_table=True),
    Metric("vector_log_density", "vectors' log-density among real image vectors", source="vectors", low=-INF,
           high=INF, higher_is_better=None, other_table=True),
    Metric("fid", "FID", kind=SET, source="set", high=INF, higher_is_better=False, other_table=True, line_plot=True),
    Metric("kid", "KID", kind=SET, source="set", low=-INF, high=INF, higher_is_better=False, other_table=True),
    Metric("precision", "precision", kind=SET, source="set", role=FIDELITY_ROLE, other_table=True),
    Metric("recall", "recall", kind=SET, source="set", role=DIVERSITY_ROLE, other_table=True, line_plot=True),
    Metric("density", "density", kind=SET, source="set", high=INF, other_table=True),
    Metric("coverage", "coverage", kind=SET, source="set", role=DIVERSITY_ROLE, other_table=True),
)
BY_NAME = {m.name: m for m in CATALOGUE}
_ATTENTION = Metric("attention", "attention mass", kind=ATTENTION, source="attention", higher_is_better=None)


def metric(name: str) -> Metric | None:
    """The catalogue entry of a metric as the tables name it; an attention mass (`attention_<group>[@<layer>]`)
    is described by its kind; None for a name the catalogue does not know."""
    if name.startswith("attention_"):
        return _ATTENTION
    return BY_NAME.get(name)


def label(name: str) -> str:
    found = BY_NAME.get(name)
    return found.label if found else name


def metric_range(name: str) -> tuple[float, float] | None:
    """The values a metric can take where known and bounded on either side: its intervals are kept inside."""
    found = metric(name.split(LAYER, 1)[0])
    if found is None or (found.low == -INF and found.high == INF):
        return None
    return found.range


def needs_probe(name: str) -> bool:
    found = metric(name)
    return found is not None and found.needs_probe


def lower_is_better(name: str) -> bool:
    found = metric(name)
    return found is not None and found.higher_is_better is False


def names(**properties: object) -> tuple[str, ...]:
    """The catalogue's metrics with every given property (`names(role="fidelity")`, `names(kind="unit")`), in
    catalogue order."""
    return tuple(m.name for m in CATALOGUE if all(getattr(m, key) == value for key, value in properties.items()))


PER_PROMPT = names(kind=UNIT)  # computed prompt by prompt, in the table's row order
FROM_PROBE = names(source="probe")  # what the attribute probe's readings give
FIDELITY = names(role=FIDELITY_ROLE)
DIVERSITY = names(role=DIVERSITY_ROLE)
