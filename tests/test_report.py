"""The report states the numbers of a hand-made per-prompt table, in the right section, opens with Key findings,
and never claims a difference that the intervals do not support."""

from __future__ import annotations

import dataclasses
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.config import PrimaryContrast, ReportConfig
from harness.line import Line
from harness.report import Sweep, write_report
from harness.report.contrasts import compare, interpolate_at, matched_fidelity
from harness.metrics.estimate import Reading
from harness.report.q1_frontier import hypervolume
from harness.report.q5_binding import hard_negative_pairs

PROMPTS = 20
SPREAD = 0.1  # per-prompt standard deviation of every cell: a cell's interval is about +-0.047
KIND_OF = {"free_entropy": "free", "binding_accuracy": "binding", "swap_binding": "binding"}

# (line without its arm, arm, metric): {guidance: mean}. Differences are either large (>= 0.2, separated) or tiny
# (<= 0.02, not separated), so each expected verdict holds whatever the random per-prompt scatter.
CELLS = {
    ("glide", "-", "attribute_accuracy"): {1: 0.80, 3: 0.90},
    ("clip_text", "-", "attribute_accuracy"): {1: 0.55, 3: 0.60},
    ("unclip", "per_sample", "attribute_accuracy"): {1: 0.70, 3: 0.78},
    ("unclip", "fixed", "attribute_accuracy"): {1: 0.72, 3: 0.80},
    ("glide", "-", "free_entropy"): {1: 0.70, 3: 0.20},
    ("clip_text", "-", "free_entropy"): {1: 0.70, 3: 0.45},
    ("unclip", "per_sample", "free_entropy"): {1: 0.72, 3: 0.70},
    ("unclip", "fixed", "free_entropy"): {1: 0.70, 3: 0.30},
    ("glide", "-", "binding_accuracy"): {1: 0.70, 3: 0.75},
    ("combined", "per_sample", "binding_accuracy"): {1: 0.72, 3: 0.74},
    ("clip_text", "-", "binding_accuracy"): {1: 0.40, 3: 0.42},
    ("clip_text [hardneg]", "-", "binding_accuracy"): {1: 0.41, 3: 0.42},
    ("unclip", "per_sample", "binding_accuracy"): {1: 0.45, 3: 0.47},
    ("unclip", "fixed", "binding_accuracy"): {1: 0.45, 3: 0.46},
    ("combined", "per_sample", "attention_clip"): {1: 0.30, 3: 0.45},
    ("combined", "per_sample", "attention_text"): {1: 0.30, 3: 0.15},
    ("combined", "per_sample", "attention_clip_per_token"): {1: 0.07, 3: 0.40},
    ("combined", "per_sample", "attention_text_per_token"): {1: 0.07, 3: 0.02},
    ("unclip", "fixed", "shape_color_majority"): {1: 0.40, 3: 0.56},
    # The reliance test: combined sampled with its CLIP tokens, or its text tokens, hidden from attention.
    ("combined", "per_sample", "attribute_accuracy"): {1: 0.75, 3: 0.80},
    ("combined without clip", "per_sample", "attribute_accuracy"): {3: 0.50},
    ("combined without text", "per_sample", "attribute_accuracy"): {3: 0.78},
    ("real", "-", "attribute_accuracy"): {None: 0.97},
    ("real", "-", "free_entropy"): {None: 0.80},
}

def shipped_tags() -> dict[str, list[str]]:
    """Every shipped mode's tags, as a run's summary records them (what the questions select modes by)."""
    from harness.cli import compose
    from stages import shipped_modes

    cfg = compose([f"conditioning=[{','.join(shipped_modes())}]"])
    return {mode: mode_cfg.all_tags for mode, mode_cfg in cfg.conditioning.items()}


SUMMARY = {
    "experiment": "handmade",
    "mode_tags": shipped_tags(),
    "arms": {arm: {"module": arm, "baseline": True, "modes": ["unclip", "combined"]} for arm in ("fixed", "per_sample")},
    "setup": {"data": "shapes", "resolution": 16, "num_images": 20000, "decoder_size": "tiny",
              "decoder_steps": 3000, "train_seeds": [0], "sampler": "ddim", "sample_steps": 20,
              "prompts_per_kind": 16, "samples_per_prompt": 8, "machine": "2-core CPU", "device": "cpu"},
    "wall_time_s": {"clip": 61.5, "decoder": 420.0},
    "clip": {"retrieval_top1": 0.82},
    "priors": {"diffusion": {"cosine": 0.71, "retrieval": 0.44}},
}


def scatter(key: tuple, seed: int) -> np.ndarray:
    """Per-prompt deviations with mean exactly 0 and sd SPREAD, the same on every run of the tests."""
    z = np.random.default_rng(zlib.crc32(repr((key, seed)).encode())).normal(size=PROMPTS)
    return SPREAD * (z - z.mean()) / z.std(ddof=1)


