"""Running the example project on gunicorn with PostgreSQL and Redis, and loading it.

Everything runs on loopback and every run is bounded in requests and time.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "performance"


def environment(port: int, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ciba_bench"),
        "CACHE_URL": os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/12"),
        "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13"),
        "OIDC_ISS_ENDPOINT": f"http://127.0.0.1:{port}/o",
        "CIBA_EXAMPLE_VAR_DIR": str(Path(os.environ.get("BENCH_VAR_DIR", "/tmp/ciba-bench"))),
    }
    env.update(extra)
    return env


def prepare_database(env: dict[str, str]) -> None:
    """Create the benchmark database if needed, empty it, and migrate."""
    url = env["DATABASE_URL"]
    if url.startswith("postgres"):
        import psycopg

        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        admin = parts._replace(path="/postgres").geturl()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    manage(env, "migrate", "--noinput", "-v", "0")


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout


def flush_redis(*urls: str) -> None:
    import redis

    for url in urls:
        redis.Redis.from_url(url).flushdb()


@contextmanager
def gunicorn(env: dict[str, str], port: int, workers: int = 2) -> Iterator[str]:
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "example_project.wsgi",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--backlog",
            "2048",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/o/.well-known/openid-configuration", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(20)


async def _load(
    make: Callable[[int], tuple[str, dict[str, str], str]],
    concurrency: int,
    duration: float,
    limit: int,
    expect_errors: tuple[str, ...],
) -> tuple[list[float], Counter, float]:
    latencies: list[float] = []
    statuses: Counter = Counter()
    sent = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    started = time.perf_counter()
    stop_at = started + duration

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal sent
            while time.perf_counter() < stop_at and sent < limit:
                sent += 1
                url, headers, body = make(sent)
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        content = await response.read()
                        outcome: Any = response.status
                        if response.status == 400 and expect_errors:
                            error = json.loads(content).get("error")
                            outcome = error if error in expect_errors else f"400 {error}"
                        statuses[outcome] += 1
                except aiohttp.ClientError as exc:
                    statuses[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


def load(
    make: Callable[[int], tuple[str, dict[str, str], str]],
    *,
    concurrency: int,
    duration: float,
    limit: int = 1_000_000,
    expect_errors: tuple[str, ...] = (),
) -> dict[str, Any]:
    """POST as fast as ``concurrency`` connections allow for ``duration`` seconds.

    Responses are counted by status; a 400 whose ``error`` is in ``expect_errors`` (a pending
    poll, say) is counted under that error code as an expected answer.
    """
    latencies, statuses, elapsed = asyncio.run(_load(make, concurrency, duration, limit, expect_errors))
    return summarize(latencies, statuses, elapsed)


def summarize(latencies: list[float], statuses: Counter, elapsed: float) -> dict[str, Any]:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2) if ordered else 0.0

    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else 0.0,
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def finish(results: dict[str, Any], path: Path, shown: dict[str, Any] | None = None) -> None:
    """Write a run's results, print them (or the ``shown`` summary), and fail on errors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(shown if shown is not None else results, indent=2))
    print(f"written to {path}")
    if results["errors"]:
        sys.exit(f"{results['errors']} errors: these figures are not valid")
