"""A run of two worker tasks that never finish on their own, for the test that kills their parent.

    python sleepers.py PID_DIR     # each worker writes PID_DIR/<its pid>, then sleeps
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from harness.runtime.parallel import run_tasks


def sleep_forever(pid_dir: str) -> None:
    (Path(pid_dir) / str(os.getpid())).touch()
    time.sleep(600)


if __name__ == "__main__":
    run_tasks({i: (sleep_forever, (sys.argv[1],)) for i in range(2)}, workers=2)
