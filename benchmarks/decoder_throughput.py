"""Decoder training throughput (images/s) per UNet preset: forward + backward + AdamW step, fp32.

Prints wall-clock images/s and images per CPU-second of this process. On a shared machine the second is
the steadier figure (with one thread it is the single-core speed); with several threads it also counts
OpenMP spin-waiting, so compare it across runs with the same thread count only.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/decoder_throughput.py --sizes tiny small --resolution 16 --batch 64

The condition carries a vector and `--tokens` context tokens (like `combined`: CLIP tokens + caption), so
the attention layers pay for the extra keys/values they have in real runs. The step is the one
benchmarks/unet_vs_diffusers.py and benchmarks/mfu.py time (`_common.training_step`).
"""

from __future__ import annotations

import time

import torch

import _common
from harness.decoder import build_unet


def images_per_second(size: str, resolution: int, batch: int, tokens: int, steps: int,
                      warmup: int) -> tuple[float, float]:
    """(images per wall-clock second, images per CPU-second of this process)."""
    step = _common.training_step(build_unet(size, resolution), resolution, batch, tokens, "fp32", torch.device("cpu"))
    for _ in range(warmup):  # oneDNN picks its kernels on the first calls
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    images = steps * batch
    return images / (time.perf_counter() - wall), images / (time.process_time() - cpu)


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    _common.set_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    for size in args.sizes:
        wall, cpu = images_per_second(size, args.resolution, args.batch, args.tokens, args.steps, args.warmup)
        print(f"{size:>6} @ {args.resolution}px, batch {args.batch}: {wall:8.1f} images/s, {cpu:8.1f} images/CPU-s")


if __name__ == "__main__":
    main()
