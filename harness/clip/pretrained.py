"""Pretrained open_clip models, to condition on (`clip=pretrained`) or to judge with (`evaluator.clip_weights`):
any architecture in open_clip's registry or in a custom model config file, with weights from a local file,
or a tag when allowed.

The weights are loaded by open_clip (`load_checkpoint`: `torch.load(weights_only=True)` or safetensors, plus its
conversions for third-party layouts). When they do not fit the architecture, open_clip's error is a page of
key lists; we reread the file and report one line naming it and the first key that differs: missing,
unexpected, or of the wrong shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from open_clip.factory import load_state_dict
from torch import nn

from harness.clip.model import quiet, save_weights, write_config
from harness.config import ClipConfig, EvaluatorConfig
from harness.errors import HarnessError


@dataclass(frozen=True)
class PretrainedModel:
    """A pretrained open_clip model a config names, for conditioning (`clip.*`) or for judging
    (`evaluator.clip_*`); `prefix` is how its keys are spelt in errors."""
    architecture: str
    weights: str = ""
    pretrained_tag: str = ""
    model_config: str = ""  # a custom open_clip model config (JSON); its file name is then the architecture
    prefix: str = "clip"

    @classmethod
    def conditioning(cls, cfg: ClipConfig) -> PretrainedModel:
        return cls(cfg.architecture, cfg.weights, cfg.pretrained_tag, cfg.model_config, "clip")

    @classmethod
    def judge(cls, cfg: EvaluatorConfig) -> PretrainedModel:
        return cls(cfg.clip_architecture, cfg.clip_weights, "", cfg.clip_model_config, "evaluator.clip")

    @property
    def name(self) -> str:
        """The open_clip architecture name, once `register` has added a custom config."""
        return Path(self.model_config).stem if self.model_config else self.architecture

    def key(self, field: str) -> str:
        """The config key of one of its fields (`weights` -> clip.weights or evaluator.clip_weights)."""
        return f"{self.prefix}.{field}" if self.prefix == "clip" else f"{self.prefix}_{field}"


def register(model: PretrainedModel) -> str:
    """Make the model's architecture known to open_clip (a custom config file is added to its registry) and
    return its name, or fail in one line naming the key."""
    if model.model_config:
        path = Path(model.model_config).expanduser()
        if not path.is_file():
            raise HarnessError(f"{model.key('model_config')}: no such file {path}")
        open_clip.add_model_config(path)
    if model.name not in open_clip.list_models():
        raise HarnessError(f"{model.key('architecture')}: open_clip has no architecture {model.name!r}")
    return model.name


def fingerprint(model: PretrainedModel) -> dict:
    """What identifies the pretrained model, for the artifact key: its architecture (and custom config's
    contents), the weights file by path, size and mtime, or the tag."""
    out = {"kind": "pretrained", "architecture": model.name, "pretrained_tag": model.pretrained_tag}
    if model.model_config:
        config = Path(model.model_config).expanduser()
        out["model_config"] = config.read_text() if config.is_file() else str(config)
    if model.weights:
        path = Path(model.weights).expanduser().resolve()
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


def read_state_dict(path: Path, key: str = "clip.weights") -> dict[str, torch.Tensor]:
    """The tensors in a .pt/.bin/.safetensors file, read without running any code it carries, or one line
    naming the file and its config `key`. Checked before any stage runs (`harness.runtime.preflight`), and again when
    the model loads."""
    if not path.is_file():
        raise HarnessError(f"{key}: no such file {path}")
    try:
        return load_state_dict(str(path), weights_only=True)
    except Exception as exc:  # torch, safetensors and open_clip each raise their own types
        raise HarnessError(f"{key}: {path} is not a state dict that loads without running code "
                           f"({_refusal(exc)})") from None


def _refusal(exc: Exception) -> str:
    """Why torch refused the file, without its advice to retry with weights_only=False: for a file of unknown
    origin that advice is how a pickle gets to run its code."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    advice = ("Weights only load failed", "Please file an issue", "Check the documentation")
    reasons = [line for line in lines if not line.startswith(advice)]
    return (reasons or [type(exc).__name__])[0]


def load_weights_file(model: nn.Module, path: Path, architecture: str, key: str = "clip.weights") -> None:
    """Load a .pt/.bin/.safetensors state dict into `model`, or raise one line naming the file and the key."""
    state = read_state_dict(path, key)
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except Exception as exc:  # a third-party layout open_clip could not convert, or a mismatch
        problem = first_mismatch(model, state) or str(exc).strip().splitlines()[0]
        raise HarnessError(f"{key} {path} does not fit open_clip architecture {architecture}: "
                           f"{problem}") from None


def install_pretrained(spec: PretrainedModel, folder: Path) -> None:
    """Write the pretrained model into `folder` as an open_clip local-dir (config, preprocessing, weights)."""
    name = register(spec)
    if spec.weights:
        with quiet(logging.WARNING):  # "initialized randomly": the weights come next
            model = open_clip.create_model(name)
        load_weights_file(model, Path(spec.weights).expanduser(), name, spec.key("weights"))
    else:  # the config check guarantees a tag and allow_network here
        with quiet(logging.INFO):
            model = open_clip.create_model(name, pretrained=spec.pretrained_tag)
    write_config(folder, open_clip.get_model_config(name), open_clip.get_model_preprocess_cfg(model))
    save_weights(model, folder)
