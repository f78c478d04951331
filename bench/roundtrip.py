"""What one round trip costs on this machine, back to back and after the caller worked a while.

    python -m bench.roundtrip                    # PostgreSQL and Redis, gaps of 0, 1, 3 and 10 ms
    python -m bench.roundtrip --count 500 --gaps 0 3

The approve -> callback path is a chain of round trips (the bearer token's ``SELECT``, the
request's, the poll state's tombstone, the decision's statement, the slow lane's ``GET``, the
POST) separated by milliseconds of Python. A round trip timed in a tight loop is not what one
of those costs: between two of them the server's process, and the CPU it runs on, went idle,
and waking them is part of the answer's wait. This measures the smallest round trip each
server has (PostgreSQL's ``SELECT 1`` on a psycopg connection in autocommit, Redis's ``PING``),
each sent after ``gap`` milliseconds of the caller's own busy CPU (the work a request does
between two queries), and reports p50 / p95 per gap. The difference between gap 0 and the
others is the wake-up paid per round trip on this machine, whatever the query.

``BENCH_DATABASE_URL`` and ``BENCH_CACHE_URL`` choose the servers (``bench.common``'s defaults).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

DEFAULT_GAPS = (0.0, 1.0, 3.0, 10.0)


def timed(call: Callable[[], object], gap_ms: float, count: int) -> tuple[float, float]:
    """p50 and p95, in ms, of ``call`` sent after ``gap_ms`` of busy CPU each time."""
    times = []
    for _ in range(count):
        end = time.perf_counter() + gap_ms / 1000
        while time.perf_counter() < end:  # the caller's own work, not a sleep: the CPU stays ours
            pass
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300, help="round trips per gap and server")
    parser.add_argument(
        "--gaps", type=float, nargs="+", default=list(DEFAULT_GAPS), help="ms of CPU before each"
    )
    args = parser.parse_args()

    import psycopg
    import redis

    database = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ciba_bench")
    cache = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/12")
    try:
        postgres = psycopg.connect(database, autocommit=True)
    except psycopg.OperationalError:  # the benchmark database is made by the other commands
        postgres = psycopg.connect(database.rsplit("/", 1)[0] + "/postgres", autocommit=True)
    servers: dict[str, Callable[[], object]] = {
        "PostgreSQL SELECT 1": lambda: postgres.execute("SELECT 1").fetchone(),
        "Redis PING": redis.Redis.from_url(cache).ping,
    }
    print(f"load average at start {os.getloadavg()}; {args.count} round trips per line")
    for name, call in servers.items():
        timed(call, 0, 50)  # warm
        for gap in args.gaps:
            p50, p95 = timed(call, gap, args.count)
            print(f"{name:22} after {gap:5.1f} ms of CPU: p50 {p50:6.3f} ms, p95 {p95:6.3f} ms")


if __name__ == "__main__":
    main()
