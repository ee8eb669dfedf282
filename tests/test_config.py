"""Presets compose as documented; the CLI refuses bad input before work (the full table: test_bad_inputs.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.cli import compose
from harness.config import Config, validate
from harness.errors import ConfigError


def test_presets_compose_and_select_modes():
    cfg = compose(["experiment=smoke", "conditioning=[glide,clip_text_k1]"])
    assert set(cfg.conditioning) == {"glide", "clip_text_k1"}
    assert cfg.conditioning["clip_text_k1"].clip_tokens == 1
    assert cfg.conditioning["glide"].text_sequence and not cfg.conditioning["glide"].has_vector
    assert compose([]).experiment_name == "quick"
    # quick sets combined's draws; choosing other modes leaves that setting behind, and it must not get in the way
    assert set(compose(["experiment=quick", "conditioning=[clip_text,glide]"]).conditioning) == {"clip_text", "glide"}
    cpu, gpu = compose(["experiment=cpu"]), compose(["experiment=gpu"])
    assert {"clip_text_seq", "unclip_oracle", "glide_seq", "clip_text_k1"} <= set(cpu.conditioning)
    assert len(cpu.train_seeds) == 5
    assert gpu.data.resolution == 64 and gpu.device == "auto"


def test_a_preset_that_configures_no_existing_mode_fails_naming_it():
    # Command-line overrides of an unknown mode are refused by Hydra; a preset's YAML merges into the mode table
    cfg = OmegaConf.merge(OmegaConf.structured(Config),
                          {"conditioning": {"glide": {"vector_source": "none", "text_sequence": True}, "glid": {"p_drop_text": 0.3}}})
    with pytest.raises(ConfigError, match=r"^conditioning\.glid: no such mode; choose from .*glide"):
        validate(cfg)


def test_cli_fails_in_one_line_before_work(tmp_path):
    cache = tmp_path / "cache"
    result = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", f"cache_dir={cache}",
                             "data.resolution=17", "data.num_images=5,-1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines == ["error: data.resolution: must be one of 16, 32, 64, got 17"]
    assert not cache.exists()  # nothing was built


def test_cpu_preset_trains_five_seeds_of_the_core_modes_three_of_q5s_ablations():
    cfg = compose(["experiment=cpu"])
    core, ablations = {"glide", "clip_text", "unclip", "combined"}, {"clip_text_seq", "glide_seq"}
    assert {m: cfg.seeds_for(m) for m in core} == {m: [0, 1, 2, 3, 4] for m in core}
    assert {m: cfg.seeds_for(m) for m in ablations} == {m: [0, 1, 2] for m in ablations}
    assert all(cfg.seeds_for(m) == [0] for m in set(cfg.conditioning) - core - ablations)
    from harness.sampling.cell import mode_plans
    assert mode_plans(cfg)["combined"].arms == ["fixed", "per_sample"]  # quick draws per sample only
    assert mode_plans(compose(["experiment=quick"]))["combined"].arms == ["per_sample"]
    # The two jobs of the cpu multirun score the same prompts, or their join is refused.
    hard = compose(["experiment=cpu_hard_negatives"])
    assert (hard.sweep.prompts_per_kind, hard.sweep.samples_per_prompt, hard.sweep.guidance) == \
        (cfg.sweep.prompts_per_kind, cfg.sweep.samples_per_prompt, cfg.sweep.guidance)
    assert compose(["experiment=cpu", "conditioning.glide_seq.train_seeds=[4,5]"]).seeds_for("glide_seq") == [4, 5]


def console(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user types it."""
    script = Path(sys.executable).parent / "unclip-harness"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120, env=env)


def test_console_script_help_version_and_tab_completion(tmp_path):
    helped = console("--help")
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert "usage: unclip-harness" in helped.stdout
    assert "experiment: cads_check, cpu, cpu_hard_negatives, gpu, hf_quick, mechanism, power, quick, smoke, study" in helped.stdout
    assert "unclip-harness compare RUN RUN ... --out DIR" in helped.stdout  # the tools beside the pipeline
    # the schema's help strings by section, not the composed config's values (those: --cfg job)
    assert "\ndata:\n" in helped.stdout and "  data.hf.allow_network: download a hub dataset" in helped.stdout
    assert "  logger.mode: empty: $WANDB_MODE" in helped.stdout and "primary:" not in helped.stdout
    assert len(helped.stdout.splitlines()) < 200
    assert console("--version").stdout.startswith("unclip-harness ")
    line = "unclip-harness experiment="
    completed = console("-sc", "query=bash", env=dict(os.environ, COMP_LINE=line, COMP_POINT=str(len(line))))
    assert set(completed.stdout.split()) == {f"experiment={p}" for p in ("cads_check", "cpu", "cpu_hard_negatives", "gpu", "hf_quick",
                                                                          "mechanism", "power", "quick", "smoke",
                                                                          "study")}


