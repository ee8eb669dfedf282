"""The decoder stage: train one UNet under one conditioning mode and one seed, as a cached artifact.

The artifact key holds only what changes the trained weights: the decoder recipe, the mode's training
settings (not its sampling-only ones such as prior draw policies, which the schema marks) under its training
identity, the seed, and the upstream data and embedding artifacts. So `unclip_oracle` reuses the `unclip` decoder, and a sweep
over guidance scales never retrains anything.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from harness.runtime import distributed
from harness.runtime.cache import Artifact
from harness.clip.embeddings import load_embeddings
from harness.conditioning.base import ConditioningMode, ModeInputs, build_mode
from harness.conditioning.condition import Condition
from harness.conditioning.pathways import Dims
from harness.config import MODE_KEYS, Config, key_fields
from harness.runtime.context import Context
from harness.data.splits import load_split
from harness.decoder.diffusion import diffusion_loss, make_train_scheduler
from harness.decoder.unet import build_unet
from harness.runtime.device import effective_precision
from harness.training import train

log = logging.getLogger(__name__)
VERSION = "1"
WEIGHTS = "decoder.pt"


@dataclass
class ClipContext:
    """What modes need from the conditioning CLIP: its sizes and the empty caption's tokens and vector."""
    clip_dim: int
    vocab_size: int
    context_length: int
    empty_tokens: torch.Tensor  # [L]
    empty_vector: torch.Tensor  # [D]


def clip_context(clip: Artifact, embeddings: Artifact, device: torch.device | str = "cpu",
                 precision: str = "auto") -> ClipContext:
    """The ClipContext of a conditioning-CLIP artifact and its embedding artifact."""
    from harness.clip import encode_texts, load_clip

    model, tokenizer = load_clip(clip, device)
    return ClipContext(clip_dim=embeddings.meta["dim"], vocab_size=embeddings.meta["vocab_size"],
                       context_length=embeddings.meta["context_length"], empty_tokens=tokenizer([""])[0].long(),
                       empty_vector=encode_texts(model, tokenizer, [""], precision=precision)[0].cpu())


class Decoder(nn.Module):
    """A UNet and the conditioning mode that feeds it, trained together."""

    def __init__(self, unet: nn.Module, mode: ConditioningMode) -> None:
        super().__init__()
        self.unet, self.mode = unet, mode

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        return self.unet(x_t, t, cond)


def build_decoder(cfg: Config, mode_name: str, clip: ClipContext) -> Decoder:
    unet = build_unet(cfg.decoder.size, cfg.data.resolution)
    dims = Dims(unet.emb_dim, unet.ctx_dim, clip.clip_dim, clip.vocab_size, clip.context_length)
    return Decoder(unet, build_mode(cfg.conditioning[mode_name], dims, clip.empty_tokens, clip.empty_vector))


def artifact_config(cfg: Config, mode_name: str, seed: int) -> dict:
    """What keys one decoder: the fields the schema marks for it (the decoder recipe, the mode's training
    settings), its pathway layout (never the mode's name), the seed and the precision. Modes that train alike
    share their decoders."""
    mode_cfg = cfg.conditioning[mode_name]
    return {**key_fields(cfg, "decoder"), "seed": seed, "precision": effective_precision(cfg.device, cfg.precision),
            "mode": mode_cfg.layout, "conditioning": key_fields(mode_cfg, "decoder", MODE_KEYS)}


