"""Pending polls per second at the token endpoint on gunicorn, with many requests pending.

    python -m bench.poll [--pending 1000 10000] [--duration 15] [--concurrency 32] [--workers 2]

For each pending count: a fresh PostgreSQL database with that many pending CIBA requests of
the demo poll client, the example project on gunicorn (sync workers) with the Redis cache,
and polls spread over all pending requests (``client_secret_basic``). Every answer must be
``authorization_pending`` or ``slow_down`` (both are a pending poll: one lookup and one
UPDATE); anything else counts as an error. Writes docs/performance/poll.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile

from bench.common import (
    ROOT,
    environment,
    flush_redis,
    gunicorn,
    load,
    manage,
    prepare_database,
    write_result,
)

GRANT = "urn:openid:params:grant-type:ciba"


def scenario(args: argparse.Namespace, pending: int) -> dict:
    env = environment(args.port)
    prepare_database(env)
    demo = json.loads(manage(env, "ciba_demo_data", "--json"))
    flush_redis(env["CACHE_URL"], env["CELERY_BROKER_URL"])
    with tempfile.NamedTemporaryFile(suffix=".json") as ids_file:
        subprocess.run(
            [sys.executable, "-m", "bench.seed", str(pending), ids_file.name], cwd=ROOT, env=env, check=True
        )
        ids = json.load(open(ids_file.name))
    poll = demo["clients"]["poll"]
    credentials = base64.b64encode(f"{poll['client_id']}:{poll['client_secret']}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}", "Content-Type": "application/x-www-form-urlencoded"}
    bodies = [f"grant_type={GRANT}&auth_req_id={i}" for i in ids]
    with gunicorn(env, args.port, args.workers) as base:
        url = f"{base}/o/token/"
        # Warm up (first secret check per worker, connections, caches); not measured.
        load(lambda n: (url, headers, bodies[n % len(bodies)]), concurrency=args.concurrency, duration=3)
        result = load(
            lambda n: (url, headers, bodies[n % len(bodies)]),
            concurrency=args.concurrency,
            duration=args.duration,
            expect_errors=("authorization_pending", "slow_down"),
        )
    return {"pending_requests": pending, "load": result}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pending", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    results = {
        "command": " ".join(["python -m bench.poll", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "setup": f"gunicorn {args.workers} sync workers, PostgreSQL, Redis cache, loopback",
        "scenarios": [scenario(args, n) for n in args.pending],
    }
    path = write_result("poll", results)
    print(json.dumps(results, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
