"""A compact pixel-space UNet decoder that consumes any `Condition` (docs/design.md, sections 2 and 3).

How a `Condition` enters the network, identically for every conditioning mode:
- `cond.vector` [B, emb_dim] is added to the timestep embedding, so it modulates every residual block.
- `cond.tokens` [B, T, ctx_dim] become extra keys/values in every attention layer; queries stay spatial.
  `cond.mask` removes tokens from attention; spatial positions are always attendable, so a fully masked
  (e.g. null) condition still yields a well-defined softmax.

`harness.decoder.attention_record` measures how much attention mass each layer puts on spatial positions versus
each named token group (research question 4) without touching the fast path; `harness.decoder.cpu_slices` runs a
CPU's inference in cache-sized slices. This file is the model alone.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from harness.conditioning.condition import Condition
from harness.decoder.attention_record import AttentionRecorder, recorded_attention
from harness.decoder.cpu_slices import in_cpu_slices

# Presets sized for 16-64 px. `attention_resolutions` are feature-map sizes in pixels, as in ADM; the middle
# block always has attention, so sizes that a given resolution never reaches only drop layers.
# tiny is for CPU runs: its thin full-resolution level and third (4x4 at 16 px) level cost 48 MFLOP per 16 px
# forward, against 131 for width 32 with mults (1, 2), which measured ~2x slower to train on this CPU.
UNET_SIZES: dict[str, dict] = {
    "tiny": dict(width=16, channel_mults=(1, 2, 4), num_res_blocks=1, attention_resolutions=(8,), heads=2),
    "small": dict(width=64, channel_mults=(1, 2, 2), num_res_blocks=2, attention_resolutions=(16, 8), heads=4),
    "base": dict(width=128, channel_mults=(1, 2, 2, 2), num_res_blocks=2, attention_resolutions=(16, 8), heads=4),
}


def group_norm(channels: int) -> nn.GroupNorm:
    # At least 4 channels per group: with one channel per group (32 groups of a width-32 layer) GroupNorm
    # degenerates into instance norm and throws away the per-image colour statistics.
    return nn.GroupNorm(math.gcd(32, max(channels // 4, 1)), channels)


def zero_init(module: nn.Module) -> nn.Module:
    """Residual branches start as the identity, which keeps early training stable (ADM, DiT)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


#################################################################################
#                          Timestep Embedding                                   #
#################################################################################

