"""`write_report`: report.md, curves.png and the answers in summary.json, every sentence generated from numbers.

report.md opens with Key findings (the primary contrasts, Holm-adjusted, and the DALL-E 2 paper's claims marked
reproduced, not reproduced, or the data cannot tell), then the setup, the curves, one section per research
question (docs/questions.md), the other metrics, and the image grids and sheets. A question whose inputs the run
lacks gets a section saying it was not measured.
"""

from __future__ import annotations

import dataclasses

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from harness.config import ReportConfig, default_report
from harness.metrics.catalogue import names
from harness.report import q1_frontier, q2_clip_text, q3_diversity, q4_attention, q5_binding, q6_mechanism
from harness.metrics.estimate import Sweep
from harness.line import Line
from harness.report.figures import plot_curves, plot_forest, plot_noise_scales
from harness.report.markdown import Section, fmt, fmt_est, fmt_scales, metric_table, name, table
from harness.report.primary import key_findings
from harness.runtime.provenance import describe

DRAWN_RIGHT = "shape_color_majority"
JUDGE_AGREEMENT = "judge_agreement"
SETUP_FIELDS = (  # summary["setup"] keys in reading order, with their labels
    ("data", "data"), ("resolution", "resolution (px)"), ("num_images", "images (train, val and test)"),
    ("decoder_size", "decoder size"), ("decoder_steps", "decoder training steps"), ("train_seeds", "training seeds"),
    ("sampler", "sampler"), ("sample_steps", "sampling steps"), ("prompts_per_kind", "prompts per kind"),
    ("samples_per_prompt", "samples per prompt"), ("machine", "machine"), ("device", "device"),
)


def sections(sweep: Sweep, settings: ReportConfig, arms: dict, out_dir: Path | None = None) -> dict[str, Section]:
    """Every section after Key findings, by the name its answer is stored under in summary.json. Q1 to Q5 read
    each mode's own sampling (its baseline arms); Q6 and the other metrics read every arm. `arms`: the run's, as
    its summary records them (`harness.sampling.cell.describe_arms`)."""
    own = sweep.only(lambda curve: q6_mechanism.is_baseline(curve, arms))
    figures: dict[Line, list[Path]] = {}
    if out_dir is not None:
        for group, curves in q6_mechanism.arm_modes(sweep, arms).items():
            figures[group] = [plot_curves(sweep, out_dir / f"curves_arms_{group.slug}.png", curves,
                                          f"{group.label} under every sampling arm: larger points are higher "
                                          "guidance scales, bars are 95% intervals")]
            scaled = plot_noise_scales(sweep, curves, arms, out_dir / f"noise_scales_{group.slug}.png",
                                       f"{group.label}: each arm at its noise scales (prior_gaussian, isotropic: x the "
                                       "prior draws' spread; cads: x the condition's std; bars are 95% intervals; "
                                       "dotted: the mode's own sampling)")
            figures[group] += [scaled] if scaled is not None else []
    return {"q1_frontier": q1_frontier.section(own, settings.matched_diversity),
            "q2_clip_text": q2_clip_text.section(own, settings.matched_diversity),
            "q3_diversity": q3_diversity.section(own, out_dir),
            "q4_attention": q4_attention.section(own, out_dir),
            "q5_binding": q5_binding.section(own, [(p.a, p.b) for p in settings.primary
                                                   if p.question == "q5" and p.contrast == "difference" and not p.margin]),
            "q6_mechanism": q6_mechanism.section(sweep, arms, settings.matched_diversity, figures, out_dir),
            "other_metrics": other_metrics(sweep)}


def other_metrics(sweep: Sweep) -> Section:
    """Every curve x guidance table of the metrics the question sections do not show in full."""
    features = "the probe's" if sweep.read_by_probe else "the evaluation CLIP's image"
    section = Section("Other metrics", ["Each cell: mean over training seeds and prompts, with its interval "
                                        f"(FID and KID in {features} features against real images of the same "
                                        "prompts; lower is better).", ""], {"measured": True})
    for metric in names(other_table=True):
        curves = sweep.curves(metric)
        if curves:
            section.lines += [f"### {name(metric)}", "", *metric_table(sweep, metric, curves)]
    return section


