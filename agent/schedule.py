"""Scheduled digests: a cron expression, APScheduler, and a log line per run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger


def trigger(cron: str) -> CronTrigger:
    """A UTC cron trigger; a bad expression is a ValueError saying why."""
    return CronTrigger.from_crontab(cron, timezone="UTC")


def logged(job: Callable[[], object], log_file: Path) -> Callable[[], None]:
    """`job`, logging its start, its result and any failure (a failure does not stop the schedule)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("insight.schedule")
    if not logger.handlers:
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

    def run() -> None:
        logger.info("digest run started")
        try:
            result = job()
            logger.info("digest run finished: %s", getattr(result, "files", result))
        except BaseException as exc:  # noqa: BLE001 - typer.Exit and errors alike are logged, the schedule goes on
            logger.error("digest run failed: %s", exc)
    return run


def run_forever(cron: str, job: Callable[[], object], log_file: Path) -> None:
    """Block, running `job` at every time `cron` matches."""
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(logged(job, log_file), trigger(cron), name="weekly digest", max_instances=1, coalesce=True)
    scheduler.start()
