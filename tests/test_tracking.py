"""The wandb wrapper: offline runs are readable back from their files, disabled mode leaves no trace.

Each offline run costs about a second (wandb starts its service), so the module opens two: one that logs
everything the stages log, and one that fails.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.config import LoggerConfig
from harness.errors import ConfigError
from harness.runtime.tracking import Tracker
from wandb_offline import offline_run_dirs, read_offline_run

CONFIG = {"experiment_name": "unit", "decoder": {"size": "tiny"}, "sweep": {"guidance": [1.0, 3.0]}}
SWEEP = pd.DataFrame({"mode": ["glide", "glide", "unclip", "unclip", "unclip"],  # unclip: two seeds at 3.0
                      "guidance": [1.0, 3.0, 1.0, 3.0, 3.0], "metric": "fidelity",
                      "value": [0.5, 0.7, 0.6, 0.8, 0.9], "ci_low": [0.4, 0.6, 0.5, 0.7, 0.8],
                      "ci_high": [0.6, 0.8, 0.7, 0.9, 1.0]})


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> tuple[Path, Path, dict]:
    """One offline run that logs training curves, a table, two images, line plots and a summary."""
    root = tmp_path_factory.mktemp("tracked")
    tracker = Tracker(LoggerConfig(mode="offline"), "unit", root, CONFIG)
    image_file = root / "grid.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(image_file)
    with tracker.run("decoder-glide", job_type="train") as run:
        for step in (25, 50):
            run.on_log(step, {"step": step, "loss": 1.0 / step, "lr": 3e-4, "images_per_s": 100.0})
        run.log_table("sweep", SWEEP)
        run.log_image("grid", image_file, caption="rows: modes")
        run.log_image("sample", np.zeros((8, 8, 3), dtype=np.uint8))
        run.log_line_plots(SWEEP, x="guidance", series="mode", metrics=["fidelity"])
        run.summary({"best_fidelity": 0.85})
        run.log_files("report", "report", [image_file])
    return root, run.dir, read_offline_run(run.dir)


def test_offline_run_reads_back(logged):
    root, run_dir, got = logged
    assert [p.resolve() for p in offline_run_dirs(root)] == [run_dir] and run_dir.parent == (root / "wandb").resolve()
    assert (got["name"], got["group"], got["job_type"], got["exit_code"]) == ("decoder-glide", "unit", "train", 0)
    assert got["config"] == CONFIG

    curve = [(row["_step"], row["loss"]) for row in got["history"] if "loss" in row]
    assert curve == [(25, 1 / 25), (50, 1 / 50)]
    assert all("step" not in row for row in got["history"])  # the record's own step stays in `_step`
    assert got["summary"]["best_fidelity"] == 0.85 and got["summary"]["loss"] == 1 / 50

    assert got["tables"]["sweep"].equals(SWEEP)
    points = got["tables"]["fidelity_vs_guidance_table"]
    unclip = points[points["lineKey"] == "unclip"]
    assert list(unclip["step"]) == [1.0, 3.0] and list(unclip["lineVal"]) == pytest.approx([0.6, 0.85])
    upper = points[points["lineKey"] == "unclip high"]  # each line's interval, as two more lines
    assert list(upper["lineVal"]) == pytest.approx([0.7, 0.95])

    assert got["artifacts"]["report"] == {"type": "report", "files": ["grid.png"], "metadata": {"inputs": []}}
    assert set(got["images"]) == {"grid", "sample"} and got["captions"]["grid"] == ["rows: modes"]
    assert got["tags"] == ["unit"]  # the experiment
    assert all(path.is_file() for paths in got["images"].values() for path in paths)


def test_failing_run_is_finished_and_reraises(tmp_path):
    tracker = Tracker(LoggerConfig(mode="offline", dir=str(tmp_path / "logs")), "unit", tmp_path / "unused", {})
    with pytest.raises(RuntimeError, match="boom"):
        with tracker.run("prior", job_type="train") as run:
            run.log({"loss": 1.0})
            raise RuntimeError("boom")
    (run_dir,) = offline_run_dirs(tmp_path / "logs")  # logger.dir wins over the run dir
    assert not (tmp_path / "unused").exists()
    assert read_offline_run(run_dir)["exit_code"] == 1


def test_disabled_imports_and_writes_nothing(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import numpy as np, pandas as pd
        from harness.config import LoggerConfig
        from harness.runtime.tracking import Tracker
        tracker = Tracker(LoggerConfig(mode="disabled"), "unit", Path({str(tmp_path / 'run')!r}), {{}})
        frame = pd.DataFrame({{"mode": ["a"], "guidance": [1.0], "metric": ["fid"], "value": [2.0]}})
        with tracker.run("decoder-a", job_type="train") as run:
            run.on_log(1, {{"step": 1, "loss": 0.5}})
            run.log({{"x": 1}}, step=2)
            run.log_table("sweep", frame)
            run.log_image("grid", np.zeros((4, 4, 3)))
            run.log_line_plots(frame, x="guidance", series="mode", metrics=["fid"])
            run.summary({{"best": 1}})
            assert run.dir is None
        assert "wandb" not in sys.modules, "disabled mode imported wandb"
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, timeout=60)
    assert list(tmp_path.iterdir()) == []


def test_training_logs_its_curve_live_to_the_active_tracker(tmp_path):
    """The loss reaches the run while training goes on (not replayed at the end), named after the stage."""
    import time

    import torch

    from harness.runtime import tracking
    from harness.config import TrainConfig
    from harness.training import train

    tracking.activate(Tracker(LoggerConfig(mode="offline"), "live", tmp_path, {}))
    try:
        model = torch.nn.Linear(2, 1)

        def fetch(indices):
            time.sleep(0.02)  # 100 steps take at least 2 s
            return torch.ones(len(indices), 2)

        train(model, lambda batch, _: model(batch).pow(2).mean(), fetch, 64,
              TrainConfig(steps=100, batch_size=8, warmup_steps=1), None, torch.device("cpu"), desc="probe",
              progress=False, log_every=25)
        finished = time.time()
    finally:
        tracking.activate(Tracker.disabled())
    (run,) = [read_offline_run(d) for d in offline_run_dirs(tmp_path)]
    assert (run["name"], run["group"], run["job_type"]) == ("probe", "live", "train")
    rows = [row for row in run["history"] if "loss" in row]
    assert [row["_step"] for row in rows] == [25, 50, 75, 100]
    assert rows[0]["_timestamp"] < finished - 1.0  # step 25 was logged more than a second before the end
    assert run["summary"]["final_loss"] == rows[-1]["loss"]


def test_a_run_inside_a_cache_build_is_that_artifacts_run(tmp_path):
    """Its own config (stage, key, inputs, the settings that key it), tags for its mode and seed, and the
    artifact with its folder and inputs: the lineage, offline."""
    from harness.runtime.cache import ArtifactCache

    cache = ArtifactCache(tmp_path / "cache")
    data = cache.build("data", "1", {"images": 8}, [], lambda workdir: None)
    tracker = Tracker(LoggerConfig(mode="offline"), "unit", tmp_path / "run", CONFIG)

    def train(workdir: Path) -> None:
        with tracker.run("decoder[glide seed 2]", job_type="train") as run:
            run.log({"loss": 1.0})
        (workdir / "decoder.pt").write_bytes(b"weights")

    decoder = cache.build("decoder", "1", {"mode": "glide", "seed": 2, "steps": 10}, [data], train)
    (got,) = [read_offline_run(d) for d in offline_run_dirs(tmp_path / "run")]
    assert got["config"] == {"stage": "decoder", "cache_key": decoder.key, "inputs": [data.name], "mode": "glide",
                             "seed": 2, "steps": 10}
    assert got["tags"] == ["unit", "decoder", "glide", "seed 2"]
    assert got["artifacts"] == {decoder.name: {"type": "decoder", "files": [],
                                               "metadata": {"cache_key": decoder.key, "inputs": [data.name],
                                                            "path": str(decoder.path.resolve())}}}
    assert decoder.inputs == (data.name,) and cache.build("decoder", "1", {"mode": "glide", "seed": 2, "steps": 10},
                                                          [data], train).inputs == (data.name,)  # reloaded


def test_the_environment_decides_what_the_config_leaves_empty_and_an_explicit_setting_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_PROJECT", "their-project")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    from_env = Tracker(LoggerConfig(), "unit", tmp_path / "run", {})
    assert not from_env.enabled and from_env.cfg.project == "their-project"
    assert from_env.root == tmp_path / "elsewhere"
    explicit = Tracker(LoggerConfig(mode="offline", project="mine", dir=str(tmp_path / "logs")), "unit",
                       tmp_path / "run", {})
    assert explicit.enabled and explicit.cfg.project == "mine" and explicit.root == tmp_path / "logs"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_DIR")
    default = Tracker(LoggerConfig(), "unit", tmp_path / "run", {})
    assert default.cfg.mode == "offline" and default.root == tmp_path / "run"  # never the network by default
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(ConfigError, match="WANDB_MODE is 'sometimes'"):
        Tracker(LoggerConfig(), "unit", tmp_path / "run", {})