def drawn_right_lines(sweep: Sweep) -> list[str]:
    """What the sheets show, counted: the share of prompts most of whose samples have every named shape and
    colour, per curve and guidance scale."""
    curves = sweep.curves(DRAWN_RIGHT)
    if not curves:
        return []
    return ["Prompts drawn right: the share of prompts for which most samples show every shape and colour the "
            "prompt names (probe readings, with intervals).", "",
            *metric_table(sweep, DRAWN_RIGHT, curves)]


def judge_lines(sweep: Sweep) -> list[str]:
    """How far the two judges agree on the generated images: the evaluation CLIP retrieving a sample's own caption
    among the sweep's prompts against the probe finding every named attribute, mean over every line and scale."""
    cells = [sweep.cell(c, g, JUDGE_AGREEMENT) for c in sweep.curves(JUDGE_AGREEMENT)
             for g in sweep.guidances(c, JUDGE_AGREEMENT)]
    if not cells:
        return []
    mean = [1.0 / len(cells)] * len(cells)
    rates = {metric: sweep.contrast([sweep.cell(c.curve, c.guidance, metric) for c in cells], mean)
             for metric in (JUDGE_AGREEMENT, "clip_retrieval", "all_attributes")}
    return ["### The two judges", "",
            f"On the generated images (mean over {len(cells)} cells), the evaluation CLIP retrieves a sample's own "
            f"caption among the sweep's prompts for {fmt_est(rates['clip_retrieval'])} of samples, the probe finds "
            f"every named attribute in {fmt_est(rates['all_attributes'])}, and the two agree on "
            f"{fmt_est(rates[JUDGE_AGREEMENT])} of samples.", ""]


def setup_lines(summary: dict, sweep: Sweep) -> list[str]:
    setup = summary.get("setup", {})
    rows = [[label, _plain(setup[key]) if key in setup else "not recorded"] for key, label in SETUP_FIELDS]
    rows += [[key, _plain(value)] for key, value in setup.items() if key not in dict(SETUP_FIELDS)]
    rows += [[label, value] for label, value in describe(summary["provenance"])] if summary.get("provenance") else []
    curves = sweep.curves()
    level = f"{sweep.confidence:.0%}"
    lines = ["## Setup", "", *table(["setting", "value"], rows),
             "Lines measured: " + "; ".join(f"{c.label} at {fmt_scales(sweep.guidances(c))} "
                                            f"({len(sweep.seeds(c))} training seed{'s' if len(sweep.seeds(c)) != 1 else ''})"
                                            for c in curves) + ".", "",
             f"Intervals are {level} Student-t intervals over prompts and training seeds: a cell is the mean over "
             "seeds of each seed's mean over prompts, and its variance has a seed, a prompt and an interaction "
             "part, estimated from the seeds x prompts table (a crossed random-effects design). Set metrics (FID, "
             "KID, precision, recall, density, coverage) enter as each prompt's jackknife pseudo-value, the metric "
             "recomputed without that prompt, so no sample is ever duplicated. Differences, drops, ratios, "
             "frontier areas and matched-diversity fidelities are computed prompt by prompt and seed by seed "
             "(paired, linearised). † marks an interval resting on one training seed: it covers prompt variation "
             "only. A sentence says which side is higher only when the interval excludes 0; otherwise it gives the "
             "smallest difference the run could detect (80% power).", ""]
    lines += _wall_time_lines(summary)
    lines += judge_lines(sweep)
    lines += ["### Quality of the pieces", ""]
    on_dataset = summary.get("setup", {}).get("data", "shapes") != "shapes"
    for key, label in (("clip", "Conditioning CLIP"), ("eval_clip", "Evaluation CLIP"),
                       ("probe", "Attribute probe (evaluator)"), ("decoders", "Decoders")):
        flat = _flatten(summary.get(key) or {})
        missing = "none: a dataset has no exact attributes, the evaluation CLIP judges alone" \
            if key == "probe" and on_dataset else "not recorded"
        lines += [f"{label}: " + ("; ".join(f"{k} {v}" for k, v in flat.items()) if flat else missing) + ".", ""]
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


