"""Benchmark: how fast the tool feels. Medians of `--repeat` runs, each in a fresh process:

* `insight --help` and `insight sql "SELECT count(*) FROM events"` end to end;
* the UI: from starting a process that builds and launches the app to the first HTTP 200 of its root;
* "What should we fix first?" through `InsightAgent.ask`, the first and the second time in one process
  (a fresh state directory, so the first one scans).

    python -m benchmarks.startup [--db PATH] [--repeat 3]

Without --db it generates the demo dataset in a temporary folder. CPU seconds are printed beside the
wall seconds: on a shared machine they vary less. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from benchmarks.speed import ROOT, summary

QUESTION = "What should we fix first?"
UI_TIMEOUT_S = 300.0
SERVE_UI = """
import sys, time
from pathlib import Path
from agent.api import InsightAgent
from ui.app import build_app, launch
db, state, port = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
launch(build_app(lambda: InsightAgent(db=db, llm=None, state_dir=state)), db, state, "127.0.0.1", port,
       prevent_thread_lock=True)
time.sleep(3600)
"""
ASK_TWICE = """
import json, sys, time
from agent.api import InsightAgent
times = []
with InsightAgent(db=sys.argv[1], llm=None, state_dir=sys.argv[2]) as agent:
    for _ in range(2):
        wall, cpu = time.perf_counter(), time.process_time()
        agent.ask(sys.argv[3])
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
print(json.dumps(times))
"""


def insight() -> list[str]:
    """The `insight` console script beside this interpreter, else `python -m agent.cli`."""
    script = Path(sys.executable).with_name("insight")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent.cli"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `args` to its end."""
    cpu, wall = children_cpu(), time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - wall, children_cpu() - cpu


def first_ui_response(db: Path) -> tuple[float, float]:
    """Wall seconds from starting the UI process to its root's first HTTP 200, and that process's CPU seconds
    (all of its life: idle once it answers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="insight-startup-") as state:
        cpu, wall = children_cpu(), time.perf_counter()
        server = subprocess.Popen([sys.executable, "-c", SERVE_UI, str(db), state, str(port)], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not answers(url):
                if server.poll() is not None or time.perf_counter() - wall > UI_TIMEOUT_S:
                    raise RuntimeError(f"the UI did not answer {url} (exit code {server.returncode})")
                time.sleep(0.05)
            seconds = time.perf_counter() - wall
        finally:
            server.kill()
            server.wait()
    return seconds, children_cpu() - cpu


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def ask_twice(db: Path) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of the first and the second QUESTION in one fresh process."""
    with tempfile.TemporaryDirectory(prefix="insight-startup-") as state:
        out = subprocess.run([sys.executable, "-c", ASK_TWICE, str(db), state, QUESTION], cwd=ROOT, check=True,
                             capture_output=True, text=True, timeout=900)
    return [tuple(t) for t in json.loads(out.stdout)]


def measured(fn: Callable[[], tuple[float, float]], repeat: int) -> dict:
    runs = [fn() for _ in range(repeat)]
    return summary([w for w, _ in runs], [c for _, c in runs])


def run(db: Path, repeat: int = 3) -> dict[str, dict]:
    """Every measure: name -> the `summary` of its runs."""
    asks = [ask_twice(db) for _ in range(repeat)]
    return {
        "`insight --help`": measured(lambda: command([*insight(), "--help"]), repeat),
        "`insight sql \"SELECT count(*) FROM events\"`": measured(
            lambda: command([*insight(), "sql", "SELECT count(*) FROM events", "--db", str(db)]), repeat),
        "UI: start to first HTTP 200": measured(lambda: first_ui_response(db), repeat),
        f"ask \"{QUESTION}\", first in a process": summary([a[0][0] for a in asks], [a[0][1] for a in asks]),
        f"ask \"{QUESTION}\", second": summary([a[1][0] for a in asks], [a[1][1] for a in asks]),
    }


def markdown(result: dict[str, dict]) -> str:
    rows = [f"| {name} | {r['median_s']:.2f} | {r['cpu_median_s']:.2f} | {', '.join(f'{t:.2f}' for t in r['runs_s'])} |"
            for name, r in result.items()]
    return "\n".join(["| measure | median s | CPU median s | runs s |", "|---|---:|---:|---|", *rows])


def demo_db(folder: Path) -> Path:
    from data.generate import generate
    from data.scenario import load_scenario

    db = folder / "demo.duckdb"
    generate(load_scenario("demo"), db)
    return db


def main() -> None:  # pragma: no cover - a benchmark script
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, help="a DuckDB file or lake (default: the demo dataset, generated)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.db and not args.db.exists():
        parser.error(f"--db {args.db}: no such file or directory")
    with tempfile.TemporaryDirectory(prefix="insight-startup-") as folder:
        db = args.db or demo_db(Path(folder))
        print(markdown(run(db.resolve(), args.repeat)))


if __name__ == "__main__":  # pragma: no cover
    main()
