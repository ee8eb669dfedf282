"""The `probe` stage: train the attribute probe on fresh real images and measure it on held-out ones.

Training images are rendered by the world with a seed derived from `data.seed` (never the dataset's own seed),
half with one object (everything drawn from the world's distribution) and half with two (a binding prompt's
scene), so both slots are well trained whatever the dataset's mix. Accuracy is measured on another fresh
set and on the dataset's test split, per attribute: background and count per image, and shape, colour, size
and position per object, matched slot by slot in reading order.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch

from harness.runtime import distributed

from harness import training
from harness.runtime.cache import Artifact
from harness.config import key_fields
from harness.runtime.context import Context
from harness.data.splits import load_split
from harness.data.world import ObjectSpec, Prompt, ShapesWorld, Vocabulary
from harness.runtime.device import effective_precision
from harness.errors import HarnessError
from harness.evaluator.probe_model import Probe, ProbeNet, encode_labels, probe_loss, reading_order
from harness.images import to_unit_range
from harness.seeds import derived_seed

log = logging.getLogger(__name__)
VERSION = "1"
HELD_OUT_IMAGES = 2000
WEIGHTS, SPEC = "probe.pt", "probe.json"
OBJECT_ATTRIBUTES = ("shape", "color", "size", "position")


def render_scenes(world: ShapesWorld, n: int, seed: int) -> tuple[list[dict], np.ndarray]:
    """n (record, image) pairs, half with one free object and half with two (see the module docstring)."""
    rng = np.random.default_rng(seed)
    prompts = [world.sample_prompt(rng, "binding") if i % 2 else Prompt("free", (ObjectSpec(),)) for i in range(n)]
    scenes = [world.sample_scene(p, rng) for p in prompts]
    return [s.to_record(world.vocab.grid) for s in scenes], world.render(scenes)


def attribute_accuracy(predicted: list[dict], truth: list[dict]) -> dict[str, float]:
    """Per-attribute accuracy of predicted scene records against true ones (module docstring)."""
    hits: dict[str, list[bool]] = {name: [] for name in ("background", "count", *OBJECT_ATTRIBUTES, "scene")}
    for guess, real in zip(predicted, truth):
        ours, theirs = reading_order(guess), reading_order(real)
        hits["background"].append(guess["background"] == real["background"])
        hits["count"].append(len(ours) == len(theirs))
        for k, obj in enumerate(theirs):
            for attribute in OBJECT_ATTRIBUTES:
                hits[attribute].append(k < len(ours) and ours[k][attribute] == obj[attribute])
        hits["scene"].append(hits["count"][-1] and guess["background"] == real["background"] and all(
            o[a] == t[a] for o, t in zip(ours, theirs) for a in OBJECT_ATTRIBUTES))
    return {name: float(np.mean(values)) for name, values in hits.items()}


def run(ctx: Context) -> Artifact:
    """Build (or reuse) the attribute probe of the shapes world behind `ctx["data"]`; load it with
    `load_probe`."""
    cfg, data, device = ctx.cfg, ctx["data"], ctx.device
    if cfg.data.source != "shapes":
        raise HarnessError("evaluator.probe: the attribute probe reads the shapes world; with data=hf the "
                           "evaluation CLIP is the judge")
    probe_cfg = cfg.evaluator.probe

    def build(workdir: Path) -> dict:
        world = ctx.world
        records, pixels = render_scenes(world, probe_cfg.num_train_images, derived_seed(cfg.data.seed, "probe_train"))
        labels = torch.tensor([encode_labels(r, world.vocab) for r in records])
        images = torch.from_numpy(pixels)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(probe_cfg.train.seed)
            net = ProbeNet(world.vocab, cfg.data.resolution, probe_cfg.width, probe_cfg.feature_dim)

        def fetch(indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            return to_unit_range(images[indices], device) * 2 - 1, labels[indices].to(device)

        def loss_fn(batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
            return probe_loss(net(batch[0])[1], batch[1], world.vocab)

        result = training.train(net, loss_fn, fetch, len(labels), probe_cfg.train, workdir, device,
                                precision=cfg.precision, desc="probe", progress=cfg.progress)
        if distributed.is_main():
            torch.save(result.final.state_dict(), workdir / WEIGHTS)
            (workdir / SPEC).write_text(json.dumps({"resolution": cfg.data.resolution, "width": probe_cfg.width,
                                                    "feature_dim": probe_cfg.feature_dim,
                                                    "vocab": dataclasses.asdict(world.vocab)}))
        probe = Probe(result.final, world.vocab)
        held_records, held_pixels = render_scenes(world, HELD_OUT_IMAGES, derived_seed(cfg.data.seed, "probe_held_out"))
        test = load_split(data, "test")
        meta = {"train": result.summary(), "accuracy": attribute_accuracy(probe.read(held_pixels), held_records),
                "accuracy_test_split": attribute_accuracy(probe.read(test.pixels), test.attributes)}
        log.info("probe accuracy on %d fresh real images: %s", HELD_OUT_IMAGES,
                 ", ".join(f"{k} {v:.4f}" for k, v in meta["accuracy"].items()))
        return meta

    config = {**key_fields(cfg, "probe"), "precision": effective_precision(cfg.device, cfg.precision)}
    return ctx.cache.build("probe", VERSION, config, [data], build, every_rank=True)


def load_probe(artifact: Artifact, device: torch.device | str = "cpu") -> Probe:
    """The trained probe of a probe artifact, in eval mode on `device`."""
    spec = json.loads(artifact.file(SPEC).read_text())
    vocab = Vocabulary(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["vocab"].items()})
    net = ProbeNet(vocab, spec["resolution"], spec["width"], spec["feature_dim"])
    net.load_state_dict(torch.load(artifact.file(WEIGHTS), map_location="cpu", weights_only=True))
    return Probe(net.to(device), vocab)