# ---------------------------------------------------------------- the report


def report_settings(config: DictConfig, defaults: bool = False) -> ReportConfig:
    """A run's `report` settings (primary contrasts, confidence...) from its resolved config, defaults where the
    config has none (a run folder written before a setting existed); settings since retired are ignored.
    `defaults`: this code's defaults instead (for a run that kept the defaults of its day)."""
    own = OmegaConf.select(config, "report") or {}
    known = {f.name for f in dataclasses.fields(ReportConfig)}
    chosen = {} if defaults else {k: v for k, v in own.items() if k in known}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(default_report()), chosen))


def write_report(metrics: pd.DataFrame, summary: dict, out_dir: Path, per_prompt: pd.DataFrame,
                 grids: dict[str, Path] | None = None, sheets: dict[str, Path] | None = None,
                 settings: ReportConfig | None = None, recipe: dict | None = None) -> Path:
    """Write report.md and curves.png in `out_dir` and merge `summary` plus the answers (numbers with intervals,
    per question) into its summary.json; returns the path of report.md. Every number comes from `per_prompt`;
    `metrics` (the table with its per-seed and pooled rows) is not read here. `recipe` (harness/report/pilot.py)
    picks the pilot study a one-seed run borrows its seed variance from."""
    settings = settings or default_report()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep = Sweep(per_prompt, confidence=settings.confidence, tags=summary["mode_tags"])
    arms = summary["arms"]
    plot_curves(sweep, out_dir / "curves.png", [c for c in sweep.curves() if q6_mechanism.is_baseline(c, arms)])
    findings = key_findings(sweep, settings, recipe)
    parts = sections(sweep, settings, arms, out_dir)
    lines = [f"# Report: {summary.get('experiment', 'experiment')}", "", f"## {findings.title}", "",
             *findings.lines, *forest_lines(findings.answer, out_dir), *setup_lines(summary, sweep),
             "## Diversity–fidelity curves", "",
             "One line per mode (and prior-draw policy, fixed dashed; Q6 draws the other sampling arms), guidance "
             "scales as points that grow with the scale, "
             f"{settings.confidence:.0%} intervals in both directions, real images of the same prompts as the star "
             "and dotted lines.", "", "![curves](curves.png)", ""]
    for section in parts.values():
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
    headings = [line[3:] for line in lines if line.startswith("## ")]
    lines[1:1] = ["", "Contents: " + " · ".join(f"[{h.split('. ')[0] if h.startswith('Q') else h}](#{anchor(h)})"
                                              for h in headings)]
    report = out_dir / "report.md"
    _write_atomic(report, "\n".join(lines).rstrip() + "\n")
    summary_path = out_dir / "summary.json"
    merged = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    merged.update(summary)
    merged["answers"] = {"key_findings": findings.answer, **{key: s.answer for key, s in parts.items()}}
    _write_atomic(summary_path, json.dumps(merged, indent=2, default=str))
    return report


def forest_lines(answer: dict, out_dir: Path) -> list[str]:
    """`forest.png`, the Key-findings contrasts with their intervals (exploratory ones hollow), and its
    reference; nothing when no contrast has an interval."""
    entries = {f"{e['question'].upper()} {e['contrast']}": [e] for e in answer.get("primary", [])}
    forest = plot_forest(list(entries), entries, ["this run"], out_dir / "forest.png",
                         "Key findings: each contrast a − b with its interval (hollow: exploratory)")
    return [] if forest is None else ["![forest](forest.png)", ""]


def anchor(heading: str) -> str:
    """The link target a Markdown renderer (GitHub's) gives a heading: lower case, punctuation dropped, spaces as
    hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


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
