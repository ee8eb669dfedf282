"""Samplers on the same trained decoder and the same paired noise: DDIM 100 against DPM-Solver++ 10/20/25.

Each sampler runs the harness's own sweep (one mode, one guidance scale) into a run folder of its own,
reusing the cached data, CLIP, evaluator, prior and decoder, so only sampling differs. Prints and writes
`results/benchmarks/samplers.json`: model evaluations per image, sweep wall time, images per second,
attribute accuracy and FID with their intervals.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/samplers.py experiment=quick conditioning=[clip_text]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = [("ddim", 100), ("dpmpp", 10), ("dpmpp", 20), ("dpmpp", 25)]
GUIDANCE = 3.0


def run_one(name: str, steps: int, overrides: list[str], out: Path) -> dict:
    run_dir = out / f"{name}{steps}"
    command = [sys.executable, "-m", "harness", *overrides, f"sweep.sampler={name}", f"sweep.sample_steps={steps}",
               f"sweep.guidance=[{GUIDANCE}]", "logger.mode=disabled", "progress=false", f"hydra.run.dir={run_dir}"]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - started
    table = pd.read_csv(run_dir / "metrics.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = table[(table["prompt_kind"] == "all") & (table["mode"] != "real")]
    figures = {"sampler": name, "steps": steps,
               "model_evaluations_per_image": steps * (2 if GUIDANCE != 1.0 else 1),
               "sweep_wall_s": summary["wall_time_s"].get("sweep"), "run_wall_s": round(wall, 1)}
    images = summary["sweep"]["cells"] and rows["n_samples"].max() * rows["mode"].nunique()
    figures["images_per_s"] = round(images / figures["sweep_wall_s"], 1) if figures["sweep_wall_s"] else None
    for metric in ("attribute_accuracy", "binding_accuracy", "free_entropy", "fid"):
        row = rows[rows["metric"] == metric]
        if len(row):
            r = row.iloc[0]
            figures[metric] = [round(r["value"], 4), round(r["ci_low"], 4), round(r["ci_high"], 4)]
    return figures


def main() -> None:
    overrides = sys.argv[1:] or ["experiment=quick", "conditioning=[clip_text]"]
    out = ROOT / "outputs" / "benchmarks" / "samplers"
    results = [run_one(name, steps, overrides, out) for name, steps in SAMPLERS]
    for r in results:
        print(json.dumps(r))
    target = ROOT / "results" / "benchmarks" / "samplers.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"command": " ".join(["benchmarks/samplers.py", *overrides]),
                                  "guidance": GUIDANCE, "results": results}, indent=2))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
