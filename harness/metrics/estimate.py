"""The report's estimation engine: cells of the sweep and any function of them, with intervals.

Input: the per-prompt table the sweep writes (`harness.metrics.table.PER_PROMPT_COLUMNS`: the line's five
columns, `guidance, train_seed, prompt_kind, prompt_id, metric, value`). Each row is a prompt's contribution to a
metric for one training seed: the prompt's own value for a mean metric, its jackknife pseudo-value for a set
metric (harness/metrics/table.py). A *reading* is one (line, guidance, metric, prompt kind); a line
(`harness.line.Line`) is one curve of the figure, its cells over guidance scales.

A cell's estimate is the mean over training seeds of each seed's mean over prompts. Its interval, and that of
any function of cells (a difference, a drop, a ratio, a frontier area), comes from
`harness.metrics.intervals`: a crossed seeds x prompts variance with a t interval, the function linearised so
that cells scored on the same prompts are compared prompt by prompt (paired). A cell or comparison resting on
one training seed says so (`Estimate.seed_term` PROMPTS_ONLY): its interval covers prompt variation only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.line import COLUMNS as LINE_COLUMNS, FLOOR_LINE, NONE, REAL, REAL_LINE, Line
from harness.metrics.catalogue import FROM_PROBE, metric_range
from harness.metrics.intervals import (CONFIDENCE, Interval, crossed_interval, fill_prompts, grouped_interval,
                                      linearise)
from harness.metrics.table import COLUMNS

Estimate = Interval  # a number with its interval, standard error, degrees of freedom, prompts and seeds

POOLED = "all"  # train_seed of rows that pool seeds; prompt_kind of rows over every prompt
_CELL_KEYS = [*LINE_COLUMNS, "guidance", "metric"]


@dataclass(frozen=True)
class Reading:
    """One number the report reads: a metric of a line at one guidance scale, over one kind of prompt (the sweep's
    unit of sampling is `harness.sampling.cell.Cell`)."""
    curve: Line
    guidance: float  # NaN for the real ceiling
    metric: str
    prompt_kind: str = POOLED


def _guidance_key(g: float | None) -> float | None:
    return None if g is None or math.isnan(g) else round(float(g), 6)


def normalise(table: pd.DataFrame) -> pd.DataFrame:
    """Uniform dtypes, every line column present (a table without a column has it unset) and the real ceiling
    outside the guidance axis."""
    t = table.copy()
    for column in LINE_COLUMNS:
        if column not in t.columns:
            t[column] = np.nan if column == "text_scale" else NONE
    for column in ("mode", "arm", "ablation", "clip_variant"):
        t[column] = t[column].fillna(NONE).astype(str)
    t["text_scale"] = pd.to_numeric(t["text_scale"], errors="coerce").round(6)
    t["train_seed"] = t["train_seed"].astype(str)
    t["prompt_kind"] = t["prompt_kind"].astype(str)
    t["guidance"] = pd.to_numeric(t["guidance"], errors="coerce").round(6)
    real = t["mode"] == REAL
    t.loc[real, "guidance"] = np.nan
    t.loc[real, "train_seed"] = NONE
    return t


def lines_where(lines: pd.DataFrame, keep: Callable[[Line], bool]) -> pd.DataFrame:
    """The distinct rows of a table's line columns whose line `keep` accepts (each line built once, not per row)."""
    distinct = lines.drop_duplicates()
    return distinct[[keep(Line.of(row)) for row in distinct.to_dict("records")]]


def table_file(folder: Path | str, name: str) -> Path | None:
    """`name` in a run folder, or its gzipped copy (`per_prompt.csv.gz`: how a committed result keeps a large
    table); None when neither is there."""
    return next((p for p in (Path(folder) / name, Path(folder) / f"{name}.gz") if p.is_file()), None)


def read_table(path: Path | str) -> pd.DataFrame:
    """A metrics or per-prompt table as the pipeline wrote it, training seeds and line fields as text."""
    return pd.read_csv(path, dtype={"train_seed": str, "mode": str, "arm": str, "ablation": str,
                                    "clip_variant": str, "prompt_kind": str})


def _contribution_tables(per_prompt: pd.DataFrame) -> dict[tuple, dict[str, pd.DataFrame]]:
    """(line, guidance, metric) -> {kind: [seeds x prompts] mean contributions}, with the pooled kind of a mean
    metric (every prompt of every kind) added where the table has no pooled rows.

    One wide table of every cell, kind and seed, cut into each cell's blocks: a pivot per cell and kind took
    12 s over the quick preset's 752 cells, this 1 s."""
    index = [*_CELL_KEYS, "prompt_kind", "train_seed"]
    by_kind, pooled = (per_prompt.groupby([*keys, "prompt_id"], dropna=False)["value"].mean().unstack("prompt_id")
                       for keys in (index, [*_CELL_KEYS, "train_seed"]))
    tables: dict[tuple, dict[str, pd.DataFrame]] = {}
    for (*cell, kind), block in by_kind.groupby(level=index[:-1], sort=False, dropna=False):
        tables.setdefault(_cell_key(cell), {})[kind] = _block(block)
    for cell, block in pooled.groupby(level=_CELL_KEYS, sort=False, dropna=False):
        tables[_cell_key(cell)].setdefault(POOLED, _block(block))
    first_seen = per_prompt[_CELL_KEYS].drop_duplicates().itertuples(index=False)  # the metrics table's row order
    return {key: tables[key] for key in map(_cell_key, first_seen)}


