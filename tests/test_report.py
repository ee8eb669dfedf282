"""The report states the numbers of a hand-made metrics table, in the right section, and never claims a
difference that the intervals do not support."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report import Curve, Sweep, compare, hypervolume, write_report
from harness.report.frontier import hard_negative_pairs

COLUMNS = ["mode", "guidance", "prior_draw", "train_seed", "prompt_kind", "metric", "value", "ci_low", "ci_high",
           "n_prompts", "n_samples"]

# (mode, prior_draw, prompt_kind, metric): {guidance: (value, ci_low, ci_high)}. Chosen so that some
# comparisons are separated by their intervals and some overlap; the expected sentences are worked out by hand
# in the tests below.
CELLS = {
    ("glide", "-", "all", "attribute_accuracy"): {1: (0.80, 0.75, 0.85), 3: (0.90, 0.85, 0.95)},
    ("clip_text", "-", "all", "attribute_accuracy"): {1: (0.55, 0.50, 0.60), 3: (0.60, 0.55, 0.65)},
    ("unclip", "per_sample", "all", "attribute_accuracy"): {1: (0.70, 0.62, 0.78), 3: (0.78, 0.70, 0.86)},
    ("unclip", "fixed", "all", "attribute_accuracy"): {1: (0.72, 0.64, 0.80), 3: (0.80, 0.72, 0.88)},
    ("glide", "-", "free", "free_entropy"): {1: (0.70, 0.65, 0.75), 3: (0.20, 0.15, 0.25)},
    ("clip_text", "-", "free", "free_entropy"): {1: (0.66, 0.60, 0.72), 3: (0.40, 0.35, 0.45)},
    ("unclip", "per_sample", "free", "free_entropy"): {1: (0.72, 0.66, 0.78), 3: (0.68, 0.62, 0.74)},
    ("unclip", "fixed", "free", "free_entropy"): {1: (0.70, 0.64, 0.76), 3: (0.30, 0.24, 0.36)},
    ("glide", "-", "binding", "binding_accuracy"): {1: (0.70, 0.60, 0.80), 3: (0.75, 0.65, 0.85)},
    ("combined", "per_sample", "binding", "binding_accuracy"): {1: (0.72, 0.62, 0.82), 3: (0.74, 0.64, 0.84)},
    ("clip_text", "-", "binding", "binding_accuracy"): {1: (0.40, 0.30, 0.50), 3: (0.42, 0.32, 0.52)},
    ("clip_text@hardneg", "-", "binding", "binding_accuracy"): {1: (0.48, 0.38, 0.58), 3: (0.50, 0.40, 0.60)},
    ("unclip", "per_sample", "binding", "binding_accuracy"): {1: (0.45, 0.35, 0.55), 3: (0.47, 0.37, 0.57)},
    ("unclip", "fixed", "binding", "binding_accuracy"): {1: (0.45, 0.35, 0.55), 3: (0.46, 0.36, 0.56)},
    ("combined", "per_sample", "all", "attention_clip"): {1: (0.30, 0.25, 0.35), 3: (0.45, 0.40, 0.50)},
    ("combined", "per_sample", "all", "attention_text"): {1: (0.28, 0.22, 0.34), 3: (0.15, 0.10, 0.20)},
    ("unclip", "fixed", "all", "shape_color_majority"): {1: (0.40, 0.25, 0.55), 3: (0.56, 0.39, 0.72)},
    ("real", "-", "all", "attribute_accuracy"): {None: (0.97, 0.95, 0.99)},
    ("real", "-", "free", "free_entropy"): {None: (0.80, 0.76, 0.84)},
}

SUMMARY = {
    "experiment": "handmade",
    "setup": {"data": "shapes", "resolution": 16, "num_images": 20000, "decoder_size": "tiny",
              "decoder_steps": 3000, "train_seeds": [0], "sampler": "ddim", "sample_steps": 20,
              "prompts_per_kind": 16, "samples_per_prompt": 8, "machine": "2-core CPU", "device": "cpu"},
    "wall_time_s": {"clip": 61.5, "decoder": 420.0},
    "clip": {"retrieval_top1": 0.82},
    "priors": {"diffusion": {"cosine": 0.71, "retrieval": 0.44}},
}


def make_table(cells: dict) -> pd.DataFrame:
    rows = [(mode, np.nan if g is None else float(g), draw, 0, kind, metric, *v, 16, 8)
            for (mode, draw, kind, metric), by_g in cells.items() for g, v in by_g.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def sections(report: str) -> dict[str, str]:
    """Top-level sections by the start of their title ("Q1", "Setup", ...)."""
    parts = re.split(r"^## ", report, flags=re.M)[1:]
    return {part.split(".")[0].split("\n")[0]: part for part in parts}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[dict[str, str], dict, Path]:
    out = tmp_path_factory.mktemp("report")
    (out / "summary.json").write_text(json.dumps({"experiment": "handmade", "stage_written_before": True}))
    grid = out / "grid_g3.png"
    grid.write_bytes(b"")
    report = write_report(make_table(CELLS), SUMMARY, out, grids={"a red circle": grid},
                          sheets={"unclip_fixed": grid}, resamples=200)
    return sections(report.read_text()), json.loads((out / "summary.json").read_text()), out


# ---------------------------------------------------------------- the analysis


def test_hypervolume_is_the_union_of_rectangles_and_ignores_dominated_points():
    # [0,.7]x[0,.8] and [0,.2]x[0,.9] overlap on [0,.2]x[0,.8]: 0.56 + 0.2 * 0.1 = 0.58.
    assert hypervolume(np.array([0.7, 0.2]), np.array([0.8, 0.9])) == pytest.approx(0.58)
    assert hypervolume(np.array([0.7, 0.2, 0.1]), np.array([0.8, 0.9, 0.5])) == pytest.approx(0.58)


def test_seeds_are_pooled_by_mean_and_envelope_unless_the_sweep_pooled_them():
    base = dict(mode="glide", guidance=3.0, prior_draw="-", prompt_kind="all", metric="attribute_accuracy")
    seeds = pd.DataFrame([{**base, "train_seed": 0, "value": 0.8, "ci_low": 0.7, "ci_high": 0.9},
                          {**base, "train_seed": 1, "value": 0.6, "ci_low": 0.5, "ci_high": 0.75}])
    cell = Sweep(seeds).cell(Curve("glide"), 3.0, "attribute_accuracy")
    pooled = Sweep(seeds).value(cell)
    assert (pooled.value, pooled.low, pooled.high) == pytest.approx((0.7, 0.5, 0.9))
    given = pd.concat([seeds, pd.DataFrame([{**base, "train_seed": "all", "value": 0.71, "ci_low": 0.65,
                                             "ci_high": 0.77}])])
    assert Sweep(given).value(cell).value == pytest.approx(0.71)


def test_a_clip_column_makes_hard_negative_variants_curves_of_their_own():
    table = make_table({("clip_text", "-", "binding", "binding_accuracy"): {3: (0.4, 0.3, 0.5)}})
    table = pd.concat([table.assign(clip="scratch"), table.assign(clip="hardneg", value=0.7, ci_low=0.6,
                                                                  ci_high=0.8)])
    sweep = Sweep(table)
    assert hard_negative_pairs(sweep, "binding_accuracy") == [(Curve("clip_text@hardneg"), Curve("clip_text"))]
    assert compare(sweep, Curve("clip_text@hardneg"), Curve("clip_text"), "binding_accuracy").verdicts()[0] == [3.0]


def test_paired_per_prompt_values_separate_what_overlapping_intervals_cannot(tmp_path):
    # Prompts differ a lot in difficulty, but glide is 0.05 better than clip_text on every single prompt.
    base = np.linspace(0.2, 0.9, 20)
    per_prompt = pd.DataFrame(
        [dict(mode=m, guidance=3.0, prior_draw="-", train_seed=0, prompt_kind="full", prompt_id=i,
              metric="attribute_accuracy", value=v + shift)
         for m, shift in (("glide", 0.05), ("clip_text", 0.0)) for i, v in enumerate(base)])
    metrics = make_table({("glide", "-", "all", "attribute_accuracy"): {3: (0.60, 0.47, 0.72)},
                          ("clip_text", "-", "all", "attribute_accuracy"): {3: (0.55, 0.42, 0.67)}})
    unpaired = compare(Sweep(metrics), Curve("glide"), Curve("clip_text"), "attribute_accuracy")
    paired = compare(Sweep(metrics, per_prompt, resamples=200), Curve("glide"), Curve("clip_text"),
                     "attribute_accuracy")
    assert unpaired.verdicts() == ([], [], [3.0])
    assert paired.verdicts() == ([3.0], [], [])
    assert paired.points[0].difference.value == pytest.approx(0.05)
    assert paired.points[0].difference.paired
    found = sections(write_report(metrics, {}, tmp_path, per_prompt=per_prompt, resamples=200).read_text())
    assert "attribute accuracy (higher is better): glide beats clip_text at g = 3." in found["Q2"]
    assert "| 3 | 0.550 [0.420, 0.670] | 0.600 [0.470, 0.720] | -0.050 [-0.050, -0.050] |" in found["Q2"]
    assert "paired percentile bootstraps over prompts (200 resamples)" in found["Setup"]


# ---------------------------------------------------------------- the report


def test_setup_states_sizes_seeds_wall_time_and_quality(rendered):
    text = rendered[0]["Setup"]
    for expected in ("| resolution (px) | 16 |", "| decoder training steps | 3000 |", "| training seeds | 0 |",
                     "| decoder | 420.0 |", "| total | 481.5 |", "retrieval_top1 0.820", "| diffusion | 0.710 | 0.440 |",
                     "| sampler | ddim |", "unclip (fixed) at g = 1, 3;"):
        assert expected in text
    assert "| device | cpu |" in text


def test_q1_names_the_largest_frontier_and_which_rivals_the_data_cannot_separate(rendered):
    text = rendered[0]["Q1"]
    # glide: (0.70, 0.80) and (0.20, 0.90) dominate 0.58; unclip per_sample 0.04*0.70 + 0.68*0.78 = 0.5584.
    assert "Largest frontier area: glide, 0.580 [" in text
    assert "| unclip (per_sample) | 0.558 [" in text
    assert "the data cannot tell glide from unclip (per_sample)" in text
    assert "glide's frontier is larger" in text  # against clip_text: 0.5025 at the lows > 0.4545 at the highs
    assert "| real images (ceiling) | 0.776 [" in text


def test_q2_states_the_table_values_and_separates_only_where_intervals_do(rendered):
    text = rendered[0]["Q2"]
    assert "| 3 | 0.600 [0.550, 0.650] | 0.900 [0.850, 0.950] | -0.300 [-0.400, -0.200] |" in text
    assert "attribute accuracy (higher is better): glide beats clip_text at g = 1, 3." in text
    # free entropy: overlapping at g = 1 (0.66 [0.60, 0.72] vs 0.70 [0.65, 0.75]), separated at g = 3.
    assert ("free-attribute entropy (higher is better): clip_text beats glide at g = 3; "
            "the data cannot tell at g = 1.") in text
    assert "| 1 | 0.660 [0.600, 0.720] | 0.700 [0.650, 0.750] | -0.040 [-0.150, 0.070] |" in text
    assert "### clip_text vs unclip (per_sample)" in text and "### clip_text vs unclip (fixed)" in text


def test_q3_measures_drops_against_the_ceiling_and_compares_draw_policies(rendered):
    text = rendered[0]["Q3"]
    assert "glide: 0.700 [0.650, 0.750] at g = 1, 0.200 [0.150, 0.250] at g = 3; drop = 0.500 [0.400, 0.600]: " \
           "diversity falls." in text
    # 0.20 / 0.80 of the ceiling, bounds 0.15 / 0.84 and 0.25 / 0.76.
    assert "0.250 [0.179, 0.329] at g = 3" in text
    assert "drop = 0.040 [-0.080, 0.160]: the data cannot tell whether it changes." in text
    assert "unclip: drop(fixed) − drop(per_sample) = 0.360 [0.120, 0.600]: the fixed draw loses more" in text
    assert "Real images of the same prompts (ceiling): 0.800 [0.760, 0.840]." in text


def test_q4_reports_attention_mass_per_guidance(rendered):
    text = rendered[0]["Q4"]
    assert "### combined (per_sample)" in text
    assert ("CLIP − text mass: CLIP tokens get more mass than text tokens at g = 3; "
            "the data cannot tell at g = 1.") in text
    assert "| 3 | 0.450 [0.400, 0.500] | 0.150 [0.100, 0.200] | 0.300 [0.200, 0.400] |" in text


def test_q5_contrasts_vector_and_sequence_modes_and_hard_negatives(rendered):
    text = rendered[0]["Q5"]
    assert "sequence modes bind better at g = 1, 3." in text
    # vector-only mean at g = 1: (0.40 + 0.45 + 0.45) / 3; sequence: (0.70 + 0.72) / 2.
    assert "| 1 | 0.433 [" in text and "| 0.710 [0.610, 0.810] |" in text
    assert "binding accuracy (higher is better): the data cannot tell at g = 1, 3." in text
    assert "| 1 | 0.480 [0.380, 0.580] | 0.400 [0.300, 0.500] | 0.080 [-0.120, 0.280] |" in text


def test_figures_are_embedded_and_curves_png_is_a_png(rendered):
    found, _, out = rendered
    assert "![curves](curves.png)" in found["Diversity–fidelity curves"]
    assert "![a red circle](grid_g3.png)" in found["Image grids"]
    assert "![unclip_fixed](grid_g3.png)" in found["Samples per mode"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sample_sheets_come_with_the_share_of_prompts_drawn_right(rendered):
    samples = rendered[0]["Samples per mode"]
    assert "Prompts drawn right: the share of prompts for which most samples show" in samples
    assert "| unclip (fixed) | 0.400 [0.250, 0.550] | 0.560 [0.390, 0.720] |" in samples


def test_summary_json_keeps_earlier_fields_and_gets_the_answers(rendered):
    _, summary, _ = rendered
    assert summary["stage_written_before"] and summary["setup"]["resolution"] == 16
    answers = summary["answers"]
    point = answers["q2_clip_text"]["versus"]["glide"]["metrics"]["attribute_accuracy"]["points"][1]
    assert (point["a"]["value"], point["b"]["value"]) == (0.6, 0.9)
    assert answers["q2_clip_text"]["versus"]["glide"]["metrics"]["free_entropy"]["cannot_tell_at"] == [1.0]
    assert answers["q1_frontier"]["by_fidelity"]["attribute_accuracy"]["best"] == "glide"
    assert answers["q3_diversity"]["drops"]["glide"]["drop"]["value"] == pytest.approx(0.5)
    assert answers["q4_attention"]["measured"] and answers["q5_binding"]["measured"]


def test_absent_inputs_say_not_measured(tmp_path):
    # A smoke-like run: glide only, no prior draws, attention, binding or real ceiling.
    smoke = {key: cells for key, cells in CELLS.items() if key[0] == "glide" and key[3] != "binding_accuracy"}
    report = write_report(make_table(smoke), {"experiment": "smoke"}, tmp_path, resamples=50)
    found = sections(report.read_text())
    assert "Not measured in this run: the run needs clip_text" in found["Q2"]
    assert "no mode was swept with both fixed and per-sample prior draws" in found["Q3"]
    assert "Not measured in this run: no mode with both CLIP and text tokens" in found["Q4"]
    assert "Not measured in this run: the run has no binding accuracy" in found["Q5"]
    assert "| data | not recorded |" in found["Setup"]
    answers = json.loads((tmp_path / "summary.json").read_text())["answers"]
    assert answers["q4_attention"] == {"measured": False,
                                       "reason": "no mode with both CLIP and text tokens recorded its attention mass"}
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_without_hard_negative_runs_the_binding_section_says_so(tmp_path):
    cells = {key: v for key, v in CELLS.items() if "@" not in key[0]}
    found = sections(write_report(make_table(cells), SUMMARY, tmp_path, resamples=50).read_text())
    assert "The run did not include a hard-negative CLIP: not measured." in found["Q5"]
