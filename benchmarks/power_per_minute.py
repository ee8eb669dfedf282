"""What a CPU-minute of training seeds buys, per training recipe: the seed variance of each primary contrast and
the precision (inverse variance) one CPU-hour spent on more seeds adds, so that recipes (decoder steps, EMA) are
compared by the power they buy per minute, not by one seed's numbers.

Each argument is a finished run folder with two or more training seeds of one recipe (a `study` or `cpu` run, or
the joint folder of a seed-sharded study). For each: its recipe (decoder steps, EMA decay), its variance
components per primary contrast (harness/report/pilot.py), and its cost per training seed in CPU-minutes (every
decoder's training time from the run's summary, one thread each, plus its share of the sweep's sampling).
Precision per CPU-hour is 1 / (variance of a one-seed estimate x CPU-hours per seed): where the seed term
dominates, it is what extra seeds buy per hour.

    python benchmarks/power_per_minute.py RUN [RUN ...] --prompts 144 \
        --out results/benchmarks/power_per_minute.json          # and power_per_minute.md beside it, the table
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from omegaconf import OmegaConf
from scipy import stats

from _common import machine_info
from harness.metrics.intervals import Components
from harness.report.markdown import table as markdown_table
from harness.report.pilot import build

FAMILY_ALPHA = 0.05 / 7  # the study's Holm family holds seven contrasts: its strictest level


def cost_per_seed(run: Path) -> tuple[float, float, str]:
    """(training, sampling) CPU-minutes per training seed, and how many of the decoders this run trained itself
    ("10 of 12"): the mean training time of each mode trained on every seed (one thread each; a cached decoder
    reports the time of its own build, on whatever load that had, so the count says whose times these are),
    summed over those modes, and the sweep's sampling (wall time x workers) spread over the seeds. Approximate
    where the sweep also sampled modes with fewer seeds (the cpu preset's ablations)."""
    summary = json.loads((run / "summary.json").read_text())
    times: dict[str, list[float]] = {}
    for key, info in (summary.get("decoders") or {}).items():
        mode = key.split("/seed")[0]
        times.setdefault(mode, []).append(float(info.get("wall_time_s", 0.0)))
    seeds = max((len(t) for t in times.values()), default=1)
    training = sum(sum(t) / len(t) for t in times.values() if len(t) == seeds)
    # A decoder task that took under half a decoder's mean training time loaded its weights from the cache.
    trained = [t for mode_times in times.values() for t in mode_times]
    mean_training = sum(trained) / max(1, len(trained))
    stage_times = [v for k, v in (summary.get("wall_time_s") or {}).items() if k.startswith("decoder[")]
    built = sum(v >= 0.5 * mean_training for v in stage_times)
    workers = int(OmegaConf.load(run / "config.yaml").get("workers", 1))
    sampling = float((summary.get("sweep") or {}).get("sampling_s", 0.0)) * workers / seeds
    return training / 60, sampling / 60, f"{built} of {len(trained)}"


def sigma_interval(parts: Components, confidence: float = 0.95) -> tuple[float, float | None]:
    """The seed standard deviation's interval from a chi-square on the seed part's Satterthwaite degrees of
    freedom (approximate: the seed part is a moment estimate). With three seeds a recipe's sigma is known only
    within a factor of a few, which the table must show. None above when the estimate was cut at 0."""
    if parts.seed <= 0 or not parts.seed_df > 0:
        return 0.0, None
    tail = (1 - confidence) / 2
    low, high = (math.sqrt(parts.seed_df * parts.seed / stats.chi2.ppf(q, parts.seed_df)) for q in (1 - tail, tail))
    return low, high


def rows(run: Path, prompts: int) -> list[dict]:
    config = OmegaConf.load(run / "config.yaml")
    recipe = {"decoder_steps": int(config.decoder.train.steps), "ema_decay": float(config.decoder.train.ema_decay)}
    training, sampling, trained_here = cost_per_seed(run)
    minutes = training + sampling
    pilot = build(run, run.name, report_defaults=True)
    out = []
    for contrast, parts in pilot.contrasts.items():
        one_seed = parts.variance(1, prompts)
        low, high = sigma_interval(parts)
        out.append({"run": run.as_posix(), **recipe, "seeds": parts.seeds, "contrast": contrast,
                    "sigma_seed": math.sqrt(parts.seed), "sigma_seed_low": low, "sigma_seed_high": high,
                    "seed_df": parts.seed_df, "cpu_minutes_per_seed": minutes, "training_minutes_per_seed": training,
                    "decoders_trained_by_the_run": trained_here,
                    "detectable_10_seeds": parts.detectable(10, prompts, FAMILY_ALPHA),
                    "precision_per_cpu_hour": 1.0 / (one_seed * minutes / 60)})
    return out


def readable(contrast: str) -> str:
    """A pilot's contrast key (`kind|a|b|metric|b_metric|a_base|b_base[|g=3]`) in words, free of table pipes."""
    kind, a, b, metric, b_metric, a_base, b_base, *scale = contrast.split("|")
    text = f"{kind}: {a} - {b}, {metric}" + (f" against {b_metric}" if b_metric else "")
    text += f", gains over {a_base} and {b_base}" if a_base else ""
    return text + (f" at {scale[0]}" if scale else "")


def sigma_text(row: dict) -> str:
    if row["sigma_seed_high"] is None:  # the seed part's estimate was cut at 0
        return "0 (below the residual's share)"
    high = row["sigma_seed_high"]  # below one degree of freedom the chi-square bound runs away
    return f"{row['sigma_seed']:.3f} [{row['sigma_seed_low']:.3f}, {f'{high:.3f}' if high < 10 else '> 10'}]"


def markdown(table: list[dict], command: str, prompts: int) -> str:
    """The table a researcher reads: one row per contrast and recipe, recipes side by side."""
    header = ["contrast", "run", "steps", "EMA", "seeds", "CPU-min/seed (training)", "decoders it trained",
              "sigma seed [95%]", "MDD at 10 seeds", "precision per CPU-hour"]
    rows = [[readable(r["contrast"]), r["run"], str(r["decoder_steps"]), f"{r['ema_decay']:g}", str(r["seeds"]),
             f"{r['cpu_minutes_per_seed']:.1f} ({r['training_minutes_per_seed']:.1f})",
             r["decoders_trained_by_the_run"], sigma_text(r),
             f"{r['detectable_10_seeds']:.3f}", f"{r['precision_per_cpu_hour']:.0f}"]
            for r in sorted(table, key=lambda r: (r["contrast"], r["decoder_steps"], -r["ema_decay"]))]
    lines = ["# Power per CPU-minute, by decoder recipe", "", f"Command: `{command}`", "",
             f"Precision per CPU-hour: 1 / (variance of a one-seed estimate at {prompts} prompts x CPU-hours a seed "
             f"costs). MDD at 10 seeds: minimal detectable difference, 80% power, alpha {FAMILY_ALPHA:.4f} "
             "(0.05 over the study's family of 7). Decoders it trained: the rest came from the cache, and their "
             "training times are those of their own builds, under whatever load those had.", "",
             *markdown_table(header, rows)]  # its last line is empty: the file ends with a newline
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--prompts", type=int, default=144, help="prompts each contrast is read on")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    table = [row for run in args.runs for row in rows(run, args.prompts)]
    print(f"{'run':<22} {'steps':>5} {'ema':>6} {'seeds':>5} {'CPU-min/seed':>12}  {'contrast':<58} "
          f"{'sigma seed':>10} {'MDD@10':>7} {'precision/CPU-h':>15}")
    for r in table:
        print(f"{r['run'][-22:]:<22} {r['decoder_steps']:>5} {r['ema_decay']:>6} {r['seeds']:>5} "
              f"{r['cpu_minutes_per_seed']:>12.1f}  {r['contrast'][:58]:<58} {r['sigma_seed']:>10.3f} "
              f"{r['detectable_10_seeds']:>7.3f} {r['precision_per_cpu_hour']:>15.0f}")
    if args.out:
        command = ("python benchmarks/power_per_minute.py " + " ".join(str(r) for r in args.runs)
                   + f" --prompts {args.prompts} --out {args.out}")
        args.out.write_text(json.dumps({"command": command, "machine": machine_info(), "rows": table}, indent=2)
                            + "\n")
        args.out.with_suffix(".md").write_text(markdown(table, command, args.prompts))


if __name__ == "__main__":
    main()
