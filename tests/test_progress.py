"""Progress a user can see: done/total, elapsed, ETA and rate, as log lines where bars cannot be drawn."""

from __future__ import annotations

import logging
import time

from harness.runtime import progress


def test_log_lines_report_done_total_and_eta_at_their_interval(monkeypatch, caplog):
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.2)
    caplog.set_level(logging.INFO, logger="harness.runtime.progress")
    with progress.as_log_lines():
        bar = progress.bar(range(10), desc="decoder[glide seed 0]")
        for step in bar:
            time.sleep(0.05)
            bar.set_postfix(loss=f"{1 / (step + 1):.3f}", refresh=False)
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("decoder[glide seed 0]: 0/10 (0%)") and "ETA" in lines[0]
    assert lines[-1].startswith("decoder[glide seed 0]: 10/10 (100%)") and "ETA 00:00" in lines[-1]
    assert "loss=0.100" in lines[-1]
    # 0.5 s of work at one line per 0.2 s: the start, two or three in between, the end; not one per step.
    assert 3 <= len(lines) <= 6, lines


def test_a_worker_process_reports_in_log_lines_and_the_main_process_only_while_workers_run(monkeypatch):
    def logs(bar) -> bool:
        bar.close()
        return bar.bar_format == progress.LOG_FORMAT

    monkeypatch.setattr(progress, "_as_log_lines", False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert not logs(progress.bar(range(2), desc="x"))  # a terminal, nothing else writing: a bar
    with progress.as_log_lines():
        assert logs(progress.bar(range(2), desc="x"))  # workers writing to the same console
    assert not logs(progress.bar(range(2), desc="x"))
    progress.log_lines()  # what a worker process calls when it starts
    assert logs(progress.bar(range(2), desc="x"))


def test_a_stage_of_tasks_reports_done_total_and_eta():
    assert progress.tasks_line("decoders", 1, 4, 254.0, 381.0) == "decoders: 1/4 (25%), 04:14 elapsed, ETA 06:21"
