"""The embedded shapes world (docs/design.md, section 4): prompts, scenes, captions and anti-aliased rendering.

A `Prompt` is what a caption fixes (some attributes of one or two objects, maybe a relation); a `Scene` is one
fully specified picture. `ShapesWorld.sample_scene(prompt)` draws everything the prompt leaves free from the
world's own distribution, so every prompt has an exact reference distribution of real images: the ceiling
for fidelity and for the diversity a perfect model would show.

Rendering is vectorised over a batch of scenes: each object's inside test is evaluated on a supersampled
grid and averaged down, which anti-aliases edges and renders tens of thousands of images per second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch

from harness.config import ShapesConfig

# ---------------------------------------------------------------------------------------------------------
# Vocabulary: ordered so that the first N of each list are the most distinguishable N
# ---------------------------------------------------------------------------------------------------------

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLORS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 235), "yellow": (235, 215, 40),
    "purple": (160, 60, 210), "cyan": (40, 205, 215), "orange": (245, 140, 30), "white": (240, 240, 240),
}
SIZES = {"small": 0.13, "large": 0.21, "medium": 0.17}  # radius as a fraction of the image side
BACKGROUNDS = {"black": (15, 15, 15), "gray": (115, 115, 115), "navy": (25, 30, 85), "brown": (95, 60, 30)}
RELATIONS = ("left of", "above")
ROW_NAMES = {2: ("top", "bottom"), 3: ("top", "", "bottom")}
COL_NAMES = {2: ("left", "right"), 3: ("left", "", "right")}

PROMPT_KINDS = ("full", "free", "binding")
OBJECT_ATTRIBUTES = ("shape", "color", "size", "position")


@dataclass(frozen=True)
class Vocabulary:
    shapes: tuple[str, ...]
    colors: tuple[str, ...]
    sizes: tuple[str, ...]
    backgrounds: tuple[str, ...]
    positions: tuple[str, ...]  # row-major over the grid
    grid: int

    @classmethod
    def from_config(cls, cfg: ShapesConfig) -> "Vocabulary":
        positions = tuple(position_name(r, c, cfg.grid) for r in range(cfg.grid) for c in range(cfg.grid))
        return cls(SHAPES[: cfg.num_shapes], tuple(COLORS)[: cfg.num_colors], tuple(SIZES)[: cfg.num_sizes],
                   tuple(BACKGROUNDS)[: cfg.num_backgrounds], positions, cfg.grid)

    def values(self, attribute: str) -> tuple[str, ...]:
        """The values an attribute can take; `attribute` is one of OBJECT_ATTRIBUTES or 'background'."""
        return {"shape": self.shapes, "color": self.colors, "size": self.sizes, "position": self.positions,
                "background": self.backgrounds}[attribute]


def position_name(row: int, col: int, grid: int) -> str:
    words = " ".join(w for w in (ROW_NAMES[grid][row], COL_NAMES[grid][col]) if w)
    return words or "center"


def cell_centre(index: int, grid: int, margin: float = 0.22) -> float:
    """Cell centres are inset from the border so a large object in a corner cell stays (mostly) in view."""
    return margin + (1 - 2 * margin) * index / (grid - 1)


def position_cell(name: str, grid: int) -> tuple[int, int]:
    for r in range(grid):
        for c in range(grid):
            if position_name(r, c, grid) == name:
                return r, c
    raise ValueError(f"unknown position {name!r}")


# ---------------------------------------------------------------------------------------------------------
# Prompts and scenes
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ObjectSpec:
    """What a caption says about one object; None means the caption leaves it free."""
    shape: str | None = None
    color: str | None = None
    size: str | None = None
    position: str | None = None


@dataclass(frozen=True)
class Prompt:
    kind: str
    objects: tuple[ObjectSpec, ...]
    background: str | None = None
    relation: str | None = None  # two objects: objects[0] <relation> objects[1]

    @property
    def caption(self) -> str:
        phrases = [_object_phrase(o) for o in self.objects]
        text = f"{phrases[0]} {self.relation} {phrases[1]}" if self.relation else phrases[0]
        if self.background:
            text += f" on a {self.background} background"
        return text

    @property
    def mentioned(self) -> dict[str, str]:
        """Mentioned attributes as flat keys: '0.shape', '1.color', 'background', 'relation'."""
        out = {f"{i}.{a}": getattr(o, a) for i, o in enumerate(self.objects) for a in OBJECT_ATTRIBUTES
               if getattr(o, a) is not None}
        if self.background:
            out["background"] = self.background
        if self.relation:
            out["relation"] = self.relation
        return out

    def free_attributes(self, vocab: Vocabulary) -> dict[str, int]:
        """Attributes the caption leaves free, with how many values each can take (for entropy)."""
        free: dict[str, int] = {}
        for i, o in enumerate(self.objects):
            for a in OBJECT_ATTRIBUTES:
                if getattr(o, a) is None and not (self.relation and a == "position"):
                    free[f"{i}.{a}"] = len(vocab.values(a))
        if self.background is None:
            free["background"] = len(vocab.backgrounds)
        return {k: n for k, n in free.items() if n > 1}


def _object_phrase(o: ObjectSpec) -> str:
    words = [w for w in (o.size, o.color, o.shape or "shape") if w]
    phrase = "a " + " ".join(words)
    if o.position:
        phrase += f" at the {o.position}"
    return phrase


@dataclass(frozen=True)
class ObjectAttrs:
    shape: str
    color: str
    size: str
    row: int
    col: int
    cx: float  # centre, as a fraction of the image side (jittered around the cell centre)
    cy: float


@dataclass(frozen=True)
class Scene:
    background: str
    objects: tuple[ObjectAttrs, ...] = field(default_factory=tuple)

    def to_record(self, grid: int) -> dict:
        return {"background": self.background,
                "objects": [{"shape": o.shape, "color": o.color, "size": o.size,
                             "position": position_name(o.row, o.col, grid), "row": o.row, "col": o.col,
                             "cx": o.cx, "cy": o.cy} for o in self.objects]}


# ---------------------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------------------

class ShapesWorld:
    def __init__(self, cfg: ShapesConfig, resolution: int) -> None:
        self.cfg = cfg
        self.resolution = resolution
        self.vocab = Vocabulary.from_config(cfg)

    # -- prompts ---------------------------------------------------------------------------------------
    def sample_prompt(self, rng: np.random.Generator, kind: str | None = None) -> Prompt:
        """A caption's content. Without `kind`, kinds follow the dataset mix of the config."""
        if kind is None:
            if rng.random() < self.cfg.p_two_objects and len(self.vocab.colors) > 1:
                kind = "binding"
            else:
                kind = "full" if rng.random() < self.cfg.p_all_mentioned else "free"
        v = self.vocab
        if kind == "binding":
            shapes = rng.choice(len(v.shapes), size=2, replace=False)
            colors = rng.choice(len(v.colors), size=2, replace=False)
            objects = tuple(ObjectSpec(shape=v.shapes[s], color=v.colors[c]) for s, c in zip(shapes, colors))
            return Prompt("binding", objects, relation=RELATIONS[rng.integers(len(RELATIONS))])
        if kind == "full":
            return Prompt("full", (ObjectSpec(*(_pick(rng, v.values(a)) for a in OBJECT_ATTRIBUTES)),),
                          background=_pick(rng, v.backgrounds))
        if kind != "free":
            raise ValueError(f"unknown prompt kind {kind!r}; choose from {', '.join(PROMPT_KINDS)}")
        # `free`: each attribute named with its mention probability; at least one named, at least one free.
        probs = self.cfg.mention
        names = list(OBJECT_ATTRIBUTES) + ["background"]
        mention = {a: rng.random() < getattr(probs, a) for a in names}
        if not any(mention.values()):
            mention["shape"] = True
        if all(mention.values()):
            mention[names[rng.integers(len(names))]] = False
        obj = ObjectSpec(*(_pick(rng, v.values(a)) if mention[a] else None for a in OBJECT_ATTRIBUTES))
        return Prompt("free", (obj,), background=_pick(rng, v.backgrounds) if mention["background"] else None)

    # -- scenes ----------------------------------------------------------------------------------------
    def sample_scene(self, prompt: Prompt, rng: np.random.Generator) -> Scene:
        """Fill in everything `prompt` leaves free from the world's distribution."""
        v, g = self.vocab, self.vocab.grid
        cells = self._cells_for(prompt, rng)
        objects = []
        for spec, (row, col) in zip(prompt.objects, cells):
            jitter = rng.uniform(-self.cfg.jitter, self.cfg.jitter, size=2)
            objects.append(ObjectAttrs(
                shape=spec.shape or _pick(rng, v.shapes), color=spec.color or _pick(rng, v.colors),
                size=spec.size or self._fixed_size(prompt) or _pick(rng, v.sizes), row=row, col=col,
                cx=float(cell_centre(col, g) + jitter[0]), cy=float(cell_centre(row, g) + jitter[1])))
        return Scene(prompt.background or _pick(rng, v.backgrounds), tuple(objects))

    def _fixed_size(self, prompt: Prompt) -> str | None:
        # Two objects share a 16 px picture: drawn large, each shape keeps enough pixels to be told apart.
        size = self.cfg.two_object_size
        return size if len(prompt.objects) == 2 and size != "any" else None

    def free_attributes(self, prompt: Prompt) -> dict[str, int]:
        """What the prompt leaves free in this world's pictures (`Prompt.free_attributes`, less the sizes the
        world fixes in two-object scenes), with how many values each can take."""
        free = prompt.free_attributes(self.vocab)
        if self._fixed_size(prompt):
            free = {key: n for key, n in free.items() if not key.endswith(".size")}
        return free

    def _cells_for(self, prompt: Prompt, rng: np.random.Generator) -> list[tuple[int, int]]:
        g = self.vocab.grid
        if prompt.relation is None:
            return [position_cell(o.position, g) if o.position else (int(rng.integers(g)), int(rng.integers(g)))
                    for o in prompt.objects]
        # The relation orders the objects along one axis (columns for "left of", rows for "above"), at its two
        # ends so that two large objects never overlap (adjacent cells of a 3 x 3 board are closer than two large
        # radii); they share the other axis, side by side (or one above the other) where a 16 px decoder can
        # draw them.
        lo, hi, shared = 0, g - 1, int(rng.integers(g))
        if prompt.relation == "left of":
            return [(shared, lo), (shared, hi)]
        return [(lo, shared), (hi, shared)]

    def generate(self, n: int, seed: int) -> tuple[list[Prompt], list[Scene], np.ndarray]:
        """n (prompt, scene, image) triples, deterministic in `seed`."""
        rng = np.random.default_rng(seed)
        prompts = [self.sample_prompt(rng) for _ in range(n)]
        scenes = [self.sample_scene(p, rng) for p in prompts]
        return prompts, scenes, self.render(scenes)

    def references(self, prompt: Prompt, n: int, seed: int) -> tuple[list[Scene], np.ndarray]:
        """n fresh real images for one prompt: its exact reference distribution."""
        rng = np.random.default_rng(seed)
        scenes = [self.sample_scene(prompt, rng) for _ in range(n)]
        return scenes, self.render(scenes)

    # -- rendering -------------------------------------------------------------------------------------
    def render(self, scenes: Sequence[Scene], chunk: int = 512) -> np.ndarray:
        """uint8 images [N, H, W, 3], anti-aliased by supersampling."""
        out = np.empty((len(scenes), self.resolution, self.resolution, 3), dtype=np.uint8)
        for start in range(0, len(scenes), chunk):
            out[start:start + chunk] = self._render_chunk(scenes[start:start + chunk])
        return out

    def _render_chunk(self, scenes: Sequence[Scene]) -> np.ndarray:
        ss, res = self.cfg.supersample, self.resolution
        side = res * ss
        coords = (np.arange(side, dtype=np.float32) + 0.5) / side
        xs, ys = coords[None, None, :], coords[None, :, None]
        canvas = np.array([BACKGROUNDS[s.background] for s in scenes], dtype=np.float32)[:, None, None, :]
        canvas = np.broadcast_to(canvas, (len(scenes), side, side, 3)).copy()
        for slot in range(max((len(s.objects) for s in scenes), default=0)):
            for shape in {s.objects[slot].shape for s in scenes if len(s.objects) > slot}:
                # One shape at a time, so each pixel runs only the inside test it needs.
                rows = np.array([i for i, s in enumerate(scenes)
                                 if len(s.objects) > slot and s.objects[slot].shape == shape])
                objs = [scenes[i].objects[slot] for i in rows]
                cx = np.array([o.cx for o in objs], dtype=np.float32)[:, None, None]
                cy = np.array([o.cy for o in objs], dtype=np.float32)[:, None, None]
                r = np.array([SIZES[o.size] for o in objs], dtype=np.float32)[:, None, None]
                inside = INSIDE_TESTS[shape](xs - cx, ys - cy, r)
                color = np.array([COLORS[o.color] for o in objs], dtype=np.float32)[:, None, None, :]
                canvas[rows] = np.where(inside[..., None], color, canvas[rows])
        # torch's pooling is several times faster than numpy's strided mean here.
        pooled = torch.nn.functional.avg_pool2d(torch.from_numpy(canvas).permute(0, 3, 1, 2), ss)
        return pooled.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

    # -- checking a picture's attributes against a caption ---------------------------------------------
    def check(self, prompt: Prompt, scene: dict) -> dict[str, bool]:
        """Which of the prompt's mentioned attributes a parsed scene satisfies.

        `scene` is a record as in `Scene.to_record` (true attributes, or the probe's reading of a generated
        image). Objects are matched to the caption's objects by best agreement, so a two-object picture
        with the colours swapped fails the binding keys it should fail.
        """
        mentioned = prompt.mentioned
        objects = scene.get("objects", [])
        matched = _match_objects(prompt, objects)
        result: dict[str, bool] = {}
        for key, value in mentioned.items():
            if key == "background":
                result[key] = scene.get("background") == value
            elif key == "relation":
                a, b = matched
                result[key] = a is not None and b is not None and _relation_holds(value, a, b)
            else:
                index, attribute = key.split(".")
                obj = matched[int(index)]
                result[key] = obj is not None and obj.get(attribute) == value
        return result


