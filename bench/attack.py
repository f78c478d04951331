"""A legitimate client's polls while someone guesses client secrets (issue 15, finding 1).

    python -m bench.attack               # about 2 minutes; PostgreSQL and Redis on loopback
    python -m bench.attack --no-guard    # the same with the failed-authentication guard off

The example project runs on gunicorn (``--workers`` sync workers) with its real password
hasher (PBKDF2, ~200 ms per check). One pending request of the demo poll client is polled every
``--poll-every`` seconds with the right secret, on a fixed schedule (each poll timed from
when it was due), (``authorization_pending`` and ``slow_down`` are
the expected answers) while an attacker sends ``--rate`` token requests per second, paced, from
one address, for ``--duration`` seconds, in three scenarios, each after a fresh cache:

- ``baseline``: no attacker;
- ``wrong-secret``: the poll client's own id with a wrong secret each time;
- ``unknown-ids``: a new, unknown client id each time (a dummy hash, so timing reveals nothing).

The legitimate poll's latency percentiles and the attacker's answers are written to
``docs/performance/attack[-no-guard].json``. The target: the legitimate poll's p95 stays under
50 ms. A legitimate poll unanswered after 10 s counts as 10 s (that is what the attack did to
it); an unexpected answer to the legitimate client counts as an error and fails the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import RESULTS, environment, finish, flush_redis, gunicorn, manage, prepare_database
from bench.load import GRANT, basic, percentiles, post

TARGET_P95_MS = 50.0
FORM = "application/x-www-form-urlencoded"


def attacker(base: str, demo: dict, kind: str, rate: float, stop: threading.Event) -> Counter:
    """Requests at a fixed pace, each on its own thread: a slow answer must not slow the attack."""
    answers: Counter = Counter()
    lock = threading.Lock()
    poll_client = demo["clients"]["poll"]

    def one(i: int) -> None:
        if kind == "wrong-secret":
            client = {"client_id": poll_client["client_id"], "client_secret": secrets.token_urlsafe(24)}
        else:
            client = {"client_id": f"guess-{i}-{secrets.token_hex(4)}", "client_secret": "x"}
        body = f"grant_type={GRANT}&auth_req_id={secrets.token_urlsafe(24)}".encode()
        try:
            status, answer = post(
                f"{base}/o/token/", body, {"Authorization": basic(client), "Content-Type": FORM}
            )
            outcome = f"{status} {answer.get('error', '')}".strip()
        except OSError as exc:
            outcome = f"socket error {type(exc).__name__}"
        with lock:
            answers[outcome] += 1

    with ThreadPoolExecutor(max_workers=64) as pool:
        started, i = time.perf_counter(), 0
        while not stop.is_set():
            due = started + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                stop.wait(pause)
                if stop.is_set():
                    break
            pool.submit(one, i)
            i += 1
    return answers


def legitimate_polls(
    base: str, demo: dict, auth_req_id: str, every: float, duration: float
) -> tuple[list[float], list[str]]:
    """Polls sent on a fixed schedule, each timed from when it was due: a poll stuck behind
    the attack delays none of the later ones, so a stall shows in every poll it hit (a
    poller that waits for each answer would record one slow poll and miss the rest)."""
    client = demo["clients"]["poll"]
    headers = {"Authorization": basic(client), "Content-Type": FORM}
    body = f"grant_type={GRANT}&auth_req_id={auth_req_id}".encode()
    latencies: list[float] = []
    problems: list[str] = []
    lock = threading.Lock()

    def one(due: float) -> None:
        try:
            status, answer = post(f"{base}/o/token/", body, headers)
        except OSError as exc:  # urllib.error.URLError is one
            with lock:
                if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
                    latencies.append(10_000.0)  # the attack's effect, not a fault of the run
                else:
                    problems.append(f"socket error {type(exc).__name__}")
            return
        elapsed = (time.perf_counter() - due) * 1000
        with lock:
            latencies.append(elapsed)
            if status != 400 or answer.get("error") not in ("authorization_pending", "slow_down"):
                problems.append(f"{status} {answer.get('error')}")

    with ThreadPoolExecutor(max_workers=64) as pool:
        started = time.perf_counter()
        for i in range(int(duration / every)):
            due = started + i * every
            time.sleep(max(0.0, due - time.perf_counter()))
            pool.submit(one, due)
    return latencies, problems


def scenario(base: str, env: dict[str, str], demo: dict, kind: str, args: argparse.Namespace) -> dict:
    flush_redis(env["CACHE_URL"])  # no failure counts or verified secrets left from before
    client = demo["clients"]["poll"]
    status, started = post(
        f"{base}/o/backchannel-authentication/",
        b"scope=openid&login_hint=alice&binding_message=ATTACK",
        {"Authorization": basic(client), "Content-Type": FORM},
    )
    if status != 200:
        raise RuntimeError(f"backchannel answered {status}: {started}")
    # The client's first poll verifies its secret (one PBKDF2); then the attack starts.
    legitimate_polls(base, demo, started["auth_req_id"], args.poll_every, 1.0)
    stop = threading.Event()
    answers: Counter = Counter()
    thread = None
    if kind != "baseline":

        def run() -> None:
            answers.update(attacker(base, demo, kind, args.rate, stop))

        thread = threading.Thread(target=run)
        thread.start()
    latencies, problems = legitimate_polls(base, demo, started["auth_req_id"], args.poll_every, args.duration)
    stop.set()
    if thread:
        thread.join()
    p = percentiles(latencies)
    return {
        "scenario": kind,
        "attacker_requests_per_second": 0 if kind == "baseline" else args.rate,
        "attacker_answers": dict(answers.most_common()),
        "legitimate_polls": len(latencies),
        "legitimate_poll_ms": p,
        "errors": len(problems),
        "problems": sorted(set(problems)),
        "target_met": p.get("p95", 1e9) < TARGET_P95_MS,
    }


def costs(base: str, env: dict[str, str], demo: dict) -> dict:
    """What one request of each kind costs, sequentially (median of many, server round trip
    on loopback): a failure the guard refuses, a failure that pays the hash, a legitimate poll."""
    flush_redis(env["CACHE_URL"])
    client = demo["clients"]["poll"]
    headers = {"Content-Type": FORM}
    body = f"grant_type={GRANT}&auth_req_id={secrets.token_urlsafe(24)}".encode()

    def timed(authorization: str) -> tuple[int, float]:
        t0 = time.perf_counter()
        status, _ = post(f"{base}/o/token/", body, {**headers, "Authorization": authorization})
        return status, (time.perf_counter() - t0) * 1000

    def median(values: list[float]) -> float:
        return round(sorted(values)[len(values) // 2], 2)

    wrong = basic({"client_id": client["client_id"], "client_secret": "wrong"})
    hashed = []
    for _ in range(5):  # each in a slot of its own: per client 5 per 15 s, so wait it out
        flush_redis(env["CACHE_URL"])
        status, ms = timed(wrong)
        if status == 401:
            hashed.append(ms)
    refused = [ms for status, ms in (timed(wrong) for _ in range(300)) if status == 429]
    return {
        "failure_refused_429_ms": median(refused) if refused else None,
        "failure_hashed_401_ms": median(hashed) if hashed else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=20.0, help="attacker requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per scenario")
    parser.add_argument("--poll-every", type=float, default=0.1, help="seconds between legitimate polls")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--no-guard", action="store_true", help="turn the failed-authentication guard off")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    extra = {"BENCH_AUTH_FAILURE_GUARD": "off"} if args.no_guard else {}
    env = environment(args.port, BENCH_CLIENT_SECRET_CACHE_SECONDS="300", **extra)
    prepare_database(env)
    flush_redis(env["CACHE_URL"], env["CELERY_BROKER_URL"])
    demo = json.loads(manage(env, "ciba_demo_data", "--json"))
    results: dict[str, Any] = {
        "command": " ".join(["python -m bench.attack", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "setup": f"gunicorn {args.workers} sync workers, PostgreSQL, Redis cache, PBKDF2 client secrets, "
        f"guard {'off' if args.no_guard else 'on (defaults)'}, one source address, loopback",
        "target": f"legitimate poll p95 < {TARGET_P95_MS:.0f} ms",
        "scenarios": [],
    }
    with gunicorn(env, args.port, args.workers) as base:
        for kind in ("baseline", "wrong-secret", "unknown-ids"):
            print(f"{kind} ...", flush=True)
            results["scenarios"].append(scenario(base, env, demo, kind, args))
        print("cost per request ...", flush=True)
        results["cost_per_request"] = costs(base, env, demo)
        results["cost_per_request"]["legitimate_poll_ms"] = results["scenarios"][0]["legitimate_poll_ms"][
            "p50"
        ]
    results["errors"] = sum(s["errors"] for s in results["scenarios"])
    results["targets_met"] = all(s["target_met"] for s in results["scenarios"])
    finish(results, args.results / ("attack-no-guard.json" if args.no_guard else "attack.json"))


if __name__ == "__main__":
    main()