def pixels_to_model(pixels: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1]."""
    x = torch.as_tensor(np.asarray(pixels), device=device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def run(ctx: Context) -> Artifact:
    """Train (or reuse) the decoder of the task's mode and seed (`ctx.task`: {"mode", "seed"}) on the train
    split's pixels and its CLIP embeddings."""
    cfg, data, embeddings, device = ctx.cfg, ctx["data"], ctx["embeddings"], ctx.device
    mode_name, seed = ctx.task["mode"], ctx.task["seed"]

    def build(workdir: Path) -> dict:
        clip = clip_context(ctx["clip"], embeddings, device, cfg.precision)
        torch.manual_seed(seed)  # initial weights depend on the seed alone
        model = build_decoder(cfg, mode_name, clip).to(device)
        scheduler = make_train_scheduler(cfg.decoder.num_train_timesteps, cfg.decoder.beta_schedule,
                                         cfg.decoder.prediction)
        pixels = torch.from_numpy(np.array(load_split(data, "train").pixels))  # in memory: batches gather rows
        train_split = load_embeddings(embeddings)["train"]
        tokens, text, image = (train_split[k] for k in ("tokens", "text", "image"))

        def fetch(indices: np.ndarray):
            rows = torch.as_tensor(indices)
            inputs = ModeInputs(tokens[rows].to(device), text[rows].to(device), image[rows].to(device))
            return pixels_to_model(pixels[rows], device), inputs

        def loss_fn(batch, generator: torch.Generator) -> torch.Tensor:
            return training_loss(model, scheduler, cfg, *batch, generator)

        recipe = dataclasses.replace(cfg.decoder.train, seed=seed)
        result = train(model, loss_fn, fetch, len(pixels), recipe, workdir, device, precision=cfg.precision,
                       desc=f"decoder[{mode_name} seed {seed}]", progress=cfg.progress)
        if distributed.is_main():
            torch.save(result.final.state_dict(), workdir / WEIGHTS)
        parameters = sum(p.numel() for p in model.unet.parameters())
        log.info("decoder[%s seed %d]: %.0f images/s, final loss %.4f, %.2fM UNet parameters", mode_name, seed,
                 result.images_per_s, result.history[-1]["loss"] if result.history else float("nan"),
                 parameters / 1e6)
        return {"images_per_s": round(result.images_per_s, 1), "history": result.history,
                "unet_parameters": parameters,
                "mode_parameters": sum(p.numel() for p in model.mode.parameters())}

    return ctx.cache.build("decoder", VERSION, artifact_config(cfg, mode_name, seed), [data, embeddings], build,
                           every_rank=True)


def training_loss(model: Decoder, scheduler: DDPMScheduler, cfg: Config, x0: torch.Tensor, inputs: ModeInputs,
                  generator: torch.Generator) -> torch.Tensor:
    """The decoder's loss on one batch: the mode builds the condition (dropping it at its rates), the UNet
    denoises."""
    cond = model.mode.training_condition(inputs, generator)
    return diffusion_loss(lambda x, t: model.unet(x, t, cond), x0, scheduler, generator, cfg.decoder.min_snr_gamma)


def cost(ctx: Context, rows: int = 2) -> float:
    """The FLOPs left to train the task's decoder: none when it is cached, else those of one training image's
    forward and backward (counted by torch on `rows` images) times the images it trains on. Modes differ by
    their text pathways: glide and combined cost the quick preset 8% more per image than clip_text."""
    cfg, embeddings = ctx.cfg, ctx["embeddings"]
    mode_name, seed = ctx.task["mode"], ctx.task["seed"]
    if ctx.cache.has("decoder", VERSION, artifact_config(cfg, mode_name, seed), [ctx["data"], embeddings]):
        return 0.0
    model = build_decoder(cfg, mode_name, clip_context(ctx["clip"], embeddings, "cpu", "fp32"))
    scheduler = make_train_scheduler(cfg.decoder.num_train_timesteps, cfg.decoder.beta_schedule,
                                     cfg.decoder.prediction)
    train_split = load_embeddings(embeddings)["train"]
    inputs = ModeInputs(*(train_split[k][:rows] for k in ("tokens", "text", "image")))
    x0 = torch.zeros(rows, 3, cfg.data.resolution, cfg.data.resolution)
    with FlopCounterMode(display=False) as counter:
        training_loss(model, scheduler, cfg, x0, inputs, torch.Generator().manual_seed(0)).backward()
    return counter.get_total_flops() / rows * cfg.decoder.train.steps * cfg.decoder.train.batch_size


def load(artifact: Artifact, cfg: Config, mode_name: str, clip: ClipContext, device: torch.device) -> Decoder:
    """The trained decoder (EMA weights when the recipe keeps an EMA), in eval mode."""
    model = build_decoder(cfg, mode_name, clip)
    state = torch.load(artifact.file(WEIGHTS), map_location="cpu", weights_only=True)
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items() if k != "n_averaged"})
    return model.to(device).eval()
