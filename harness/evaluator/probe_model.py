"""The attribute probe: a small CNN that parses a shapes-world image into a scene record.

It reads the background, the number of objects (1 or 2) and, for slot k in {0, 1}, that object's shape,
colour, size and grid cell, with slots in reading order (objects sorted by (row, col); two objects never share
a cell). `Probe.read` returns records in the format of `Scene.to_record`, so `ShapesWorld.check(prompt, record)`
scores generated images exactly as it scores real ones; `Probe.features` gives the penultimate layer, the
feature space of FID and the other distribution metrics.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.data.world import Vocabulary, position_name
from harness.images import to_unit_range

SLOTS = 2
IGNORE = -100  # label of a slot the scene does not have (cross_entropy's ignore_index)


def heads(vocab: Vocabulary) -> list[tuple[str, int]]:
    """(name, number of classes) of every output, in the order the logits are laid out."""
    out = [("background", len(vocab.backgrounds)), ("count", SLOTS)]
    for k in range(SLOTS):
        out += [(f"{k}.shape", len(vocab.shapes)), (f"{k}.color", len(vocab.colors)),
                (f"{k}.size", len(vocab.sizes)), (f"{k}.cell", vocab.grid * vocab.grid)]
    return out


def reading_order(record: dict) -> list[dict]:
    return sorted(record["objects"], key=lambda o: (o["row"], o["col"]))


def encode_labels(record: dict, vocab: Vocabulary) -> list[int]:
    """One class index per head for a scene record with 1 or 2 objects."""
    objects = reading_order(record)
    labels = [vocab.backgrounds.index(record["background"]), len(objects) - 1]
    for k in range(SLOTS):
        if k < len(objects):
            o = objects[k]
            labels += [vocab.shapes.index(o["shape"]), vocab.colors.index(o["color"]), vocab.sizes.index(o["size"]),
                       o["row"] * vocab.grid + o["col"]]
        else:
            labels += [IGNORE] * 4
    return labels


def decode(logits: torch.Tensor, vocab: Vocabulary) -> list[dict]:
    """Scene records from logits [N, sum of head sizes]."""
    names = [name for name, _ in heads(vocab)]
    chunks = logits.split([n for _, n in heads(vocab)], dim=1)
    index = dict(zip(names, (c.argmax(dim=1).tolist() for c in chunks)))
    records = []
    for i in range(len(logits)):
        objects = []
        for k in range(index["count"][i] + 1):
            row, col = divmod(index[f"{k}.cell"][i], vocab.grid)
            objects.append({"shape": vocab.shapes[index[f"{k}.shape"][i]],
                            "color": vocab.colors[index[f"{k}.color"][i]],
                            "size": vocab.sizes[index[f"{k}.size"][i]],
                            "position": position_name(row, col, vocab.grid), "row": row, "col": col})
        records.append({"background": vocab.backgrounds[index["background"][i]], "objects": objects})
    return records


def probe_loss(logits: torch.Tensor, labels: torch.Tensor, vocab: Vocabulary) -> torch.Tensor:
    """Sum over heads of the cross-entropy, averaged per image; absent slots count zero (never an empty mean)."""
    chunks = logits.float().split([n for _, n in heads(vocab)], dim=1)
    total = sum(F.cross_entropy(c, labels[:, i], ignore_index=IGNORE, reduction="sum") for i, c in enumerate(chunks))
    return total / len(labels)


def _conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(8 if cout % 8 == 0 else 1, cout),
            nn.SiLU()]


class ProbeNet(nn.Module):
    """Conv stages halving the resolution down to 4x4 (channels doubling), then a flattening linear layer to
    `feature_dim` features (flattening keeps where things are: the grid cell is a label) and a linear head."""

    def __init__(self, vocab: Vocabulary, resolution: int, width: int, feature_dim: int) -> None:
        super().__init__()
        layers, channels, size = _conv(3, width), width, resolution
        while size > 4:
            layers += _conv(channels, channels) + _conv(channels, 2 * channels, stride=2)
            channels, size = 2 * channels, size // 2
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * size * size, feature_dim), nn.SiLU())
        self.head = nn.Linear(feature_dim, sum(n for _, n in heads(vocab)))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images float [N, 3, H, W] in [-1, 1] -> (features [N, feature_dim], logits)."""
        features = self.body(images)
        return features, self.head(features)


class Probe:
    """A trained probe: `read` parses images into scene records, `features` embeds them."""

    def __init__(self, net: ProbeNet, vocab: Vocabulary, batch_size: int = 512) -> None:
        self.net = net.eval()
        self.vocab = vocab
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def _run(self, images: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = [], []
        for start in range(0, len(images), self.batch_size):
            x = to_unit_range(images[start:start + self.batch_size], self.device) * 2 - 1
            f, l = self.net(x)
            features.append(f.float())
            logits.append(l.float())
        return torch.cat(features), torch.cat(logits)

    def read(self, images: np.ndarray | torch.Tensor) -> list[dict]:
        """Scene records (`Scene.to_record` format, without cx/cy) of uint8 [N, H, W, 3] or float [N, 3, H, W]
        in [-1, 1] images."""
        return decode(self._run(images)[1].cpu(), self.vocab)

    def features(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Penultimate features [N, feature_dim] (float32, on the probe's device)."""
        return self._run(images)[0]
