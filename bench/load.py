"""The load benchmark: the example project on gunicorn, PostgreSQL, Redis and a Celery worker.

    python -m bench.load                       # about 5 minutes; needs wrk (apt-get install wrk)
    python -m bench.load --poll-state database # the same, with polls answered by the database

Everything runs on loopback, bounded in time, in this order:

1. backchannel requests/s: wrk POSTs complete CIBA requests (``client_secret_basic``,
   ``login_hint``) for ``--duration`` seconds after a 3 s warm-up, ``--repeat`` times (the
   median run is reported; run-to-run spread on a busy 2-core machine is several percent);
2. pending polls/s: for each ``--pending`` count, that many pending requests of the demo poll
   client (nothing else in the table) polled round-robin by wrk (``authorization_pending``
   and ``slow_down`` are the expected answers);
3. approval-to-callback latency: one Celery worker (concurrency 1) on the Redis broker; for
   ping and for push, ``--approvals`` requests are started, then approved one by one through
   the consent API with a bearer token, timing from just before the approve POST to the
   callback's arrival at a local HTTP receiver (the clients' registered endpoints). Each
   callback is checked (bearer token, payload) and anything wrong is an error.

Any other answer, socket error or missing callback counts as an error, and any error makes
the command fail. Writes ``docs/performance/load-<poll state>.json`` and ``.png``.

The server runs ``bench.settings``, with the per-user limits off: this measures throughput, not
policy, and scenario 1 alone starts thousands of requests for alice from one client, which
the defaults (2 pending per client and user, 5 per user, 20 an hour) would refuse after the
second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    GRANT,
    RESULTS,
    ROOT,
    Receiver,
    basic,
    count_errors,
    environment,
    finish,
    flush_redis,
    gunicorn,
    manage,
    percentiles,
    post,
    prepare_database,
    start_worker,
    wrk,
)

TARGETS = {"backchannel_per_second": 500, "pending_polls_per_second_at_1000": 1000, "ping_p95_ms": 50}


# --- scenarios ------------------------------------------------------------------------------


def measured(
    base: str, path: str, authorization: str, bodies: list[str], args: argparse.Namespace, expected: set[str]
) -> dict:
    """A 3 s warm-up, then ``--repeat`` runs; the median run (by requests/s) is reported, with
    every run's rate beside it and the errors of all runs."""
    wrk(base, path, authorization, bodies, 3, args.connections)
    runs = [
        wrk(base, path, authorization, bodies, args.duration, args.connections) for _ in range(args.repeat)
    ]
    errors = sum(count_errors(run, expected) for run in runs)
    result = sorted(runs, key=lambda run: run["requests_per_second"])[len(runs) // 2]
    result["errors"] = errors
    result["runs_requests_per_second"] = [run["requests_per_second"] for run in runs]
    return result


def backchannel_scenario(base: str, demo: dict, args: argparse.Namespace) -> dict:
    bodies = [f"scope=openid&login_hint=alice&binding_message=BENCH-{i:04d}" for i in range(1000)]
    authorization = basic(demo["clients"]["poll"])
    return measured(base, "/o/backchannel-authentication/", authorization, bodies, args, {"200"})


def poll_scenario(base: str, env: dict[str, str], demo: dict, pending: int, args: argparse.Namespace) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as ids_file:
        subprocess.run(
            [sys.executable, "-m", "bench.seed", "--replace", str(pending), ids_file.name],
            cwd=ROOT,
            env=env,
            check=True,
        )
        ids = json.load(open(ids_file.name))
    bodies = [f"grant_type={GRANT}&auth_req_id={i}" for i in ids]
    authorization = basic(demo["clients"]["poll"])
    expected = {"400 authorization_pending", "400 slow_down"}
    return {"pending_requests": pending, **measured(base, "/o/token/", authorization, bodies, args, expected)}


def callback_scenario(base: str, demo: dict, receiver: Receiver, mode: str, approvals: int) -> dict:
    client = demo["clients"][mode]
    consent = {
        "Authorization": f"Bearer {demo['users']['alice']['consent_token']}",
        "Content-Type": "application/json",
    }
    form = {"Authorization": basic(client), "Content-Type": "application/x-www-form-urlencoded"}
    latencies, approve_ms, problems = [], [], []
    for i in range(approvals):
        token = secrets.token_urlsafe(24)
        body = f"scope=openid&login_hint=alice&binding_message=BENCH-{i}&client_notification_token={token}"
        status, started = post(f"{base}/o/backchannel-authentication/", body.encode(), form)
        if status != 200:
            problems.append(f"backchannel {status} {started.get('error')}")
            continue
        auth_req_id = started["auth_req_id"]
        arrived = receiver.expect(auth_req_id)
        time.sleep(0.05)  # the device notification task runs first on the single worker
        t0 = time.perf_counter()
        status, _ = post(f"{base}/o/ciba/requests/{auth_req_id}/approve/", b"{}", consent)
        approve_ms.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            problems.append(f"approve {status}")
            continue
        if not arrived.wait(10):
            problems.append("no callback within 10 s")
            continue
        at, path, payload, authorization = receiver.arrived[auth_req_id]
        latencies.append((at - t0) * 1000)
        if authorization != f"Bearer {token}" or not path.endswith(f"/{mode}/"):
            problems.append("callback with the wrong bearer token or path")
        elif mode == "push" and not {"access_token", "id_token", "token_type"} <= set(payload):
            problems.append(f"push payload without tokens: {sorted(payload)}")
        elif mode == "ping" and set(payload) != {"auth_req_id"}:
            problems.append(f"ping payload {sorted(payload)}")
    return {
        "mode": mode,
        "approvals": approvals,
        "callbacks_received": len(latencies),
        "approval_to_callback_ms": percentiles(latencies),
        "approve_request_ms": percentiles(approve_ms),
        "errors": len(problems),
        "problems": sorted(set(problems)),
        "samples_ms": [round(x, 2) for x in latencies],
    }


# --- report ---------------------------------------------------------------------------------


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 4.2))
    bars = (
        (left, ["backchannel"], [results["backchannel"]["requests_per_second"]], "backchannel_per_second"),
        (
            middle,
            [f"{s['pending_requests']:,} pending" for s in results["polls"]],
            [s["requests_per_second"] for s in results["polls"]],
            "pending_polls_per_second_at_1000",
        ),
    )
    for axes, labels, values, target in bars:
        drawn = axes.bar(labels, values, color="#4878a8")
        axes.bar_label(drawn, fmt="%.0f")
        axes.axhline(TARGETS[target], color="#c44", ls="--", label=f"target {TARGETS[target]}")
        axes.set_ylim(0, max([TARGETS[target], *values]) * 1.2)
        axes.legend(loc="upper right")
    left.set_title("Backchannel requests/s")
    middle.set_title("Pending polls/s")
    for scenario in results["callbacks"]:
        samples = sorted(scenario["samples_ms"])
        if samples:
            right.plot(samples, [(i + 1) / len(samples) for i in range(len(samples))], label=scenario["mode"])
    right.axvline(TARGETS["ping_p95_ms"], color="#c44", ls="--", label="50 ms")
    right.set_title("Approval → callback arrival (CDF)")
    right.set_xlabel("ms")
    right.legend(loc="lower right")
    fig.suptitle(f"{results['setup']} — {results['command']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds per throughput run")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per scenario (median)")
    parser.add_argument("--pending", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument(
        "--approvals", type=int, default=200, help="approvals per callback mode (0: skip callbacks)"
    )
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (4 per worker)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--poll-state", choices=["redis", "database"], default="redis")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--name", help="result file name (default: load-<poll state>)")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where to write (default: docs/performance)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench.load needs wrk: apt-get install wrk")

    env = environment(args.port, CIBA_POLL_STATE_REDIS_URL="off" if args.poll_state == "database" else "")
    prepare_database(env)
    flush_redis(env["CACHE_URL"], env["CELERY_BROKER_URL"])
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    demo = json.loads(manage(env, "ciba_demo_data", "--json", "--notification-base-url", receiver.url))

    results: dict[str, Any] = {
        "command": " ".join(["python -m bench.load", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "setup": f"gunicorn {args.workers} sync workers, PostgreSQL, Redis cache+broker, poll state: "
        f"{args.poll_state}, wrk -t1 -c{args.connections}, 1 Celery worker (concurrency 1), loopback",
        "targets": TARGETS,
    }
    with gunicorn(env, args.port, args.workers) as base:
        print("backchannel ...", flush=True)
        results["backchannel"] = backchannel_scenario(base, demo, args)
        results["polls"] = []
        for pending in args.pending:
            print(f"polls, {pending} pending ...", flush=True)
            results["polls"].append(poll_scenario(base, env, demo, pending, args))
        results["callbacks"] = []
        if args.approvals:
            flush_redis(env["CELERY_BROKER_URL"])  # the notifications of the requests above
            worker = start_worker(env)
            try:
                for mode in ("ping", "push"):
                    print(f"{mode} callbacks ...", flush=True)
                    results["callbacks"].append(callback_scenario(base, demo, receiver, mode, args.approvals))
            finally:
                worker.terminate()
                worker.wait(30)
    receiver.shutdown()

    at_1000 = next((s for s in results["polls"] if s["pending_requests"] == 1000), None)
    ping = next((s for s in results["callbacks"] if s["mode"] == "ping"), {"approval_to_callback_ms": {}})
    results["errors"] = (
        results["backchannel"]["errors"]
        + sum(s["errors"] for s in results["polls"])
        + sum(s["errors"] for s in results["callbacks"])
    )
    backchannel = results["backchannel"]["requests_per_second"]
    results["targets_met"] = {
        "backchannel_per_second": backchannel >= TARGETS["backchannel_per_second"],
        "pending_polls_per_second_at_1000": bool(at_1000)
        and at_1000["requests_per_second"] >= TARGETS["pending_polls_per_second_at_1000"],
        "ping_p95_ms": ping["approval_to_callback_ms"].get("p95", 1e9) < TARGETS["ping_p95_ms"],
        "zero_errors": results["errors"] == 0,
    }
    name = args.name or f"load-{args.poll_state}"
    args.results.mkdir(parents=True, exist_ok=True)
    chart(results, args.results / f"{name}.png")
    summary = {k: v for k, v in results.items() if k not in ("callbacks",)}
    summary["callbacks"] = [{k: v for k, v in s.items() if k != "samples_ms"} for s in results["callbacks"]]
    finish(results, args.results / f"{name}.json", summary)


if __name__ == "__main__":
    main()
