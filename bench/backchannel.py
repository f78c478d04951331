"""Backchannel authentication requests per second on gunicorn, and what the secret check costs.

    python -m bench.backchannel [--duration 15] [--concurrency 32] [--workers 2] [--port 8765]

Runs the example project on gunicorn (sync workers) with PostgreSQL, the Redis cache and the
Redis broker (no Celery worker: the device notifications queue up in Redis and are flushed
afterwards), creates the demo clients, and POSTs CIBA requests as the ``client_secret_basic``
poll client: once with the verified-secret cache on (the default) and once with it off, so
the difference is the PBKDF2 check. Writes docs/performance/backchannel.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import sys
import time
import urllib.request

from bench.common import environment, flush_redis, gunicorn, load, manage, prepare_database, write_result

BODY = "scope=openid&login_hint=alice&binding_message=BENCH"


def pbkdf2_check_ms() -> float:
    from django.conf import settings

    if not settings.configured:
        settings.configure()
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    hasher = PBKDF2PasswordHasher()
    encoded = hasher.encode("s" * 43, hasher.salt())
    started = time.perf_counter()
    for _ in range(5):
        hasher.verify("s" * 43, encoded)
    return round((time.perf_counter() - started) / 5 * 1000, 1)


def sequential(url: str, headers: dict[str, str], count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        request = urllib.request.Request(url, data=BODY.encode(), headers=headers, method="POST")
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            assert response.status == 200, response.status
        latencies.append(round((time.perf_counter() - started) * 1000, 2))
    return latencies


def scenario(args: argparse.Namespace, cache_seconds: int) -> dict:
    env = environment(args.port, BENCH_CLIENT_SECRET_CACHE_SECONDS=str(cache_seconds))
    prepare_database(env)
    demo = json.loads(manage(env, "ciba_demo_data", "--json"))
    flush_redis(env["CACHE_URL"], env["CELERY_BROKER_URL"])
    poll = demo["clients"]["poll"]
    credentials = base64.b64encode(f"{poll['client_id']}:{poll['client_secret']}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}", "Content-Type": "application/x-www-form-urlencoded"}
    with gunicorn(env, args.port, args.workers) as base:
        url = f"{base}/o/backchannel-authentication/"
        first_then_repeats = sequential(url, headers, 21)
        result = load(lambda n: (url, headers, BODY), concurrency=args.concurrency, duration=args.duration)
    flush_redis(env["CELERY_BROKER_URL"])
    repeats = sorted(first_then_repeats[1:])
    return {
        "client_secret_cache_seconds": cache_seconds,
        "first_request_ms": first_then_repeats[0],
        "repeat_request_median_ms": repeats[len(repeats) // 2],
        "load": result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    results = {
        "command": " ".join(["python -m bench.backchannel", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "setup": f"gunicorn {args.workers} sync workers, PostgreSQL, Redis cache and broker, loopback",
        "pbkdf2_check_ms": pbkdf2_check_ms(),
        "with_secret_cache": scenario(args, 300),
        "without_secret_cache": scenario(args, 0),
    }
    path = write_result("backchannel", results)
    print(json.dumps(results, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
