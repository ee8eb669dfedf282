"""A new training recipe replaces the old only on seed-level non-inferiority (harness/report/recipe.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy import stats

from harness.report import recipe

LINES = [("glide", "-"), ("unclip", "per_sample")]
METRICS = ("attribute_accuracy", "binding_accuracy")


def write_run(folder, seeds: int, shift: float, rng: np.random.Generator, steps: int = 1500):
    """A finished run folder: per-prompt accuracies with a seed effect (sd 0.01), a prompt effect shared by both
    runs (the same prompts) and noise, every value moved by `shift`."""
    folder.mkdir()
    prompt_effect = np.random.default_rng(0).normal(0, 0.1, 40)
    rows = []
    for mode, arm in LINES:
        for seed in range(seeds):
            seed_effect = rng.normal(0, 0.01)
            for metric in METRICS:
                values = 0.7 + shift + seed_effect + prompt_effect + rng.normal(0, 0.05, 40)
                rows += [{"mode": mode, "arm": arm, "ablation": "-", "text_scale": None, "clip_variant": "-",
                          "guidance": g, "train_seed": seed, "prompt_kind": "binding", "prompt_id": p,
                          "metric": metric, "value": v} for g in (1.0, 3.0) for p, v in enumerate(values)]
    pd.DataFrame(rows).to_csv(folder / "per_prompt.csv", index=False)
    OmegaConf.save({"decoder": {"size": "tiny", "train": {"steps": steps, "ema_decay": 0.995}},
                    "sweep": {"prompts_per_kind": 40, "seed": 0},
                    "report": {"recipe_check": {"margin": 0.05, "metrics": list(METRICS)}}}, folder / "config.yaml")
    return folder


def two_runs(folder, shift: float, seeds: int = 6):
    """(old, new): the recipe in use at 1500 steps and a candidate at 750 whose values are moved by `shift`."""
    folder.mkdir()
    rng = np.random.default_rng(1)
    return write_run(folder / "old", seeds, 0.0, rng), write_run(folder / "new", seeds, shift, rng, 750)


def test_a_recipe_as_good_as_the_old_is_accepted_and_one_that_loses_more_than_the_margin_is_not(tmp_path, capsys):
    old, new = two_runs(tmp_path / "same", 0.0)
    recipe.main([str(old), str(new), "--out", str(tmp_path / "check.md")])
    text = (tmp_path / "check.md").read_text()
    assert "New recipe **accepted**" in text and "750 steps" in text
    assert f"Command: `unclip-harness recipe {old} {new} --out" in text  # the file says how it was made
    assert text.count("| yes |") == len(LINES) * len(METRICS)

    old, new = two_runs(tmp_path / "worse", -0.1)
    recipe.main([str(old), str(new)])
    printed = capsys.readouterr().out
    assert ("**not accepted**: 4 of 4 lower bounds do not lie above the margin; in 4, each read alone, the new "
            "recipe is worse") in printed


def test_each_check_reads_new_minus_old_over_both_recipes_seeds():
    rng = np.random.default_rng(2)
    new = rng.normal(0.7, 0.05, (3, 40))
    old = rng.normal(0.7, 0.05, (6, 40))
    sweeps = []
    for table in (new, old):
        rows = [{"mode": "glide", "arm": "-", "ablation": "-", "clip_variant": "-", "guidance": 3.0,
                 "train_seed": s, "prompt_kind": "single", "prompt_id": p, "metric": "attribute_accuracy",
                 "value": table[s, p]} for s in range(table.shape[0]) for p in range(40)]
        sweeps.append(recipe.Sweep(pd.DataFrame(rows)))
    line = sweeps[0].curves()[0]
    diff = recipe.difference(sweeps[1], sweeps[0], line, 3.0, "attribute_accuracy", 0.9)
    assert diff.value == pytest.approx(new.mean() - old.mean())
    assert diff.seeds == 3 and diff.carries_seeds  # the fewer side's seeds; the seed variance is in the interval
    # the 90% two-sided interval's low end is the one-sided 95% bound the check reads
    assert diff.low == pytest.approx(diff.value - stats.t.ppf(0.95, diff.df) * diff.se)


def test_runs_scored_on_other_prompts_are_refused_naming_the_setting(tmp_path, capsys):
    old, new = two_runs(tmp_path / "other", 0.0)
    config = OmegaConf.load(new / "config.yaml")
    config.sweep.prompts_per_kind = 24
    OmegaConf.save(config, new / "config.yaml")
    with pytest.raises(SystemExit):
        recipe.main([str(old), str(new)])
    assert f"new/config.yaml: sweep.prompts_per_kind is 24, but 40 in {old}/config.yaml" in capsys.readouterr().err


def test_a_line_the_new_run_did_not_sample_fails_its_checks(tmp_path, capsys):
    old, new = two_runs(tmp_path / "fewer", 0.0)
    table = pd.read_csv(new / "per_prompt.csv")
    table[table["mode"] != "unclip"].to_csv(new / "per_prompt.csv", index=False)
    recipe.main([str(old), str(new), "--margin", "0.5"])
    printed = capsys.readouterr().out
    assert "**not accepted**: 2 of 4 lower bounds do not lie above the margin." in printed  # n/a is not "worse"
    assert printed.count("n/a: not in the new run") == 2


def test_a_run_of_one_seed_cannot_judge_a_recipe(tmp_path, capsys):
    old, new = two_runs(tmp_path / "one", 0.0, seeds=1)
    with pytest.raises(SystemExit):
        recipe.main([str(old), str(new)])
    assert "old: glide has one training seed" in capsys.readouterr().err


def test_the_preset_names_the_metrics_a_recipe_must_keep_and_a_wrong_name_fails_before_any_work():
    from harness.cli import compose
    from harness.errors import ConfigError

    assert compose(["experiment=quick"]).report.recipe_check.margin == 0.05
    with pytest.raises(ConfigError, match=r"report\.recipe_check\.metrics: no metric 'acuracy'"):
        compose(["experiment=smoke", "report.recipe_check.metrics=[acuracy]"])
