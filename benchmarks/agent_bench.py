"""Agent benchmark: offline `ask` latency and tool calls per question, and concurrent load.

`python benchmarks/agent_bench.py [--events 1000000] [--concurrency 50] [--out-json FILE]`
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agent.api import InsightAgent
from benchmarks.bench_generate import calibrate
from data.generate import generate
from data.scenario import load_scenario

QUESTIONS = [
    "What is our checkout conversion?",
    "Show the funnel by platform for the last month",
    "Which segments drop off at payment?",
    "What is the cart abandonment rate in Germany?",
    "Which search queries fail?",
    "How is week-1 retention?",
    "How did the experiments do?",
    "Did the latest release break anything?",
    "Are pages slow or erroring anywhere?",
    "How is revenue trending?",
    "Why did conversion drop last week?",
    "What should we fix first?",
]


def dataset(events: int, workdir: Path) -> Path:
    """A demo dataset of about `events` events (built once, reused)."""
    db = workdir / f"demo-{events}.duckdb"
    if not db.exists():
        scenario = load_scenario("demo")
        users, _, _ = calibrate(scenario, events, workdir)
        generate(scenario.model_copy(update={"users": users}), db)
    return db


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def latency(agent: InsightAgent, repeat: int = 3) -> dict:
    """Median latency and tool calls per question (each asked `repeat` times in fresh threads)."""
    per_question = {}
    for i, q in enumerate(QUESTIONS):
        times, calls = [], []
        for r in range(repeat):
            started = time.perf_counter()
            answer = agent.ask(q, thread_id=f"lat-{i}-{r}")
            times.append(time.perf_counter() - started)
            calls.append(len(answer.steps))
        per_question[q] = {"median_s": round(statistics.median(times), 3), "tool_calls": calls[0]}
    medians = [v["median_s"] for v in per_question.values()]
    return {"median_s": round(statistics.median(medians), 3), "p95_s": round(percentile(medians, 0.95), 3),
            "tool_calls_mean": round(statistics.mean(v["tool_calls"] for v in per_question.values()), 2),
            "per_question": per_question}


def load(agent: InsightAgent, concurrency: int) -> dict:
    """`concurrency` simultaneous asks from threads: throughput, p95 latency, failures."""
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(concurrency)]

    def one(i: int) -> tuple[float, bool]:
        started = time.perf_counter()
        answer = agent.ask(questions[i], thread_id=f"load-{i}")
        return time.perf_counter() - started, bool(answer.text) and not answer.warnings

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(concurrency)))
    wall = time.perf_counter() - started
    times = [t for t, _ in results]
    return {"concurrency": concurrency, "wall_s": round(wall, 2), "throughput_qps": round(concurrency / wall, 2),
            "p50_s": round(percentile(times, 0.5), 2), "p95_s": round(percentile(times, 0.95), 2),
            "ok": sum(ok for _, ok in results), "peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def run(events: int = 1_000_000, concurrency: int = 50, workdir: Path | None = None) -> dict:
    workdir = Path(workdir or tempfile.mkdtemp(prefix="insight-agent-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = dataset(events, workdir)
    with InsightAgent(db=db, llm=None, state_dir=workdir / "state") as agent:
        return {"events": events, "latency": latency(agent), "load": load(agent, concurrency)}


def markdown(result: dict) -> str:
    lat, ld = result["latency"], result["load"]
    return "\n".join([
        "| measure | value |", "|---|---|",
        f"| offline ask, median over questions ({result['events']:,} events) | {lat['median_s']} s |",
        f"| offline ask, slowest question (p95) | {lat['p95_s']} s |",
        f"| tool calls per question (mean) | {lat['tool_calls_mean']} |",
        f"| {ld['concurrency']} concurrent asks: throughput | {ld['throughput_qps']} questions/s |",
        f"| {ld['concurrency']} concurrent asks: p50 / p95 latency | {ld['p50_s']} s / {ld['p95_s']} s |",
        f"| {ld['concurrency']} concurrent asks: answered correctly | {ld['ok']} of {ld['concurrency']} |",
        f"| peak memory | {ld['peak_rss_mb']} MB |",
    ])


def main() -> None:  # pragma: no cover - a benchmark script
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out-json", type=Path, default=None)
    args = parser.parse_args()
    result = run(args.events, args.concurrency, args.workdir)
    print(markdown(result))
    if args.out_json:
        args.out_json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
