"""Decoder training throughput (images/s) per UNet preset: forward + backward + AdamW step, fp32.

Prints wall-clock images/s and images per CPU-second of this process. On a shared machine the second is
the steadier figure (with one thread it is the single-core speed); with several threads it also counts
OpenMP spin-waiting, so compare it across runs with the same thread count only.

    .venv/bin/python benchmarks/decoder_throughput.py --sizes tiny small --resolution 16 --batch 64

The condition carries a vector and `--tokens` context tokens (like `combined`: CLIP tokens + caption), so
the attention layers pay for the extra keys/values they have in real runs.
"""

from __future__ import annotations

import argparse
import time

import torch

from harness.conditioning.condition import Condition
from harness.decoder import build_unet, diffusion_loss, make_train_scheduler


def images_per_second(size: str, resolution: int, batch: int, tokens: int, steps: int,
                      warmup: int) -> tuple[float, float]:
    """(images per wall-clock second, images per CPU-second of this process)."""
    unet = build_unet(size, resolution)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    scheduler = make_train_scheduler(1000, "linear", "epsilon")
    x0 = torch.rand(batch, 3, resolution, resolution) * 2 - 1
    cond = Condition(vector=torch.randn(batch, unet.emb_dim), tokens=torch.randn(batch, tokens, unet.ctx_dim))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        diffusion_loss(lambda x_t, t: unet(x_t, t, cond), x0, scheduler).backward()
        opt.step()

    for _ in range(warmup):  # oneDNN picks its kernels on the first calls
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    images = steps * batch
    return images / (time.perf_counter() - wall), images / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    for size in args.sizes:
        wall, cpu = images_per_second(size, args.resolution, args.batch, args.tokens, args.steps, args.warmup)
        print(f"{size:>6} @ {args.resolution}px, batch {args.batch}: {wall:8.1f} images/s, {cpu:8.1f} images/CPU-s")


if __name__ == "__main__":
    main()
