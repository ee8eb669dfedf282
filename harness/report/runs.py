"""`unclip-harness runs [DIR]`: the finished runs under DIR (default `outputs/`), newest first, with their
experiment, date, commit, training seeds and the Key-findings contrasts the data could decide."""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from harness.errors import HarnessError, print_or_exit
from harness.report.markdown import table
from harness.report.write import report_settings

SKIPPED = (".cache", "wandb", ".hydra")  # folders that hold no run's summary


def confidence_of(folder: Path) -> float:
    """The run's `report.confidence` (1 - its family-wise error rate), the default where its config has none."""
    config = folder / "config.yaml"
    return report_settings(OmegaConf.load(config) if config.is_file() else OmegaConf.create()).confidence


def list_runs(root: Path) -> list[dict[str, Any]]:
    """One entry per run folder under `root` (a folder with a summary.json and a report.md), newest first."""
    root = Path(root)
    if not root.is_dir():
        raise HarnessError(f"{root}: no such folder (runs are listed from a folder of run folders, e.g. outputs/)")
    found = []
    for summary_path in root.rglob("summary.json"):
        folder = summary_path.parent
        if any(part in SKIPPED for part in folder.parts) or not (folder / "report.md").is_file():
            continue
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError):  # a run still writing it, or a damaged one: listed by neither
            continue
        provenance = summary.get("provenance") or {}
        date = provenance.get("date") or datetime.datetime.fromtimestamp(
            summary_path.stat().st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")
        primary = ((summary.get("answers") or {}).get("key_findings") or {}).get("primary", [])
        alpha = 1 - confidence_of(folder)
        decided = [p for p in primary if p.get("family") == "primary" and p.get("adjusted_p") is not None
                   and p["adjusted_p"] < alpha]
        found.append({"folder": str(folder), "experiment": summary.get("experiment", ""), "date": date,
                      "commit": (provenance.get("git_commit") or "")[:8] + ("+" if provenance.get("git_dirty") else ""),
                      "seeds": (summary.get("setup") or {}).get("train_seeds"),
                      "decided": [f"{p['question'].upper()}: {p['outcome']}" for p in decided]})
    return sorted(found, key=lambda run: run["date"], reverse=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="unclip-harness runs", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, nargs="?", default=Path("outputs"), help="folder of run folders")
    args = parser.parse_args(argv)

    def listing() -> str:
        runs = list_runs(args.root)
        rows = [[r["date"], r["experiment"], r["commit"] or "-", str(r["seeds"]), r["folder"],
                 "; ".join(r["decided"]) or "none"] for r in runs]
        return ("\n".join(table(["date", "experiment", "commit", "seeds", "folder",
                                 "decided (Holm, at the run's family-wise error)"], rows))
                if rows else f"no finished runs under {args.root}")

    print_or_exit(listing)


if __name__ == "__main__":
    main()