def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of (possibly fractional) timesteps t [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


#################################################################################
#                        Residual and Attention Blocks                          #
#################################################################################

class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the embedding scales and shifts the second normalisation (ADM)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb_proj(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over spatial positions, with condition tokens as extra keys/values."""

    def __init__(self, channels: int, heads: int, ctx_dim: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels cannot be split into {heads} heads")
        self.heads = heads
        self.norm = group_norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.ctx_kv = nn.Linear(ctx_dim, 2 * channels)  # per layer, as GLIDE's encoder_kv
        self.proj = zero_init(nn.Linear(channels, channels))
        # Set by `record_attention` only (the recorder and this layer's name); None keeps the fused
        # scaled_dot_product_attention path.
        self.recording: tuple[AttentionRecorder, str] | None = None

    def forward(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]
        q, k, v = self.qkv(seq).chunk(3, dim=-1)
        attn_mask = None
        if cond.tokens is not None:
            ck, cv = self.ctx_kv(cond.tokens).chunk(2, dim=-1)
            k, v = torch.cat([k, ck], dim=1), torch.cat([v, cv], dim=1)
            spatial = torch.ones(b, h * w, dtype=torch.bool, device=x.device)
            attn_mask = torch.cat([spatial, cond.mask.to(x.device)], dim=1)[:, None, None, :]
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))  # [B, heads, N, d]

        if self.recording is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        else:
            out = recorded_attention(self.recording, q, k, v, attn_mask,
                                     cond.token_groups if cond.tokens is not None else (), h * w)
        out = self.proj(out.transpose(1, 2).flatten(2))  # [B, HW, C]
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class UNetBlock(nn.Module):
    """One residual block, optionally followed by attention."""

    def __init__(self, in_ch: int, out_ch: int, *, attention: bool, emb_dim: int, ctx_dim: int,
                 heads: int, dropout: float) -> None:
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, dropout)
        self.attn = Attention(out_ch, heads, ctx_dim) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor, cond: Condition) -> torch.Tensor:
        x = self.res(x, emb)
        return x if self.attn is None else self.attn(x, cond)


class Level(nn.Module):
    """The blocks at one resolution, then the resampling to the next (None at the ends of the UNet)."""

    def __init__(self, blocks: list[UNetBlock], resample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.resample = resample


class Downsample(nn.Conv2d):
    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, 3, stride=2, padding=1)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


#################################################################################
#                                   UNet                                        #
#################################################################################

class UNet(nn.Module):
    """Noise/velocity predictor eps(x_t, t, cond) for images in [-1, 1].

    `emb_dim` (= 4 * width) is the width a mode must project `cond.vector` to; `ctx_dim` is the width of
    `cond.tokens` and defaults to `emb_dim`, so one projection width serves both pathways.
    """

    def __init__(self, *, resolution: int, width: int, channel_mults: tuple[int, ...], num_res_blocks: int,
                 attention_resolutions: tuple[int, ...], heads: int, ctx_dim: int | None = None,
                 in_channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        downsamples = len(channel_mults) - 1
        if resolution % (2 ** downsamples):
            raise ValueError(f"resolution {resolution} is not divisible by 2^{downsamples}, "
                             f"as {len(channel_mults)} levels need")
        self.resolution, self.width = resolution, width
        self.emb_dim = 4 * width
        self.ctx_dim = ctx_dim or self.emb_dim
        self.time_embed = nn.Sequential(nn.Linear(width, self.emb_dim), nn.SiLU(),
                                        nn.Linear(self.emb_dim, self.emb_dim))
        # One shared norm so that modes may hand over tokens at any scale (GLIDE normalises its text states).
        self.ctx_norm = nn.LayerNorm(self.ctx_dim)
        self.conv_in = nn.Conv2d(in_channels, width, 3, padding=1)
        block = functools.partial(UNetBlock, emb_dim=self.emb_dim, ctx_dim=self.ctx_dim, heads=heads,
                                  dropout=dropout)

        # Down path; every block output (and the stem) is kept as a skip connection for the up path.
        ch, size = width, resolution
        skip_channels = [ch]
        down = []
        for level, mult in enumerate(channel_mults):
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(block(ch, width * mult, attention=size in attention_resolutions))
                ch = width * mult
                skip_channels.append(ch)
            resample = Downsample(ch) if level < downsamples else None
            if resample is not None:
                skip_channels.append(ch)
                size //= 2
            down.append(Level(blocks, resample))
        self.down = nn.ModuleList(down)

        self.mid = nn.ModuleList([block(ch, ch, attention=True), block(ch, ch, attention=False)])

        # Up path, built deepest level first (the order it runs) but stored by level so that "up.1" and
        # "down.1" name the same resolution.
        up = []
        for level, mult in reversed(list(enumerate(channel_mults))):
            blocks = []
            for _ in range(num_res_blocks + 1):
                skip = skip_channels.pop()
                blocks.append(block(ch + skip, width * mult, attention=size in attention_resolutions))
                ch = width * mult
            resample = Upsample(ch) if level > 0 else None
            if resample is not None:
                size *= 2
            up.append(Level(blocks, resample))
        self.up = nn.ModuleList(reversed(up))

        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), zero_init(nn.Conv2d(ch, in_channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        """x [B, C, H, W], t [B] (or a scalar, broadcast) timesteps, cond -> prediction [B, C, H, W]. Inference on
        a CPU runs in slices of the batch (`harness.decoder.cpu_slices`), with the same output row for row."""
        t = torch.as_tensor(t, device=x.device).expand(x.shape[0])
        return in_cpu_slices(self._forward, self, x, t, cond)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(t, self.width))
        if cond.vector is not None:
            emb = emb + cond.vector
        if cond.tokens is not None:
            cond = replace(cond, tokens=self.ctx_norm(cond.tokens))

        h = self.conv_in(x.contiguous(memory_format=torch.channels_last))  # see build_unet
        skips = [h]
        for level in self.down:
            for blk in level.blocks:
                h = blk(h, emb, cond)
                skips.append(h)
            if level.resample is not None:
                h = level.resample(h)
                skips.append(h)
        for blk in self.mid:
            h = blk(h, emb, cond)
        for level in reversed(self.up):
            for blk in level.blocks:
                h = blk(torch.cat([h, skips.pop()], dim=1), emb, cond)
            if level.resample is not None:
                h = level.resample(h)
        return self.out(h)


def build_unet(size: str, resolution: int, **overrides) -> UNet:
    """A preset from `UNET_SIZES`, with any constructor argument overridden (e.g. ctx_dim, dropout)."""
    if size not in UNET_SIZES:
        raise ValueError(f"unknown UNet size {size!r}; choose from {sorted(UNET_SIZES)}")
    # Channels-last convolutions trained the tiny UNet 1.26x faster (median of 6 alternating rounds, range
    # 1.13-1.54x) at batch 64 on the 2-core CPU, where convolutions are most of a step; GPUs prefer it too.
    return UNet(resolution=resolution, **{**UNET_SIZES[size], **overrides}).to(memory_format=torch.channels_last)
