"""Benchmark: how the full scan grows with data size on DuckDB reading a Parquet lake in place.

    python benchmarks/lake_scale.py [--events 1000000 10000000 50000000] [--repeat 3] [--workdir DIR]
                                    [--out-json FILE]

For each size, a demo dataset of about that many events is generated (or reused), exported to
a lake (`insight export`: events hive-partitioned by day), and scanned with `--db LAKE`, each
run in a fresh process (median seconds, peak RSS). Sizes are reported against the smallest,
measured in the same run: seconds per million events tell when a single machine stops being
enough (then run the same scan on Spark: `--engine spark`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_generate import timed  # noqa: E402
from benchmarks.speed import DEFAULT_WORKDIR, Progress, bench_scan, ensure_dataset, table_count  # noqa: E402
from data.export import export_lake  # noqa: E402

SIZES = (1_000_000, 10_000_000, 50_000_000)


def ensure_lake(db: Path, progress: Progress) -> tuple[Path, float | None]:
    """The lake exported from `db` next to it (reused when its event count matches); export seconds."""
    lake = db.with_suffix(".lake")
    events = table_count(db, "events")
    if lake.is_dir():
        from tools.warehouse import Warehouse

        with Warehouse(lake) as wh:
            if wh.scalar("SELECT count(*) FROM events") == events:
                progress(f"reusing {lake}")
                return lake, None
    seconds, _ = timed(export_lake, db, lake, overwrite=True)
    progress(f"exported {events:,} events to {lake} in {seconds:.1f} s")
    return lake, seconds


def run(sizes: tuple[int, ...] = SIZES, repeat: int = 3, workdir: Path | None = None,
        progress: Progress = print) -> dict:
    workdir = Path(workdir or DEFAULT_WORKDIR)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for events in sorted(sizes):
        data = ensure_dataset(events, workdir, progress)
        lake, export_s = ensure_lake(data["db"], progress)
        actual = table_count(data["db"], "events")
        scan = bench_scan(lake, repeat, progress)
        rows.append({"target_events": events, "events": actual, "generation_s": data["generation_s"],
                     "export_s": export_s, "lake": str(lake), **scan,
                     "s_per_million_events": round(scan["median_s"] / (actual / 1e6), 3)})
    base = rows[0]
    for row in rows:
        row["time_ratio"] = round(row["median_s"] / base["median_s"], 2)
        row["size_ratio"] = round(row["events"] / base["events"], 2)
    return {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
            "repeat": repeat, "rows": rows}


def markdown(r: dict) -> str:
    lines = ["| events | scan median (s) | vs smallest: data / time | s per 1M events | peak RSS (MiB) |",
             "|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['events']:,} | {row['median_s']:.1f} | {row['size_ratio']:g}x / {row['time_ratio']:g}x"
                     f" | {row['s_per_million_events']:.2f} | {row['peak_rss_mb']:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out-json", type=Path, default=None)
    args = parser.parse_args()
    result = run(tuple(args.events), args.repeat, args.workdir)
    print(markdown(result))
    if args.out_json:
        args.out_json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
