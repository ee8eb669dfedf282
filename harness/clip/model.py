"""CLIP models stored as open_clip "local-dir" folders: `open_clip_config.json` + `open_clip_model.safetensors`.

Every CLIP artifact (trained from scratch, pretrained, or the evaluation CLIP) is written in open_clip's own
folder format, so loading any of them is one `open_clip.create_model("local-dir:<folder>")` call, with the
weights read by open_clip under `weights_only` / safetensors, and the folder is usable outside the harness.
A scratch architecture is a model config written into that folder before the model is created: the route
open_clip supports for custom architectures without touching its global registry of named configs.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import open_clip
import torch
from safetensors.torch import save_file
from torch import nn

from harness.runtime.cache import Artifact
from harness.config import ClipConfig

Tokenizer = Callable[[Sequence[str]], torch.Tensor]  # captions -> token ids [N, context_length]

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"


def scratch_model_config(cfg: ClipConfig, resolution: int) -> dict:
    """An open_clip model config: a ViT built at the data resolution and a text transformer for short captions.

    The vocabulary size is left to open_clip's default, which is the size of its tokenizer's vocabulary.
    """
    return {
        "embed_dim": cfg.embed_dim,
        "vision_cfg": {"image_size": resolution, "patch_size": cfg.patch_size, "width": cfg.vision_width,
                       "layers": cfg.vision_layers, "head_width": cfg.vision_width // cfg.vision_heads},
        "text_cfg": {"context_length": cfg.context_length, "width": cfg.text_width, "heads": cfg.text_heads,
                     "layers": cfg.text_layers},
    }


def pixel_statistics(pixels: np.ndarray, sample: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images [N, H, W, 3] in [0, 1]: the normalisation a scratch model uses."""
    rows = np.linspace(0, len(pixels) - 1, num=min(sample, len(pixels))).astype(int)
    values = np.asarray(pixels[rows], dtype=np.float64).reshape(-1, 3) / 255.0
    return values.mean(axis=0).tolist(), np.maximum(values.std(axis=0), 1e-3).tolist()


def write_config(folder: Path, model_cfg: dict, preprocess_cfg: dict) -> None:
    preprocess = {k: list(v) if isinstance(v, tuple) else v for k, v in preprocess_cfg.items()}
    (folder / CONFIG_FILE).write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess}, indent=2))


@contextlib.contextmanager
def quiet(level: int) -> Iterator[None]:
    """Silence log records up to `level` while open_clip builds a model.

    open_clip logs each step of model creation on the root logger, which the harness's logging shows; for a
    scratch model it also warns that no pretrained weights were loaded, which is the point.
    """
    previous = logging.root.manager.disable
    logging.disable(max(level, previous))
    try:
        yield
    finally:
        logging.disable(previous)


def create_from_folder(folder: Path, device: torch.device,
                       load_weights: bool = True) -> tuple[nn.Module, Tokenizer]:
    """(model, tokenizer) from a local-dir folder; without `load_weights` the model is freshly initialised."""
    name = f"local-dir:{folder}"
    with quiet(logging.INFO if load_weights else logging.WARNING):
        model = open_clip.create_model(name, device=device, load_weights=load_weights)
        return model, open_clip.get_tokenizer(name)


def save_weights(model: nn.Module, folder: Path) -> None:
    """The model's weights as safetensors, under the file name open_clip looks for in a local-dir folder."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))


def load_clip(artifact: Artifact, device: torch.device | str = "cpu") -> tuple[nn.Module, Tokenizer]:
    """(model in eval mode, tokenizer) of a CLIP artifact: the conditioning CLIP or the evaluation CLIP."""
    model, tokenizer = create_from_folder(artifact.path, torch.device(device))
    return model.eval(), tokenizer
