"""Training under torchrun: two CPU processes (gloo) train what one process trains, and only rank 0 writes.

The two-process run is the CLI as a user starts it (`torchrun --standalone --nproc_per_node=2 -m harness ...`)
on the smoke preset with one decoder mode and a one-prompt sweep; the one-process reference is built by the
stages in this process, in the session cache (where earlier tests usually left it already).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.runtime import distributed
from harness.runtime.cache import META_FILE, Artifact
from harness.errors import HarnessError
from test_pipeline import offline_env

MODE = "combined"  # both pathways: the text transformer, image vectors and two condition dropouts
OVERRIDES = ["experiment=smoke", f"conditioning=[{MODE}]", "logger.mode=disabled", "sweep.prompts_per_kind=1"]
# Measured here in fp32: decoder weights within 4e-7, CLIP vectors within 2e-6, prior draws within 3e-7. That is
# float32 rounding (two ranks each sum half of the batch's gradient, gloo adds the halves); the tolerances leave
# a factor of 5 or more for other CPUs. In bf16 each rank's half-batch gradient is rounded to 8 bits of mantissa
# before the two are added, so the runs drift apart step by step: measured here, CLIP vectors up to 0.012 apart
# (forced bf16 on a CPU without bf16 units); the bf16 tolerances leave a factor of 2. `loss` is relative;
# `features` is relative to the probe features' scale.
TOLERANCES = {"fp32": {"weights": dict(rtol=1e-4, atol=1e-5), "loss": 1e-5, "features": 1e-4},
              "bf16": {"weights": dict(rtol=5e-2, atol=2.5e-2), "loss": 1e-2, "features": 5e-2}}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, precision) -> tuple[Path, subprocess.CompletedProcess]:
    """The smoke pipeline under torchrun with two CPU processes, every file write of every process logged."""
    root = tmp_path_factory.mktemp("torchrun")
    (root / "writes").mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "harness",
               *OVERRIDES, f"precision={precision}", f"cache_dir={root / 'cache'}", f"hydra.run.dir={root / 'run'}"]
    env = dict(offline_env(), HARNESS_TEST_WRITE_LOG=str(root / "writes"))
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return root, result


def built_by_two(root: Path, reference: Artifact) -> Artifact:
    """The two-process run's artifact with the reference's key, checked to have been trained by two ranks."""
    path = root / "cache" / reference.stage / reference.key
    record = json.loads((path / META_FILE).read_text())
    assert record["world_size"] == 2, reference.stage
    return Artifact(reference.stage, reference.key, path, record["meta"])


@pytest.mark.slow
@pytest.mark.numerics
def test_two_processes_train_what_one_process_trains(two_ranks, smoke_config, precision):
    from harness.runtime import pipeline
    from harness.clip import load_embeddings
    from harness.runtime.context import Context
    from harness.data.splits import load_split
    from harness.decoder import stage as decoder_stage
    from harness.evaluator import probe as probe_stage
    from harness.priors import stage as prior_stage
    from support.stages import train_decoder

    root, _ = two_ranks
    cfg = smoke_config(*OVERRIDES[1:])
    tolerance = TOLERANCES[precision]
    weights = tolerance["weights"]
    ctx = pipeline.build(Context.start(cfg), through=("prior", "probe"))
    data, clip, embeddings = ctx["data"], ctx["clip"], ctx["embeddings"]
    decoder = train_decoder(ctx, MODE)

    # The decoder: every weight, and the logged loss (the mean of the two ranks' losses).
    ours = torch.load(decoder.file(decoder_stage.WEIGHTS), weights_only=True)
    theirs = torch.load(built_by_two(root, decoder).file(decoder_stage.WEIGHTS), weights_only=True)
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(theirs[name], ours[name], **weights, msg=name)
    losses = [[r["loss"] for r in a.meta["history"]] for a in (decoder, built_by_two(root, decoder))]
    assert losses[0] == pytest.approx(losses[1], rel=tolerance["loss"])

    # CLIP, the prior and the probe are compared by what they compute. A few of their weights get no gradient
    # at all (attention's key bias, a convolution's bias before a per-channel norm); AdamW turns the rounding
    # noise there into steps of up to lr, different in each run, which change nothing they compute.
    for split in ("train", "val", "test"):
        for column in ("text", "image"):
            torch.testing.assert_close(load_embeddings(built_by_two(root, embeddings))[split][column],
                                       load_embeddings(embeddings)[split][column], **weights)
    built_by_two(root, clip)
    priors = ctx["prior"]
    val = load_embeddings(embeddings)["val"]
    draws = [prior_stage.load_prior(a, "diffusion").sample(val["text"], val["tokens"], n=2,
                                                           generator=torch.Generator().manual_seed(0))
             for a in (priors, built_by_two(root, priors))]
    torch.testing.assert_close(draws[1], draws[0], **weights)
    probe = ctx["probe"]
    pixels = load_split(data, "test").pixels
    features = [probe_stage.load_probe(a).features(pixels) for a in (probe, built_by_two(root, probe))]
    # Measured up to 8e-5 on features of magnitude 4: the diverged biases sit right before a normalisation
    # that subtracts them again, which costs float32 digits. Compared relative to the features' scale.
    scale = features[0].abs().max().item()
    torch.testing.assert_close(features[1], features[0], rtol=tolerance["features"],
                               atol=tolerance["features"] * scale)


@pytest.mark.slow
def test_only_rank_zero_writes_and_logs(two_ranks):
    root, result = two_ranks
    writes = [line.split("\t") for log in (root / "writes").glob("*.log") for line in log.read_text().splitlines()]
    assert {rank for rank, event, _ in writes if event == "started"} >= {"0", "1"}  # both ranks were watched
    ours = [(rank, event, path) for rank, event, path in writes
            if Path(path).is_relative_to(root / "cache") or Path(path).is_relative_to(root / "run")]
    assert {rank for rank, _, _ in ours} == {"0"}, [w for w in ours if w[0] != "0"][:5]
    written = {Path(path).name for _, _, path in ours}
    # Writes from C++ and Rust (torch.save, safetensors) and from Python are all seen, rank 0's at least.
    assert {"decoder.pt", "open_clip_model.safetensors", "checkpoint.tmp", "report.md.tmp"} <= written

    output = result.stdout + result.stderr
    assert output.count("decoder: building artifact") == 1
    assert len(re.findall(r"\[\d+/\d+\] report", output)) == 1
    assert "[rank 1]" not in output
    assert (root / "run" / "report.md").exists() and (root / "run" / "cli.log").exists()


def test_a_batch_must_split_evenly_over_the_processes(monkeypatch):
    from harness.runtime.data_parallel import check_split

    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    check_split(48, "decoder")
    with pytest.raises(HarnessError, match=r"^decoder: a batch of 32 does not split evenly over 3 processes$"):
        check_split(32, "decoder")


def test_torchrun_refuses_a_multirun(monkeypatch):
    from harness.cli import _preflight

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(HarnessError, match="one torchrun per job"):
        _preflight(["-m", "experiment=smoke", "conditioning=glide,clip_text"])
