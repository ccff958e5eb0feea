"""UI load: N simultaneous gradio_client sessions asking different questions; throughput and p95.

`python benchmarks/ui_load.py --db PATH [--sessions 20]`
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from agent.api import InsightAgent
from ui.app import build_app, launch

COUNTRIES = ["DE", "BR", "US", "JP", "IN", "FR", "CA", "GB"]


def questions(n: int) -> list[str]:
    base = [f"What is the cart abandonment rate in {c}?" for c in COUNTRIES]
    base += [f"Show the purchase funnel in {c}" for c in COUNTRIES]
    base += [f"Show the purchase funnel on {p}" for p in ("ios", "android", "web")]
    base += ["Which search queries fail?"]
    return [base[i % len(base)] for i in range(n)]


def run(db: Path, sessions: int = 20) -> dict:
    from gradio_client import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = Path(tempfile.mkdtemp(prefix="insight-ui-load-"))
    demo = build_app(lambda: InsightAgent(db=db, llm=None, state_dir=state))
    launch(demo, db, state, "127.0.0.1", port, prevent_thread_lock=True)
    url = f"http://127.0.0.1:{port}/"
    Client(url, verbose=False).predict("What tables do you have?", [], api_name="/respond")  # warm up
    barrier, times, ok = threading.Barrier(sessions), [], []

    def session(q: str) -> None:
        client = Client(url, verbose=False)
        barrier.wait(timeout=120)
        started = time.perf_counter()
        history = client.submit(q, [], api_name="/respond").result(timeout=600)[0]
        times.append(time.perf_counter() - started)
        ok.append(bool(history) and history[-1]["role"] == "assistant")

    threads = [threading.Thread(target=session, args=(q,)) for q in questions(sessions)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    demo.close()
    ordered = sorted(times)
    return {"sessions": sessions, "answered": sum(ok), "wall_s": round(wall, 2),
            "throughput_qps": round(sessions / wall, 2), "p50_s": round(statistics.median(ordered), 2),
            "p95_s": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 2)}


def main() -> None:  # pragma: no cover - a benchmark script
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args()
    print(run(args.db, args.sessions))


if __name__ == "__main__":  # pragma: no cover
    main()