def paired_correctly(prompt: Prompt, record: dict) -> bool | None:
    """Swap binding: for a two-object prompt, whether a picture that shows both named shapes in the two named
    colours gives each shape its own colour (True) or the other's (False); None when it does not show both
    shapes in both colours (nothing to pair). By chance, half the eligible pictures are paired correctly."""
    if len(prompt.objects) != 2:
        return None
    objects = record.get("objects", [])
    found = [next((o for o in objects if o.get("shape") == spec.shape), None) for spec in prompt.objects]
    if any(o is None for o in found) or found[0] is found[1]:
        return None
    shown = [o.get("color") for o in found]
    named = [spec.color for spec in prompt.objects]
    if sorted(map(str, shown)) != sorted(map(str, named)):
        return None
    return shown == named


def attribute_value(prompt: Prompt, record: dict, key: str) -> str | None:
    """The value a parsed scene shows for one of the prompt's attribute keys ('background', '1.size', ...)."""
    if key == "background":
        return record.get("background")
    index, attribute = key.split(".")
    obj = _match_objects(prompt, record.get("objects", []))[int(index)]
    return None if obj is None else obj.get(attribute)


def _pick(rng: np.random.Generator, values: Sequence[str]) -> str:
    return values[int(rng.integers(len(values)))]


