"""Every bad input a user has been seen to give fails before any work starts, in one line naming the key.

The table runs the console script's entry point in this process (`harness.cli.main`, exactly what
`unclip-harness ...` and `python -m harness ...` run), with Hydra's job launch replaced by a test failure:
a row passes only if the input is refused before a job could start. One row per input; `{tmp}` is a fresh
folder, `{file}` a plain file in it, `{garbage}` random bytes, `{code}` a pickle that would run a command when
unpickled, `{missing}` a path that does not exist.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import harness.cli

BAD_INPUTS = [
    # (overrides, the key the one line must name)
    # Keys, types and values the schema refuses.
    (["data.resolution=17"], "data.resolution"),
    (["data.resolution=abc"], "data.resolution"),
    (["data.num_images=-1"], "data.num_images"),
    (["data.nokey=3"], "data.nokey"),
    (["+data.nokey=3"], "data.nokey"),
    (["data.val_fraction=0.9"], "data.val_fraction"),
    (["data.shapes.num_shapes=9"], "data.shapes.num_shapes"),
    (["data.shapes.two_object_size=medium"], "data.shapes.two_object_size"),  # two sizes: small and large
    (["evaluator.clip_width_factor=1", "evaluator.clip_extra_layers=0"], "evaluator.clip_width_factor"),
    (["report.confidence=0.3"], "report.confidence"),
    # (overrides are format strings here: doubled braces are one brace on the command line)
    (["report.primary=[{{question: q9, a: glide, b: clip_text}}]"], "report.primary[0].question"),
    (["report.primary=[{{contrast: ratio, a: glide, b: clip_text}}]"], "report.primary[0].contrast"),
    (["report.primary=[{{a: glide}}]"], "report.primary[0].b"),
    (["report.primary=[{{a: unclip/per_sample, b: glide}}]"], "report.primary[0].a"),  # a line is named by its label
    (["report.primary=[{{contrast: matched_diversity, a: glide, b: clip_text, a_base: glide}}]"],
     "report.primary[0].b_base"),
    (["sweep.reliance_guidance=[0]"], "sweep.reliance_guidance"),
    (["sweep.guidance=[1,-2]"], "sweep.guidance"),
    (["sweep.guidance=[]"], "sweep.guidance"),
    (["sweep.sampler=euler"], "sweep.sampler"),
    (["sweep.samples_per_prompt=1"], "sweep.samples_per_prompt"),
    (["sweep.prompt_kinds=[]"], "sweep.prompt_kinds"),
    (["train_seeds=[]"], "train_seeds"),
    (["report.pilot=no_such_pilot"], "report.pilot"),
    (["report.matched_band=[0.9,0.6]"], "report.matched_band"),
    (["workers=0"], "workers"),
    (["precision=fp16"], "precision"),
    (["device=tpu"], "device"),
    (["cache_dir="], "cache_dir"),
    (["logger.mode=verbose"], "logger.mode"),
    (["decoder.train.steps=0"], "decoder.train.steps"),
    (["decoder.train.lr=0"], "decoder.train.lr"),
    (["decoder.train.lr_schedule=linear"], "decoder.train.lr_schedule"),
    (["decoder.train.checkpoint_every=0"], "decoder.train.checkpoint_every"),
    (["clip.patch_size=3"], "clip.patch_size"),
    (["clip.vision_width=131"], "clip.vision_width"),
    (["conditioning=[]"], "conditioning"),
    (["conditioning.glide.p_drop_text=1.5"], "conditioning.glide.p_drop_text"),
    (["conditioning.glide.text_width=30"], "conditioning.glide.text_width"),
    (["conditioning.glide.null_condition=random"], "conditioning.glide.null_condition"),
    (["conditioning.glide.tags=[core,sequence]"], "conditioning.glide.tags"),  # the flags give `sequence`
    (["conditioning.glide.sampling_vector=oracle"], "conditioning.glide.sampling_vector"),
    (["conditioning.glide.vector_source=none", "conditioning.glide.text_sequence=false"],
     "conditioning.glide.vector_source"),
    (["arms.fixed.module=no_such_lab.jitter"], "arms.fixed.module"),
    (["arms=[fixed,per_sample,rerank]", "prior=linear"], "arms.rerank"),  # a closed-form prior draws one vector
    (["arms=[fixed,per_sample,prior_guidance]", "prior.p_uncond=0"], "arms.prior_guidance"),
    (["arms=[fixed,per_sample,cads]", "arms.cads.params.tau1=0.95"], "arms.cads.params.tau1"),
    (["arms=[fixed,per_sample,cads]", "+arms.cads.params.tua1=0.5"], "arms.cads.params.tua1"),
    (["arms=[fixed,per_sample,apg]", "arms.apg.params.eta=high"], "arms.apg.params.eta"),
    (["arms.fixed.modes=[unclp]"], "arms.fixed.modes"),
    (["arms=[fixed,per_sample,nosuch]"], "arms"),
    (["conditioning.unclip.train_seeds=[]"], "conditioning.unclip.train_seeds"),
    (["conditioning.glid.p_drop_text=0.3"], "conditioning.glid"),
    # Group choices that do not exist.
    (["experiment=nosuch"], "experiment"),
    (["conditioning=nonsense"], "conditioning"),
    (["decoder=huge"], "decoder"),
    (["prior=nosuch"], "prior"),
    (["hydra/launcher=nosuch"], "hydra/launcher"),
    # Options that need another one.
    (["data=hf"], "data.hf.path"),
    (["clip=pretrained"], "clip.weights"),
    (["clip=pretrained", "clip.pretrained_tag=openai"], "clip.pretrained_tag"),
    # Files and folders, checked before the first stage.
    (["cache_dir={file}/cache"], "cache_dir"),
    (["clip=pretrained", "clip.weights={missing}"], "clip.weights"),
    (["clip=pretrained", "clip.weights={garbage}"], "clip.weights"),
    (["clip=pretrained", "clip.weights={code}"], "clip.weights"),
    (["clip=pretrained", "clip.architecture=NoSuch-B-1", "clip.weights={garbage}"], "clip.architecture"),
    # A command line Hydra cannot parse, and a multirun whose second job is bad.
    (["data.resolution=[16"], "command line"),
    (["data.num_images=5,-1"], "data.num_images"),
]


class _Pwned:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "garbage.pt").write_bytes(os.urandom(2048))
    torch.save({"weight": _Pwned()}, tmp_path / "code.pt")
    return {"tmp": str(tmp_path), "file": str(tmp_path / "file"), "garbage": str(tmp_path / "garbage.pt"),
            "code": str(tmp_path / "code.pt"), "missing": str(tmp_path / "missing.pt")}


@pytest.mark.parametrize("overrides, key", BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_bad_input_fails_in_one_line_naming_the_key(overrides, key, paths, monkeypatch, capsys):
    monkeypatch.chdir(paths["tmp"])  # the default cache folder would be made here
    argv = [o.format(**paths) for o in ["experiment=smoke", "logger.mode=disabled", *overrides]]
    monkeypatch.setattr(sys, "argv", ["unclip-harness", *argv])
    monkeypatch.setattr(harness.cli, "_hydra_main", lambda: pytest.fail("a job started"))
    with pytest.raises(SystemExit) as exited:
        harness.cli.main()
    assert exited.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}: "), lines
    assert "weights_only=False" not in lines[0]  # torch's advice to run the file's code
    assert not (Path(paths["tmp"]) / "pwned").exists()
    assert not (Path(paths["tmp"]) / "outputs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_the_machine_lacks_fails_in_the_job_before_any_stage(tmp_path):
    """Checked by the job on the machine that runs it (a login node may submit GPU jobs), as a user runs it."""
    result = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", "device=cuda",
                             f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: device: 'cuda': this machine has no CUDA device; use device=cpu or auto"]
    assert not any((tmp_path / "cache").iterdir())  # no stage ran
    assert not (tmp_path / "run").exists()  # and no empty run folder is left behind
