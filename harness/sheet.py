"""`python -m harness.sheet [overrides] --out world.png`: look at the data before training on it.

Builds (or reuses) the data artifact of the composed config, prints how fast it was generated, and writes a
PNG contact sheet of training images with their captions underneath.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.errors import HarnessError


def write_contact_sheet(images: np.ndarray, captions: Sequence[str], out: Path, columns: int = 6,
                        title: str = "") -> Path:
    """A grid of uint8 images [N,H,W,3] with wrapped captions; returns the written path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.9, rows * 2.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions):
        ax.imshow(image, interpolation="nearest")
        ax.set_title("\n".join(textwrap.wrap(caption, 26)), fontsize=6.5)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from harness.runtime import pipeline
    from harness.cli import compose
    from harness.runtime.context import Context
    from harness.data import splits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m harness")
    parser.add_argument("--out", type=Path, default=Path("world.png"))
    parser.add_argument("--count", type=int, default=36)
    parser.add_argument("--split", default="train")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = compose(args.overrides)
        artifact = pipeline.build(Context.start(cfg), through="data")["data"]
        split = splits.load_split(artifact, args.split)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rate = artifact.meta.get("generation_images_per_s")
    if rate:
        print(f"generated {artifact.meta['images']} images at {rate:.0f} images/s"
              f"{' (cached earlier)' if artifact.reused else ''}")
    count = min(args.count, len(split))
    path = write_contact_sheet(np.asarray(split.pixels[:count]), split.captions[:count], args.out,
                               title=f"{cfg.data.source} world, {cfg.data.resolution} px, {args.split} split")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
