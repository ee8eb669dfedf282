"""Images and captions -> normalised CLIP vectors, with the model's own preprocessing.

Images arrive in either of the harness's two layouts: dataset pixels (uint8 [N, H, W, 3]) or decoder output
(float [N, 3, H, W] in [-1, 1]). Preprocessing follows the model's open_clip preprocess config: a scratch
model is built at the data resolution, so only the normalisation applies; a pretrained one gets a bicubic
resize to its input size first (our images are square, so this equals open_clip's resize + centre crop).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from harness.clip.model import Tokenizer
from harness.runtime.device import autocast
from harness.images import to_unit_range


def preprocess(images: np.ndarray | torch.Tensor, model: nn.Module) -> torch.Tensor:
    """The model's input for a batch of images (see the module docstring for the layouts accepted)."""
    device = next(model.parameters()).device
    cfg = open_clip.get_model_preprocess_cfg(model)
    x = to_unit_range(images, device)
    size = open_clip.utils.to_2tuple(cfg["size"])
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    mean = torch.tensor(cfg["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(cfg["std"], device=device).view(1, -1, 1, 1)
    return (x - mean) / std


class CaptionTokens:
    """Token ids by caption, memoised: captions repeat a lot and open_clip's tokenizer cleans text slowly."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.rows: dict[str, torch.Tensor] = {}

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(c for c in captions if c not in self.rows))
        if missing:
            self.rows.update(zip(missing, self.tokenizer(missing)))
        return torch.stack([self.rows[c] for c in captions])


@torch.no_grad()
def encode_images(model: nn.Module, images: np.ndarray | torch.Tensor, *, precision: str = "auto",
                  batch_size: int = 512) -> torch.Tensor:
    """Unit-norm image vectors [N, D] (float32, on the model's device)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        with autocast(device, precision):
            out.append(model.encode_image(preprocess(images[start:start + batch_size], model)).float())
    return F.normalize(torch.cat(out), dim=-1)


@torch.no_grad()
def encode_texts(model: nn.Module, tokenizer: Tokenizer, captions: Sequence[str],
                 *, precision: str = "auto", batch_size: int = 512) -> torch.Tensor:
    """Unit-norm text vectors [N, D] (float32, on the model's device)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(captions), batch_size):
        tokens = tokenizer(list(captions[start:start + batch_size])).to(device)
        with autocast(device, precision):
            out.append(model.encode_text(tokens).float())
    return F.normalize(torch.cat(out), dim=-1)
