"""The report stage, split by job:

- `estimate`: the estimation engine (cells of the sweep and any function of them, with intervals);
- `contrasts`: comparisons the questions share (differences, drops, fidelity at matched diversity);
- `q1_frontier` ... `q5_binding`: one module per research question (docs/questions.md);
- `primary`: Key findings, the primary contrasts Holm-adjusted as one family, and the paper's claims;
- `figures`: the curves, the image grids and the per-mode sheets;
- `markdown`: formatting; `write`: report.md and summary.json;
- `join` makes one report of several jobs' run folders (CLIP variants), `multirun` does so after a Hydra
  multirun. `join` is not imported here: `python -m harness.report.join` runs it as a script.
"""

from harness.metrics.estimate import Estimate, Sweep
from harness.report.write import write_report

__all__ = ["Estimate", "Sweep", "write_report"]
