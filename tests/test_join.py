"""Two hand-made job folders (a standard and a hard-negative CLIP) joined into one report, by the function, the
command line and the multirun callback; and the joins that must be refused."""

from __future__ import annotations

import gzip
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig, OmegaConf
from test_report import CELLS, SUMMARY, make_per_prompt, sections

from harness.errors import HarnessError
from harness.metrics.estimate import Sweep
from harness.report.join import join_runs, main
from harness.report.rerender import main as rerender_main
from harness.report.multirun import JoinStudyJobs

BINDING = ("clip_text", "-", "binding_accuracy")
REAL_CELLS = {key: cells for key, cells in CELLS.items() if key[0] == "real"}
STANDARD_CELLS = {key: cells for key, cells in CELLS.items() if "[" not in key[0]}


def hard_negative_prompts() -> pd.DataFrame:
    """The hard-negative job measured clip_text alone: per prompt exactly 0.08 better binding than the standard
    job's clip_text, while prompts differ (sd 0.1): only the paired comparison of the joined per-prompt tables
    separates the two lines so sharply."""
    standard = make_per_prompt({BINDING: CELLS[BINDING], **REAL_CELLS})
    better = standard["mode"] == "clip_text"
    return standard.assign(value=standard["value"] + np.where(better, 0.08, 0.0))


