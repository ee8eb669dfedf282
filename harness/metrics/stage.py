"""The metrics stage: the sweep's cells and real references judged into the tables every number comes from.

The artifact holds `per_prompt.csv` (each prompt's contribution to each metric of each group, see
`harness.metrics.table`) and the metrics table it gives, `metrics.csv` and `metrics.parquet` (each cell's
value with its interval over prompts and training seeds, `harness.metrics.estimate.Sweep`). On the shapes world
it also scores a fresh draw of real images against the reference (`floor_group`): the set metrics' floor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.config import key_fields
from harness.data.prompts import SweepPrompt, real_images, sweep_prompts
from harness.line import FLOOR_LINE, REAL
from harness.metrics import table as metrics_table
from harness.metrics.estimate import Sweep
from harness.runtime.cache import Artifact
from harness.runtime.context import Context
from harness.sampling.load import load_judge
from harness.sampling.runner import Judge, judge_images, load_cells
from harness.seeds import FLOOR_REFERENCES, stream_seed
from harness.sampling.stage import CELLS

VERSION = "5"  # 2: a line in five columns (harness.line); 3: free_attribute_jsd; 4: where vectors sit; 5: the floor
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
        judge = load_judge(ctx)
        text_embeddings = judge.embed_texts([p.caption for p in prompts]).cpu().numpy()
        world = ctx.world if cfg.data.source == "shapes" else None
        if world is not None:  # a dataset's captions have no second set of real images to draw
            groups.append(floor_group(ctx, prompts, judge))
        per_prompt = metrics_table.build_table(groups, real, prompts, world, text_embeddings, cfg.workers)
        table = Sweep(per_prompt, cfg.report.confidence).rows(cfg.sweep.samples_per_prompt)
        table.to_csv(workdir / METRICS, index=False)
        table.to_parquet(workdir / METRICS_PARQUET, index=False)
        per_prompt.to_csv(workdir / PER_PROMPT, index=False)
        return {"groups": len(groups), "rows": len(table)}

    return ctx.cache.build("metrics", VERSION, key_fields(cfg, "metrics"), [swept], build)


def floor_group(ctx: Context, prompts: list[SweepPrompt], judge: Judge) -> metrics_table.Group:
    """As many fresh real images of each prompt as the reference has, from a stream of their own, judged like
    samples: scored against the reference, they give the set metrics' real-vs-real floor (`FLOOR_LINE`)."""
    cfg = ctx.cfg
    ids = list(range(len(prompts)))
    images = real_images(ctx, prompts, ids, cfg.sweep.samples_per_prompt,
                         lambda i: stream_seed(cfg.sweep.seed, i, FLOOR_REFERENCES))
    return metrics_table.real_group({"prompt_ids": np.array(ids), **judge_images(judge, images)}, FLOOR_LINE)