@pytest.mark.parametrize("stage, override, changes", [
    ("prior", "prior.train.seed=3", True),
    ("prior", "clip.train.seed=3", False),  # another section's training seed
    ("probe", "evaluator.probe.train.steps=7", True),
    ("probe", "prior.width=8", False),
    ("clip", "clip.hard_negatives=true", True),
    ("eval_clip", "clip.hard_negatives=true", False),  # the judge stays the same when Q5 toggles them
    ("eval_clip", "clip.train.seed=3", False),
    ("eval_clip", "clip.embed_dim=16", True),  # its architecture is derived from the conditioning CLIP's
    ("decoder", "decoder.train.seed=3", False),  # a decoder keys on its task's seed
    ("decoder", "decoder.min_snr_gamma=1", True),
    ("sweep", "sweep.guidance=[1.0]", True),
    ("metrics", "report.confidence=0.9", True),
    ("metrics", "report.matched_diversity=0.5", False),  # read when the report is written, not cached
])
def test_cache_keys_come_from_the_fields_the_schema_marks(stage, override, changes):
    from harness.config import key_fields

    base, other = compose(["experiment=smoke"]), compose(["experiment=smoke", override])
    assert (key_fields(base, stage) != key_fields(other, stage)) is changes


def test_sampling_arms_key_the_sweep_and_nothing_trained():
    """An arm only samples: adding one or changing its parameters re-runs the sweep, never a decoder or prior."""
    from harness.config import key_fields
    from harness.sampling.stage import sweep_config

    base = compose(["experiment=smoke"])
    for extra in (["arms=[fixed,per_sample,cads]"], ["arms=[fixed,per_sample,cads]", "arms.cads.params.tau1=0.5"],
                  ["arms.fixed.modes=[unclip]"]):
        other = compose(["experiment=smoke", *extra])
        assert all(key_fields(base, stage) == key_fields(other, stage) for stage in ("decoder", "prior", "clip"))
        assert sweep_config(base, list(base.conditioning)) != sweep_config(other, list(other.conditioning)), extra


def test_a_datasets_key_ignores_the_shapes_world():
    from harness.config import key_fields

    base, other = (compose(["experiment=smoke", "data=hf", "data.hf.path=/data", *extra])
                   for extra in ([], ["data.shapes.num_shapes=3", "data.num_images=50"]))
    assert key_fields(base.data, "data.hf") == key_fields(other.data, "data.hf")
    assert key_fields(base.data, "data.shapes") != key_fields(other.data, "data.shapes")


def test_cfg_shows_a_preset_that_still_needs_a_setting_to_run(tmp_path):
    """`--cfg job` prints the composed config of a preset whose run would need a dataset path, and runs nothing."""
    result = subprocess.run([sys.executable, "-m", "harness", "experiment=hf_quick", "--cfg", "job"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "experiment_name: hf_quick" in result.stdout and not list(tmp_path.iterdir())


def test_an_error_inside_a_run_is_printed_once_and_kept_in_the_runs_log(tmp_path):
    """A dataset folder that holds no dataset fails in the data stage: one `error:` line on the console (not a
    second copy from the log), the same line in the run's cli.log."""
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "readme.txt").write_text("no images here")
    result = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", "logger.mode=disabled",
                             "data=hf", f"data.hf.path={junk}", f"hydra.run.dir={tmp_path / 'run'}"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "error: data.hf.path" in line]
    assert len(errors) == 1 and errors[0].startswith("error: data.hf.path:"), errors
    assert "error: data.hf.path:" in (tmp_path / "run" / "cli.log").read_text()


def test_a_run_refused_before_its_first_stage_leaves_no_run_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", "data=hf",
                             f"data.hf.path={tmp_path / 'missing'}"], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: data.hf.path: no folder {tmp_path / 'missing'}"]
    assert not (tmp_path / "outputs").exists()
