"""The whole smoke pipeline, end to end, as a user runs it: offline, resumable, deterministic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

SUPPORT = Path(__file__).parent / "support"
# A line's five columns (harness/line.py), then the cell's guidance, seed, kind and metric with its interval.
METRIC_COLUMNS = ["mode", "arm", "ablation", "text_scale", "clip_variant", "guidance", "train_seed", "prompt_kind",
                  "metric", "value", "ci_low", "ci_high", "n_prompts", "n_samples", "n_seeds"]


def harness_command(cache: Path, run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "harness", "experiment=smoke", f"cache_dir={cache}", f"hydra.run.dir={run_dir}",
            *overrides]


def offline_env() -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
               WANDB_MODE="offline", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One uninterrupted smoke run with every outbound connection refused."""
    root = tmp_path_factory.mktemp("smoke")
    result = subprocess.run(harness_command(root / "cache", root / "run"), env=offline_env(), capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return root, result


def test_pipeline_writes_the_report_without_network(smoke_run):
    root, _ = smoke_run
    run = root / "run"
    for name in ("report.md", "curves.png", "summary.json", "metrics.csv", "metrics.parquet", "config.yaml",
                 "forest.png", "q3_diversity.png", "q4_attention_layers.png"):
        assert (run / name).exists(), name
    assert list(run.glob("grid_*.png"))
    assert "![attention per layer](q4_attention_layers.png)" in (run / "report.md").read_text()
    # FID's real-vs-real floor: fresh real images of the same prompts scored against the reference
    metrics = pd.read_csv(run / "metrics.csv")
    floor = metrics[(metrics["mode"] == "real") & (metrics["arm"] == "floor") & (metrics["prompt_kind"] == "all")]
    assert {"fid", "kid", "precision"} <= set(floor["metric"]) and (floor["n_prompts"] > 0).all()
    assert "real-vs-real floor" in (run / "report.md").read_text()
    summary = json.loads((run / "summary.json").read_text())
    sweep = summary["sweep"]
    assert sweep["sampling_s"] > 0 and sweep["metrics_s"] > 0  # the speed targets need them apart
    # Where the numbers came from: the code's commit (a clone of the repository is a checkout), the packages, the CPU.
    provenance = summary["provenance"]
    assert provenance["packages"]["torch"] == torch.__version__.split("+")[0]
    assert provenance["cpu"]["model"] and provenance["threads"] >= 1 and provenance["date"].startswith("20")
    assert provenance["git_commit"] is None or len(provenance["git_commit"]) == 40
    assert f"| packages | torch {provenance['packages']['torch']}" in (run / "report.md").read_text()
    # one contact sheet per mode and draw policy, linked from the report
    assert {p.stem for p in run.glob("sheet_*.png")} >= {"sheet_glide", "sheet_unclip_fixed", "sheet_unclip_per_sample"}
    assert "![unclip_fixed](sheet_unclip_fixed.png)" in (run / "report.md").read_text()
    table = pd.read_csv(run / "metrics.csv")
    assert list(table.columns) == METRIC_COLUMNS
    assert {"glide", "clip_text", "unclip", "combined", "real"} <= set(table["mode"])
    assert {"fixed", "per_sample"} <= set(table[table["mode"] == "unclip"]["arm"])
    assert {"attribute_accuracy", "free_entropy", "fid", "vendi", "clip_score"} <= set(table["metric"])
    # attention mass is a per-prompt metric with an interval, like the others
    assert (table["metric"] == "attention_clip").any() and (table["metric"] == "attention_text").any()
    # every interval, set metrics included, holds its own estimate (or is NaN: a single prompt has no spread)
    held = (table["ci_low"] <= table["value"] + 1e-9) & (table["value"] <= table["ci_high"] + 1e-9)
    assert (held | table["ci_low"].isna()).all()
    pooled = table[table["train_seed"] == "all"]  # the seeds pooled, one row per cell, with their count
    assert len(pooled) and set(pooled["n_seeds"]) == {1}
    # Q4's reliance test: combined sampled with each token group hidden; Q5's binding measures beside it
    hidden = table[table["ablation"] != "-"]
    assert set(hidden["mode"]) == {"combined"} and set(hidden["ablation"]) == {"clip", "text"}
    assert {"relation_accuracy", "swap_eligible", "judge_agreement", "attention_clip_per_token"} <= set(table["metric"])
    # Every metric the table holds is described, once, by the catalogue (label, range, direction, role).
    from harness.metrics.catalogue import metric

    assert all(metric(name.split("@")[0]) is not None for name in set(table["metric"]))


def test_every_stage_and_the_report_reach_wandb_offline(smoke_run):
    """Each trained run with its own config and tags, the report's run with flat summary keys, and the artifacts'
    lineage from the data and the CLIP to the report, all read back from the offline files."""
    from wandb_offline import offline_run_dirs, read_offline_run

    root, _ = smoke_run
    runs = [read_offline_run(d) for d in offline_run_dirs(root / "run")]
    assert {r["group"] for r in runs} == {"smoke-run"}  # one group per invocation: <experiment>-<run folder>
    trained = {r["name"]: r for r in runs if r["job_type"] == "train"}
    modes = ("glide", "clip_text", "unclip", "combined")
    assert set(trained) >= {"clip", "probe", "eval_clip", "prior", *(f"decoder[{m} seed 0]" for m in modes)}
    for name, run in trained.items():  # a loss curve, and the trained artifact's figures in the summary
        assert [row["loss"] for row in run["history"] if "loss" in row], name
        assert run["summary"]["images_per_s"] > 0 and run["exit_code"] == 0, name
        assert run["tags"][:2] == ["smoke", run["config"]["stage"]], name
    glide = trained["decoder[glide seed 0]"]
    assert (glide["config"]["mode"], glide["config"]["seed"], glide["config"]["decoder"]["size"]) == ("glide", 0, "tiny")
    assert glide["tags"] == ["smoke", "decoder", "glide", "seed 0"] and "sweep" not in glide["config"]

    (report,) = [r for r in runs if r["job_type"] == "report"]
    assert report["tags"] == ["smoke", "report", *modes]
    logged = report["tables"]["metrics"]
    written = pd.read_csv(root / "run" / "metrics.csv")
    assert len(logged) == len(written)
    accuracy = logged[(logged["metric"] == "attribute_accuracy") & (logged["prompt_kind"] == "all")]
    assert set(accuracy["mode"]) >= set(modes)
    points = report["tables"]["attribute_accuracy_vs_guidance_table"]
    assert {"glide", "glide low", "glide high"} <= set(points["lineKey"])  # each line with its interval
    assert {"curves", "grid_full"} <= set(report["images"]) and "fidelity against diversity" in report["captions"]["curves"][0]

    summary = json.loads((root / "run" / "summary.json").read_text())
    flat = report["summary"]
    # sortable: no nested values besides wandb's own references to the logged tables, charts and images
    assert all(not isinstance(value, dict) or "_type" in value for value in flat.values())
    q3 = [p for p in summary["answers"]["key_findings"]["primary"] if p["question"] == "q3"]
    assert [flat[f"primary/q3{letter}/estimate"] for letter in "ab"] == [p["estimate"]["value"] for p in q3]
    assert flat["primary/q3a/statement"] == q3[0]["statement"] and "primary/q1/estimate" not in flat  # q1: n/a here
    pooled = written[(written["prompt_kind"] == "all") & (written["train_seed"].astype(str) == "all")
                     & (written["mode"] == "glide") & (written["metric"] == "attribute_accuracy")
                     & (written["guidance"] == 3.0)]
    assert flat["attribute_accuracy/glide/g3"] == pytest.approx(float(pooled["value"].iloc[0]))

    artifacts = {name: a for run in runs for name, a in run["artifacts"].items()}
    for name, run in trained.items():  # each trained run logged the artifact it built, named by its key
        assert f"{run['config']['stage']}-{run['config']['cache_key']}" in run["artifacts"], name
    reached, todo = set(), ["report"]
    while todo:  # walk the lineage back from the report
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(artifacts[name]["metadata"]["inputs"])
    assert {name.split("-")[0] for name in reached} >= {"report", "metrics", "sweep", "decoder", "prior", "embeddings",
                                                        "clip", "data"}
    files = report["artifacts"]["report"]["files"]
    assert {"report.md", "metrics.parquet", "summary.json", "curves.png"} <= set(files)


def test_cache_prune_keeps_what_the_config_names_and_the_config_then_builds_nothing(smoke_run, tmp_path):
    root, _ = smoke_run
    cache = root / "cache"
    stray = cache / "decoder" / "0123456789abcdef"  # a decoder no config of this command names
    stray.mkdir()
    (stray / "artifact.json").write_text(json.dumps({"config": {"mode": "glide", "seed": 7}}))
    (stray / "decoder.pt").write_bytes(b"x" * 2048)
    left = cache / "sweep" / "fedcba9876543210.partial"  # an interrupted build of another config
    left.mkdir()
    kept_before = {p for p in cache.glob("*/*") if p.is_dir()} - {stray, left}
    tool = [sys.executable, "-m", "harness", "cache"]
    listed = subprocess.run([*tool, "--list", "--dir", str(cache)], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "| decoder | 0123456789abcdef | 0.0 |" in listed.stdout and "mode glide, seed 7" in listed.stdout

    prune = [*tool, "--prune", "experiment=smoke", f"cache_dir={cache}"]
    dry = subprocess.run([*prune, "--dry-run"], capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert "would remove 2 artifacts" in dry.stdout and stray.exists() and left.exists()
    done = subprocess.run(prune, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "removed 2 artifacts" in done.stdout, done.stderr
    assert not stray.exists() and not left.exists()
    assert {p for p in cache.glob("*/*") if p.is_dir()} == kept_before
    # what was kept is what the run reads: run again, it builds nothing; with WANDB_MODE=disabled in the
    # environment (the config leaves logger.mode to it), it writes no wandb files either
    again = subprocess.run(harness_command(cache, tmp_path / "again"), env={**offline_env(), "WANDB_MODE": "disabled"},
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-4000:]
    log = (tmp_path / "again" / "cli.log").read_text()
    assert "reusing cached artifact" in log and "building artifact" not in log
    assert (tmp_path / "again" / "report.md").exists() and not list(tmp_path.rglob("wandb"))


def test_killed_sweep_resumes_to_the_same_table(smoke_run, tmp_path):
    """SIGKILL mid-sweep, restart: the same table as the uninterrupted run, and the log counts reused cells.

    The restart samples the remaining cells in two worker processes, so this also shows that `workers` does not
    change the sweep's numbers."""
    root, _ = smoke_run
    cache = tmp_path / "cache"
    process = subprocess.Popen(harness_command(cache, tmp_path / "first"), env=offline_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if len(list(cache.glob("sweep/*.partial/cells/*.npz"))) >= 2:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    process.wait(60)
    assert list(cache.glob("sweep/*.partial/cells/*.npz")), "the sweep never started before the deadline"
    result = subprocess.run(harness_command(cache, tmp_path / "second", "workers=2"), env=offline_env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "reused from an earlier run" in result.stderr + result.stdout
    reused = [ln for ln in (result.stderr + result.stdout).splitlines() if "reused from an earlier run" in ln]
    assert not reused[0].split("cells, ")[1].startswith("0 reused")
    assert "tasks in 2 processes" in result.stderr + result.stdout
    first = pd.read_csv(root / "run" / "metrics.csv")
    second = pd.read_csv(tmp_path / "second" / "metrics.csv")
    pd.testing.assert_frame_equal(first, second)
