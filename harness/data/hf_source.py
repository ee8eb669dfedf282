"""`data=hf`: any image-caption `datasets` dataset, made to look like the shapes artifact.

Sources, tried in this order: a folder written by `save_to_disk`; a folder of images with a metadata.jsonl
or metadata.csv captions file (datasets' `imagefolder`); a hub name, only when `data.hf.allow_network=true`.
Images are decoded here, one by one, so an unreadable file is reported with its index instead of failing
somewhere inside a training loop.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from harness.config import DataConfig
from harness.errors import HarnessError

log = logging.getLogger(__name__)


def _open(cfg: DataConfig):
    import datasets

    hf, path = cfg.hf, Path(cfg.hf.path).expanduser()
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        loaded = datasets.load_from_disk(str(path))
    elif path.is_dir():
        loaded = datasets.load_dataset("imagefolder", data_dir=str(path))
    elif hf.allow_network:
        loaded = datasets.load_dataset(hf.path)
    else:
        raise HarnessError(f"data.hf.path: {hf.path!r} is not a local dataset folder; set "
                           "data.hf.allow_network=true to fetch it from the hub")
    if isinstance(loaded, datasets.DatasetDict):
        if hf.split not in loaded:
            raise HarnessError(f"data.hf.split: {hf.path} has no split {hf.split!r}; splits are "
                               f"{', '.join(loaded)}")
        loaded = loaded[hf.split]
    for key, column in (("image_column", hf.image_column), ("text_column", hf.text_column)):
        if column not in loaded.column_names:
            raise HarnessError(f"data.hf.{key}: {hf.path} has no column {column!r}; columns are "
                               f"{', '.join(loaded.column_names)}")
    return loaded.cast_column(hf.image_column, datasets.Image(decode=False))


def to_rgb_square(image: Image.Image, resolution: int) -> np.ndarray:
    """Grayscale/RGBA/palette to RGB, shorter side resized to `resolution`, centre-cropped."""
    image = image.convert("RGB")
    scale = resolution / min(image.size)
    w, h = max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale))
    image = image.resize((w, h), Image.Resampling.BICUBIC)
    left, top = (w - resolution) // 2, (h - resolution) // 2
    return np.asarray(image.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)


def _decode(record: dict, index: int, source: str) -> Image.Image:
    try:
        raw = record.get("bytes")
        image = Image.open(io.BytesIO(raw)) if raw else Image.open(record["path"])
        image.load()
        return image
    except Exception as exc:  # PIL raises several types for broken files
        raise HarnessError(f"{source}: image at index {index} could not be read ({exc})") from None


def build(cfg: DataConfig, workdir: Path) -> dict:
    import datasets

    from harness.data.build import split_sizes
    from harness.progress import bar

    table = _open(cfg)
    n = len(table) if cfg.hf.max_images is None else min(len(table), cfg.hf.max_images)
    images = np.empty((n, cfg.resolution, cfg.resolution, 3), dtype=np.uint8)
    captions = []
    for i, record in enumerate(bar(table.select(range(n)), desc="data: decoding images", total=n,
                                   enabled=n >= 1000)):
        images[i] = to_rgb_square(_decode(record[cfg.hf.image_column], i, cfg.hf.path), cfg.resolution)
        captions.append(str(record[cfg.hf.text_column]))
    # Shuffle once with the data seed so that val/test are not just the dataset's tail.
    order = np.random.default_rng(cfg.seed).permutation(n)
    splits, start = {}, 0
    for name, size in split_sizes(n, cfg.val_fraction, cfg.test_fraction).items():
        rows = order[start:start + size]
        start += size
        np.save(workdir / f"pixels_{name}.npy", images[rows])
        splits[name] = datasets.Dataset.from_dict(
            {"image": [images[i] for i in rows], "caption": [captions[i] for i in rows]},
            features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")}))
    datasets.DatasetDict(splits).save_to_disk(str(workdir / "dataset"))
    log.info("hf data: %d images from %s at %d px", n, cfg.hf.path, cfg.resolution)
    return {"images": n, "source": cfg.hf.path, "splits": {k: len(v) for k, v in splits.items()}}
