"""Coverage of each interval type the report prints, on the synthetic studies of tests/test_coverage_seeds.py (its
scenarios, so the table and the tests cannot drift apart): one row per type with its repetitions, coverage and
Monte Carlo standard error, for docs/reading-the-report.md. Seeded: the same figures on every machine.

    python benchmarks/coverage.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_coverage_seeds import SCENARIOS  # noqa: E402


def main() -> None:
    print("| interval type | repetitions | coverage | MC s.e. | required |")
    print("|---|---|---|---|---|")
    for s in SCENARIOS:
        c = s.coverage()
        print(f"| {s.label} | {s.reps} | {c:.3f} | {math.sqrt(c * (1 - c) / s.reps):.3f} | {s.low:.2f}-{s.high:.2f} |")


if __name__ == "__main__":
    main()
