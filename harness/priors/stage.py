"""The `prior` stage: fit every prior of `prior.compare` plus `prior.kind` and score them side by side.

Each prior is fitted on the train split's (text vector, caption tokens, image vector) embeddings and saved as
a state dict (`prior_<name>.pt`, weights_only loadable) beside `priors.json`, which holds the constructor
arguments `load_prior` needs. Quality (`harness.priors.prior_quality`) is measured on the first
`EVAL_CAPTIONS` val captions against a bank of all val image vectors: cosine to the caption's own image
vector, and, on the shapes world, how often the bank image nearest to the drawn vector satisfies every
attribute the caption mentions (`ShapesWorld.check` on its true scene). With `data=hf` there is no such
check; the bank image is then counted a hit only when it is the caption's own image.

The diffusion prior trains in the shared loop (`harness.training`) and checkpoints into `train_diffusion/`,
so a killed build resumes; under torchrun every rank fits the priors and rank 0 writes the files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from harness.runtime import distributed
from harness.runtime.cache import Artifact
from harness.clip.embeddings import load_embeddings
from harness.config import Config, key_fields
from harness.runtime.context import Context
from harness.data.splits import load_split
from harness.runtime.device import effective_precision
from harness.priors import Prior, build_prior, prior_quality

log = logging.getLogger(__name__)
VERSION = "1"
EVAL_CAPTIONS = 500
SPEC = "priors.json"


def constructor_kwargs(name: str, cfg: Config) -> dict:
    """The config's arguments for prior `name` (beyond dim, vocabulary size and context length)."""
    p = cfg.prior
    if name == "diffusion":
        return {"width": p.width, "depth": p.depth, "heads": p.heads, "p_uncond": p.p_uncond,
                "guidance": p.guidance, "best_of": p.best_of, "sample_steps": p.sample_steps,
                "precision": effective_precision(cfg.device, cfg.precision)}
    if name == "linear":
        return {"alpha": p.ridge_alpha}
    return {}


def satisfaction(ctx: Context, n: int) -> tuple[torch.Tensor, str]:
    """[n, bank] bool: does val image m satisfy val caption b? and the name of the figure it gives."""
    split = load_split(ctx["data"], "val")
    if ctx.cfg.data.source != "shapes":
        return torch.eye(len(split), dtype=torch.bool)[:n], "retrieval_own_image_top1"
    world = ctx.world
    rows: dict[str, list[bool]] = {}  # captions repeat: check each distinct caption once
    for prompt in split.prompts[:n]:
        if prompt.caption not in rows:
            rows[prompt.caption] = [all(world.check(prompt, record).values()) for record in split.attributes]
    return torch.tensor([rows[p.caption] for p in split.prompts[:n]]), "retrieval_top1"


def run(ctx: Context) -> Artifact:
    """Build (or reuse) the fitted priors; load one with `load_prior(artifact, name, device)`."""
    cfg, data, embeddings, device = ctx.cfg, ctx["data"], ctx["embeddings"], ctx.device
    names = sorted(set(cfg.prior.compare) | {cfg.prior.kind})

    def build(workdir: Path) -> dict:
        table = load_embeddings(embeddings)
        train, val = table["train"], table["val"]
        n = min(EVAL_CAPTIONS, len(val["text"]))
        satisfies, retrieval_name = satisfaction(ctx, n)
        dims = {"dim": embeddings.meta["dim"], "vocab_size": embeddings.meta["vocab_size"],
                "context_length": embeddings.meta["context_length"]}
        spec, meta = {}, {}
        for name in names:
            spec[name] = {**dims, "kwargs": constructor_kwargs(name, cfg)}
            prior = build_prior(name, **dims, **spec[name]["kwargs"])
            checkpoints = workdir / f"train_{name}"
            fit = prior.fit(train["text"], train["tokens"], train["image"], cfg.prior.train, workdir=checkpoints,
                            progress=cfg.progress, device=device)
            if distributed.is_main():
                torch.save(prior.state_dict(), workdir / f"prior_{name}.pt")
            generator = torch.Generator(prior.device).manual_seed(cfg.prior.train.seed)
            scores = prior_quality(prior, val["text"][:n].to(prior.device), val["tokens"][:n].to(prior.device),
                                   val["image"][:n], val["image"], satisfies, generator=generator)
            scores[retrieval_name] = scores.pop("retrieval_top1")
            meta[name] = {**scores, "fit": fit}
        if distributed.is_main():
            (workdir / SPEC).write_text(json.dumps(spec, indent=2))
        log.info("priors on %d val captions: %s", n, "; ".join(
            f"{name} cosine {meta[name]['cosine']:.3f} {retrieval_name} {meta[name][retrieval_name]:.3f}"
            for name in names))
        return {"quality": meta, "kind": cfg.prior.kind, "eval_captions": n}

    config = {**key_fields(cfg, "prior"), "precision": effective_precision(cfg.device, cfg.precision)}
    return ctx.cache.build("prior", VERSION, config, [data, embeddings], build, every_rank=True)


def load_prior(artifact: Artifact, name: str, device: torch.device | str = "cpu") -> Prior:
    """Prior `name` of a prior artifact (the one unCLIP uses is `artifact.meta["kind"]`), on `device`."""
    spec = json.loads(artifact.file(SPEC).read_text())
    if name not in spec:
        raise KeyError(f"prior artifact {artifact.key} has no prior {name!r}; it has {', '.join(spec)}")
    entry = spec[name]
    prior = build_prior(name, entry["dim"], entry["vocab_size"], entry["context_length"], **entry["kwargs"])
    prior.load_state_dict(torch.load(artifact.file(f"prior_{name}.pt"), map_location="cpu", weights_only=True))
    return prior.to(device).eval()
