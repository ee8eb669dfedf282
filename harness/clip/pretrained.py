"""`clip=pretrained`: any open_clip architecture with weights from a local file, or a tag when allowed.

The weights are loaded by open_clip (`load_checkpoint`: `torch.load(weights_only=True)` or safetensors, plus its
conversions for third-party layouts). When they do not fit the architecture, open_clip's error is a page of
key lists; we reread the file and report one line naming it and the first key that differs: missing,
unexpected, or of the wrong shape.
"""

from __future__ import annotations

import logging
from pathlib import Path

import open_clip
import torch
from open_clip.factory import load_state_dict
from torch import nn

from harness.clip.model import quiet, save_weights, write_config
from harness.config import ClipConfig
from harness.errors import HarnessError


def fingerprint(cfg: ClipConfig) -> dict:
    """What identifies the pretrained model, for the artifact key: the file by path, size and mtime."""
    out = {"kind": "pretrained", "architecture": cfg.architecture, "pretrained_tag": cfg.pretrained_tag}
    if cfg.weights:
        path = Path(cfg.weights).expanduser().resolve()
        stat = path.stat() if path.is_file() else None
        out.update(weights=str(path), size=stat.st_size if stat else None, mtime_ns=stat.st_mtime_ns if stat else None)
    return out


def first_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """The first key where `state` and the model's own state dict differ, in words; None if they fit."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            return f"missing key {key!r}"
        if tuple(state[key].shape) != tuple(tensor.shape):
            return (f"key {key!r} has shape {list(state[key].shape)}, the architecture expects "
                    f"{list(tensor.shape)}")
    unexpected = next((key for key in state if key not in expected), None)
    return f"unexpected key {unexpected!r}" if unexpected is not None else None


def check_architecture(name: str) -> None:
    if name not in open_clip.list_models():
        raise HarnessError(f"clip.architecture: open_clip has no architecture {name!r}")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors in a .pt/.bin/.safetensors file, read without running any code it carries, or one line
    naming the file. Checked before any stage runs (`harness.preflight`), and again when the model loads."""
    if not path.is_file():
        raise HarnessError(f"clip.weights: no such file {path}")
    try:
        return load_state_dict(str(path), weights_only=True)
    except Exception as exc:  # torch, safetensors and open_clip each raise their own types
        raise HarnessError(f"clip.weights: {path} is not a state dict that loads without running code "
                           f"({_refusal(exc)})") from None


def _refusal(exc: Exception) -> str:
    """Why torch refused the file, without its advice to retry with weights_only=False: for a file of unknown
    origin that advice is how a pickle gets to run its code."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    advice = ("Weights only load failed", "Please file an issue", "Check the documentation")
    reasons = [line for line in lines if not line.startswith(advice)]
    return (reasons or [type(exc).__name__])[0]


def load_weights_file(model: nn.Module, path: Path, architecture: str) -> None:
    """Load a .pt/.bin/.safetensors state dict into `model`, or raise one line naming the file and the key."""
    state = read_state_dict(path)
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except Exception as exc:  # a third-party layout open_clip could not convert, or a mismatch
        problem = first_mismatch(model, state) or str(exc).strip().splitlines()[0]
        raise HarnessError(f"clip.weights {path} does not fit open_clip architecture {architecture}: "
                           f"{problem}") from None


def install_pretrained(cfg: ClipConfig, folder: Path) -> None:
    """Write the pretrained model into `folder` as an open_clip local-dir (config, preprocessing, weights)."""
    check_architecture(cfg.architecture)
    if cfg.weights:
        with quiet(logging.WARNING):  # "initialized randomly": the weights come next
            model = open_clip.create_model(cfg.architecture)
        load_weights_file(model, Path(cfg.weights).expanduser(), cfg.architecture)
    else:  # the config check guarantees a tag and allow_network here
        with quiet(logging.INFO):
            model = open_clip.create_model(cfg.architecture, pretrained=cfg.pretrained_tag)
    write_config(folder, open_clip.get_model_config(cfg.architecture), open_clip.get_model_preprocess_cfg(model))
    save_weights(model, folder)