def make_per_prompt(cells: dict, seeds: tuple[int, ...] = (0,)) -> pd.DataFrame:
    rows = []
    for (text, draw, metric), by_g in cells.items():
        line = dataclasses.replace(Line.parse(text), arm=draw)
        mode = line.mode
        kind = KIND_OF.get(metric, "full")
        offset = {"free": 0, "binding": 100, "full": 200}[kind]
        for g, mean in by_g.items():
            for seed in ["-"] if mode == "real" else seeds:
                values = mean + scatter((text, draw, metric, g), seed if mode != "real" else 0)
                rows += [{**line.columns(), "guidance": np.nan if g is None else float(g),
                          "train_seed": seed, "prompt_kind": kind, "prompt_id": offset + p, "metric": metric,
                          "value": float(v)} for p, v in enumerate(values)]
    return pd.DataFrame(rows)


def sections(report: str) -> dict[str, str]:
    """Top-level sections by the start of their title ("Q1", "Setup", "Key findings", ...)."""
    parts = re.split(r"^## ", report, flags=re.M)[1:]
    return {part.split(".")[0].split("\n")[0]: part for part in parts}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[dict[str, str], dict, Path]:
    out = tmp_path_factory.mktemp("report")
    (out / "summary.json").write_text(json.dumps({"experiment": "handmade", "stage_written_before": True}))
    grid = out / "grid_g3.png"
    grid.write_bytes(b"")
    report = write_report(pd.DataFrame(), SUMMARY, out, make_per_prompt(CELLS), grids={"a red circle": grid},
                          sheets={"unclip_fixed": grid})
    return sections(report.read_text()), json.loads((out / "summary.json").read_text()), out


# ---------------------------------------------------------------- the analysis


def test_hypervolume_is_the_union_of_rectangles_and_ignores_dominated_points():
    # [0,.7]x[0,.8] and [0,.2]x[0,.9] overlap on [0,.2]x[0,.8]: 0.56 + 0.2 * 0.1 = 0.58.
    assert hypervolume(np.array([0.7, 0.2]), np.array([0.8, 0.9])) == pytest.approx(0.58)
    assert hypervolume(np.array([0.7, 0.2, 0.1]), np.array([0.8, 0.9, 0.5])) == pytest.approx(0.58)


def test_matched_diversity_interpolates_between_the_bracketing_scales():
    assert interpolate_at(np.array([0.7, 0.2]), np.array([0.8, 0.9]), 0.6) == pytest.approx(0.82)
    assert np.isnan(interpolate_at(np.array([0.72, 0.70]), np.array([0.7, 0.78]), 0.6))  # never gets there
    sweep = Sweep(make_per_prompt(CELLS))
    glide = matched_fidelity(sweep, Line("glide"), "free_entropy", "attribute_accuracy", 0.75)
    assert glide.value == pytest.approx(0.82)  # target 0.75 x 0.80 = 0.60
    assert glide.low < glide.value < glide.high


def test_seeds_pool_by_mean_and_their_spread_widens_the_interval():
    cells = {("glide", "-", "attribute_accuracy"): {3: 0.6}}
    one, three = Sweep(make_per_prompt(cells)), Sweep(make_per_prompt(cells, seeds=(0, 1, 2)))
    cell = Reading(Line("glide"), 3.0, "attribute_accuracy")
    assert one.value(cell).seeds == 1 and three.value(cell).seeds == 3
    shifted = make_per_prompt(cells, seeds=(0, 1, 2))
    shifted.loc[shifted["train_seed"] == 1, "value"] += 0.3  # one training seed far better than the others
    wide = Sweep(shifted).value(cell)
    assert wide.value == pytest.approx(0.7)
    assert wide.high - wide.low > 4 * (three.value(cell).high - three.value(cell).low)
    table = Sweep(shifted).rows(samples_per_prompt=8).query("prompt_kind == 'all'").reset_index(drop=True)
    assert list(table["train_seed"]) == ["0", "1", "2", "all"] and list(table["n_seeds"]) == [1, 1, 1, 3]
    assert table["value"].iloc[:3].tolist() == pytest.approx([0.6, 0.9, 0.6]) and table["n_samples"].iloc[0] == 160
    assert (table["ci_low"] < table["value"]).all() and (table["value"] < table["ci_high"]).all()


