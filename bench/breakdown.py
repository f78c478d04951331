"""Where each millisecond goes (issue 29, step 2): backchannel, pending poll, approve -> callback.

    python -m bench.breakdown            # 2-3 minutes; writes docs/performance/breakdown.{json,txt}
    python -m bench.breakdown --quick    # ~1 minute: fewer requests, 4 s profiles
    python -m bench.breakdown --parts hops --name hops-reuse --celery-db-reuse 1000
                                         # the hops alone, the workers keeping their connection

Nothing in ``ciba`` is changed to measure it. Three parts, one database (``ciba_bench``, emptied)
and the production tier of ``bench.compare`` (``./scripts/serve``, Celery workers in the
layout of docs/integration.md "Queues", PostgreSQL, Redis):

1. **In process, one request at a time** (``--requests`` of each kind, no server or worker
   running, so nothing else touches the databases): each request goes through the example
   project's WSGI application (fast lane, middleware, DRF, as granian calls it), and the
   worker's half (the device-notification batch, the callback delivery) is called as the
   Celery task calls it (``CALLBACK_INLINE_SENDERS = 0`` here, so the approvals leave their
   callbacks in the outbox for it instead of sending them from the approving process).
   Recorded per request: every SQL statement with Django's round-trip time and PostgreSQL's
   own plan and execution time (``auto_explain`` with ``ANALYZE``,
   sent to the client as a notice: each statement runs once, as the request runs it), and
   every Redis command (``MONITOR``, our cache and broker databases only, counted between
   markers), the Celery publishes among them.
2. **py-spy under load** (``--seconds``, 500 Hz, ``--nonblocking``): one web process under wrk
   (backchannel with the workers running, and pending polls), the notification worker's pool
   process during the backchannel load, and the web and callback worker processes during
   sequential approvals. Summaries as ``bench.profile`` writes them (inclusive and self
   share of each function), ``profile-29-<scenario>-<process>.txt``.
3. **Approve -> callback hop by hop** (``--approvals`` ping, then push): ``bench.settings``
   installs ``bench.hops`` (``BENCH_HOPS_LOG``), which timestamps each hop from Django's and
   Celery's signals and a few wrapped functions; this command adds when the approve request
   left and when the callback arrived, joins them and reports each hop's p50 / p95.

The machine is whatever it is at the time: the command records the load average and the CPU
others used, and its figures are for ranking where time goes, not for ratios (bench.compare).
Needs wrk, py-spy (``pip install py-spy``; ptrace allowed) and PostgreSQL's ``auto_explain``
(contrib, loaded per session: the database user must be a superuser, as ``postgres`` is).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import statistics
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
    environment,
    flush_redis,
    manage,
    post,
    prepare_database,
    process_tree,
    serve,
    start_worker,
    tree_cpu_seconds,
    wrk,
    wsgi_call,
)

USERS = 50
HOPS = (
    ("sent", "approve_received", "HTTP in: granian, WSGI, to Django's request_started"),
    ("approve_received", "committed", "approve view: auth, DRF, load, UPDATE + outbox INSERT, COMMIT"),
    ("committed", "publish_start", "after commit, until the publish starts"),
    ("publish_start", "published", "Celery publish of ciba.deliver_callback (Redis)"),
    ("published", "response_done", "rest of the approve response"),
    ("committed", "response_done", "after the commit, until the approve response is done"),
    ("committed", "sender_start", "committed -> the committing process's sender thread starts the job"),
    ("sender_start", "claimed", "sender thread: connection check + outbox claim (conditional UPDATE)"),
    ("published", "picked_up", "broker -> worker pickup (BRPOP, prefork hand-off)"),
    ("picked_up", "db_connected", "a new PostgreSQL connection (Celery closes Django's around every task)"),
    ("picked_up", "claimed", "new connection + outbox claim (conditional UPDATE)"),
    ("db_connected", "claimed", "outbox claim (conditional UPDATE), once connected"),
    ("claimed", "payload_start", "load delivery + request + client + user, lane check"),
    ("payload_start", "payload_done", "payload: ping body, or push tokens minted and sealed"),
    ("payload_done", "send_start", "until the POST starts"),
    ("send_start", "arrived", "HTTP POST to the client's endpoint (until it arrived)"),
    ("arrived", "send_done", "response read"),
    ("send_done", "task_done", "record the outcome (UPDATE), task end"),
    ("send_done", "recorded", "record the outcome (UPDATE)"),
    ("committed", "arrived", "commit -> callback arrived (all that follows the commit)"),
    ("sent", "arrived", "approve sent -> callback arrived (total)"),
    ("sent", "answered", "the approve request as the client sees it"),
)


# --- 1. in process --------------------------------------------------------------------------


class Monitor(threading.Thread):
    """Redis ``MONITOR``: every command in our databases, with the phase markers we send."""

    def __init__(self, url: str, databases: set[int]) -> None:
        super().__init__(daemon=True)
        import redis

        self.client = redis.Redis.from_url(url)
        self.databases = databases
        self.commands: list[tuple[bool, str]] = []  # (run inside a Lua script, command)
        self.ready = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            for entry in monitor.listen():
                command = entry.get("command", "")
                if command.startswith("ECHO bench-breakdown-stop"):
                    break
                if entry.get("db") in self.databases and not command.startswith("ECHO"):
                    self.commands.append((entry.get("client_type") == "lua", command))
        self.done.set()


def _command_name(command: str) -> str:
    return command.split(" ", 1)[0].strip('"').upper()


class InProcess:
    """The example project's WSGI application in this process, with queries and Redis recorded."""

    def __init__(self, port: int) -> None:
        import django

        django.setup()
        from django.db import connection
        from django.db.backends.signals import connection_created

        from example_project.wsgi import application

        self.application = application
        self.port = port
        self.plans: list[str] = []
        self.explained: set[int] = set()
        connection_created.connect(self._explain, weak=False)
        connection.ensure_connection()
        self._explain(None, connection)

    def _explain(self, sender: Any, connection: Any, **_: Any) -> None:
        """auto_explain for every statement of this session, its plans sent to us as notices."""
        raw = connection.connection
        if connection.vendor != "postgresql" or id(raw) in self.explained:
            return
        self.explained.add(id(raw))
        with raw.cursor() as cursor:
            for statement in (
                "LOAD 'auto_explain'",
                "SET auto_explain.log_min_duration = 0",
                "SET auto_explain.log_analyze = on",
                "SET auto_explain.log_buffers = on",
                "SET auto_explain.log_timing = on",
                "SET auto_explain.log_nested_statements = on",
                "SET auto_explain.log_level = notice",
            ):
                cursor.execute(statement)
        raw.add_notice_handler(lambda diagnostic: self.plans.append(diagnostic.message_primary or ""))

    def call(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        status, content = wsgi_call(self.application, self.port, method, path, body, headers)
        return int(status.split()[0]), content

    def measure(self, monitor: Monitor, phase: str, count: int, one: Any) -> dict[str, Any]:
        """Run ``one(i)`` ``count`` times; queries, plans and Redis commands per call."""
        import redis
        from django.db import connection

        marker = redis.Redis.from_url(os.environ["CACHE_URL"])
        per_call: list[dict[str, Any]] = []
        marker.echo(f"bench-breakdown-start {phase}")
        started = len(monitor.commands)
        wall = []
        for i in range(count):
            self.plans.clear()
            before = len(monitor.commands)
            timer = Timer(connection)
            redis_before = list(REDIS_TIME)
            with connection.execute_wrapper(timer), timer.commits():
                t0 = time.perf_counter()
                outcome = one(i)
                wall.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.02)  # let MONITOR catch up before counting this call's commands
            per_call.append(
                {
                    "outcome": outcome,
                    "queries": timer.queries,
                    "plans": list(self.plans),
                    "redis": [("(in Lua) " if lua else "") + c for lua, c in monitor.commands[before:]],
                    "redis_ms": (REDIS_TIME[0] - redis_before[0]) * 1000,
                    "redis_calls": REDIS_TIME[1] - redis_before[1],
                }
            )
        marker.echo(f"bench-breakdown-end {phase}")
        time.sleep(0.05)
        commands = [c for lua, c in monitor.commands[started:] if not lua]
        in_lua = [c for lua, c in monitor.commands[started:] if lua]
        names = collections.Counter(_command_name(c) for c in commands)
        sample = per_call[len(per_call) // 2]
        plans = list(sample["plans"])
        health_checks = [text for text in plans if _query_text(text) == "SELECT 1"]
        plans = [text for text in plans if _query_text(text) != "SELECT 1"]
        statements = []
        for query in sample["queries"]:
            plan = _plan_for(query["sql"], plans)
            plan["plan"] = [_shorten(line, 200) for line in plan["plan"]]
            statements.append({**query, "sql": _shorten(query["sql"], 400), **plan})

        def mean(values: Any) -> float:
            return round(statistics.fmean(values), 3)

        database = mean(sum(q["ms"] for q in c["queries"]) for c in per_call)
        waiting_redis = mean(c["redis_ms"] for c in per_call)
        return {
            "calls": count,
            "outcomes": dict(collections.Counter(str(c["outcome"]) for c in per_call)),
            "wall_ms": _stats(wall),
            "split_mean_ms": {
                "database round trips": database,
                "Redis round trips": waiting_redis,
                "the rest (Python, HTTP for a delivery)": round(
                    statistics.fmean(wall) - database - waiting_redis, 3
                ),
            },
            "queries_per_call": mean(
                len([q for q in c["queries"] if q["sql"] != "COMMIT"]) for c in per_call
            ),
            "commits_per_call": mean(
                len([q for q in c["queries"] if q["sql"] == "COMMIT"]) for c in per_call
            ),
            "database_ms_per_call": mean(sum(q["ms"] for q in c["queries"]) for c in per_call),
            "health_checks_in_sample": len(health_checks),
            "redis_commands_per_call": round(len(commands) / count, 2),
            "redis_round_trips_per_call": mean(c["redis_calls"] for c in per_call),
            "redis_commands_inside_lua_per_call": round(len(in_lua) / count, 2),
            "redis_ms_per_call": mean(c["redis_ms"] for c in per_call),
            "redis_by_command_per_call": {k: round(v / count, 2) for k, v in names.most_common()},
            "sample_call": {
                "statements": statements,
                "redis": [_shorten(c, 140) for c in sample["redis"][:12]]
                + ([f"… {len(sample['redis']) - 12} more"] if len(sample["redis"]) > 12 else []),
            },
        }


#: Seconds spent in redis-py round trips in this process, and how many (``time_redis``).
REDIS_TIME = [0.0, 0]


def time_redis() -> None:
    """Count redis-py's round trips and their time (commands and pipelines) in this process."""
    import redis.client

    def timed(method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                REDIS_TIME[0] += time.perf_counter() - t0
                REDIS_TIME[1] += 1

        return wrapper

    redis.client.Redis.execute_command = timed(redis.client.Redis.execute_command)
    redis.client.Pipeline.execute = timed(redis.client.Pipeline.execute)


class Timer:
    """Django's ``execute_wrapper``: each statement's round trip, as sent; commits too."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.queries: list[dict[str, Any]] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: dict) -> Any:
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            ms = (time.perf_counter() - t0) * 1000
            try:
                text = self.connection.ops.last_executed_query(context["cursor"].cursor, sql, params)
            except Exception:  # noqa: BLE001 - the statement as Django wrote it will do
                text = sql
            self.queries.append({"sql": str(text), "ms": round(ms, 3)})

    def commits(self) -> Any:
        timer = self

        class Commits:
            def __enter__(self) -> None:
                self.original = timer.connection._commit

                def commit() -> Any:
                    t0 = time.perf_counter()
                    try:
                        return self.original()
                    finally:
                        timer.queries.append(
                            {"sql": "COMMIT", "ms": round((time.perf_counter() - t0) * 1000, 3)}
                        )

                timer.connection._commit = commit

            def __exit__(self, *exc: Any) -> None:
                del timer.connection._commit

        return Commits()


def _query_text(notice: str) -> str:
    match = re.search(r"Query Text: (.*)", notice)
    return match[1].strip() if match else ""


def _plan_for(sql: str, plans: list[str]) -> dict[str, Any]:
    """The auto_explain notice of this statement (the next one, in order): PostgreSQL's own
    time for it (planning excluded) and the top of its plan."""
    if sql == "COMMIT":
        return {"pg_ms": None, "plan": []}
    head = " ".join(sql.split())[:50]
    for index, text in enumerate(plans):
        if " ".join(_query_text(text).split())[:50] != head:
            continue
        del plans[: index + 1]
        duration = re.search(r"duration: ([\d.]+) ms", text)
        body = [line.rstrip() for line in text.split("\n")[1:] if line.strip()]
        body = [line for line in body if not line.strip().startswith("Query Text:")]
        return {"pg_ms": float(duration[1]) if duration else None, "plan": body[:6]}
    return {"pg_ms": None, "plan": ["(no plan found)"]}


def _shorten(text: str, limit: int) -> str:
    """Long statements (a batch's ids) and Redis payloads say nothing more past their start."""
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

    return {"p50": at(0.5), "p95": at(0.95), "mean": round(statistics.fmean(values), 3), "n": len(values)}


def in_process(spec_path: str) -> None:
    """Child process: part 1, written as JSON to the spec's ``out`` file."""
    spec = json.loads(Path(spec_path).read_text())
    time_redis()
    app = InProcess(spec["port"])
    demo = spec["demo"]
    cache = os.environ["CACHE_URL"]
    databases = {int(cache.rsplit("/", 1)[1]), int(os.environ["CELERY_BROKER_URL"].rsplit("/", 1)[1])}
    monitor = Monitor(cache, databases)
    monitor.start()
    monitor.ready.wait(5)
    n = spec["requests"]
    form = "application/x-www-form-urlencoded"
    poll_auth = basic(demo["clients"]["poll"])
    created: list[str] = []

    def backchannel(i: int, client: str = "poll", token: str = "") -> int:
        body = (
            f"scope=openid&login_hint=user{i % USERS + 1}&binding_message=BENCH-{i:04d}&requested_expiry=600"
        )
        if token:
            body += f"&client_notification_token={token}"
        status, content = app.call(
            "POST",
            "/o/backchannel-authentication/",
            body.encode(),
            {"Authorization": basic(demo["clients"][client]), "Content-Type": form},
        )
        if status == 200:
            created.append(json.loads(content)["auth_req_id"])
        return status

    def poll(i: int) -> str:
        body = f"grant_type={GRANT}&auth_req_id={created[i % len(created)]}".encode()
        status, content = app.call(
            "POST", "/o/token/", body, {"Authorization": poll_auth, "Content-Type": form}
        )
        return f"{status} {json.loads(content).get('error', '')}".strip()

    from ciba import device_outbox
    from ciba.callbacks import outbox
    from ciba.models import CallbackDelivery

    results: dict[str, Any] = {}
    for i in range(3):  # warm: secrets verified, code paths run, connections open
        backchannel(i)
    created.clear()
    results["backchannel"] = app.measure(monitor, "backchannel", n, backchannel)
    results["notify_batch"] = app.measure(monitor, "notify", 1, lambda i: device_outbox.notify_due())
    results["notify_batch"]["notifications"] = n
    results["poll"] = app.measure(monitor, "poll", n, poll)
    consent = {
        "Authorization": f"Bearer {demo['users']['alice']['consent_token']}",
        "Content-Type": "application/json",
    }
    for mode in ("ping", "push"):
        approvals = spec["approvals"]
        ids: list[str] = []
        for i in range(approvals + 1):
            body = (
                f"scope=openid&login_hint=alice&binding_message=BENCH-{i}"
                f"&client_notification_token=bench-token-{mode}-{i}"
            )
            status, content = app.call(
                "POST",
                "/o/backchannel-authentication/",
                body.encode(),
                {"Authorization": basic(demo["clients"][mode]), "Content-Type": form},
            )
            assert status == 200, content
            ids.append(json.loads(content)["auth_req_id"])
        device_outbox.notify_due()
        app.call("POST", f"/o/ciba/requests/{ids.pop()}/approve/", b"{}", consent)  # warm
        results[f"approve_{mode}"] = app.measure(
            monitor,
            f"approve-{mode}",
            approvals,
            lambda i, ids=ids: app.call("POST", f"/o/ciba/requests/{ids[i]}/approve/", b"{}", consent)[0],
        )
        pending = list(
            CallbackDelivery.objects.filter(state=CallbackDelivery.State.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        outbox.deliver(pending.pop(0))  # warm: the outbound session, the endpoint's address
        results[f"deliver_{mode}"] = app.measure(
            monitor, f"deliver-{mode}", len(pending), lambda i, pending=pending: outbox.deliver(pending[i])
        )
    import redis

    redis.Redis.from_url(cache).echo("bench-breakdown-stop")
    monitor.done.wait(5)
    Path(spec["out"]).write_text(json.dumps(results, indent=1))


# --- 2. py-spy -------------------------------------------------------------------------------


def py_spy() -> str:
    here = str(Path(sys.executable).parent)
    found = shutil.which("py-spy") or shutil.which("py-spy", path=here)
    if found is None:
        sys.exit("bench.breakdown needs py-spy (pip install py-spy; ptrace must be allowed)")
    return found


def record(pid: int, seconds: float, raw: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [py_spy(), "record", "--nonblocking", "-p", str(pid), "-d", str(int(seconds)), "-r", "500"]
        + ["-f", "raw", "-o", str(raw)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


#: Frames every sample of a worker process has (its main loop): left out of the excerpts.
BOILERPLATE = (
    "click/", "billiard/", "celery/bin/", "celery/__main__", "celery/bootsteps", "celery/worker/worker.py",
    "celery/concurrency/", "celery/apps/", "<module>",
)  # fmt: skip


def children(pid: int) -> list[int]:
    """The processes below ``pid`` (granian's workers, Celery's pool process)."""
    return [p for p in process_tree(pid) if p != pid]


def profiles(
    name: str, targets: dict[str, int], seconds: float, load: Any, results: Path, top: int
) -> dict[str, Any]:
    """py-spy on each target while ``load()`` runs; each summary written to a text file."""
    from bench.profile import summarise

    with tempfile.TemporaryDirectory() as tmp:
        raws = {label: Path(tmp) / f"{label}.txt" for label in targets}
        spies = {label: record(pid, seconds, raws[label]) for label, pid in targets.items()}
        before = {label: tree_cpu_seconds(pid) for label, pid in targets.items()}
        outcome = load()
        summary: dict[str, Any] = {"load": outcome, "files": {}}
        for label, spy in spies.items():
            _, err = spy.communicate(timeout=seconds + 60)
            used = tree_cpu_seconds(targets[label]) - before[label]
            if not raws[label].exists() or not raws[label].read_text().strip():
                summary["files"][label] = f"no samples ({err.strip()[-200:]})"
                continue
            text = summarise(raws[label], top)
            path = results / f"profile-29-{name}-{label}.txt"
            head = (
                f"python -m bench.breakdown {' '.join(sys.argv[1:])}\n"
                f"{name}: py-spy on {label} (pid {targets[label]}), {seconds:.0f} s at 500 Hz, "
                f"{used:.2f} CPU-s used meanwhile; load: {json.dumps(outcome)[:300]}\n\n"
            )
            path.write_text(head + text)
            summary["files"][label] = path.name
            functions = [line for line in text.splitlines()[3:] if not any(b in line for b in BOILERPLATE)]
            summary.setdefault("top", {})[label] = functions[:30]
    return summary


# --- 3. hops ---------------------------------------------------------------------------------


def approvals(
    base: str, demo: dict, receiver: Receiver, mode: str, count: int, gap: float
) -> list[dict[str, Any]]:
    """Sequential requests approved as alice; when each approve left and its callback arrived."""
    offset = time.time() - time.perf_counter()  # the receiver stamps perf_counter
    form = {
        "Authorization": basic(demo["clients"][mode]),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    consent = {
        "Authorization": f"Bearer {demo['users']['alice']['consent_token']}",
        "Content-Type": "application/json",
    }
    runs = []
    for i in range(count):
        body = (
            f"scope=openid&login_hint=alice&binding_message=HOP-{i}&client_notification_token=hop-{mode}-{i}"
        )
        status, started = post(f"{base}/o/backchannel-authentication/", body.encode(), form)
        if status != 200:
            raise RuntimeError(f"backchannel {status} {started}")
        auth_req_id = started["auth_req_id"]
        arrived = receiver.expect(auth_req_id)
        time.sleep(gap)
        sent = time.time()
        status, answer = post(f"{base}/o/ciba/requests/{auth_req_id}/approve/", b"{}", consent)
        answered = time.time()
        if status != 200:
            raise RuntimeError(f"approve {status} {answer}")
        if not arrived.wait(10):
            raise RuntimeError(f"no {mode} callback within 10 s")
        runs.append(
            {
                "auth_req_id": auth_req_id,
                "sent": sent,
                "answered": answered,
                "arrived": receiver.arrived[auth_req_id][0] + offset,
            }
        )
    return runs


def join_hops(runs: list[dict[str, Any]], log: list[dict[str, Any]]) -> dict[str, Any]:
    by_id: dict[str, dict[str, float]] = {run["auth_req_id"]: dict(run) for run in runs}
    pk_to_id = {}
    for line in log:
        if line["hop"] == "committed" and line.get("auth_req_id") in by_id:
            pk_to_id[line["pk"]] = line["auth_req_id"]
    for line in log:
        key = line.get("auth_req_id") or pk_to_id.get(line.get("pk"))
        if key in by_id:
            by_id[key].setdefault(line["hop"], line["t"])  # the first of each hop
            if "cpu" in line:
                by_id[key].setdefault(f"{line['hop']}_cpu", line["cpu"])
    hops = {}
    for start, end, label in HOPS:
        values = [(t[end] - t[start]) * 1000 for t in by_id.values() if start in t and end in t]
        hops[f"{start} -> {end}"] = {"what": label, **_stats(values)}
    cpu = [
        (t["sender_done_cpu"] - t["sender_start_cpu"]) * 1000
        for t in by_id.values()
        if "sender_start_cpu" in t and "sender_done_cpu" in t
    ]
    hops["sender thread CPU"] = {"what": "the sender thread's own CPU time for the callback", **_stats(cpu)}
    # Whether the sender thread began while the approve request was still being answered
    # (the two then share the GIL).
    both = [t for t in by_id.values() if "sender_start" in t and "response_done" in t]
    before = sum(1 for t in both if t["sender_start"] < t["response_done"])
    return {
        "approvals": len(runs),
        "hops": hops,
        "sender_started_before_response_done": f"{before}/{len(both)}",
        "timestamps": list(by_id.values()),
    }


# --- the command -----------------------------------------------------------------------------

SETUP = f"""
from django.contrib.auth import get_user_model
User = get_user_model()
User.objects.bulk_create([User(username=f"user{{i}}") for i in range(1, {USERS} + 1)], ignore_conflicts=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200, help="in-process requests of each kind")
    parser.add_argument("--approvals", type=int, default=30, help="approvals per mode (in process and hops)")
    parser.add_argument("--seconds", type=float, default=10, help="py-spy seconds per scenario")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (1 thread)")
    parser.add_argument("--pending", type=int, default=1000, help="pending requests for the polls")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between a request and its approval")
    parser.add_argument("--port", type=int, default=8778)
    parser.add_argument("--top", type=int, default=60, help="functions per py-spy summary")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="50 requests, 10 approvals, 4 s profiles")
    parser.add_argument(
        "--parts",
        default="in-process,profiles,hops",
        help="which parts to run (comma-separated: in-process, profiles, hops)",
    )
    parser.add_argument("--name", default="breakdown", help="results: <name>.json and <name>.txt")
    parser.add_argument(
        "--celery-db-reuse",
        type=int,
        default=0,
        help="an experiment: CELERY_DB_REUSE_MAX for the workers (Celery's Django fix-up then keeps "
        "the database connection across tasks instead of closing it around each)",
    )
    parser.add_argument("--in-process", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        in_process(args.in_process)
        return
    if args.quick:
        args.requests, args.approvals, args.seconds = 50, 10, 4
    parts = set(args.parts.split(","))
    if shutil.which("wrk") is None:
        sys.exit("bench.breakdown needs wrk: apt-get install wrk")
    py_spy()
    args.results.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-breakdown-"))
    hops_log = work / "hops.jsonl"
    env = environment(
        args.port,
        CIBA_POLL_STATE_REDIS_URL="",
        BENCH_CLIENT_SECRET_CACHE_SECONDS="86400",
        BENCH_HOPS_LOG=str(hops_log),
    )
    if args.celery_db_reuse:
        env["BENCH_CELERY_DB_REUSE_MAX"] = str(args.celery_db_reuse)
    prepare_database(env)
    flush_redis(env["CACHE_URL"], env["CELERY_BROKER_URL"])
    receiver = Receiver(keep_alive=True)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    demo = json.loads(manage(env, "ciba_demo_data", "--json", "--notification-base-url", receiver.url))
    manage(env, "shell", "-c", SETUP)
    report: dict[str, Any] = {
        "command": " ".join(["python -m bench.breakdown", *sys.argv[1:]]),
        "load_average_at_start": os.getloadavg(),
        "cpus_at_start": os.cpu_count(),
        "celery_db_reuse_max": args.celery_db_reuse or None,
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        # the working tree measured: other people may be editing it meanwhile
        "uncommitted_changes": subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.splitlines(),
    }
    try:
        # 1. in process
        if "in-process" in parts:
            report["in_process"] = run_in_process(args, env, demo, work)
            flush_redis(env["CELERY_BROKER_URL"])

        # 2 and 3: the production tier
        with serve(env, args.port, 2) as server:
            web = children(server.pid)
            report["web_processes"] = web
            notify = start_worker(env, ("ciba-notify", "ciba-sweeps"))
            callbacks = start_worker(env, ("ciba-callbacks",))
            try:
                if "profiles" in parts:
                    report.update(load_profiles(args, env, demo, server, web, notify))
                if "hops" in parts:
                    report.update(hops(args, demo, receiver, server, web, callbacks, hops_log, parts))
            finally:
                for process in (notify, callbacks):
                    process.terminate()
                for process in (notify, callbacks):
                    try:
                        process.wait(30)
                    except subprocess.TimeoutExpired:
                        process.kill()
    finally:
        receiver.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    report["load_average_at_end"] = os.getloadavg()
    report["cpus_at_end"] = os.cpu_count()
    path = args.results / f"{args.name}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    text = render(report)
    path.with_suffix(".txt").write_text(text)
    print(text)
    print(f"written to {path} and {path.with_suffix('.txt')}")


def run_in_process(args: argparse.Namespace, env: dict[str, str], demo: dict, work: Path) -> dict[str, Any]:
    """Part 1 in a child process (Django set up there, no server or worker running)."""
    print("in process: queries, plans, Redis commands ...", flush=True)
    spec = work / "spec.json"
    out = work / "in-process.json"
    spec.write_text(
        json.dumps(
            {
                "port": args.port,
                "demo": demo,
                "requests": args.requests,
                "approvals": args.approvals,
                "out": str(out),
            }
        )
    )
    child = {k: v for k, v in env.items() if k != "BENCH_HOPS_LOG"}
    # The worker's half is measured on its own (deliver-ping/push): the approvals must leave
    # their callbacks in the outbox instead of sending them from the approving process.
    child["BENCH_CALLBACK_INLINE_SENDERS"] = "0"
    subprocess.run(
        [sys.executable, "-m", "bench.breakdown", "--in-process", str(spec)],
        cwd=ROOT,
        env=child,
        check=True,
    )
    return json.loads(out.read_text())


def load_profiles(
    args: argparse.Namespace, env: dict[str, str], demo: dict, server: Any, web: list[int], notify: Any
) -> dict[str, Any]:
    """Part 2: py-spy on a web process (and the notification worker) under wrk."""
    report = {}
    auth = basic(demo["clients"]["poll"])
    bodies = [
        f"scope=openid&login_hint=user{i % USERS + 1}&binding_message=BENCH-{i:04d}&requested_expiry=600"
        for i in range(1000)
    ]
    path = "/o/backchannel-authentication/"
    wrk(server.base, path, auth, bodies, 2, args.connections)  # warm-up
    print("py-spy: backchannel (web + notification worker) ...", flush=True)
    report["profile_backchannel"] = profiles(
        "backchannel",
        {"web": web[-1], "worker": children(notify.pid)[-1]},
        args.seconds,
        lambda: _brief(wrk(server.base, path, auth, bodies, int(args.seconds) + 1, args.connections)),
        args.results,
        args.top,
    )
    print("py-spy: pending polls ...", flush=True)
    with tempfile.NamedTemporaryFile(suffix=".json") as ids_file:
        subprocess.run(
            [sys.executable, "-m", "bench.seed", "--replace", str(args.pending), ids_file.name],
            cwd=ROOT,
            env=env,
            check=True,
        )
        ids = json.loads(Path(ids_file.name).read_text())
    polls = [f"grant_type={GRANT}&auth_req_id={i}" for i in ids]
    wrk(server.base, "/o/token/", auth, polls, 1, args.connections)
    report["profile_poll"] = profiles(
        "poll",
        {"web": web[-1]},
        args.seconds,
        lambda: _brief(wrk(server.base, "/o/token/", auth, polls, int(args.seconds) + 1, args.connections)),
        args.results,
        args.top,
    )
    return report


def hops(
    args: argparse.Namespace,
    demo: dict,
    receiver: Receiver,
    server: Any,
    web: list[int],
    callbacks: Any,
    hops_log: Path,
    parts: set[str],
) -> dict[str, Any]:
    """Part 3: sequential approvals, each hop timed (py-spy on the way when profiling)."""
    report: dict[str, Any] = {}
    print("hops: approve -> ping, push ...", flush=True)
    approvals(server.base, demo, receiver, "ping", 3, args.gap)  # warm
    approvals(server.base, demo, receiver, "push", 3, args.gap)
    hops_log.write_text("")
    runs: dict[str, list] = {}

    def approve_all() -> dict[str, Any]:
        for mode in ("ping", "push"):
            runs[mode] = approvals(server.base, demo, receiver, mode, args.approvals, args.gap)
        return {mode: len(r) for mode, r in runs.items()}

    if "profiles" in parts:
        length = 2 * args.approvals * (args.gap + 0.06) + 2
        report["profile_approve"] = profiles(
            "approve",
            {"web-1": web[0], "web-2": web[-1], "worker": children(callbacks.pid)[-1]},
            length,
            approve_all,
            args.results,
            args.top,
        )
    else:
        approve_all()
    log = _read(hops_log)
    report["hops"] = {mode: join_hops(r, log) for mode, r in runs.items()}
    return report


def _brief(run: dict) -> dict:
    return {k: run[k] for k in ("requests", "requests_per_second", "answers", "latency_ms")}


def _read(path: Path) -> list[dict[str, Any]]:
    from bench.hops import read

    return read(str(path))


def render(report: dict[str, Any]) -> str:
    lines = [report["command"], f"load average at start {report['load_average_at_start']}", ""]
    for name, part in report.get("in_process", {}).items():
        lines.append(
            f"== {name}: {part['calls']} calls, wall p50 {part['wall_ms'].get('p50')} ms; "
            f"{part['queries_per_call']} statements + {part['commits_per_call']} commits "
            f"({part['database_ms_per_call']} ms), {part['redis_commands_per_call']} Redis commands in "
            f"{part['redis_round_trips_per_call']} round trips ({part['redis_ms_per_call']} ms) per call; "
            f"{part['health_checks_in_sample']} health check(s) in the sample; outcomes {part['outcomes']}"
        )
        lines.append(f"   mean split, ms: {part['split_mean_ms']}")
        lines.append(
            f"   Redis commands per call: {part['redis_by_command_per_call']}, and "
            f"{part['redis_commands_inside_lua_per_call']} run inside Lua scripts"
        )
        for statement in part["sample_call"]["statements"]:
            lines.append(
                f"   {statement['ms']:7.3f} ms round trip, PostgreSQL {statement.get('pg_ms')} ms: "
                f"{' '.join(statement['sql'].split())[:150]}"
            )
            for plan in statement.get("plan", [])[:3]:
                lines.append(f"        {plan.strip()[:120]}")
        lines.append("")
    for name in ("profile_backchannel", "profile_poll", "profile_approve"):
        part = report.get(name)
        if not part:
            continue
        lines.append(f"== {name}: load {json.dumps(part['load'])[:200]}")
        for label, top in part.get("top", {}).items():
            lines.append(f"   -- {label} ({part['files'][label]})")
            lines += [f"   {line}" for line in top[:18]]
        lines.append("")
    for mode, joined in report.get("hops", {}).items():
        lines.append(
            f"== approve -> {mode}, hop by hop ({joined['approvals']} approvals), ms; the sender "
            f"thread started before the approve response was done: "
            f"{joined.get('sender_started_before_response_done', '—')}"
        )
        for hop, stats in joined["hops"].items():
            lines.append(
                f"   {stats.get('p50', '—'):>8} p50 {stats.get('p95', '—'):>8} p95  {hop:<36} {stats['what']}"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
