"""Wall time per pipeline stage of a run, from its summary.json, and the share spent outside training and
sampling.

    .venv/bin/python benchmarks/stage_times.py [results/quick/summary.json] [--cache .cache/artifacts]

Each stage has two times: what it took in this run (`wall_time_s` of the summary: ~0 when its artifact was
reused) and what building its artifact took (the `wall_time_s` its artifact recorded when it was built). The
cost of a stage from an empty cache is the larger of the two. The summary records the build time of CLIP,
probe, evaluation CLIP, decoders and sweep; those of data, embeddings and prior are read from the artifact
cache, found by following the recorded CLIP artifact's inputs (the summary stores metas, not keys).

Kinds: training (CLIP, probe, evaluation CLIP, prior, decoders), sampling (the sweep's cells), other (data,
embeddings, the sweep's metrics and grids, report). The sweep artifact's time covers the cells it computed and
the metrics; when it computed none (all reused), it is metrics alone and the sampling time is not in the
summary. The report stage's own time is not in the summary either (it is taken before the report is written).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _common

TRAINING = ("clip", "probe", "eval_clip", "prior")


def load_metas(cache: Path, stage: str) -> list[dict]:
    """Every artifact record of `stage` in the cache ({"key", "inputs", "meta", ...})."""
    return [json.loads(p.read_text()) for p in sorted((cache / stage).glob("*/artifact.json"))]


def inputs_of(record: dict) -> dict[str, str]:
    """An artifact record's inputs by stage: `<stage>-<key>` names, or the {stage: key} of older records."""
    inputs = record.get("inputs", {})
    return inputs if isinstance(inputs, dict) else dict(name.rsplit("-", 1) for name in inputs)


def cached_build_times(summary: dict, cache: Path) -> dict[str, float]:
    """Build times of data, embeddings and prior: the artifacts upstream/downstream of the summary's CLIP."""
    clip = next((r for r in load_metas(cache, "clip") if r["meta"] == summary["clip"]), None)
    if clip is None:
        return {}
    data_key = inputs_of(clip)["data"]
    out = {r["stage"]: r["meta"]["wall_time_s"] for r in load_metas(cache, "data") if r["key"] == data_key}
    embeddings = [r for r in load_metas(cache, "embeddings") if inputs_of(r) == {"data": data_key, "clip": clip["key"]}]
    if embeddings:
        out["embeddings"] = embeddings[0]["meta"]["wall_time_s"]
        cosines = {name: q["cosine"] for name, q in summary["priors"].items()}
        for prior in load_metas(cache, "prior"):
            if inputs_of(prior).get("embeddings") == embeddings[0]["key"] and \
                    {n: q["cosine"] for n, q in prior["meta"]["quality"].items()} == cosines:
                out["prior"] = prior["meta"]["wall_time_s"]
    return out


def stage_rows(summary: dict, cache: Path) -> list[dict]:
    """One row per stage: name, kind, seconds in this run, build seconds and where they come from, cost."""
    recorded = {name: summary[name]["wall_time_s"] for name in ("clip", "probe", "eval_clip")}
    recorded.update({f"decoder[{key.replace('/seed', ' seed ')}]": d["wall_time_s"]
                     for key, d in summary["decoders"].items()})
    from_cache = cached_build_times(summary, cache)
    sweep = summary["sweep"]
    # Runs since the metrics became a stage of their own time it apart from the sweep's sampling.
    metrics_apart = "metrics" in summary["wall_time_s"]
    if metrics_apart:
        recorded["metrics"] = sweep["metrics_s"]
    rows = []
    for name, run_s in summary["wall_time_s"].items():
        if name == "sweep":
            rows += sweep_rows(sweep, run_s, metrics_apart)
            continue
        # A task that chained stages ("clip -> embeddings -> prior") built each of them in turn.
        parts = name.split(" -> ")
        builds = [recorded[p] if p in recorded else from_cache.get(p) for p in parts]
        known = [b for b in builds if b is not None]
        source = "summary" if all(p in recorded for p in parts) else \
            "summary + cache" if known else "missing"
        kind = "training" if any(p in TRAINING for p in parts) or name.startswith("decoder[") else "other"
        build = sum(known) if known else None
        rows.append({"stage": name, "kind": kind, "this_run_s": run_s, "build_s": build, "build_source": source,
                     "cost_s": max(run_s, build or 0.0)})
    return rows