def _cell_key(values: Sequence) -> tuple[Line, float | None, str]:
    """(line, guidance, metric) from the values of `_CELL_KEYS`."""
    *line, g, metric = values
    return Line.of(dict(zip(LINE_COLUMNS, line))), _guidance_key(g), metric


def _block(rows: pd.DataFrame) -> pd.DataFrame:
    """One cell's rows of a wide table, indexed by seed, without the prompts it has no value for."""
    values = rows.to_numpy(float)
    present = ~np.isnan(values)
    seeds, prompts = present.any(axis=1), present.any(axis=0)
    return pd.DataFrame(values[seeds][:, prompts], index=rows.index.get_level_values(-1)[seeds],
                        columns=rows.columns[prompts])


class Sweep:
    """The per-prompt contributions of every cell, with lookups by cell and the interval engine."""

    def __init__(self, per_prompt: pd.DataFrame, confidence: float = CONFIDENCE,
                 tags: dict[str, Sequence[str]] | None = None) -> None:
        if per_prompt is None or per_prompt.empty:
            raise ValueError("the report needs the sweep's per-prompt table (per_prompt.csv); it is empty")
        self.per_prompt = normalise(per_prompt)
        self.confidence = confidence
        # mode -> its tags as the run recorded them (ConditioningConfig.all_tags): what the questions select modes by
        self.tags = {mode: frozenset(values) for mode, values in (tags or {}).items()}
        # (line, guidance, metric) -> {kind: [seeds x prompts] contributions, NaN where absent}
        self._tables = _contribution_tables(self.per_prompt)
        self._cache: dict[tuple, Estimate | None] = {}

    def only(self, keep: Callable[[Line], bool]) -> Sweep:
        """The same sweep with only the curves `keep` accepts (and the real ceiling): what a question reads."""
        view = object.__new__(Sweep)
        view.confidence, view._cache, view.tags = self.confidence, {}, self.tags
        view._tables = {key: value for key, value in self._tables.items() if key[0].is_real or keep(key[0])}
        lines = self.per_prompt[list(LINE_COLUMNS)]
        kept = lines_where(lines, lambda line: line.is_real or keep(line))
        view.per_prompt = self.per_prompt[lines.merge(kept, how="left", indicator=True)["_merge"].eq("both").to_numpy()]
        return view

    def tagged(self, *tags: str, without: Sequence[str] = ()) -> set[str]:
        """The modes whose tags include every one of `tags` and none of `without`."""
        return {mode for mode, have in self.tags.items() if set(tags) <= have and not set(without) & have}

    # -- what was measured

    def has_curve(self, curve: Line) -> bool:
        """Whether the run sampled this line (any metric, any guidance)."""
        return any(key[0] == curve for key in self._tables)

    @property
    def prompt_count(self) -> int:
        """The number of evaluation prompts (what the evaluation CLIP retrieves a caption among)."""
        return int(self.per_prompt["prompt_id"].nunique())

    def has(self, metric: str) -> bool:
        return any(key[2] == metric for key in self._tables)

    @property
    def read_by_probe(self) -> bool:
        """Whether the shapes world's attribute probe judged this run (its readings and features); on a dataset
        the evaluation CLIP judges alone."""
        return any(self.has(metric) for metric in FROM_PROBE)

    def metrics_named(self, prefix: str) -> list[str]:
        return sorted({key[2] for key in self._tables if key[2].startswith(prefix)})

    def curves(self, *metrics: str, reliance: bool = False) -> list[Line]:
        """Curves (never the real ceiling) with a guidance scale where every given metric exists (any metric when
        none is given); the reliance lines (a token group hidden) only with `reliance`, and then only them."""
        found = {curve for curve, _ in self._points(metrics) if not curve.is_real}
        return self.order(c for c in found if (c.ablation != NONE) == reliance)

    def order(self, lines: Iterable[Line]) -> list[Line]:
        """Lines in display order, the modes in the run's order (that of its recorded tags)."""
        modes = list(self.tags)
        return sorted(lines, key=lambda line: line.sort_key(modes))

    def guidances(self, curve: Line, *metrics: str) -> list[float]:
        """Guidance scales where the curve has every given metric (any metric when none is given), ascending."""
        return sorted(g for c, g in self._points(metrics) if c == curve and g is not None)

    def _points(self, metrics: Sequence[str]) -> set[tuple[Line, float | None]]:
        found: set[tuple[Line, float | None]] | None = None
        for metric in metrics or [None]:
            here = {(line, g) for (line, g, met) in self._tables if metric is None or met == metric}
            found = here if found is None else found & here
        return found or set()

    def cell(self, curve: Line, guidance: float, metric: str, kind: str = POOLED) -> Reading:
        return Reading(curve, guidance, metric, kind)

    def ceiling_cell(self, metric: str) -> Reading:
        return Reading(REAL_LINE, math.nan, metric)

    def floor_cell(self, metric: str) -> Reading:
        """A set metric of real images against an independent draw of real images (`harness.line.FLOOR_LINE`)."""
        return Reading(FLOOR_LINE, math.nan, metric)

    def seeds(self, curve: Line) -> list[str]:
        """The training seeds a curve's cells were scored with."""
        return sorted({s for (line, _, _), kinds in self._tables.items() if line == curve
                       for s in kinds[POOLED].index})

    # -- numbers

    def table(self, cell: Reading) -> pd.DataFrame | None:
        kinds = self._tables.get((cell.curve, _guidance_key(cell.guidance), cell.metric))
        return None if kinds is None else kinds.get(cell.prompt_kind)

    def value(self, cell: Reading) -> Estimate | None:
        """The cell's mean over seeds and prompts with its interval (within the metric's range)."""
        key = ("value", cell)
        if key not in self._cache:
            table = self.table(cell)
            self._cache[key] = None if table is None else crossed_interval(
                fill_prompts(table.to_numpy(float)), self.confidence, metric_range(cell.metric),
                trained=not cell.curve.is_real)
        return self._cache[key]

    def estimate(self, cells: Sequence[Reading], fn: Callable[[np.ndarray], float]) -> Estimate | None:
        """fn(cell means) with its interval (linearised, paired over prompts; each decoder's cells paired over its
        seeds); None when a cell is missing."""
        tables = [self.table(c) for c in cells]
        if any(t is None for t in tables):
            return None
        decoders = [c.curve.decoder for c in cells]
        aligned = align(tables, decoders)
        if aligned is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            _, groups = linearise(aligned, decoders, [not c.curve.is_real for c in cells], fn)
        return grouped_interval(groups, self.confidence)

    def contrast(self, cells: Sequence[Reading], weights: Sequence[float]) -> Estimate | None:
        """A weighted sum of cell means (a difference, a difference of drops, a group mean...) with its interval."""
        w = np.asarray(weights, dtype=float)
        return self.estimate(cells, lambda x: float(x @ w))

    # -- the metrics table

    def rows(self, samples_per_prompt: int | None = None) -> pd.DataFrame:
        """The metrics table (`harness.metrics.table.COLUMNS`): per cell and prompt kind, one row per training
        seed (its prompts only: a prompt-only interval) and, for generated lines, one with the seeds pooled
        (`train_seed` = all, the crossed interval the report uses). `samples_per_prompt` fills `n_samples`."""
        rows = []
        for (line, g, metric), kinds in self._tables.items():
            for kind, table in kinds.items():
                key = {**line.columns(), "guidance": math.nan if g is None else g, "prompt_kind": kind,
                       "metric": metric}
                bounds = metric_range(metric)
                per_seed = [(seed, crossed_interval(row[None, ~np.isnan(row)], self.confidence, bounds,
                                                    trained=not line.is_real))
                            for seed, row in zip(table.index, table.to_numpy(float))]
                pooled = [] if line.is_real else [(POOLED, self.value(Reading(line, key["guidance"], metric, kind)))]
                for seed, est in per_seed + pooled:
                    rows.append({**key, "train_seed": seed, "value": est.value, "ci_low": est.low,
                                 "ci_high": est.high, "n_prompts": est.prompts,
                                 "n_samples": math.nan if samples_per_prompt is None or seed == POOLED
                                 else est.prompts * samples_per_prompt, "n_seeds": est.seeds})
        return pd.DataFrame(rows, columns=COLUMNS)


def align(tables: Sequence[pd.DataFrame], decoders: Sequence[tuple[str, str]]) -> list[np.ndarray] | None:
    """The cells' tables on every prompt any of them has and, within each decoder, on the seeds all its cells have.

    Seeds are matched within a decoder only (seed 1 of unclip at guidance 1 and 8 is the same model); decoders
    of different modes keep their own seeds, as many as each has, and are never filled in. A prompt a cell was
    not scored on counts as absent for that cell (`fill_prompts`). None when a decoder's cells share no seed."""
    prompts = sorted(set().union(*(t.columns for t in tables)))
    seeds: dict[tuple[str, str], list] = {}
    for table, decoder in zip(tables, decoders):
        have = list(table.index)
        seeds[decoder] = have if decoder not in seeds else [s for s in seeds[decoder] if s in set(have)]
    if any(not s for s in seeds.values()):
        return None
    return [fill_prompts(table.reindex(index=seeds[d], columns=prompts).to_numpy(float))
            for table, d in zip(tables, decoders)]