def test_a_clip_variant_is_a_line_of_its_own_compared_with_the_standard_clip():
    table = make_per_prompt({("clip_text", "-", "binding_accuracy"): {3: 0.4}})
    table = pd.concat([table, table.assign(clip_variant="hardneg", value=table["value"] + 0.3)])
    sweep = Sweep(table)
    hard = Line("clip_text", clip_variant="hardneg")
    assert hard_negative_pairs(sweep, "binding_accuracy") == [(hard, Line("clip_text"))]
    assert compare(sweep, hard, Line("clip_text"), "binding_accuracy").verdicts()[0] == [3.0]


def test_paired_per_prompt_values_separate_what_overlapping_intervals_cannot():
    # Prompts differ a lot in difficulty, but glide is 0.05 better than clip_text on every single prompt.
    base = np.linspace(0.2, 0.9, 20)
    per_prompt = pd.DataFrame(
        [dict(mode=m, guidance=3.0, arm="-", train_seed=0, prompt_kind="full", prompt_id=i,
              metric="attribute_accuracy", value=v + shift)
         for m, shift in (("glide", 0.05), ("clip_text", 0.0)) for i, v in enumerate(base)])
    sweep = Sweep(per_prompt)
    glide, clip_text = (sweep.value(sweep.cell(Line(m), 3.0, "attribute_accuracy")) for m in ("glide", "clip_text"))
    assert glide.low < clip_text.high  # the two cells' intervals overlap
    paired = compare(sweep, Line("glide"), Line("clip_text"), "attribute_accuracy")
    assert paired.verdicts() == ([3.0], [], [])
    assert paired.points[0].difference.value == pytest.approx(0.05)


# ---------------------------------------------------------------- the report


def _primary(summary: dict, question: str, contrast_start: str = "") -> dict:
    return next(p for p in summary["answers"]["key_findings"]["primary"]
                if p["question"] == question and p["statement"].startswith(contrast_start))


def test_a_one_seed_report_reads_its_contrasts_as_facts_about_its_decoders(rendered):
    found, summary, _ = rendered
    assert list(found)[0] == "Key findings"
    findings = summary["answers"]["key_findings"]
    family = [p for p in findings["primary"] if p["family"] == "primary"]
    # Q1, Q2 x2, Q3 x2, Q4 and the Q5 equivalence contrast: the curves of each are in the run's design, whether
    # or not the data could measure them (Q1's matched level is not reached, and it still counts).
    assert len(family) == 7 and findings["pilot"] is None
    assert {p["family"] for p in findings["primary"] if p["question"] in ("q6",)} == {"outside"}
    q3 = _primary(summary, "q3", "drop(glide)")
    assert q3["estimate"]["value"] == pytest.approx(0.48) and q3["seed_term"] == "none"
    assert not q3["mode_level"] and q3["outcome"] == "glide loses more" and q3["adjusted_p"] < 0.05
    q1 = _primary(summary, "q1")
    assert q1["outcome"] == "matched level not reached" and q1["family"] == "primary"
    q4 = _primary(summary, "q4")
    assert q4["outcome"] == "combined relies more on its CLIP tokens than on its text tokens"
    assert q4["estimate"]["value"] == pytest.approx(0.28) and q4["detectable"] > 0
    text = found["Key findings"]
    assert "for the decoders this run trained, glide loses more; no verdict about the modes" in text
    # No paper verdict rests on one seed: each says which premise failed.
    claims = {c["claim"]: c for c in findings["claims"]}
    keeps = claims["unCLIP keeps diversity under decoder guidance with the prior latents fixed per sample (more than "
                   "GLIDE keeps)"]
    assert keeps["verdict"] == "withheld" and "a reading of these decoders, not of the modes" in keeps["evidence"]


