"""The committed results are what a researcher cites: no interval excludes its own estimate, in the metrics
table or in the answers, and each report opens with Key findings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.results

RESULTS = Path(__file__).resolve().parents[1] / "results"
RUNS = sorted(path.parent for path in RESULTS.rglob("metrics.csv"))
TOLERANCE = 1e-9  # the CSV's decimal rounding


def intervals(tree: object, where: str = "") -> Iterator[tuple[str, dict]]:
    """Every {value, low, high} the answers hold, with the path to it."""
    if isinstance(tree, dict):
        if {"value", "low", "high"} <= set(tree):
            yield where, tree
        for key, sub in tree.items():
            yield from intervals(sub, f"{where}.{key}")
    elif isinstance(tree, list):
        for i, sub in enumerate(tree):
            yield from intervals(sub, f"{where}[{i}]")


def test_there_are_committed_results():
    assert RUNS, f"no results/*/metrics.csv under {RESULTS}"


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_no_interval_in_the_metrics_table_excludes_its_estimate(run):
    table = pd.read_csv(run / "metrics.csv")
    bounded = table["ci_low"].notna() & table["ci_high"].notna()
    inside = (table["ci_low"] <= table["value"] + TOLERANCE) & (table["value"] <= table["ci_high"] + TOLERANCE)
    outside = table[bounded & ~inside]
    assert outside.empty, f"{len(outside)} of {bounded.sum()} intervals exclude their estimate:\n{outside.head()}"


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_no_interval_in_the_answers_excludes_its_estimate(run):
    answers = json.loads((run / "summary.json").read_text())["answers"]
    found = [(where, e) for where, e in intervals(answers) if None not in (e["value"], e["low"], e["high"])]
    assert found
    bad = [where for where, e in found if not e["low"] - TOLERANCE <= e["value"] <= e["high"] + TOLERANCE]
    assert not bad, bad[:5]


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_the_report_opens_with_key_findings_and_its_command_is_beside_it(run):
    report = (run / "report.md").read_text()
    assert report.split("\n## ", 1)[1].startswith("Key findings")
    assert (run / "COMMAND.md").is_file()


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_a_verdict_about_modes_carries_the_training_seed_variance(run):
    """No committed Key finding states a verdict about the modes from an interval of prompts only, and a paper
    claim is judged only from such a verdict."""
    findings = json.loads((run / "summary.json").read_text())["answers"]["key_findings"]
    for primary in findings["primary"]:
        if primary["mode_level"]:
            assert primary["seed_term"] == "run" or primary["seed_term"].startswith("pilot"), primary["statement"]
    judged = [c for c in findings["claims"] if c["verdict"].startswith(("consistent", "inconsistent"))]
    assert all("†" not in c["evidence"] for c in judged)
