"""How good is a CLIP? Zero-shot attribute accuracy on fresh shapes and text-to-image retrieval.

- zero-shot: single-object images rendered fresh by the world; each attribute is read by comparing the image
  with one caption per value, written by the world's own caption grammar ("a red shape", "a circle", "a small
  shape", "a shape at the top left", "a shape on a black background"), through open_clip's zero-shot
  classifier builder. Chance is 1 / number of values.
- retrieval: each caption ranks the images of a held-out split; recall@k is how often its own image is in
  the top k. Captions that leave attributes free match many images, so on the shapes world we also report how
  often the top image satisfies everything the caption mentions (`ShapesWorld.check` on its true scene).
- binding (question 5, docs/questions.md): for held-out two-object images, how often the image prefers its caption
  to the same caption with the colours or the shapes swapped between the objects.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from open_clip import build_zero_shot_classifier
from torch import nn

from harness.clip.encode import encode_images, encode_texts
from harness.clip.model import Tokenizer
from harness.clip.negatives import HardNegatives
from harness.runtime.context import Context
from harness.data.splits import Split
from harness.data.world import ObjectSpec, Prompt, ShapesWorld
from harness.seeds import derived_seed

ZERO_SHOT_IMAGES = 1000
RETRIEVAL_ROWS = 2000
ATTRIBUTES = ("color", "shape", "size", "position", "background")


def attribute_caption(attribute: str, value: str) -> str:
    """The world's caption for a single object that fixes only `attribute`."""
    if attribute == "background":
        return Prompt("free", (ObjectSpec(),), background=value).caption
    return Prompt("free", (ObjectSpec(**{attribute: value}),)).caption


@torch.no_grad()
def zero_shot_accuracy(model: nn.Module, tokenizer: Tokenizer, world: ShapesWorld, seed: int,
                       precision: str = "auto", n: int = ZERO_SHOT_IMAGES) -> dict[str, dict[str, float]]:
    """{attribute: {"accuracy", "chance"}} on n fresh single-object images, for attributes with 2+ values."""
    rng = np.random.default_rng(seed)
    scenes = [world.sample_scene(Prompt("free", (ObjectSpec(),)), rng) for _ in range(n)]
    records = [s.to_record(world.vocab.grid) for s in scenes]
    image_features = encode_images(model, world.render(scenes), precision=precision)
    device = image_features.device
    out = {}
    for attribute in ATTRIBUTES:
        values = world.vocab.values(attribute)
        if len(values) < 2:
            continue
        classifier = build_zero_shot_classifier(model, tokenizer, values,
                                                [lambda v, a=attribute: attribute_caption(a, v)],
                                                num_classes_per_batch=None, device=device)
        predicted = (image_features @ classifier.float()).argmax(dim=1).cpu().numpy()
        truth = np.array([values.index(r["background"] if attribute == "background" else r["objects"][0][attribute])
                          for r in records])
        out[attribute] = {"accuracy": float((predicted == truth).mean()), "chance": 1.0 / len(values)}
    return out


def retrieval(text_vectors: torch.Tensor, image_vectors: torch.Tensor, ks: Sequence[int] = (1, 5),
              world: ShapesWorld | None = None, prompts: Sequence[Prompt] | None = None,
              records: Sequence[dict] | None = None) -> dict[str, float]:
    """Text-to-image recall@k over paired rows; with the world, also the top image's caption satisfaction."""
    similarity = text_vectors.float() @ image_vectors.float().T
    own = similarity.diagonal()[:, None]
    rank = (similarity > own).sum(dim=1)  # images scored strictly above the caption's own image
    out = {f"recall@{k}": float((rank < k).float().mean()) for k in ks}
    if world is not None and prompts is not None and records is not None:
        top = similarity.argmax(dim=1).tolist()
        out["top1_satisfies"] = float(np.mean([all(world.check(p, records[j]).values())
                                               for p, j in zip(prompts, top)]))
    return out


def binding_accuracy(model: nn.Module, tokenizer: Tokenizer, image_vectors: torch.Tensor,
                     prompts: Sequence[Prompt], records: Sequence[dict], world: ShapesWorld,
                     precision: str = "auto") -> dict[str, float]:
    """How often an image with a two-object caption scores its caption above both swapped versions of it
    (colours swapped, shapes swapped: the same words, bound the other way). Chance is 1/3."""
    rows = [i for i, p in enumerate(prompts) if p.relation]
    if not rows:
        return {}
    swaps, rng = HardNegatives(world.vocab, 2), np.random.default_rng(0)  # two negatives = the two swaps
    captions = [caption for i in rows for caption in
                [prompts[i].caption] + [f.caption for f in swaps.false_prompts(prompts[i], records[i], rng)]]
    text = encode_texts(model, tokenizer, captions, precision=precision).view(len(rows), 3, -1)
    scores = (text * image_vectors[rows][:, None, :]).sum(dim=-1)
    correct = scores[:, 0] > scores[:, 1:].max(dim=1).values
    return {"swap_accuracy": float(correct.float().mean()), "chance": 1 / 3, "images": len(rows)}


def clip_quality(model: nn.Module, tokenizer: Tokenizer, pixels: np.ndarray, captions: Sequence[str], *,
                 world: ShapesWorld | None = None, prompts: Sequence[Prompt] | None = None,
                 records: Sequence[dict] | None = None, zero_shot_seed: int = 0,
                 precision: str = "auto") -> dict:
    """Retrieval on held-out (pixels, captions) and, on the shapes world, zero-shot attribute accuracy and
    binding accuracy."""
    text = encode_texts(model, tokenizer, captions, precision=precision)
    image = encode_images(model, pixels, precision=precision)
    figures: dict = {"retrieval": retrieval(text, image, world=world, prompts=prompts, records=records)}
    if world is not None:
        figures["zero_shot"] = zero_shot_accuracy(model, tokenizer, world, zero_shot_seed, precision)
        if prompts is not None and records is not None:
            figures["binding"] = binding_accuracy(model, tokenizer, image, prompts, records, world, precision)
    return figures


def summary_line(figures: dict) -> str:
    """One log line: zero-shot accuracies (with chance) and retrieval figures."""
    parts = [f"zero-shot {a} {v['accuracy']:.3f} (chance {v['chance']:.2f})"
             for a, v in figures.get("zero_shot", {}).items()]
    parts += [f"{k} {v:.3f}" for k, v in figures["retrieval"].items()]
    if figures.get("binding"):
        parts.append(f"binding swap accuracy {figures['binding']['swap_accuracy']:.3f} (chance 0.33)")
    return ", ".join(parts)


def split_quality(model: nn.Module, tokenizer: Tokenizer, split: Split, ctx: Context,
                  limit: int = RETRIEVAL_ROWS) -> dict:
    """`clip_quality` on the first `limit` rows of a dataset split (retrieval compares every pair), with the
    world (zero-shot on fresh images) when the data is shapes."""
    cfg = ctx.cfg
    world = ctx.world if cfg.data.source == "shapes" else None
    n = min(limit, len(split))
    return clip_quality(model, tokenizer, np.asarray(split.pixels[:n]), split.captions[:n], world=world,
                        prompts=split.prompts[:n] if split.prompts else None,
                        records=split.attributes[:n] if split.attributes else None,
                        zero_shot_seed=derived_seed(cfg.data.seed, "clip_zero_shot"), precision=cfg.precision)
