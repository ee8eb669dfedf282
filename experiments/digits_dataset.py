"""Write a captioned-image dataset the shapes world did not make: scikit-learn's handwritten digits.

    .venv/bin/pip install scikit-learn          # its wheel carries the 1797 8x8 scans (UCI), no download
    .venv/bin/python experiments/digits_dataset.py data/digits
    .venv/bin/python -m harness experiment=hf_quick data.hf.path=data/digits data.hf.text_column=caption

Each scan becomes a dark digit on white with a caption that names the digit and two things a reader sees in it
(each split at its median within the digit's class, so both halves of every class are as large): the stroke
("thin" or "bold", by ink) and the slant ("upright" or "slanted", by the correlation of the ink's rows and
columns). That gives 40 captions, each shared by about 45 scans: a held-out caption then brings several real
images, a ceiling for the diversity a model should show. The dataset is written with `save_to_disk`, columns
`image` and `caption`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def slant(scan: np.ndarray) -> float:
    """How far the ink leans: the correlation of its column with its row, weighted by ink (0 for upright)."""
    rows, cols = np.indices(scan.shape)
    weight = scan / scan.sum()
    r, c = (rows * weight).sum(), (cols * weight).sum()
    cov = ((rows - r) * (cols - c) * weight).sum()
    return float(-cov / np.sqrt(((rows - r) ** 2 * weight).sum() * ((cols - c) ** 2 * weight).sum()))


def captions(scans: np.ndarray, digits: np.ndarray) -> list[str]:
    ink = scans.reshape(len(scans), -1).sum(axis=1)
    lean = np.array([slant(s) for s in scans])
    out = []
    for i, digit in enumerate(digits):
        same = digits == digit
        stroke = "bold" if ink[i] > np.median(ink[same]) else "thin"
        posture = "slanted" if abs(lean[i]) > np.median(np.abs(lean[same])) else "upright"
        out.append(f"a {stroke} {posture} handwritten {WORDS[digit]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the dataset folder to write")
    args = parser.parse_args(argv)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print("error: this script needs scikit-learn (.venv/bin/pip install scikit-learn)", file=sys.stderr)
        return 2
    import datasets

    scans = load_digits()
    pixels = (255 - scans.images * (255 / 16)).round().astype(np.uint8)  # 0-16 ink -> dark on white
    rgb = np.repeat(pixels[..., None], 3, axis=-1)
    table = datasets.Dataset.from_dict({"image": list(rgb), "caption": captions(scans.images, scans.target)},
                                       features=datasets.Features({"image": datasets.Image(),
                                                                   "caption": datasets.Value("string")}))
    table.save_to_disk(str(args.out))
    print(f"wrote {len(table)} images with {len(set(table['caption']))} captions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