def sweep_rows(sweep: dict, run_s: float, metrics_apart: bool) -> list[dict]:
    """The sweep's sampling alone when the metrics are a stage of their own; in older runs, sampling and
    metrics apart when the sweep's meta splits them, else one row."""
    computed = sweep["cells_computed"]
    if metrics_apart:
        return [{"stage": f"sweep sampling ({computed} of {sweep['cells']} cells)", "kind": "sampling",
                 "this_run_s": run_s, "build_s": sweep["sampling_s"], "build_source": "summary",
                 "cost_s": max(run_s, sweep["sampling_s"])}]
    if computed and "sampling_s" in sweep:
        return [{"stage": f"sweep sampling ({computed} of {sweep['cells']} cells)", "kind": "sampling",
                 "this_run_s": sweep["sampling_s"], "build_s": sweep["sampling_s"], "build_source": "summary",
                 "cost_s": sweep["sampling_s"]},
                {"stage": "sweep metrics and grids", "kind": "other", "this_run_s": run_s - sweep["sampling_s"],
                 "build_s": sweep["metrics_s"], "build_source": "summary",
                 "cost_s": max(run_s - sweep["sampling_s"], sweep["metrics_s"])}]
    name = "sweep (metrics only: all cells reused)" if computed == 0 else \
        f"sweep ({computed} of {sweep['cells']} cells sampled, and metrics)"
    return [{"stage": name, "kind": "other" if computed == 0 else "sampling + metrics", "this_run_s": run_s,
             "build_s": sweep["wall_time_s"], "build_source": "summary", "cost_s": max(run_s, sweep["wall_time_s"])}]


def shares(rows: list[dict]) -> dict[str, float]:
    total = sum(r["cost_s"] for r in rows)
    kinds = sorted({r["kind"] for r in rows})
    return {"total_s": total, **{f"{k}_s": sum(r["cost_s"] for r in rows if r["kind"] == k) for k in kinds},
            **{f"{k}_share": sum(r["cost_s"] for r in rows if r["kind"] == k) / total for k in kinds}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summary", nargs="?", default=str(_common.ROOT / "results" / "quick" / "summary.json"))
    parser.add_argument("--cache", default=str(_common.ROOT / ".cache" / "artifacts"))
    args = parser.parse_args()
    summary = json.loads(Path(args.summary).read_text())
    rows = stage_rows(summary, Path(args.cache))
    totals = shares(rows)
    sampled = summary["sweep"]["cells_computed"]
    notes = ["the report stage's time is not recorded in summary.json"]
    if sampled == 0:
        notes.append("sampling time is not in this summary: the run reused all sweep cells, so the sweep's time is "
                     "metrics and grids; the share outside training is over training + other only")
    print(f"{'stage':<44} {'kind':<18} {'this run':>9} {'build':>9} {'cost':>9}")
    for r in rows:
        build = f"{r['build_s']:9.1f}" if r["build_s"] is not None else f"{'?':>9}"
        print(f"{r['stage']:<44} {r['kind']:<18} {r['this_run_s']:9.1f} {build} {r['cost_s']:9.1f}")
    print(f"{'total':<44} {'':<18} {sum(r['this_run_s'] for r in rows):9.1f} {'':>9} {totals['total_s']:9.1f}")
    print("  ".join(f"{k}: {v:.1%}" for k, v in totals.items() if k.endswith("_share")))
    for note in notes:
        print(f"note: {note}")
    _common.write_result("stage_times", {
        "summary": str(Path(args.summary).resolve().relative_to(_common.ROOT)), "experiment": summary.get("experiment"),
        "run_machine": summary.get("setup", {}).get("machine"), "stages": rows, **totals, "notes": notes})


if __name__ == "__main__":
    main()