def _triangle(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    # Upward triangle: apex at -r, base at +0.8r, half-base 1.1r.
    return (dy <= 0.8 * r) & (np.abs(dx) <= 1.1 * (dy + r) / 1.8)


def _cross(dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    adx, ady = np.abs(dx), np.abs(dy)
    return ((adx <= 0.38 * r) & (ady <= r)) | ((ady <= 0.38 * r) & (adx <= r))


# Inside tests on offsets from the object's centre; sizes are tuned so shapes of one size look equally big.
INSIDE_TESTS = {
    "circle": lambda dx, dy, r: dx * dx + dy * dy <= r * r,
    "square": lambda dx, dy, r: np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r,
    "triangle": _triangle,
    "diamond": lambda dx, dy, r: np.abs(dx) + np.abs(dy) <= 1.2 * r,
    "cross": _cross,
}


def _match_objects(prompt: Prompt, objects: Sequence[dict]) -> list[dict | None]:
    """Assign parsed objects to the caption's objects, maximising agreement on mentioned attributes."""
    def agreement(spec: ObjectSpec, obj: dict) -> int:
        return sum(getattr(spec, a) is not None and obj.get(a) == getattr(spec, a) for a in OBJECT_ATTRIBUTES)

    if not objects:
        return [None] * len(prompt.objects)
    if len(prompt.objects) == 1:
        return [max(objects, key=lambda o: agreement(prompt.objects[0], o))]
    if len(objects) == 1:
        scores = [agreement(s, objects[0]) for s in prompt.objects]
        best = int(np.argmax(scores))
        return [objects[0] if i == best else None for i in range(len(prompt.objects))]
    a, b = prompt.objects
    straight = agreement(a, objects[0]) + agreement(b, objects[1])
    swapped = agreement(a, objects[1]) + agreement(b, objects[0])
    return [objects[0], objects[1]] if straight >= swapped else [objects[1], objects[0]]


def _relation_holds(relation: str, a: dict, b: dict) -> bool:
    if relation == "left of":
        return a["col"] < b["col"]
    return a["row"] < b["row"]


def prompts_by_kind(world: ShapesWorld, kinds: Iterable[str], per_kind: int, seed: int,
                    avoid: set[str] = frozenset()) -> list[Prompt]:
    """Evaluation prompts, stratified by kind, deduplicated, deterministic in seed.

    Captions in `avoid` (the training captions) are skipped while fresh ones can be found; a small world
    may not have enough unseen captions of a kind, and then seen ones fill the remaining places.
    """
    rng = np.random.default_rng(seed)
    out: list[Prompt] = []
    for kind in kinds:
        fresh: dict[str, Prompt] = {}
        seen: dict[str, Prompt] = {}
        for _ in range(per_kind * 200):
            if len(fresh) == per_kind:
                break
            prompt = world.sample_prompt(rng, kind)
            (seen if prompt.caption in avoid else fresh).setdefault(prompt.caption, prompt)
        chosen = list(fresh.values()) + list(seen.values())
        out.extend(chosen[:per_kind])
    return out