def write_job(folder: Path, config: DictConfig, summary: dict, prompts: pd.DataFrame) -> Path:
    """A run folder as the pipeline leaves it, with Hydra's `.hydra/` as a multirun job has it."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("[]\n")
    OmegaConf.save(config, folder / "config.yaml")
    Sweep(prompts).rows().to_csv(folder / "metrics.csv", index=False)
    prompts.to_csv(folder / "per_prompt.csv", index=False)
    (folder / "summary.json").write_text(json.dumps(summary))
    for image in ("grid_full.png", "sheet_clip_text.png"):
        (folder / image).write_bytes(f"{folder.name}/{image}".encode())
    return folder


def with_keys(config: DictConfig, updates: dict[str, object]) -> DictConfig:
    changed = config.copy()
    for key, value in updates.items():
        OmegaConf.update(changed, key, value)
    return changed


@pytest.fixture(scope="module")
def config() -> DictConfig:
    """A resolved config shaped like the one the pipeline writes into every run folder."""
    from harness.cli import compose

    return OmegaConf.structured(compose(["experiment=smoke"]))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, config) -> Path:
    """A sweep folder with job 0 on the standard CLIP (every mode) and job 1 on the hard-negative one."""
    root = tmp_path_factory.mktemp("sweep")
    write_job(root / "0_clip.hard_negatives=false", config, {**SUMMARY, "wall_time_total_s": 500.0},
              make_per_prompt(STANDARD_CELLS))
    write_job(root / "1_clip.hard_negatives=true", with_keys(config, {"clip.hard_negatives": True}),
              {**SUMMARY, "experiment": "handmade_hard", "setup": {**SUMMARY["setup"], "train_seeds": [0, 1]},
               "clip": {"retrieval_top1": 0.79}, "wall_time_total_s": 250.0}, hard_negative_prompts())
    return root


@pytest.fixture(scope="module")
def jobs(sweep) -> list[Path]:
    return [sweep / "0_clip.hard_negatives=false", sweep / "1_clip.hard_negatives=true"]


@pytest.fixture(scope="module")
def joined(jobs, tmp_path_factory) -> tuple[dict[str, str], dict, Path]:
    out = tmp_path_factory.mktemp("joint")
    report = join_runs(jobs, out)
    return sections(report.read_text()), json.loads((out / "summary.json").read_text()), out


def refusal(run_dirs: list[Path], out: Path) -> str:
    with pytest.raises(HarnessError) as caught:
        join_runs(run_dirs, out)
    message = str(caught.value)
    assert "\n" not in message
    assert not (out / "report.md").exists()
    return message


# ---------------------------------------------------------------- the joint report


def test_q5_compares_the_hard_negative_clip_with_the_standard_one(joined):
    text = joined[0]["Q5"]
    assert "binding accuracy (higher is better): clip_text [hard_negatives] beats clip_text at g = 1, 3." in text
    assert "| guidance | clip_text [hard_negatives] | clip_text | clip_text [hard_negatives] − clip_text |" in text
    # The difference is paired over the joined per-prompt values: exactly 0.08 on every prompt.
    assert re.search(r"\| 1 \| 0\.480 \[[0-9.]+, [0-9.]+\]† \| 0\.400 \[[0-9.]+, [0-9.]+\]† \| 0\.080 \[0\.080, "
                     r"0\.080\]† \|", text)
    assert re.search(r"\| 3 \| 0\.500 \[[0-9.]+, [0-9.]+\]† \| 0\.420 \[", text)
    # The vector-only group stays on the standard CLIP: the mean of clip_text, unclip and unclip (fixed).
    assert "sequence modes bind better at g = 1, 3." in text and "| 1 | 0.433 [" in text
    hard = joined[1]["answers"]["q5_binding"]["hard_negative"]
    assert [(c["a"], c["b"], c["a_better_at"]) for c in hard] == [("clip_text [hard_negatives]", "clip_text",
                                                                    [1.0, 3.0])]


def test_setup_states_the_joined_jobs_their_wall_times_and_each_clip(joined, jobs):
    text = joined[0]["Setup"]
    assert "This report joins 2 jobs" in text
    assert f"| job 0 (standard CLIP) | {jobs[0]} | glide, clip_text, unclip, combined | 500.0 |" in text
    assert f"| job 1 (hard_negatives CLIP) | {jobs[1]} | clip_text | 250.0 |" in text
    assert "| sum |  |  | 750.0 |" in text
    assert "| training seeds | job 0 (standard CLIP): 0; job 1 (hard_negatives CLIP): 0, 1 |" in text
    assert "| resolution (px) | 16 |" in text
    assert ("Conditioning CLIP: job 0 (standard CLIP).retrieval_top1 0.820; "
            "job 1 (hard_negatives CLIP).retrieval_top1 0.790.") in text
    assert "clip_text [hard_negatives] at g = 1, 3" in text
    summary = joined[1]
    assert summary["experiment"] == "handmade + handmade_hard"
    assert [(j["folder"], j["clip"], j["modes"], j["wall_time_total_s"]) for j in summary["jobs"]] == [
        (str(jobs[0]), "standard", ["glide", "clip_text", "unclip", "combined"], 500.0),
        (str(jobs[1]), "hard_negatives", ["clip_text"], 250.0)]
    assert summary["jobs_wall_time_total_s"] == 750.0
    assert "wall_time_s" not in summary  # the first job's stages are not the joint's


def test_the_real_ceiling_is_kept_once_and_the_variant_clips_lines_are_marked(joined, jobs):
    out = joined[2]
    for table in ("metrics.csv", "per_prompt.csv"):
        joint, first = pd.read_csv(out / table), pd.read_csv(jobs[0] / table)
        real = joint[joint["mode"] == "real"]
        assert len(real) == (first["mode"] == "real").sum()
        assert set(real["clip_variant"]) == {"-"}
        assert set(joint.loc[joint["mode"] == "glide", "clip_variant"]) == {"-"}  # the standard CLIP
        hard = joint[joint["clip_variant"] == "hard_negatives"]
        assert len(hard) == (pd.read_csv(jobs[1] / table)["mode"] != "real").sum()
        assert set(hard["mode"]) == {"clip_text"}


def test_grids_and_sheets_are_copied_under_names_that_say_their_job(joined, jobs):
    found, _, out = joined
    assert "![full, job 1 (hard_negatives CLIP)](grid_full_job1_hard_negatives.png)" in found["Image grids"]
    assert "![clip_text, job 0 (standard CLIP)](sheet_clip_text_job0_standard.png)" in found["Samples per mode"]
    assert (out / "grid_full_job1_hard_negatives.png").read_bytes() == (jobs[1] / "grid_full.png").read_bytes()
    assert (jobs[1] / "grid_full.png").exists()  # copied, not moved


def test_rerender_rewrites_a_runs_report_from_its_per_prompt_table(jobs, tmp_path, capsys):
    run = shutil.copytree(jobs[0], tmp_path / "run")
    (run / "report.md").write_text("# an old report\n")
    (run / "metrics.csv").write_text("mode\n")  # an old table, e.g. from before the interval engine
    rerender_main([str(run)])
    assert capsys.readouterr().out.strip() == str(run / "report.md")
    assert (run / "report.md").read_text().split("\n## ", 1)[1].startswith("Key findings")
    table = pd.read_csv(run / "metrics.csv")
    assert {"all", "0"} <= set(table["train_seed"].astype(str)) and (table["ci_low"] <= table["value"]).all()
    assert "answers" in json.loads((run / "summary.json").read_text())
    written = (run / "report.md").read_text()
    # A committed result may keep its large table gzipped.
    (run / "per_prompt.csv.gz").write_bytes(gzip.compress((run / "per_prompt.csv").read_bytes()))
    (run / "per_prompt.csv").unlink()
    rerender_main([str(run)])
    assert (run / "report.md").read_text() == written
    capsys.readouterr()
    (run / "per_prompt.csv.gz").unlink()
    with pytest.raises(SystemExit) as exit_:
        rerender_main([str(run)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"error: {run / 'per_prompt.csv'}: not found; a run folder needs " \
                                      "per_prompt.csv, summary.json, config.yaml\n"


# ---------------------------------------------------------------- refusals


def test_two_jobs_with_the_same_mode_and_clip_are_refused(jobs, tmp_path):
    twin = shutil.copytree(jobs[0], tmp_path / "twin")
    message = refusal([jobs[0], twin], tmp_path / "out")
    assert message.startswith(f"{twin}: measured glide with the standard CLIP and training seed 0, as {jobs[0]} did")


def test_a_missing_table_or_summary_is_named(jobs, tmp_path):
    for name in ("metrics.csv", "per_prompt.csv", "summary.json"):
        broken = shutil.copytree(jobs[1], tmp_path / f"no_{name}")
        (broken / name).unlink()
        assert refusal([jobs[0], broken], tmp_path / "out").startswith(f"{broken / name}: not found")


def test_jobs_scored_on_other_prompts_are_refused(jobs, config, tmp_path):
    other = shutil.copytree(jobs[1], tmp_path / "other")
    OmegaConf.save(with_keys(config, {"clip.hard_negatives": True, "sweep.prompts_per_kind": 5}), other / "config.yaml")
    message = refusal([jobs[0], other], tmp_path / "out")
    assert message.startswith(f"{other / 'config.yaml'}: sweep.prompts_per_kind is 5, but 3 in {jobs[0]}")


def test_the_joint_report_never_overwrites_a_job(jobs):
    with pytest.raises(HarnessError, match="is one of the job folders"):
        join_runs(jobs, jobs[1])


def test_command_line_joins_and_reports_errors_in_one_line(jobs, tmp_path, capsys):
    main([str(tmp_path / "out"), *map(str, jobs)])
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "report.md")
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "out2"), str(jobs[0]), str(tmp_path / "nowhere")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nowhere' / 'metrics.csv'}: not found; a job folder " \
                                      "needs metrics.csv, per_prompt.csv, summary.json, config.yaml (did the job finish?)\n"


# ---------------------------------------------------------------- the multirun callback


def end_multirun(sweep_dir: Path) -> None:
    JoinStudyJobs().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}}))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_callback_joins_jobs_with_different_clips_and_skips_failed_ones(sweep, config, tmp_path, caplog):
    copy = shutil.copytree(sweep, tmp_path / "multirun")
    failed = copy / "2_clip.hard_negatives=true_decoder.size=small"
    (failed / ".hydra").mkdir(parents=True)
    OmegaConf.save(with_keys(config, {"clip.hard_negatives": True}), failed / "config.yaml")
    before = snapshot(copy)
    with caplog.at_level(logging.INFO):
        end_multirun(copy)
    assert f"joint report: skipping {failed}: no metrics.csv (the job did not finish)" in caplog.messages
    found = sections((copy / "joint" / "report.md").read_text())
    assert "clip_text [hard_negatives] beats clip_text at g = 1, 3." in found["Q5"]
    assert {k: v for k, v in snapshot(copy).items() if not k.startswith("joint/")} == before


def test_callback_leaves_a_sweep_over_other_keys_alone(jobs, tmp_path, caplog):
    for number, folder in enumerate((jobs[0], jobs[0])):
        shutil.copytree(folder, tmp_path / f"{number}_decoder.size=tiny")
    with caplog.at_level(logging.INFO):
        end_multirun(tmp_path)
    assert not (tmp_path / "joint").exists()
    assert not caplog.records


def test_callback_logs_a_failed_join_in_one_line_and_returns(jobs, tmp_path, caplog):
    for number, folder in enumerate((jobs[0], jobs[0], jobs[1])):  # two jobs measured glide on the standard CLIP
        shutil.copytree(folder, tmp_path / f"{number}_job")
    end_multirun(tmp_path)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert errors[0].startswith(f"joint report not written: {tmp_path / '1_job'}: measured glide")
    assert not (tmp_path / "joint" / "report.md").exists()


def test_a_study_sharded_by_training_seed_pools_into_seed_level_intervals(config, tmp_path):
    """Three jobs of one study, each with its own training seed, as `-m train_seeds=[0],[1],[2]` leaves them:
    the callback pools them, and every primary contrast's interval is over the three seeds."""
    cells = {key: v for key, v in STANDARD_CELLS.items()}
    for seed in range(3):
        table = make_per_prompt(cells, seeds=(seed,))
        write_job(tmp_path / f"{seed}_train_seeds=[{seed}]", with_keys(config, {"train_seeds": [seed]}),
                  {**SUMMARY, "wall_time_total_s": 100.0}, table)
    end_multirun(tmp_path)
    summary = json.loads((tmp_path / "joint" / "summary.json").read_text())
    pooled = [p for p in summary["answers"]["key_findings"]["primary"] if p["family"] == "primary" and p["estimate"]
              and p["estimate"]["value"] is not None]
    assert pooled and all(p["estimate"]["seeds"] == 3 and p["seed_term"] == "run" for p in pooled)
    table = pd.read_csv(tmp_path / "joint" / "per_prompt.csv", dtype={"train_seed": str})
    assert set(table.loc[table["mode"] == "glide", "train_seed"]) == {"0", "1", "2"}
