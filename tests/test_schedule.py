"""Scheduled digests: cron parsing and a log line per run, success or failure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.cli import run_digest_cli
from agent.schedule import logged, trigger


def test_cron_fires_on_monday_at_eight_utc():
    t = trigger("0 8 * * MON")
    nxt = t.get_next_fire_time(None, datetime(2026, 11, 25, tzinfo=UTC))
    assert (nxt.weekday(), nxt.hour, nxt.minute) == (0, 8, 0)


def test_bad_cron_is_a_clear_error():
    with pytest.raises(ValueError):
        trigger("every monday")


def test_each_run_is_logged_and_a_failure_does_not_stop_the_schedule(tmp_path):
    log = tmp_path / "schedule.log"
    logged(lambda: "ok", log)()

    def broken():
        raise OSError("disk full")

    logged(broken, log)()
    logged(lambda: run_digest_cli(tmp_path / "missing.duckdb", None, None, None), log)()  # a one-line CLI error
    text = log.read_text()
    assert text.count("digest run started") == 3
    assert f"digest run failed: database file not found: {tmp_path / 'missing.duckdb'}" in text
    assert "digest run finished: ok" in text and "digest run failed: disk full" in text
