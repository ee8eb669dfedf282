"""The judges (docs/design.md, section 5), never the conditioning CLIP.

- `harness.evaluator.probe.run`: the attribute probe of the shapes world (stage "probe"); `load_probe`;
- `harness.evaluator.eval_clip.run`: the evaluation CLIP (stage "eval_clip"); load it with
  `harness.clip.load_clip` like any CLIP artifact.
"""

from harness.evaluator.probe import load_probe
from harness.evaluator.probe_model import Probe

__all__ = ["Probe", "load_probe"]
