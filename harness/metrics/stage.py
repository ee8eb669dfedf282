"""The metrics stage: the sweep's cells and real references judged into the tables every number comes from.

The artifact holds `per_prompt.csv` (each prompt's contribution to each metric of each group, see
`harness.metrics.table`) and the metrics table it gives, `metrics.csv` and `metrics.parquet` (each cell's
value with its interval over prompts and training seeds, `harness.metrics.estimate.Sweep`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.config import key_fields
from harness.data.prompts import sweep_prompts
from harness.line import REAL
from harness.metrics import table as metrics_table
from harness.metrics.estimate import Sweep
from harness.runtime.cache import Artifact
from harness.runtime.context import Context
from harness.sampling.load import load_judge
from harness.sampling.runner import load_cells
from harness.sampling.stage import CELLS

VERSION = "4"  # 2: a line in five columns (harness.line); 3: free_attribute_jsd; 4: where vectors sit
PER_PROMPT, METRICS, METRICS_PARQUET = "per_prompt.csv", "metrics.csv", "metrics.parquet"


def run(ctx: Context) -> Artifact:
    """Build (or reuse) the tables of the sweep artifact `ctx["sweep"]`."""
    cfg, swept = ctx.cfg, ctx["sweep"]

    def build(workdir: Path) -> dict:
        prompts = sweep_prompts(ctx)
        cells = list(load_cells(swept.file(CELLS)))
        groups = metrics_table.assemble_groups(cells, len(prompts))
        with np.load(swept.file(f"{REAL}.npz")) as raw:
            real = metrics_table.real_group(dict(raw))
        text_embeddings = load_judge(ctx).embed_texts([p.caption for p in prompts]).cpu().numpy()
        world = ctx.world if cfg.data.source == "shapes" else None
        per_prompt = metrics_table.build_table(groups, real, prompts, world, text_embeddings, cfg.workers)
        table = Sweep(per_prompt, cfg.report.confidence).rows(cfg.sweep.samples_per_prompt)
        table.to_csv(workdir / METRICS, index=False)
        table.to_parquet(workdir / METRICS_PARQUET, index=False)
        per_prompt.to_csv(workdir / PER_PROMPT, index=False)
        return {"groups": len(groups), "rows": len(table)}

    return ctx.cache.build("metrics", VERSION, key_fields(cfg, "metrics"), [swept], build)
