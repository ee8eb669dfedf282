"""One recipe for every CLIP the harness trains: the conditioning CLIP and the evaluation CLIP.

An open_clip model is created from the scratch architecture in `ClipConfig` (built at the images' resolution),
trained with `HardNegativeClipLoss` (plain `ClipLoss` unless hard negatives are on) through the shared loop in
`harness.training` (exact resume from the folder's checkpoint, EMA, NaN stop, progress bar with loss and
images/s), and saved into the same folder in open_clip's local-dir format. No augmentation: the captions name
positions and left/right, which flips and crops would falsify.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.runtime import distributed

from harness import training
from harness.clip.encode import CaptionTokens, preprocess
from harness.clip.loss import HardNegativeClipLoss
from harness.clip.model import (Tokenizer, create_from_folder, pixel_statistics, save_weights,
                                scratch_model_config, write_config)
from harness.clip.negatives import HardNegatives
from harness.config import ClipConfig
from harness.data.world import Prompt


@dataclass
class CaptionedImages:
    """A training set: uint8 pixels [N, H, W, 3] and captions; prompts and scene records on the shapes world."""
    pixels: np.ndarray
    captions: list[str]
    prompts: list[Prompt] | None = None
    records: list[dict] | None = None


def train_clip(folder: Path, data: CaptionedImages, cfg: ClipConfig, *, seed: int, device: torch.device,
               negatives: HardNegatives | None = None, precision: str = "auto", progress: bool = True,
               desc: str = "clip") -> tuple[torch.nn.Module, Tokenizer, training.TrainResult]:
    """Train a scratch CLIP on `data` into `folder` (resuming from its checkpoint); returns (model, tokenizer,
    result) with the final (EMA when enabled) weights in eval mode."""
    mean, std = pixel_statistics(data.pixels)
    if distributed.is_main():
        write_config(folder, scratch_model_config(cfg, data.pixels.shape[1]),
                     {"size": data.pixels.shape[1], "mean": mean, "std": std})
    distributed.barrier()  # under torchrun, the other ranks build their model from the config rank 0 wrote
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # initial weights depend on the seed only
        model, tokenizer = create_from_folder(folder, device, load_weights=False)
    tokens = CaptionTokens(tokenizer)
    caption_tokens = tokens(data.captions)
    pixels = torch.from_numpy(np.array(data.pixels))  # in memory, writable (a memory map is read-only)
    # Under torchrun each rank scores its images against the captions of the whole global batch (features are
    # gathered with their gradients), so the contrastive loss is the one a single process computes.
    loss = HardNegativeClipLoss(local_loss=True, gather_with_grad=True, rank=distributed.rank(),
                                world_size=distributed.world_size())
    if negatives is not None and (data.prompts is None or data.records is None):
        raise ValueError("hard negatives need the shapes world's prompts and scene records")

    def fetch(indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        return preprocess(pixels[indices], model), caption_tokens[indices].to(device), indices

    def loss_fn(batch: tuple[torch.Tensor, torch.Tensor, np.ndarray], generator: torch.Generator) -> torch.Tensor:
        images, texts, indices = batch
        image_features = model.encode_image(images, normalize=True)
        # open_clip's recipe clamps the temperature at 100; clamping the exponent has the same effect here.
        scale = model.logit_scale.exp().clamp(max=100.0)
        if negatives is None:
            return loss(image_features, model.encode_text(texts, normalize=True), scale)
        # One stream per step and rank: rank 0 (a single process) draws what it always drew; other ranks draw
        # their own negatives, so with hard negatives N processes train an equivalent but not identical recipe.
        seed = int(torch.randint(2 ** 62, (1,), generator=generator, device=generator.device))
        rng = np.random.default_rng(seed + distributed.rank())
        false = negatives([data.prompts[i] for i in indices], [data.records[i] for i in indices], rng)
        features = model.encode_text(torch.cat([texts, tokens(false).to(device)]), normalize=True)
        text_features, negative_features = features[:len(texts)], features[len(texts):]
        return loss(image_features, text_features, scale,
                    negative_text_features=negative_features.view(len(texts), negatives.count, -1))

    result = training.train(model, loss_fn, fetch, len(data.captions), dataclasses.replace(cfg.train, seed=seed),
                            folder, device, precision=precision, desc=desc, progress=progress)
    final = result.final.eval()
    if distributed.is_main():
        save_weights(final, folder)
    return final, tokenizer, result