@pytest.fixture(scope="module")
def rendered_seeds(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("seeds")
    write_report(pd.DataFrame(), SUMMARY, out, make_per_prompt(CELLS, seeds=(0, 1, 2)))
    return json.loads((out / "summary.json").read_text())


def test_three_seeds_carry_the_seed_variance_and_judge_the_papers_claims(rendered_seeds):
    findings = rendered_seeds["answers"]["key_findings"]
    q3 = _primary(rendered_seeds, "q3", "drop(glide)")
    assert q3["seed_term"] == "run" and q3["mode_level"] and q3["estimate"]["seeds"] == 3
    claims = {c["claim"]: c["verdict"] for c in findings["claims"]}
    assert claims["unCLIP keeps diversity under decoder guidance with the prior latents fixed per sample (more than "
                  "GLIDE keeps)"] == "consistent with the paper's claim in this setting"
    # combined - unclip binding at g = 3 is 0.27: no equivalence within ±0.1 can be shown.
    assert claims["The GLIDE pathway adds little to binding"] == "cannot tell"
    assert claims["Guidance hurts unCLIP's FID less than GLIDE's"] == "cannot tell"  # no FID in this table
    assert claims["GLIDE's diversity collapses under guidance"] == "withheld"  # exploratory only


def test_an_equivalence_contrast_is_a_family_member_tested_against_its_margin():
    from harness.report.primary import primary_family

    close = {("combined", "per_sample", "binding_accuracy"): {3: 0.50},
             ("unclip", "per_sample", "binding_accuracy"): {3: 0.49}}
    settings = ReportConfig(primary=[PrimaryContrast("q5", "difference", "combined (per_sample)", "unclip (per_sample)",
                                                     "binding_accuracy", margin=0.1),
                                     PrimaryContrast("q5", "difference", "combined (per_sample)", "unclip (per_sample)",
                                                     "binding_accuracy", margin=0.01)])
    wide, narrow = primary_family(Sweep(make_per_prompt(close, seeds=(0, 1, 2))), settings)
    assert wide.in_family and wide.significant(0.05) == 1  # within ±0.1
    assert narrow.significant(0.05) == 0  # ±0.01 is tighter than the interval


def test_primary_contrasts_come_from_config():
    settings = ReportConfig(primary=[PrimaryContrast("q2", "difference", "clip_text", "glide", "attribute_accuracy",
                                                     guidance=1.0)])
    from harness.report.primary import primary_family

    (result,) = primary_family(Sweep(make_per_prompt(CELLS)), settings)
    assert result.estimate.value == pytest.approx(-0.25) and result.adjusted_p < 0.001
    assert result.detectable == pytest.approx(result.estimate.detectable(alpha=0.05))  # a family of one


def test_setup_states_sizes_seeds_wall_time_and_quality(rendered):
    text = rendered[0]["Setup"]
    for expected in ("| resolution (px) | 16 |", "| decoder training steps | 3000 |", "| training seeds | 0 |",
                     "| decoder | 420.0 |", "| total | 481.5 |", "retrieval_top1 0.820", "| diffusion | 0.710 | 0.440 |",
                     "| sampler | ddim |", "unclip (fixed) at g = 1, 3 (1 training seed);", "Student-t intervals"):
        assert expected in text
    assert "| device | cpu |" in text


def test_q1_gives_fidelity_at_matched_diversity_and_areas(rendered):
    text = rendered[0]["Q1"]
    assert re.search(r"\| glide \| 0\.820 \[[0-9.]+, [0-9.]+\]† \| 0\.580 \[", text)
    assert "| unclip (per_sample) | n/a | 0.560 [" in text
    assert re.search(r"\| real images \(ceiling\) \| 0\.970 \[[0-9.]+, [0-9.]+\] \|", text)  # no seeds: no †
    assert "exploratory" in text


def test_q2_states_values_and_separates_only_where_intervals_do(rendered):
    text = rendered[0]["Q2"]
    assert "attribute accuracy (higher is better): glide beats clip_text at g = 1, 3." in text
    # free entropy: equal at g = 1, 0.25 apart at g = 3.
    assert ("free-attribute entropy (higher is better): clip_text beats glide at g = 3; "
            "the data cannot tell at g = 1.") in text
    assert re.search(r"\| 3 \| 0\.600 \[[0-9.]+, [0-9.]+\]† \| 0\.900 \[[0-9.]+, [0-9.]+\]† \| -0\.300 \[", text)
    assert "### clip_text vs unclip (per_sample)" in text and "### clip_text vs unclip (fixed)" in text


def covers(answer: dict, value: float) -> bool:
    """An interval of summary.json that holds `value` and its own estimate, with the estimate at `value`."""
    return answer["value"] == pytest.approx(value) and answer["low"] <= answer["value"] <= answer["high"]


def test_q3_names_both_readings_measures_drops_and_compares_draw_policies(rendered):
    text, summary = rendered[0]["Q3"], rendered[1]
    assert "`per_sample`: the paper's reading (Fig. 9: one prior draw per sample" in text
    assert "`fixed`: the blog post's reading" in text
    q3 = summary["answers"]["q3_diversity"]
    glide = q3["drops"]["glide"]
    assert (glide["low_guidance"], glide["high_guidance"]) == (1.0, 3.0)
    assert covers(glide["start"], 0.70) and covers(glide["end"], 0.20) and covers(glide["drop"], 0.50)
    assert glide["drop"]["low"] > 0 and glide["drop"]["seed_term"] == "none"  # falls; one seed, prompts only
    unchanged = q3["drops"]["unclip (per_sample)"]["drop"]
    assert covers(unchanged, 0.02) and unchanged["low"] < 0 < unchanged["high"]  # cannot tell
    gap = q3["fixed_vs_per_sample"]["unclip"]["drop_gap"]
    assert covers(gap, 0.38) and gap["low"] > 0  # the fixed draw loses more
    assert "unclip: drop(fixed) − drop(per_sample) = 0.380 [" in text


def test_q4_reports_attention_per_group_and_per_token_at_every_guidance(rendered):
    text, summary = rendered[0]["Q4"], rendered[1]
    curve = summary["answers"]["q4_attention"]["curves"]["combined (per_sample)"]
    by_g = {split["guidance"]: split for split in curve["per_group"]}
    assert covers(by_g[3.0]["clip"], 0.45) and covers(by_g[3.0]["text"], 0.15)
    assert covers(by_g[3.0]["clip_minus_text"], 0.30) and by_g[3.0]["clip_minus_text"]["low"] > 0
    assert by_g[1.0]["clip_minus_text"]["low"] < 0 < by_g[1.0]["clip_minus_text"]["high"]  # equal at g = 1
    per_token = {split["guidance"]: split for split in curve["per_token"]}
    assert covers(per_token[3.0]["clip_minus_text"], 0.38) and per_token[3.0]["clip_minus_text"]["low"] > 0
    reliance = summary["answers"]["q4_attention"]["reliance"]["combined (per_sample)"]["3"]
    assert covers(reliance["clip"], 0.30) and covers(reliance["text"], 0.02)  # what hiding each group costs
    assert covers(reliance["clip_minus_text"], 0.28) and reliance["clip_minus_text"]["low"] > 0
    assert "the samples rely more on the CLIP tokens" in text
    assert "without clip" not in rendered[0]["Q1"]  # reliance lines stay out of the other sections


def test_q5_contrasts_vector_and_sequence_modes_and_hard_negatives(rendered):
    text = rendered[0]["Q5"]
    assert "sequence modes bind better at g = 1, 3." in text
    # vector-only mean at g = 1: (0.40 + 0.45 + 0.45) / 3; sequence: (0.70 + 0.72) / 2.
    assert "| 1 | 0.433 [" in text and "| 0.710 [" in text
    assert "binding accuracy (higher is better): the data cannot tell at g = 1, 3." in text
    assert "Not measured in this run: the run has none of Q5's ablation pairs (clip_text_seq with clip_text; glide with " \
           "glide_seq)." in text


def test_figures_are_embedded_and_curves_png_is_a_png(rendered):
    found, _, out = rendered
    assert "![curves](curves.png)" in found["Diversity–fidelity curves"]
    assert "![a red circle](grid_g3.png)" in found["Image grids"]
    assert "![unclip_fixed](grid_g3.png)" in found["Samples per mode"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the Key-findings contrasts as a forest plot, Q3's diversity against guidance
    assert "![forest](forest.png)" in found["Key findings"] and (out / "forest.png").read_bytes()[:4] == b"\x89PNG"
    q3 = next(text for title, text in found.items() if title.startswith("Q3"))
    assert "against guidance](q3_diversity.png)" in q3 and (out / "q3_diversity.png").stat().st_size > 0


def test_sample_sheets_come_with_the_share_of_prompts_drawn_right(rendered):
    samples = rendered[0]["Samples per mode"]
    assert "Prompts drawn right: the share of prompts for which most samples show" in samples
    assert re.search(r"\| unclip \(fixed\) \| 0\.400 \[[0-9.]+, [0-9.]+\]† \| 0\.560 \[", samples)


def test_summary_json_keeps_earlier_fields_and_gets_the_answers(rendered):
    _, summary, _ = rendered
    assert summary["stage_written_before"] and summary["setup"]["resolution"] == 16
    answers = summary["answers"]
    point = answers["q2_clip_text"]["versus"]["glide"]["metrics"]["attribute_accuracy"]["points"][1]
    assert (point["a"]["value"], point["b"]["value"]) == pytest.approx((0.6, 0.9))
    assert answers["q2_clip_text"]["versus"]["glide"]["metrics"]["free_entropy"]["cannot_tell_at"] == [1.0]
    assert answers["q1_frontier"]["by_fidelity"]["attribute_accuracy"]["matched"]["glide"]["value"] == \
        pytest.approx(0.82)
    assert answers["q3_diversity"]["drops"]["glide"]["drop"]["value"] == pytest.approx(0.5)
    assert answers["q4_attention"]["measured"] and answers["q5_binding"]["measured"]


def test_absent_inputs_say_not_measured(tmp_path):
    # A smoke-like run: glide only, no prior draws, attention, binding or real ceiling.
    smoke = {key: cells for key, cells in CELLS.items() if key[0] == "glide" and key[2] != "binding_accuracy"}
    found = sections(write_report(pd.DataFrame(), {"experiment": "smoke", "mode_tags": SUMMARY["mode_tags"], "arms": {}}, tmp_path,
                                  make_per_prompt(smoke)).read_text())
    assert "Not measured in this run: the run needs the core text-vector mode (clip_text)" in found["Q2"]
    assert "no mode was swept with both fixed and per-sample prior draws" in found["Q3"]
    assert "Not measured in this run: no mode with both CLIP and text tokens" in found["Q4"]
    assert "Not measured in this run: the run has no binding accuracy" in found["Q5"]
    assert "one family of 0" in found["Key findings"]
    assert "| data | not recorded |" in found["Setup"]
    answers = json.loads((tmp_path / "summary.json").read_text())["answers"]
    assert answers["q4_attention"] == {"measured": False,
                                       "reason": "no mode with both CLIP and text tokens recorded its attention mass"}
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_without_hard_negative_runs_the_binding_section_says_so(tmp_path):
    cells = {key: v for key, v in CELLS.items() if "[" not in key[0]}
    found = sections(write_report(pd.DataFrame(), SUMMARY, tmp_path, make_per_prompt(cells)).read_text())
    assert "The run did not include a hard-negative CLIP: not measured." in found["Q5"]


def test_a_dataset_of_unique_captions_says_why_q1_has_no_matched_diversity():
    """On a dataset whose held-out captions caption one test image each, the real images have no within-prompt
    diversity: Q1's contrast at matched diversity cannot exist, and Key findings says why instead of 'n/a'."""
    from harness.report.primary import finding_line, primary_family

    dataset = {(mode, draw, metric): by_g for mode, draw in (("glide", "-"), ("unclip", "per_sample"))
               for metric, by_g in (("clip_score", {1: 0.20, 3: 0.24}), ("pairwise_distance", {1: 0.40, 3: 0.30}))}
    dataset[("real", "-", "clip_score")] = {None: 0.25}  # a real image per caption: a score, but no spread
    settings = ReportConfig(primary=[PrimaryContrast("q1", "matched_fidelity", "unclip (per_sample)", "glide")])
    (result,) = primary_family(Sweep(make_per_prompt(dataset)), settings)
    assert not result.measured and not result.unreached
    line = finding_line(result, alpha=0.05)
    assert "not measured in this run: the real images have no pairwise feature distance to match" in line
    assert "two or more test images" in line


# ---------------------------------------------------------------- Q6: sampling arms

# Fidelity rises from guidance 1 to 3 alike on unclip under every arm, so each pair is read at the middle of its
# shared range (0.75), halfway between the two scales: free-attribute entropy there is 0.70 for the prior's draws
# per sample, 0.70 for a Gaussian of their mean and covariance, 0.45 for isotropic noise of their spread and 0.40
# for another caption's draws; clip_text 0.60, 0.62 with text noise.
Q6_CELLS = {
    **{(mode, arm, "attribute_accuracy"): acc for mode, arm, acc in (
        ("unclip", "per_sample", {1: 0.70, 3: 0.80}), ("unclip", "fixed", {1: 0.70, 3: 0.80}),
        ("unclip", "prior_gaussian", {1: 0.70, 3: 0.80}), ("unclip", "isotropic", {1: 0.70, 3: 0.80}),
        ("unclip", "shuffled_draws", {1: 0.70, 3: 0.80}), ("unclip", "prior_gaussian_x2", {1: 0.65, 3: 0.75}),
        ("clip_text", "-", {1: 0.55, 3: 0.65}),
        ("clip_text", "text_noise", {1: 0.55, 3: 0.65}))},
    **{(mode, arm, "free_entropy"): ent for mode, arm, ent in (
        ("unclip", "per_sample", {1: 0.75, 3: 0.65}), ("unclip", "fixed", {1: 0.45, 3: 0.25}),
        ("unclip", "prior_gaussian", {1: 0.75, 3: 0.65}), ("unclip", "isotropic", {1: 0.55, 3: 0.35}),
        ("unclip", "shuffled_draws", {1: 0.50, 3: 0.30}), ("unclip", "prior_gaussian_x2", {1: 0.80, 3: 0.70}),
        ("clip_text", "-", {1: 0.75, 3: 0.45}),
        ("clip_text", "text_noise", {1: 0.77, 3: 0.47}))},
    ("real", "-", "attribute_accuracy"): {None: 0.97},
    ("real", "-", "free_entropy"): {None: 0.80},
}
ARMS = {"per_sample": {"module": "per_sample", "baseline": True, "modes": ["unclip"]},
        "fixed": {"module": "fixed", "baseline": True, "modes": ["unclip"]},
        **{arm: {"module": arm, "baseline": False, "modes": ["unclip"], "noise_scale": 1.0}
           for arm in ("prior_gaussian", "isotropic")},
        "prior_gaussian_x2": {"module": "prior_gaussian", "baseline": False, "modes": ["unclip"], "noise_scale": 2.0},
        "shuffled_draws": {"module": "shuffled_draws", "baseline": False, "modes": ["unclip"]},
        "text_noise": {"module": "text_noise", "baseline": False, "modes": ["clip_text"]}}


@pytest.fixture(scope="module")
def rendered_arms(tmp_path_factory) -> tuple[dict[str, str], dict, Path]:
    out = tmp_path_factory.mktemp("arms")
    report = write_report(pd.DataFrame(), {**SUMMARY, "arms": ARMS}, out, make_per_prompt(Q6_CELLS))
    return sections(report.read_text()), json.loads((out / "summary.json").read_text()), out


def test_q6_names_the_property_of_the_draws_that_carries_their_diversity(rendered_arms):
    """The Gaussian of the draws' mean and covariance keeps as much diversity as the draws, isotropic noise less:
    the answer names the second moment, with the Gaussian contrast's detectable difference."""
    _, summary, _ = rendered_arms
    rows = {p["statement"]: p for p in summary["answers"]["key_findings"]["primary"] if p["question"] == "q6"}
    gaussian = next(p for s, p in rows.items() if "unclip (per_sample) − unclip (prior_gaussian)" in s)
    isotropic = next(p for s, p in rows.items() if "unclip (per_sample) − unclip (isotropic)" in s)
    shuffled = next(p for s, p in rows.items() if "unclip (per_sample) − unclip (shuffled_draws)" in s)
    assert gaussian["estimate"]["value"] == pytest.approx(0.0, abs=1e-9) and gaussian["family"] == "primary"
    assert isotropic["estimate"]["value"] == pytest.approx(0.25) and isotropic["adjusted_p"] < 0.05
    assert shuffled["estimate"]["value"] == pytest.approx(0.30) and shuffled["adjusted_p"] < 0.05
    noise = next(p for s, p in rows.items() if "clip_text (text_noise) − clip_text" in s)
    assert noise["family"] == "exploratory"  # declared so: never in the Holm family
    answer = summary["answers"]["key_findings"]["q6"]
    assert "comes from their second moment: a Gaussian with their mean and covariance cannot be told from them" \
        in answer and "isotropic noise of the same spread keeps less" in answer
    assert "the caption matters: another caption's draws keep less" in answer


def test_q6_answer_when_neither_control_differs_names_what_stays_open_and_why_another_captions_draws_fail():
    """As in results/mechanism: the Gaussian and isotropic controls cannot be told from the draws, and another
    caption's draws share no fidelity with them (matched level unreached)."""
    from harness.metrics.intervals import Interval
    from harness.report.primary import PrimaryResult, q6_answer

    def result(arm: str, value: float, p: float, detectable: float) -> PrimaryResult:
        spec = PrimaryContrast(question="q6", contrast="matched_diversity", a="unclip (per_sample)",
                               b=f"unclip ({arm})")
        estimate = Interval(value, value - 0.04, value + 0.04, se=0.02, df=30, prompts=72, seeds=5, seed_term="run")
        return PrimaryResult(spec, "free_entropy", "", estimate, adjusted_p=p, detectable=detectable, in_family=True)

    results = [result("prior_gaussian", 0.003, 1.0, 0.082), result("isotropic", 0.095, 0.129, 0.151),
               result("shuffled_draws", float("nan"), float("nan"), float("nan"))]
    answer = q6_answer(results, 0.05)
    assert ("comes from their location and second moment, as far as this run can tell: a Gaussian with the draws' "
            "mean and covariance, which lacks their multimodal structure, cannot be told from them (detectable "
            "0.082); nor can isotropic noise of their total spread (detectable 0.151)") in answer
    assert "another caption's draws are no substitute: their fidelity shares no range with the draws'" in answer
    assert "for the decoders this run trained" not in answer  # every read interval carries the seeds


def test_q6_reads_every_arm_against_its_modes_own_sampling_and_q1_only_the_modes_own(rendered_arms):
    parts, _, out = rendered_arms
    q6 = parts["Q6"]
    assert "| isotropic | isotropic | noise_scale 1.0 | unclip |" in q6
    assert "| unclip (isotropic) − unclip (per_sample) | -0.250" in q6
    assert "| unclip (isotropic) − unclip (fixed) | 0.100" in q6
    assert (out / "curves_arms_unclip.png").is_file() and (out / "curves_arms_clip_text.png").is_file()
    # prior_gaussian at two noise scales: its curve over the scale, embedded in the section
    assert (out / "noise_scales_unclip.png").is_file() and "(noise_scales_unclip.png)" in q6
    assert not (out / "noise_scales_clip_text.png").exists()
    assert "text_noise" not in parts["Q1"] and "clip_text (text_noise)" in parts["Other metrics"]


def test_no_arms_means_q6_says_so(rendered):
    parts, summary, _ = rendered
    assert parts["Q6"].splitlines()[2].startswith("Not measured in this run: the run sampled no control arm")
    assert "**Q6 answer**: not measured in this run" in parts["Key findings"]


def test_arms_are_compared_within_one_decoder_and_clip_never_across_variants(tmp_path):
    """A joint report holds unclip under two CLIPs, each with both draw policies: Q3 and Q6 read each CLIP's
    lines apart (never a hard-negative line against the standard CLIP's baseline)."""
    cells = {(f"unclip{variant}", arm, "free_entropy"): by_g
             for variant, shift in (("", 0.0), (" [hardneg]", 0.1))
             for arm, by_g in (("per_sample", {1: 0.72, 3: 0.70 - shift}), ("fixed", {1: 0.70, 3: 0.30 - shift}),
                               ("cads", {1: 0.72, 3: 0.5 - shift}))}
    cells |= {(f"unclip{variant}", arm, "attribute_accuracy"): {1: 0.70, 3: 0.80}
              for variant in ("", " [hardneg]") for arm in ("per_sample", "fixed", "cads")}
    cells |= {key: value for key, value in CELLS.items() if key[0] == "real"}
    arms = {**SUMMARY["arms"], "cads": {"module": "cads", "baseline": False, "modes": ["unclip"]}}
    write_report(pd.DataFrame(), {**SUMMARY, "arms": arms}, tmp_path, make_per_prompt(cells))
    answers = json.loads((tmp_path / "summary.json").read_text())["answers"]
    gaps = answers["q3_diversity"]["fixed_vs_per_sample"]
    assert set(gaps) == {"unclip", "unclip [hardneg]"}
    assert gaps["unclip"]["drop_gap"]["value"] == pytest.approx(0.38)
    assert gaps["unclip [hardneg]"]["drop_gap"]["value"] == pytest.approx(0.38)
    groups = answers["q6_mechanism"]["modes"]
    assert set(groups) == {"unclip", "unclip [hardneg]"}
    assert set(groups["unclip [hardneg]"]) == {"unclip (cads) [hardneg] - unclip (per_sample) [hardneg]",
                                               "unclip (cads) [hardneg] - unclip (fixed) [hardneg]"}
    assert (tmp_path / "curves_arms_unclip_hardneg.png").is_file()


def test_an_interval_reads_in_one_number_format():
    from harness.metrics.intervals import Interval
    from harness.report.markdown import fmt_est

    assert fmt_est(Interval(11.3, 9.618, 12.94)) == "11.3 [9.6, 12.9]"  # the bounds take the estimate's decimals
    assert fmt_est(Interval(0.146, 0.0762, 0.2158)) == "0.146 [0.076, 0.216]"
    assert fmt_est(Interval(-0.0001, -0.0031, 0.0029)) == "0.000 [-0.003, 0.003]"


def test_the_report_opens_with_its_contents(rendered):
    report = (rendered[2] / "report.md").read_text()
    contents = report.splitlines()[2]
    assert contents.startswith("Contents: [Key findings](#key-findings) · [Setup](#setup)")
    assert "[Q1](#q1-" in contents and "[Q6](#q6-" in contents


@pytest.mark.parametrize("floor, verdict, words", [
    (5.0, "consistent with the paper's claim in this setting (exploratory, unadjusted)", "real-vs-real floor 5.000 ["),
    (29.95, "withheld", "FID is not clear of its floor"),  # glide's and unclip's lowest FID is 30: saturated
    (None, "withheld", "floor is not in this run's tables"),
])
def test_fids_claim_is_judged_only_clear_of_its_real_vs_real_floor(floor, verdict, words):
    from harness.config import default_report
    from harness.metrics.estimate import Sweep
    from harness.report.primary import fid_claim

    cells = {("glide", "-", "fid"): {1: 30.0, 3: 40.0}, ("unclip", "per_sample", "fid"): {1: 30.0, 3: 32.0}}
    if floor is not None:
        cells[("real", "floor", "fid")] = {None: floor}
    table = make_per_prompt(cells, seeds=(0, 1, 2))
    for seed, shift in ((0, -0.3), (1, 0.1), (2, 0.2)):  # decoders differ by seed: a seed term to estimate
        rows = table["train_seed"] == seed
        table.loc[rows, "value"] += shift * np.where(table.loc[rows, "mode"] == "glide", 1, -1)
    sweep = Sweep(table, tags=SUMMARY["mode_tags"])
    claim = fid_claim(sweep, Line("glide"), Line("unclip", "per_sample"), default_report())
    assert claim.verdict == verdict and words in claim.evidence, claim
    assert "glide's − unclip (per_sample)'s = 8.000 [" in claim.evidence  # glide's rise 10 − unclip's 2
