"""Benchmark: generating the demo scenario at a target event count, and importing it back.

    python benchmarks/bench_generate.py [--events 10000000] [--repeat 3] [--out-json FILE]

Measures events per user on a small run first, sizes the population to reach about
`--events`, times `generate` (median of `--repeat` runs), exports the result to a Parquet
folder and times `import_source` of it (median). Prints a Markdown table and writes JSON.
The design target (DESIGN.md, "Performance targets") is 10M events generated in under 60 s
on 2 cores. `--profile` adds a cProfile of one generation run (top functions by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.generate import generate, ground_truth_path  # noqa: E402
from data.importers import export_folder, import_source, table_counts  # noqa: E402
from data.scenario import Scenario, load_scenario  # noqa: E402

CALIBRATION_USERS = 20_000


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def remove_db(path: Path) -> None:
    for p in (path, Path(f"{path}.wal")):
        p.unlink(missing_ok=True)


def calibrate(scenario: Scenario, events: int, work: Path) -> tuple[int, float, float]:
    """Users needed for about `events` events of `scenario`: (users, events per user, calibration seconds)."""
    calibration = work / "calibration.duckdb"
    seconds, truth = timed(generate, scenario.model_copy(update={"users": CALIBRATION_USERS}), calibration)
    remove_db(calibration)
    ground_truth_path(calibration).unlink(missing_ok=True)
    per_user = truth["events"] / CALIBRATION_USERS
    return max(1, round(events / per_user)), per_user, seconds


def run(args: argparse.Namespace, work: Path) -> dict:
    base = load_scenario(args.scenario)
    users, per_user, seconds = calibrate(base, args.events, work)
    print(f"calibration: {CALIBRATION_USERS:,} users, {per_user:.2f} events/user ({seconds:.2f} s) "
          f"-> {users:,} users", file=sys.stderr)

    scenario = base.model_copy(update={"users": users})
    db = work / f"{args.scenario}.duckdb"
    gen_times = []
    for i in range(args.repeat):
        remove_db(db)
        seconds, truth = timed(generate, scenario, db)
        gen_times.append(seconds)
        print(f"generation {i + 1}/{args.repeat}: {seconds:.2f} s ({truth['events']:,} events)", file=sys.stderr)
    events = truth["events"]
    db_mb = db.stat().st_size / (1 << 20)
    rss_after_generation = peak_rss_mb()

    profile = None
    if args.profile:
        remove_db(db)
        profiler = cProfile.Profile()
        profiler.enable()
        generate(scenario, db)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
        profile = out.getvalue()

    parquet = work / "parquet"
    export_s, _ = timed(export_folder, db, parquet, format="parquet")
    parquet_mb = sum(p.stat().st_size for p in parquet.iterdir()) / (1 << 20)
    imported = work / "imported.duckdb"
    import_times = []
    for i in range(args.repeat):
        remove_db(imported)
        seconds, counts = timed(import_source, parquet, imported)
        import_times.append(seconds)
        print(f"import {i + 1}/{args.repeat}: {seconds:.2f} s", file=sys.stderr)
    if counts != table_counts(db):
        raise SystemExit(f"import lost rows: {counts} != {table_counts(db)}")

    generation_s = statistics.median(gen_times)
    import_s = statistics.median(import_times)
    return {
        "scenario": args.scenario,
        "target_events": args.events,
        "events": events,
        "users": users,
        "events_per_user": round(per_user, 3),
        "repeat": args.repeat,
        "generation_s": round(generation_s, 3),
        "generation_runs_s": [round(t, 3) for t in gen_times],
        "events_per_s": round(events / generation_s),
        "db_mb": round(db_mb, 1),
        "export_parquet_s": round(export_s, 3),
        "parquet_mb": round(parquet_mb, 1),
        "import_s": round(import_s, 3),
        "import_runs_s": [round(t, 3) for t in import_times],
        "import_events_per_s": round(events / import_s),
        "peak_rss_generation_mb": round(rss_after_generation, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "profile": profile,
    }


def markdown(r: dict) -> str:
    rows = [
        ("events", f"{r['events']:,}"),
        ("users", f"{r['users']:,} ({r['events_per_user']:.2f} events/user)"),
        ("generation (median of %d)" % r["repeat"], f"{r['generation_s']:.2f} s"),
        ("generation events/s", f"{r['events_per_s']:,}"),
        ("DuckDB file", f"{r['db_mb']:,.0f} MiB"),
        ("export to Parquet", f"{r['export_parquet_s']:.2f} s ({r['parquet_mb']:,.0f} MiB)"),
        ("import_source of Parquet (median of %d)" % r["repeat"], f"{r['import_s']:.2f} s"),
        ("import events/s", f"{r['import_events_per_s']:,}"),
        ("peak RSS after generation", f"{r['peak_rss_generation_mb']:,.0f} MiB"),
        ("peak RSS (whole run)", f"{r['peak_rss_mb']:,.0f} MiB"),
        ("CPUs", str(r["cpus"])),
    ]
    lines = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="target number of events")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each step (median reported)")
    parser.add_argument("--out-json", type=Path, default=None, help="write the figures to this JSON file")
    parser.add_argument("--scenario", default="demo", help="shipped scenario name or YAML file")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write databases (default: a temp dir)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile one generation run and show the top N functions by own time")
    args = parser.parse_args()
    if args.repeat < 1 or args.events < 1:
        parser.error("--events and --repeat must be positive")
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_generate-") as tmp:
            result = run(args, Path(tmp))
    print(markdown(result))
    if result["profile"]:
        print("\n```\n" + result["profile"].strip() + "\n```")
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.out_json}", file=sys.stderr)


if __name__ == "__main__":
    main()
