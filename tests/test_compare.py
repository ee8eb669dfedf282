"""Comparing finished runs (`unclip-harness compare`) and listing them (`unclip-harness runs`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.report.compare import compare
from harness.report.rerender import rerender
from harness.report.runs import list_runs
from harness.runtime.provenance import provenance
from test_join import config, write_job, with_keys  # noqa: F401 (config is a fixture)
from test_report import CELLS, SUMMARY, make_per_prompt

STANDARD = {key: cells for key, cells in CELLS.items() if "[" not in key[0]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, config) -> Path:  # noqa: F811
    """Three finished runs: seeds 0 and 1 of one recipe, and seed 0 of a larger decoder."""
    root = tmp_path_factory.mktemp("outputs")
    summary = {**SUMMARY, "provenance": provenance()}
    write_job(root / "seed0", with_keys(config, {"train_seeds": [0]}), summary, make_per_prompt(STANDARD, (0,)))
    write_job(root / "seed1", with_keys(config, {"train_seeds": [1]}), summary, make_per_prompt(STANDARD, (1,)))
    write_job(root / "small", with_keys(config, {"decoder.size": "small"}), summary, make_per_prompt(STANDARD, (0,)))
    for folder in ("seed0", "seed1", "small"):
        rerender(root / folder)  # each run's own report and answers, as the pipeline leaves them
    return root


def test_compare_sets_runs_side_by_side_and_pools_one_study_split_by_seed(runs, tmp_path):
    text = compare([runs / "seed0", runs / "seed1"], tmp_path / "cmp").read_text()
    assert "| train_seeds | [0] | [1] |" in text  # the one setting that differs
    assert "| code |" in text and "| packages | torch" in text  # each run's provenance
    assert "## Key-findings contrasts" in text and (tmp_path / "cmp" / "forest.png").is_file()
    cells = pd.read_csv(tmp_path / "cmp" / "compare_metrics.csv")
    assert set(cells["run"]) == {"run 0", "run 1"} and {"glide", "unclip (per_sample)"} <= set(cells["line"])
    pooled = tmp_path / "cmp" / "pooled"
    assert (pooled / "report.md").is_file() and "pooled/report.md" in text
    seeds = pd.read_csv(pooled / "per_prompt.csv", dtype={"train_seed": str})
    assert set(seeds.loc[seeds["mode"] == "glide", "train_seed"]) == {"0", "1"}


def test_runs_of_different_recipes_are_compared_but_not_pooled(runs, tmp_path):
    text = compare([runs / "seed0", runs / "small"], tmp_path / "cmp").read_text()
    assert '| decoder.size | "tiny" | "small" |' in text
    assert "## Pooled" not in text and not (tmp_path / "cmp" / "pooled").exists()


def test_runs_lists_every_finished_run_with_its_commit_and_seeds(runs):
    listed = list_runs(runs)
    assert sorted(Path(r["folder"]).name for r in listed) == ["seed0", "seed1", "small"]
    assert all(r["experiment"] == "handmade" and r["date"] for r in listed)
    result = subprocess.run([sys.executable, "-m", "harness", "runs", str(runs)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and str(runs / "seed1") in result.stdout
    missing = subprocess.run([sys.executable, "-m", "harness", "runs", str(runs / "nope")], capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.startswith(f"error: {runs / 'nope'}: no such folder")


def test_runs_counts_a_contrast_decided_at_the_runs_own_family_wise_error(runs, tmp_path):
    import json
    import shutil

    from omegaconf import OmegaConf

    decided = next(r for r in list_runs(runs) if Path(r["folder"]).name == "seed0")["decided"]
    assert decided  # decided at the default 5%
    strict = tmp_path / "outputs" / "strict"
    shutil.copytree(runs / "seed0", strict)
    primary = json.loads((strict / "summary.json").read_text())["answers"]["key_findings"]["primary"]
    smallest = min(p["adjusted_p"] for p in primary if p.get("adjusted_p") is not None)
    config = OmegaConf.load(strict / "config.yaml")
    config.report.confidence = 1 - smallest / 2  # a level no contrast of this run reaches
    OmegaConf.save(config, strict / "config.yaml")
    assert list_runs(tmp_path / "outputs")[0]["decided"] == []
