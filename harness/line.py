"""The key of one line of the results: which decoder was sampled, and how.

Every table the sweep writes (cells, `per_prompt.csv`, `metrics.csv`) carries a line as five columns, and the
report reads them back into a `Line`; nothing parses a line out of a mode name or a file name. A line is a mode
sampled under an arm, optionally with a token group hidden from attention (the reliance test), at a separate
text scale (modes with two pathways), with a variant of the conditioning CLIP (a joint report of several jobs).
`NONE` is the one "not set" value of every text field, and of the real ceiling's training seed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

NONE = "-"  # no arm, no token group hidden, the run's own CLIP, no training seed (the real images)
REAL = "real"  # the pseudo-mode of real images: the reference (the ceiling every line is read against) and FLOOR_LINE
COLUMNS = ("mode", "arm", "ablation", "text_scale", "clip_variant")

ARM_ORDER = (NONE, "per_sample", "fixed")  # display order: plain, then the prior-draw policies, then other arms

# `unclip (per_sample) without clip, text scale 3 [hard_negatives]`: the label, and what `Line.parse` reads.
_LABEL = re.compile(r"^(?P<mode>[\w.]+)(?: \((?P<arm>[^()]+)\))?(?: without (?P<ablation>\w+))?"
                    r"(?:, text scale (?P<text_scale>\d+(?:\.\d+)?))?(?: \[(?P<clip_variant>[^\[\]]+)\])?$")


@dataclass(frozen=True)
class Line:
    mode: str
    arm: str = NONE
    ablation: str = NONE  # the token group hidden from attention at sampling
    text_scale: float | None = None  # a separate text scale (two-pathway modes); None: one joint scale
    clip_variant: str = NONE  # the conditioning CLIP's variant where a joint report holds several

    def __post_init__(self) -> None:
        # Tables hold a missing text scale as NaN and scales as floats: one key whatever the reader.
        scale = self.text_scale
        object.__setattr__(self, "text_scale", None if scale is None or math.isnan(float(scale))
                           else round(float(scale), 6))

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Line:
        """The line of a table row (or any mapping with the `COLUMNS`; absent ones are unset)."""
        values = {name: row.get(name) for name in COLUMNS}
        return cls(str(values["mode"]), *(NONE if _unset(values[n]) else str(values[n])
                                          for n in ("arm", "ablation")),
                   None if _unset(values["text_scale"]) else float(values["text_scale"]),
                   NONE if _unset(values["clip_variant"]) else str(values["clip_variant"]))

    def columns(self) -> dict[str, Any]:
        """The line as table columns (a missing text scale as NaN)."""
        return {**dataclasses.asdict(self), "text_scale": math.nan if self.text_scale is None else self.text_scale}

    @property
    def is_real(self) -> bool:
        return self.mode == REAL

    @property
    def intact(self) -> Line:
        """The same line with every token group shown (what a reliance line is read against)."""
        return dataclasses.replace(self, ablation=NONE)

    @property
    def unarmed(self) -> Line:
        """The same line with no arm: what a line's arms are read against one another within (same decoder,
        same hidden group, same text scale)."""
        return dataclasses.replace(self, arm=NONE)

    @property
    def slug(self) -> str:
        """The label as a file name's part (`unclip [hard_negatives]` -> `unclip_hard_negatives`)."""
        return re.sub(r"\W+", "_", self.label).strip("_")

    @property
    def decoder(self) -> tuple[str, str]:
        """The trained decoder the line samples: the mode under its CLIP. Arms, hidden token groups and text
        scales sample the same weights, so their cells pair seed by seed."""
        return self.mode, self.clip_variant

    @property
    def label(self) -> str:
        text = self.mode
        if self.arm != NONE:
            text += f" ({self.arm})"
        if self.ablation != NONE:
            text += f" without {self.ablation}"
        if self.text_scale is not None:
            text += f", text scale {self.text_scale:g}"
        if self.clip_variant != NONE:
            text += f" [{self.clip_variant}]"
        return text

    def __str__(self) -> str:
        return self.label

    @classmethod
    def parse(cls, text: str) -> Line:
        """The line a label names (`combined (per_sample) without clip`); how configs name lines."""
        match = _LABEL.match(str(text).strip())
        if match is None:
            raise ValueError(f"{text!r} is not a line; write it as `mode (arm) without group, text scale s "
                             "[clip variant]`, every part after the mode optional")
        parts = match.groupdict()
        return cls(parts["mode"], parts["arm"] or NONE, parts["ablation"] or NONE,
                   None if parts["text_scale"] is None else float(parts["text_scale"]), parts["clip_variant"] or NONE)

    def sort_key(self, modes: Sequence[str] = ()) -> tuple:
        """Display order: the standard CLIP first, modes in the order of `modes` (a run's) then by name, every
        token group shown before one hidden, one joint scale before separate ones, then the arms."""
        mode = list(modes).index(self.mode) if self.mode in modes else len(modes)
        arm = ARM_ORDER.index(self.arm) if self.arm in ARM_ORDER else len(ARM_ORDER)
        return (self.clip_variant != NONE, self.clip_variant, mode, self.mode, self.ablation != NONE,
                self.ablation, self.text_scale is not None, self.text_scale or 0.0, arm, self.arm)


REAL_LINE = Line(REAL)
# An independent draw of real images of the same prompts, scored against the reference like a model's samples:
# what a perfect model would score on the set metrics at these sizes (FID and KID: the real-vs-real floor).
FLOOR_LINE = Line(REAL, "floor")


def _unset(value: Any) -> bool:
    return value is None or value == NONE or value == "" or (isinstance(value, float) and math.isnan(value))
