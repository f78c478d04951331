"""Our production tier side by side with the reference OP (node-oidc-provider), in one run.

    python -m bench.compare            # 20-35 minutes; writes docs/performance/compare.{json,png}
    python -m bench.compare --smoke    # ~1 minute: 1 round, 2 s runs, results to a temp dir
    python -m bench.compare --scenarios polls --results /tmp/polls   # pending polls alone, ~3 minutes
    python -m bench.compare --no-floor   # without the Django floor (about 1 minute a round less)

The reference OP is ``../shared/anchor/`` (panva/oidc-provider 9.13, CIBA poll + ping, one
Node process): copied to ``/tmp/ciba-anchor/<hash of package-lock.json>``, ``npm ci`` there
once, then ``node server.mjs`` twice: once with its storage in memory (``theirs``, the upper
bound) and once with ``CIBA_ANCHOR_STORE=redis`` (``theirs_redis``: its artifacts in a Redis
database of its own, ``--anchor-redis-url``, the way oidc-provider is deployed). Beside them
runs the durable-request ceiling (``ceiling``: ``../shared/limits/durable_app.py``, a bare WSGI
app that parses the form, commits one ``INSERT`` in PostgreSQL and sets one Redis key, on
granian with 2 workers and ``--blocking-threads 1``, in the database ``ciba_limit`` and a Redis
database of its own; the command creates both and the table). Beside it runs the floor
(``floor``, ``floor_sql``: ``bench.floor``, the ceiling's work done the Django way by two plain
views, the ORM's ``objects.create`` and a raw ``INSERT`` of a complete request row), served
exactly as ours, by a second ``./scripts/serve`` with ``BENCH_FLOOR=1`` in ours' environment:
its rows go to ours' database, so our workers notify them too; ``--no-floor`` leaves it out).
Ours is the example project on the production web server (``bench.common.serve``:
``./scripts/serve`` when it exists, else gunicorn), PostgreSQL (database ``ciba_bench``,
emptied), Redis (cache, poll state, Celery broker) and Celery workers in the layout of
docs/integration.md "Queues" (one worker for ``ciba-callbacks``, one for
``ciba-notify,ciba-sweeps``). Every server gets the same load from
the same wrk (1 thread, ``--connections`` 8), and the servers take turns within each scenario
of each of ``--rounds`` rounds (the order rotates from round to round). Scenarios:

1. pending polls/s (ours and both reference OPs): ``--pending`` pending requests per server,
   polled round-robin for ``--duration`` s; every answer must be ``authorization_pending`` or
   ``slow_down``;
2. backchannel requests/s with no Celery worker running (device notifications left queued):
   complete requests, ``login_hint`` cycling over user1..user50; every answer must be 200.
   The ceiling and the floor get the same wrk bodies (ours' table is emptied before ours' and
   each floor variant's run);
3. backchannel sustained, notification work included: our workers run; wrk for ``--duration``
   s, then the time until the worker has finished the device notification of every request
   (the database's ``device_notification_status`` no longer open) is added:
   accepted / (duration + drain); the same for each floor variant, whose rows our workers
   notify as ours. The reference OP "notifies" inline (it only remembers the request), and
   the ceiling has nothing to notify, so their sustained rates are their rates of scenario 2
   in the same round;
4. approve -> callback latency: ``--approvals`` sequential approvals each, timed from just
   before the approve request to the callback's arrival at a local receiver (https with a
   self-signed certificate for the reference OP, which accepts nothing else; http for ours);
   ping for all three, push for ours only (the reference OP does not offer it);
5. burst (ours only): ``--burst`` backchannel requests as fast as wrk sends them, then at once
   ``--approvals`` ping approvals: their p95 beside the quiet p95 of scenario 4;
6. resources: resident memory of each web, Node and Celery process, and CPU-seconds per 1,000
   requests of each scenario and server, by part: the server's processes (our web processes,
   each Node process, the ceiling's granian, the floor's web processes), our Celery workers,
   PostgreSQL and Redis
   (/proc utime+stime of each process tree around each run). PostgreSQL's and Redis's CPU is
   the whole servers': shared with anything else using them.

The machine is shared: before each scenario the command waits (up to ``--quiet-wait`` s) until
other processes use under a quarter of a core, and every run records the CPU the rest of the
machine used meanwhile (``others``: /proc/stat minus every process measured, wrk included).
Our server remembers a verified client secret for ``--secret-cache-seconds`` (a day: the whole
run), so the steady state is measured; see ``measure`` for what a lapse does under load. It
runs ``bench.settings``, with the per-user limits off: the comparison is of throughput, not
policy, the reference OP has no such limits, and 1,000 pending requests over 50 users are 20
each from one client, where the defaults allow 2.

Prints a table of medians, ratios (ours over each of the others, and each floor variant over
the ceiling: what Django costs for the ceiling's work) and the issue 29 targets, then
the CPU-seconds per 1,000; writes the JSON (every run, the machine, versions, commit) and a
chart. The numbers never fail the command; errors do (a wrong answer, a socket error, a
missing or wrong callback, notifications never finished, a server that does not start). Exit
status 75 means the reference OP could not be installed or node is missing: nothing was
measured. Without ``../shared/limits/durable_app.py`` the ceiling is left out (said so).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import ipaddress
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import (
    GRANT,
    RESULTS,
    ROOT,
    Receiver,
    Server,
    basic,
    count_errors,
    cpu_seconds,
    describe_tree,
    environment,
    flush_redis,
    manage,
    percentiles,
    post,
    prepare_database,
    processes_named,
    serve,
    start_worker,
    stop_session,
    tree_cpu_seconds,
    wait_until_serving,
    wrk,
)

ANCHOR_SOURCE = Path(os.environ.get("CIBA_ANCHOR_SOURCE", ROOT.parent / "shared" / "anchor"))
ANCHOR_CACHE = Path(os.environ.get("CIBA_ANCHOR_CACHE", "/tmp/ciba-anchor"))
ANCHOR_UNAVAILABLE = 75  # exit status: the reference OP could not be installed; nothing measured
USERS = 50  # user1..user50 on both servers (the reference OP's default)
PENDING = {"400 authorization_pending", "400 slow_down"}
#: The durable-request ceiling: a bare WSGI app (read-only source, copied into the run's folder).
CEILING_SOURCE = Path(
    os.environ.get("CIBA_LIMIT_SOURCE", ROOT.parent / "shared" / "limits" / "durable_app.py")
)
CEILING_TABLE = (
    "CREATE TABLE IF NOT EXISTS req (id bigserial primary key, auth_req_id text unique not null, "
    "login_hint text, scope text, binding_message text, status text default 'pending', "
    "created timestamptz default now())"
)
#: Every server of a run, by its key in the results, and how tables and charts name it.
SERVERS = {
    "ours": "django-ciba",
    "theirs": "oidc-provider, memory",
    "theirs_redis": "oidc-provider, Redis store",
    "ceiling": "durable ceiling",
    "floor": "Django floor, ORM",
    "floor_sql": "Django floor, raw SQL",
}
#: Which CPU meter of ``Meter.read`` is each server's own process tree.
OWN_PROCESSES = {
    "ours": "web",
    "theirs": "anchor",
    "theirs_redis": "anchor_redis",
    "ceiling": "ceiling",
    "floor": "floor",
    "floor_sql": "floor",
}
#: The floor's variants (one server, a path each: ``bench.floor``), by their key in the results.
FLOOR_PATHS = {"floor": "/bench/floor/orm/", "floor_sql": "/bench/floor/sql/"}
#: The servers whose new requests our workers notify (ours' database, ours' broker).
NOTIFIED = ("ours", *FLOOR_PATHS)
#: Issue 29's targets (polls against both reference OPs; new requests with their notification
#: work against the durable ceiling of the same run), and issue 17's burst: "callback latency
#: unchanged" is read as a p95 after the burst within 1.5x the quiet p95 plus 2 ms (the
#: notification backlog shares the two cores).
TARGETS = {
    "polls_ratio": 1.0,
    "sustained_ceiling_ratio": 0.6,
    "ping_p95_ms": 10.0,
    "push_p95_ms": 15.0,
    "burst_p95_factor": 1.5,
    "burst_p95_slack_ms": 2.0,
}
#: The scenarios of a round, in the order they run (``--scenarios`` picks some; all by default).
SCENARIOS = ("polls", "backchannel", "sustained", "callbacks", "burst")
#: docs/integration.md "Queues": callbacks get workers of their own.
WORKER_LAYOUT = (("callbacks", ("ciba-callbacks",)), ("notify", ("ciba-notify", "ciba-sweeps")))


class AnchorUnavailable(Exception):
    """node, npm or the reference OP's packages are not available: nothing can be compared."""


# --- the reference OP -----------------------------------------------------------------------


def _copy_sources(source: Path, target: Path) -> None:
    """The anchor's files (not node_modules), writable (the source may be read-only)."""
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if path.is_dir() or relative.parts[0] == "node_modules":
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_name(f".{destination.name}.{os.getpid()}")
        temporary.write_bytes(path.read_bytes())
        os.replace(temporary, destination)


def install_anchor(source: Path = ANCHOR_SOURCE) -> Path:
    """A copy of the reference OP with its packages installed (``npm ci`` once per lock file)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise AnchorUnavailable("node and npm are needed for the reference OP")
    lock = source / "package-lock.json"
    if not lock.is_file():
        raise AnchorUnavailable(f"no reference OP at {source} (missing package-lock.json)")
    key = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    target = ANCHOR_CACHE / key
    if not (target / ".npm-ci-done").exists():
        ANCHOR_CACHE.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)  # a copy without a finished npm ci
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=ANCHOR_CACHE))
        _copy_sources(source, staging)
        print(f"npm ci in {target} (once per package-lock.json) ...", flush=True)
        try:
            result = subprocess.run(
                [
                    "npm",
                    "ci",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    "--fetch-retries=1",
                    "--prefer-offline",
                ],
                cwd=staging,
                capture_output=True,
                text=True,
                timeout=150,
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            raise AnchorUnavailable("npm ci did not finish within 150 s (registry unreachable?)") from None
        if result.returncode:
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
            raise AnchorUnavailable(f"npm ci failed (exit {result.returncode}):\n{tail}")
        (staging / ".npm-ci-done").touch()
        try:
            os.rename(staging, target)
        except OSError:  # another run installed it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    _copy_sources(source, target)  # server.mjs and keys as they are now
    return target


@dataclass
class Anchor:
    base: str
    pid: int


@contextmanager
def anchor(
    directory: Path,
    port: int,
    notify_url: str,
    notify_ca: Path,
    log: Path,
    redis_url: str | None = None,
) -> Iterator[Anchor]:
    """``node server.mjs``: storage in memory, or in Redis at ``redis_url`` (``CIBA_ANCHOR_STORE``)."""
    env = {
        **os.environ,
        "PORT": str(port),
        "CIBA_ANCHOR_NOTIFY_URL": notify_url,
        "CIBA_ANCHOR_NOTIFY_CA": str(notify_ca),
        "CIBA_ANCHOR_USERS": str(USERS),
    }
    env.pop("CIBA_ANCHOR_STORE", None)
    if redis_url:
        env.update(CIBA_ANCHOR_STORE="redis", CIBA_ANCHOR_REDIS_URL=redis_url)
    store = f"Redis store ({redis_url})" if redis_url else "in memory"
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["node", "server.mjs"], cwd=directory, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        try:
            wait_until_serving(
                base,
                process,
                f"the reference OP, {store} (node server.mjs)",
                "/.well-known/openid-configuration",
            )
        except RuntimeError:
            print(log.read_text(), file=sys.stderr)
            raise
        print(f"reference OP, {store}: node server.mjs in {directory}, {base}", flush=True)
        yield Anchor(base, process.pid)
    finally:
        stop_session(process)


@dataclass
class Ceiling:
    base: str
    pid: int
    database: str
    redis: str

    def empty(self) -> None:
        """Truncate its table and flush its Redis database (as ours is emptied before a run)."""
        import psycopg

        with psycopg.connect(self.database, autocommit=True) as connection:
            connection.execute("TRUNCATE req")
        flush_redis(self.redis)


def prepare_ceiling(database: str) -> None:
    """The ceiling's database and table (durable_app.py's docstring), created when missing."""
    import psycopg

    parts = urlsplit(database)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute(CEILING_TABLE)


@contextmanager
def ceiling(
    source: Path, work: Path, port: int, database: str, redis_url: str, log: Path, wanted: bool = True
) -> Iterator[Ceiling | None]:
    """The durable-request ceiling on granian (2 workers, one blocking thread each); None, and
    said so, when its source is missing or no scenario of the run uses it."""
    if not wanted:
        print("durable ceiling: not started (no backchannel scenario in --scenarios)", flush=True)
        yield None
        return
    if not source.is_file():
        print(f"durable ceiling: skipped, no {source}", file=sys.stderr, flush=True)
        yield None
        return
    prepare_ceiling(database)
    folder = work / "ceiling"
    folder.mkdir(exist_ok=True)
    (folder / "durable_app.py").write_bytes(source.read_bytes())  # the source may be read-only
    command = [
        sys.executable, "-m", "granian", "--interface", "wsgi", "durable_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--blocking-threads", "1",
        "--backlog", "2048", "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "LIMIT_DSN": database, "LIMIT_REDIS": redis_url}
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        try:
            wait_until_serving(base, process, "the durable ceiling (granian durable_app:app)", "/")
        except RuntimeError:
            print(log.read_text(), file=sys.stderr)
            raise
        print(f"durable ceiling: granian durable_app:app, 2 workers, 1 thread each, {base}", flush=True)
        yield Ceiling(base, process.pid, database, redis_url)
    finally:
        stop_session(process)


@contextmanager
def floor_server(
    env: dict[str, str], port: int, workers: int, client_id: str, wanted: bool
) -> Iterator[Server | None]:
    """The floor (``bench.floor``): the example project served exactly as ours (the same
    ``serve``, settings, environment and database), its URLconf with the floor's two views
    first (``BENCH_FLOOR``), for ``client_id``; None, and said so, when not ``wanted``."""
    if not wanted:
        print("Django floor: not started (--no-floor, or no backchannel scenario)", flush=True)
        yield None
        return
    print("Django floor: bench.floor's views on a server of their own, as ours is served:", flush=True)
    with serve({**env, "BENCH_FLOOR": "1", "BENCH_FLOOR_CLIENT_ID": client_id}, port, workers) as server:
        yield server


def anchor_versions(directory: Path) -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return json.loads((directory / "node_modules" / package / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            return "?"

    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {"node": node, "oidc-provider": version("oidc-provider"), "undici": version("undici")}


def self_signed(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 and the certificate's PEM file (the OP's trust)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert = directory / "receiver.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file = directory / "receiver.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key_file)
    return context, cert


# --- our tier -------------------------------------------------------------------------------


class Database:
    """Direct access to the benchmark database: empty the requests, count open notifications."""

    def __init__(self, url: str, table: str, open_statuses: list[str]) -> None:
        import psycopg

        self.connection = psycopg.connect(url, autocommit=True)
        self.table = table
        self.open_statuses = open_statuses

    def empty(self) -> None:
        self.connection.execute("SET lock_timeout = '15s'")
        self.connection.execute(f'TRUNCATE "{self.table}" CASCADE')

    def open_notifications(self) -> int:
        row = self.connection.execute(
            f'SELECT count(*) FROM "{self.table}" WHERE device_notification_status = ANY(%s)',
            (self.open_statuses,),
        ).fetchone()
        return int(row[0])

    def version(self) -> str:
        return str(self.connection.execute("SHOW server_version").fetchone()[0])


SETUP_OURS = f"""
import json
from django.contrib.auth import get_user_model
from ciba import device_outbox as notifications
from ciba.models import AuthenticationRequest
User = get_user_model()
User.objects.bulk_create([User(username=f"user{{i}}") for i in range(1, {USERS} + 1)], ignore_conflicts=True)
table = AuthenticationRequest._meta.db_table
print(json.dumps({{"table": table, "open": [str(s) for s in notifications.OPEN]}}))
"""


@contextmanager
def workers(env: dict[str, str], concurrency: dict[str, int]) -> Iterator[list[Any]]:
    """The Celery workers of docs/integration.md "Queues", started side by side."""
    started: dict[str, Any] = {}
    failures: list[BaseException] = []

    def start(name: str, queues: tuple[str, ...]) -> None:
        try:
            started[name] = start_worker(env, queues, concurrency[name])
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failures.append(exc)

    threads = [threading.Thread(target=start, args=layout) for layout in WORKER_LAYOUT]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        if failures:
            raise RuntimeError(f"a Celery worker did not start: {failures[0]}")
        yield [started[name] for name, _ in WORKER_LAYOUT]
    finally:
        for process in started.values():
            process.terminate()
        for process in started.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Meter:
    """CPU-seconds of each part, read from /proc around one run."""

    web: int
    anchor: int
    anchor_redis: int | None = None
    ceiling: int | None = None
    floor: int | None = None
    worker_pids: list[int] = field(default_factory=list)

    #: the parts measured apart (``services`` is PostgreSQL + Redis, kept for older readers)
    PARTS = ("web", "workers", "services", "anchor", "anchor_redis", "ceiling", "floor")

    def read(self) -> dict[str, float]:
        own = os.times()
        return {
            "web": tree_cpu_seconds(self.web),
            "workers": tree_cpu_seconds(*self.worker_pids) if self.worker_pids else 0.0,
            "services": (postgres := cpu_seconds(processes_named("postgres")))
            + (redis := cpu_seconds(processes_named("redis-server"))),
            "postgres": postgres,
            "redis": redis,
            "anchor": tree_cpu_seconds(self.anchor),
            "anchor_redis": tree_cpu_seconds(self.anchor_redis) if self.anchor_redis else 0.0,
            "ceiling": tree_cpu_seconds(self.ceiling) if self.ceiling else 0.0,
            "floor": tree_cpu_seconds(self.floor) if self.floor else 0.0,
            "bench": own.user + own.system + own.children_user + own.children_system,  # this + wrk
            "machine": machine_busy_seconds(),
            "wall": time.monotonic(),
        }

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        spent = {key: round(after[key] - before[key], 3) for key in before}
        # CPU the machine spent on anything else: other people's work disturbs the figures
        counted = sum(spent.get(key, 0.0) for key in (*Meter.PARTS, "bench"))  # services: PG+Redis
        spent["others"] = round(max(0.0, spent["machine"] - counted), 3)
        return spent

    def idle(self, seconds: float) -> dict[str, float]:
        """CPU-seconds per second each part spends doing nothing for anyone (timers, heartbeats)."""
        before = self.read()
        time.sleep(seconds)
        spent = self.spent(before, self.read())
        parts = (*self.PARTS, "postgres", "redis")
        return {key: round(spent[key] / spent["wall"], 4) for key in parts}


def wait_quiet(meter: Meter, limit: float, waits: list[float]) -> None:
    """Wait (up to ``limit`` s) until other processes use under a quarter of a core for 2 s."""
    started = time.monotonic()
    while limit > 0:
        before = meter.read()
        time.sleep(2)
        spent = Meter.spent(before, meter.read())
        busy = spent["others"] / spent["wall"]
        if busy < 0.25 or time.monotonic() - started > limit:
            break
        print(f"  the machine is busy ({busy:.2f} cores used by other processes); waiting ...", flush=True)
    waits.append(round(time.monotonic() - started, 1))


def machine_busy_seconds() -> float:
    """CPU-seconds all cores spent not idle since boot (/proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wrk_run(
    target: str,
    base: str,
    path: str,
    authorization: str,
    bodies: list[str],
    seconds: int,
    args: argparse.Namespace,
    expected: set[str],
    meter: Meter,
    warmup: int = 0,
) -> dict:
    if warmup:
        wrk(base, path, authorization, bodies, warmup, args.connections)
    before = meter.read()
    result = wrk(base, path, authorization, bodies, seconds, args.connections)
    result["cpu_seconds"] = Meter.spent(before, meter.read())
    result["errors"] = count_errors(result, expected)
    result["server"] = target
    return result


def backchannel_bodies() -> list[str]:
    return [
        f"scope=openid&login_hint=user{i % USERS + 1}&binding_message=BENCH-{i:04d}&requested_expiry=600"
        for i in range(1000)
    ]


def anchor_pending(base: str, count: int) -> list[str]:
    """``count`` pending requests of the reference OP's poll client, on one keep-alive connection."""
    netloc = urlsplit(base).netloc
    connection = http.client.HTTPConnection(netloc, timeout=10)
    headers = {
        "Authorization": basic({"client_id": "anchor-poll", "client_secret": "anchor-poll-secret"}),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    ids = []
    for i in range(count):
        body = f"scope=openid&login_hint=user{i % USERS + 1}&binding_message=BENCH&requested_expiry=600"
        connection.request("POST", "/backchannel", body, headers)
        response = connection.getresponse()
        payload = json.loads(response.read() or b"{}")
        if response.status != 200:
            raise RuntimeError(f"the reference OP refused a backchannel request: {response.status} {payload}")
        ids.append(payload["auth_req_id"])
    connection.close()
    return ids


def ours_pending(env: dict[str, str], db: Database, count: int) -> list[str]:
    db.empty()
    with tempfile.NamedTemporaryFile(suffix=".json") as ids_file:
        subprocess.run(
            [sys.executable, "-m", "bench.seed", "--replace", str(count), ids_file.name],
            cwd=ROOT,
            env=env,
            check=True,
        )
        return json.loads(Path(ids_file.name).read_text())


def callbacks(
    target: str,
    base: str,
    receiver: Receiver,
    mode: str,
    approvals: int,
    gap: float,
    meter: Meter,
    demo: dict | None = None,
    idle: dict[str, float] | None = None,
    approve_base: str | None = None,
) -> dict:
    """``approvals`` requests started and approved one at a time; each callback timed and checked.

    Ours: the demo client of ``mode``, approved through the consent API as alice. The
    reference OP: ``anchor-ping``, approved with ``POST /approve`` (which sends the ping).
    The floor (``approve_base``, the floor's server): a request started by ours as ours' are,
    approved with the same bearer token by ``bench.floor.approve`` (which sends the callback).
    ``gap`` seconds pass between a request and its approval, so its device notification is done.
    CPU is also given net of ``idle`` (each part's CPU-seconds per second at rest) over the run.
    """
    if demo is not None:
        client = demo["clients"][mode]
        hint = "alice"
        start_url = f"{base}/o/backchannel-authentication/"
        consent = {
            "Authorization": f"Bearer {demo['users']['alice']['consent_token']}",
            "Content-Type": "application/json",
        }
    else:
        client = {"client_id": "anchor-ping", "client_secret": "anchor-ping-secret"}
        hint = "user1"
        start_url = f"{base}/backchannel"
        consent = {"Content-Type": "application/json"}
    form = {"Authorization": basic(client), "Content-Type": "application/x-www-form-urlencoded"}
    latencies, approve_ms, problems = [], [], []
    before = meter.read()
    for i in range(approvals):
        token = secrets.token_urlsafe(24)
        body = f"scope=openid&login_hint={hint}&binding_message=BENCH-{i}&client_notification_token={token}"
        status, started = post(start_url, body.encode(), form)
        if status != 200:
            problems.append(f"backchannel {status} {started.get('error')}")
            continue
        auth_req_id = started["auth_req_id"]
        arrived = receiver.expect(auth_req_id)
        time.sleep(gap)
        t0 = time.perf_counter()
        if approve_base is not None:
            status, answer = post(f"{approve_base}/bench/floor/approve/{auth_req_id}/", b"{}", consent)
        elif demo is not None:
            status, answer = post(f"{base}/o/ciba/requests/{auth_req_id}/approve/", b"{}", consent)
        else:
            approval = json.dumps({"auth_req_id": auth_req_id, "decision": "allow"}).encode()
            status, answer = post(f"{base}/approve", approval, consent)
        approve_ms.append((time.perf_counter() - t0) * 1000)
        if status != 200 or (demo is None and answer.get("ping") != "delivered"):
            problems.append(f"approve {status} {answer}")
            continue
        if not arrived.wait(10):
            problems.append("no callback within 10 s")
            continue
        at, path, payload, authorization = receiver.arrived[auth_req_id]
        latencies.append((at - t0) * 1000)
        if authorization != f"Bearer {token}" or not path.rstrip("/").endswith(f"/{mode}"):
            problems.append(f"callback with the wrong bearer token or path ({path})")
        elif mode == "push" and not {"access_token", "id_token", "token_type"} <= set(payload):
            problems.append(f"push payload without tokens: {sorted(payload)}")
        elif mode == "ping" and set(payload) != {"auth_req_id"}:
            problems.append(f"ping payload {sorted(payload)}")
    return {
        "server": target,
        "mode": mode,
        "approvals": approvals,
        "callbacks_received": len(latencies),
        "approval_to_callback_ms": percentiles(latencies),
        "approve_request_ms": percentiles(approve_ms),
        "cpu_seconds": (spent := Meter.spent(before, meter.read())),
        "cpu_seconds_net_of_idle": {
            key: round(value - (idle or {}).get(key, 0.0) * spent["wall"], 3)
            for key, value in spent.items()
            if key != "wall"
        },
        "errors": len(problems),
        "problems": sorted(set(problems)),
        "samples_ms": [round(x, 2) for x in latencies],
    }


def drain(db: Database, timeout: float) -> tuple[float, int]:
    """Seconds until no device notification is open (and how many were open at the start)."""
    started = time.monotonic()
    first = remaining = db.open_notifications()
    while remaining and time.monotonic() - started < timeout:
        time.sleep(0.05)
        remaining = db.open_notifications()
    return time.monotonic() - started, first if not remaining else -remaining


# --- one round ------------------------------------------------------------------------------


def rotate(names: list[str], index: int) -> list[str]:
    """The servers' turns in round ``index``: each round starts one further along."""
    shift = index % len(names)
    return names[shift:] + names[:shift]


def run_round(
    index: int,
    args: argparse.Namespace,
    env: dict[str, str],
    ours: Server,
    anchors: dict[str, Anchor],
    limit: Ceiling | None,
    demo: dict,
    db: Database,
    receivers: dict[str, Receiver],
    floor: Server | None = None,
) -> dict:
    theirs = anchors["theirs"]
    oidc = [name for name in ("ours", "theirs", "theirs_redis") if name in anchors or name == "ours"]
    order = rotate(oidc, index)
    new_requests = rotate(oidc + (["ceiling"] if limit else []) + (list(FLOOR_PATHS) if floor else []), index)
    warmup = args.warmup if index == 0 else 0
    meter = Meter(
        ours.pid,
        theirs.pid,
        anchors["theirs_redis"].pid if "theirs_redis" in anchors else None,
        limit.pid if limit else None,
        floor.pid if floor else None,
    )
    ours_auth = basic(demo["clients"]["poll"])
    theirs_auth = basic({"client_id": "anchor-poll", "client_secret": "anchor-poll-secret"})
    target = {
        "ours": (ours.base, "/o/backchannel-authentication/", "/o/token/", ours_auth),
        **{name: (a.base, "/backchannel", "/token", theirs_auth) for name, a in anchors.items()},
    }
    if limit:
        target["ceiling"] = (limit.base, "/", "", theirs_auth)  # the ceiling ignores path and header
    if floor:  # ours' client's header, as ours gets it (the floor does not read it)
        target.update({name: (floor.base, path, "", ours_auth) for name, path in FLOOR_PATHS.items()})
    waits: list[float] = []
    result: dict[str, Any] = {
        "round": index + 1,
        "order": new_requests,
        "load_average": os.getloadavg(),
        "waits": waits,
    }

    scenarios = set(args.scenarios)

    # 1. pending polls
    if "polls" in scenarios:
        wait_quiet(meter, args.quiet_wait, waits)
        print(f"round {index + 1}: pending polls ...", flush=True)
        ids = {"ours": ours_pending(env, db, args.pending)}
        ids.update({name: anchor_pending(a.base, args.pending) for name, a in anchors.items()})
        result["polls"] = {}
        for name in order:
            base, _, token_path, auth = target[name]
            bodies = [f"grant_type={GRANT}&auth_req_id={i}" for i in ids[name]]
            run = wrk_run(name, base, token_path, auth, bodies, args.duration, args, PENDING, meter, warmup)
            result["polls"][name] = {"pending_requests": args.pending, **run}

    # 2. backchannel, no worker (and the ceiling, with the same bodies)
    if "backchannel" in scenarios or "sustained" in scenarios:  # sustained reads their rates here
        wait_quiet(meter, args.quiet_wait, waits)
        print(
            f"round {index + 1}: backchannel, no Celery worker; the durable ceiling, the floor ...",
            flush=True,
        )
        if limit:
            limit.empty()
        result["backchannel"] = {}
        for name in new_requests:
            base, path, _, auth = target[name]
            if name in NOTIFIED:  # ours' table and broker, each run from empty (the floor's too)
                db.empty()
                flush_redis(env["CELERY_BROKER_URL"])
            run = wrk_run(
                name, base, path, auth, backchannel_bodies(), args.duration, args, {"200"}, meter, warmup
            )
            result["backchannel"][name] = run

    if not scenarios & {"sustained", "callbacks", "burst"}:
        result["memory_mib"] = memory(ours, anchors, limit, [], floor)
        return result

    # 3-5 with our workers
    base, path, _, auth = target["ours"]
    db.empty()
    flush_redis(env["CELERY_BROKER_URL"])
    print(f"round {index + 1}: starting the Celery workers ...", flush=True)
    concurrency = {"callbacks": args.callback_concurrency, "notify": args.notify_concurrency}
    with workers(env, concurrency) as running:
        meter.worker_pids = [process.pid for process in running]
        if "sustained" in scenarios:
            sustained(index, args, meter, waits, db, target, new_requests, result)
        result["memory_mib"] = memory(ours, anchors, limit, running, floor)
        if index == 0 and scenarios & {"callbacks", "burst"}:
            print(f"round {index + 1}: warming the callback paths ...", flush=True)
            warm_callbacks(args, ours, anchors, demo, db, receivers, meter, floor)
        idle = None
        if "callbacks" in scenarios:
            print(f"round {index + 1}: approve -> callback ...", flush=True)
            wait_quiet(meter, args.quiet_wait, waits)
            result["idle_cpu_per_second"] = idle = meter.idle(args.idle)
            result["callbacks"] = {}
            for name in rotate(oidc + (["floor"] if floor else []), index):
                if name in ("ours", "floor"):  # the floor: ours' requests, approved by its view
                    for mode in ("ping", "push"):
                        result["callbacks"][f"{name}_{mode}"] = callbacks(
                            name,
                            ours.base,
                            receivers["ours"],
                            mode,
                            args.approvals,
                            args.gap,
                            meter,
                            demo,
                            idle,
                            approve_base=floor.base if name == "floor" else None,
                        )
                else:
                    result["callbacks"][f"{name}_ping"] = callbacks(
                        name,
                        anchors[name].base,
                        receivers["theirs"],
                        "ping",
                        args.approvals,
                        args.gap,
                        meter,
                        None,
                        idle,
                    )

        if "burst" in scenarios:
            wait_quiet(meter, args.quiet_wait, waits)
            print(
                f"round {index + 1}: burst of {args.burst} backchannel requests, then approvals ...",
                flush=True,
            )
            before = meter.read()
            burst = wrk(
                base, path, auth, backchannel_bodies(), 3600, args.connections, "burst.lua", [str(args.burst)]
            )
            burst["cpu_seconds"] = Meter.spent(before, meter.read())
            burst["errors"] = count_errors(burst, {"200"})
            burst["server"] = "ours"
            backlog = db.open_notifications()
            after = callbacks(
                "ours", ours.base, receivers["ours"], "ping", args.approvals, args.gap, meter, demo, idle
            )
            after["notifications_open_before"] = backlog
            after["notifications_open_after"] = db.open_notifications()
            result["burst"] = {"requests": burst, "ping": after}
            result["memory_mib_after_burst"] = memory(ours, anchors, limit, running, floor)
    return result


def sustained(
    index: int,
    args: argparse.Namespace,
    meter: Meter,
    waits: list[float],
    db: Database,
    target: dict[str, tuple[str, str, str, str]],
    new_requests: list[str],
    result: dict,
) -> None:
    """Scenario 3: backchannel requests with our workers running, until every notification is
    out; ours, then (in the round's order) each floor variant, from an empty table each."""
    result["sustained"] = {}
    for name in new_requests:
        if name not in NOTIFIED:
            continue
        base, path, _, auth = target[name]
        db.empty()
        wait_quiet(meter, args.quiet_wait, waits)
        print(
            f"round {index + 1}: backchannel sustained, notifications included: {SERVERS[name]} ...",
            flush=True,
        )
        before = meter.read()
        run = wrk(base, path, auth, backchannel_bodies(), args.duration, args.connections)
        drained, open_at_end = drain(db, args.drain_timeout)
        run["cpu_seconds"] = Meter.spent(before, meter.read())
        run["errors"] = count_errors(run, {"200"})
        accepted = run["answers"].get("200", 0)
        run.update(
            server=name,
            accepted=accepted,
            accepted_per_second=round(accepted / run["seconds"], 1),
            drain_seconds=round(drained, 2),
            notifications_open_at_end_of_load=open_at_end,
            sustained_per_second=round(accepted / (run["seconds"] + drained), 1),
        )
        if open_at_end < 0:
            run["errors"] += 1
            run["problem"] = f"{-open_at_end} device notifications still open after {args.drain_timeout} s"
        result["sustained"][name] = run
    for name in new_requests:
        if name not in NOTIFIED:
            result["sustained"][name] = {
                "server": name,
                "sustained_per_second": result["backchannel"][name]["requests_per_second"],
                "note": "nothing is left to do after the answer (the reference OP's device "
                "notification is inline; the ceiling has none): its sustained rate is its "
                "backchannel rate of this round",
            }


def warm_callbacks(
    args: argparse.Namespace,
    ours: Server,
    anchors: dict[str, Anchor],
    demo: dict,
    db: Database,
    receivers: dict[str, Receiver],
    meter: Meter,
    floor: Server | None = None,
) -> None:
    """First round: every web process verifies the ping and push clients' secrets (a PBKDF2
    hash the first time, then remembered), TLS and keep-alive connections open, code paths
    run once; nothing here is measured."""
    token = "&client_notification_token=warm-up"
    for mode in ("ping", "push"):
        bodies = [f"scope=openid&login_hint=alice&binding_message=WARM{token}"]
        wrk(
            ours.base,
            "/o/backchannel-authentication/",
            basic(demo["clients"][mode]),
            bodies,
            1,
            args.connections,
        )
    anchor_ping = basic({"client_id": "anchor-ping", "client_secret": "anchor-ping-secret"})
    for reference in anchors.values():
        wrk(
            reference.base,
            "/backchannel",
            anchor_ping,
            [f"scope=openid&login_hint=user1{token}"],
            1,
            args.connections,
        )
    drain(db, args.drain_timeout)
    for mode in ("ping", "push"):
        callbacks("ours", ours.base, receivers["ours"], mode, 2, args.gap, meter, demo)
    for name, reference in anchors.items():
        callbacks(name, reference.base, receivers["theirs"], "ping", 2, args.gap, meter)
    if floor is not None:
        for mode in ("ping", "push", "ping", "push"):  # each floor process reads its fixed parts once
            callbacks(
                "floor",
                ours.base,
                receivers["ours"],
                mode,
                2,
                args.gap,
                meter,
                demo,
                approve_base=floor.base,
            )


def memory(
    ours: Server,
    anchors: dict[str, Anchor],
    limit: Ceiling | None,
    running: list[Any],
    floor: Server | None = None,
) -> dict[str, Any]:
    return {
        "web": describe_tree(ours.pid),
        "celery": {name: describe_tree(p.pid) for (name, _), p in zip(WORKER_LAYOUT, running, strict=False)},
        "anchor": describe_tree(anchors["theirs"].pid),
        "anchor_redis": describe_tree(anchors["theirs_redis"].pid) if "theirs_redis" in anchors else [],
        "ceiling": describe_tree(limit.pid) if limit else [],
        "floor": describe_tree(floor.pid) if floor else [],
    }


# --- the summary ----------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}


def per(value: float, count: float, unit: float) -> float | None:
    return round(value / count * unit, 4) if count else None


#: CPU-seconds per 1,000, by scenario: (label, which runs, what is counted, the parts of each server)
CPU_SCENARIOS = (
    ("polls", "pending polls", "polls", "requests"),
    ("backchannel", "backchannel, no worker", "backchannel", "requests"),
    ("sustained", "backchannel + notification work", "sustained", "accepted"),
    ("ping", "ping (request + approve + callback)", "callbacks", "callbacks_received"),
    ("push", "push (request + approve + callback)", "callbacks", "callbacks_received"),
)
CPU_PARTS = ("server", "workers", "postgres", "redis")


def summarize(rounds: list[dict]) -> dict[str, Any]:
    def series(pick: Any) -> list[float]:
        out = []
        for r in rounds:
            try:
                value = pick(r)
            except (KeyError, TypeError, ZeroDivisionError):
                continue
            if value is not None:
                out.append(value)
        return out

    rows: dict[str, dict[str, Any]] = {}

    def row(key: str, label: str, pick: Any, servers: tuple[str, ...] = ("ours",), **extra: Any) -> None:
        """One measure: each server's median and spread over the rounds, and ours over each other."""
        cells = {name: spread(series(lambda r, n=name: pick(r, n))) for name in SERVERS}
        cells = {name: cell if name in servers else None for name, cell in cells.items()}

        def ratio(other: str, of: str = "ours") -> float | None:
            a, t = cells[of], cells[other]
            return round(a["median"] / t["median"], 3) if a and t and t["median"] else None

        rows[key] = {
            "label": label,
            **cells,
            "ratio": ratio("theirs"),
            "ratio_redis": ratio("theirs_redis"),
            "ratio_ceiling": ratio("ceiling"),
            # the floor: ours over it, and each variant over the ceiling (what Django costs)
            "ratio_floor": ratio("floor"),
            "floor_ratio_ceiling": ratio("ceiling", "floor"),
            "floor_sql_ratio_ceiling": ratio("ceiling", "floor_sql"),
            **extra,
        }

    everyone = tuple(SERVERS)
    oidc = ("ours", "theirs", "theirs_redis")
    row("polls_per_second", "pending polls/s", lambda r, n: r["polls"][n]["requests_per_second"], oidc)
    row(
        "backchannel_per_second",
        "backchannel req/s, no worker running",
        lambda r, n: r["backchannel"][n]["requests_per_second"],
        everyone,
    )
    row(
        "backchannel_accepted_with_worker",
        "backchannel req/s accepted, worker running",
        lambda r, n: r["sustained"][n]["accepted_per_second" if n in NOTIFIED else "sustained_per_second"],
        everyone,
    )
    row(
        "drain_seconds",
        "notification drain after the load, s",
        lambda r, n: r["sustained"][n]["drain_seconds"],
        NOTIFIED,
    )
    row(
        "sustained_per_second",
        "backchannel req/s incl. notifications",
        lambda r, n: r["sustained"][n]["sustained_per_second"],
        everyone,
    )
    for key in ("ping", "push"):
        for p in ("p50", "p95"):
            row(
                f"{key}_{p}_ms",
                f"approve -> {key} callback {p}, ms",
                lambda r, n, k=key, p=p: r["callbacks"][f"{n}_{k}"]["approval_to_callback_ms"][p],
                (*oidc, "floor") if key == "ping" else ("ours", "floor"),  # the floor's: bench.floor
            )
    row(
        "approve_request_p50_ms",
        "the approve request itself, p50, ms",
        lambda r, n: r["callbacks"][f"{n}_ping"]["approve_request_ms"]["p50"],
        (*oidc, "floor"),
    )
    row(
        "burst_ping_p95_ms",
        "ping p95 after the burst, ms",
        lambda r, n: r["burst"]["ping"]["approval_to_callback_ms"]["p95"],
    )
    row(
        "burst_backlog",
        "open notifications when approvals began",
        lambda r, n: r["burst"]["ping"]["notifications_open_before"],
    )
    row(
        "burst_per_second",
        "burst backchannel req/s (worker running)",
        lambda r, n: r["burst"]["requests"]["requests_per_second"],
    )

    # CPU-seconds per 1,000 requests (callbacks), by scenario, server and part
    def cpu_run(r: dict, scenario: str, group: str, name: str) -> dict | None:
        if group == "callbacks":
            if name == "floor":  # ours made its requests: the floor's CPU is the approval's alone
                return None
            return r.get("callbacks", {}).get(f"{name}_{scenario}")
        run = r.get(group, {}).get(name)
        return run if run and "cpu_seconds" in run else None

    cpu: dict[str, dict[str, dict[str, Any]]] = {}
    for scenario, _label, group, count in CPU_SCENARIOS:
        cpu[scenario] = {}
        for name in SERVERS:
            runs = [(run, run.get(count)) for r in rounds if (run := cpu_run(r, scenario, group, name))]
            runs = [(run, n) for run, n in runs if n]
            if not runs:
                continue
            parts = {
                "server": OWN_PROCESSES[name],
                "workers": "workers" if name in NOTIFIED else None,
                "postgres": "postgres" if name in (*NOTIFIED, "ceiling") else None,
                "redis": "redis" if name != "theirs" else None,
            }
            cells: dict[str, Any] = {}
            for part, meter_key in parts.items():
                if meter_key:
                    cells[part] = spread([per(run["cpu_seconds"][meter_key], n, 1000) for run, n in runs])
            cells["total"] = spread(
                [per(sum(run["cpu_seconds"][k] for k in parts.values() if k), n, 1000) for run, n in runs]
            )
            cpu[scenario][name] = cells

    # memory, from the last round: each process's resident set
    last = rounds[-1] if rounds else {}
    mem = last.get("memory_mib_after_burst") or last.get("memory_mib") or {}
    memory_summary = {
        "web_processes_mib": [p["rss_mib"] for p in mem.get("web", [])],
        "celery_mib": {name: [p["rss_mib"] for p in tree] for name, tree in mem.get("celery", {}).items()},
        "anchor_mib": [p["rss_mib"] for p in mem.get("anchor", [])],
        "anchor_redis_mib": [p["rss_mib"] for p in mem.get("anchor_redis", [])],
        "ceiling_mib": [p["rss_mib"] for p in mem.get("ceiling", [])],
        "floor_mib": [p["rss_mib"] for p in mem.get("floor", [])],
    }

    def value(key: str, side: str = "ours") -> float | None:
        cell = rows[key][side]
        return cell["median"] if cell else None

    burst, quiet = value("burst_ping_p95_ms"), value("ping_p95_ms")
    burst_limit = quiet * TARGETS["burst_p95_factor"] + TARGETS["burst_p95_slack_ms"] if quiet else None
    poll_ratios = [rows["polls_per_second"][k] for k in ("ratio", "ratio_redis")]
    targets = {
        "polls_per_second": (
            "≥ 1.0× both reference OPs",
            min(poll_ratios) if None not in poll_ratios else None,
            TARGETS["polls_ratio"],
            ">=",
        ),
        "sustained_per_second": (
            "≥ 0.6× the durable ceiling",
            rows["sustained_per_second"]["ratio_ceiling"],
            TARGETS["sustained_ceiling_ratio"],
            ">=",
        ),
        "ping_p95_ms": ("≤ 10 ms", value("ping_p95_ms"), TARGETS["ping_p95_ms"], "<="),
        "push_p95_ms": ("≤ 15 ms", value("push_p95_ms"), TARGETS["push_p95_ms"], "<="),
        "burst_ping_p95_ms": (f"≤ 1.5× quiet + 2 ms ({burst_limit or 0:.1f})", burst, burst_limit, "<="),
    }
    for key, (text, measured, limit, op) in targets.items():
        met = None
        if measured is not None and limit is not None:
            met = measured >= limit if op == ">=" else measured <= limit
        rows[key].update(target=text, met=met)
    # what else ran on the machine meanwhile (other people's work; wrk and this script excluded)
    loads = []
    for r in rounds:
        runs = scenario_runs(r)
        loads += [
            run["cpu_seconds"]["others"] / run["cpu_seconds"]["wall"]
            for _, run in runs
            if "cpu_seconds" in run
        ]
    other = {"median": round(statistics.median(loads), 2), "max": round(max(loads), 2)} if loads else None
    return {"rows": rows, "cpu_per_1000": cpu, "memory": memory_summary, "other_processes_cores": other}


def scenario_runs(r: dict) -> list[tuple[str, dict]]:
    """Every measured run of round ``r``, with its scenario (the scenarios the round ran)."""
    runs = [("polls", run) for run in r.get("polls", {}).values()]
    runs += [("backchannel", run) for run in r.get("backchannel", {}).values()]
    runs += [("sustained", run) for run in r.get("sustained", {}).values() if "cpu_seconds" in run]
    runs += [(f"callbacks {k}", v) for k, v in r.get("callbacks", {}).items()]
    if "burst" in r:
        runs += [("burst", r["burst"]["requests"]), ("ping after the burst", r["burst"]["ping"])]
    return runs


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def _columns(lines: list[tuple[str, ...]], left: int) -> list[str]:
    """Align a table: the first ``left`` columns to the left, the others to the right."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        cells = [cell.ljust(width) for cell, width in zip(line[:left], widths[:left], strict=True)]
        cells += [cell.rjust(width) for cell, width in zip(line[left:], widths[left:], strict=True)]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("-" * len(out[0]))
    return out


def table(summary: dict[str, Any]) -> str:
    def median(cell: dict | None) -> str:
        return fmt(cell["median"]) if cell else "—"

    def ratio(value: float | None) -> str:
        return f"{value:.3g}" if value is not None else ""

    head = ("", "target", "ours", "ref. mem", "ref. Redis", "ceiling", "floor ORM", "floor SQL")
    head += ("÷mem", "÷Redis", "÷ceiling", "÷floor", "floor÷ceil", "SQL÷ceil")
    lines: list[tuple[str, ...]] = [(*head, "ours min–max", "met")]
    for row in summary["rows"].values():
        o = row["ours"]
        met = {True: "yes", False: "NO", None: ""}[row.get("met")]
        lines.append(
            (
                row["label"],
                row.get("target", ""),
                *(median(row[name]) for name in SERVERS),
                ratio(row["ratio"]),
                ratio(row["ratio_redis"]),
                ratio(row["ratio_ceiling"]),
                ratio(row["ratio_floor"]),
                ratio(row["floor_ratio_ceiling"]),
                ratio(row["floor_sql_ratio_ceiling"]),
                f"{fmt(o['min'])}–{fmt(o['max'])}" if o else "",
                met,
            )
        )
    out = _columns(lines, 2)
    out += ["", "CPU-seconds per 1,000 requests (ping, push: per 1,000 callbacks), median of the rounds:"]
    cpu_lines: list[tuple[str, ...]] = [
        ("scenario", "server", "own processes", "Celery", "PostgreSQL", "Redis", "total")
    ]
    labels = {scenario: label for scenario, label, _, _ in CPU_SCENARIOS}
    for scenario, servers in summary.get("cpu_per_1000", {}).items():
        for name, cells in servers.items():
            cpu_lines.append(
                (labels[scenario], SERVERS[name], *(median(cells.get(p)) for p in (*CPU_PARTS, "total")))
            )
    out += _columns(cpu_lines, 2)
    mem = summary["memory"]
    out.append("")
    out.append(
        "resident memory, MiB (last round, after the burst): web processes "
        f"{mem['web_processes_mib']}; Celery {mem['celery_mib']}; reference OP {mem['anchor_mib']}, "
        f"with the Redis store {mem.get('anchor_redis_mib')}; ceiling {mem.get('ceiling_mib')}; "
        f"floor {mem.get('floor_mib')}"
    )
    other = summary.get("other_processes_cores")
    if other:
        out.append(
            f"other processes on the machine during the runs: {other['median']} cores (median), "
            f"{other['max']} at most{' — figures disturbed' if other['max'] > 0.2 else ''}"
        )
    return "\n".join(out)


# --- the chart ------------------------------------------------------------------------------

COLOURS = {
    "ours": "#4878a8",
    "theirs": "#999",
    "theirs_redis": "#c8a2c8",
    "ceiling": "#8fb08f",
    "floor": "#e0a060",
    "floor_sql": "#f0d090",
}


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    summary = results["summary"]
    rows = summary["rows"]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 5.2))

    keys = [
        ("polls_per_second", "pending polls"),
        ("backchannel_per_second", "backchannel,\nno worker"),
        ("sustained_per_second", "backchannel incl.\nnotifications"),
    ]
    x = range(len(keys))
    width = 0.8 / len(SERVERS)
    middle_of = (len(SERVERS) - 1) / 2
    tops = [0.0] * len(keys)
    for n, name in enumerate(SERVERS):
        cells = [rows[k][name] or {"median": 0, "min": 0, "max": 0} for k, _ in keys]
        medians = [c["median"] for c in cells]
        errors = [[c["median"] - c["min"] for c in cells], [c["max"] - c["median"] for c in cells]]
        drawn = left.bar(
            [i + (n - middle_of) * width for i in x], medians, width, yerr=errors, color=COLOURS[name],
            label=SERVERS[name], capsize=2,
        )  # fmt: skip
        left.bar_label(
            drawn, labels=[f"{m:.0f}" if m else "" for m in medians], fontsize=6, rotation=90, padding=2
        )
        tops = [max(t, c["max"]) for t, c in zip(tops, cells, strict=True)]
    for i, (key, _) in enumerate(keys):
        ratios = [
            f"{label} {rows[key][field]:.2f}×"
            for field, label in (
                ("ratio", "÷mem"),
                ("ratio_redis", "÷Redis"),
                ("ratio_ceiling", "÷ceiling"),
                ("ratio_floor", "÷floor"),
                ("floor_ratio_ceiling", "floor÷ceiling"),
                ("floor_sql_ratio_ceiling", "SQL floor÷ceiling"),
            )
            if rows[key][field] is not None
        ]
        left.annotate(
            "\n".join(ratios),
            (i, tops[i]),
            xytext=(0, 22),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
    left.set_ylim(0, max(tops + [1]) * 1.45)
    left.set_xticks(list(x), [label for _, label in keys], fontsize=8)
    left.set_title("Requests/s: median, min–max; ours ÷ each other", fontsize=9)
    left.legend(loc="upper right", fontsize=7)

    def pooled(name: str) -> list[float]:
        samples = []
        for r in results["rounds"]:
            run = r.get("burst", {}).get("ping") if name == "burst" else r.get("callbacks", {}).get(name)
            samples += run["samples_ms"] if run else []
        return sorted(samples)

    for name, label, style in (
        ("ours_ping", "ours ping", "-"),
        ("ours_push", "ours push", "-"),
        ("theirs_ping", "oidc-provider ping, memory", "--"),
        ("theirs_redis_ping", "oidc-provider ping, Redis store", "-."),
        ("burst", "ours ping after burst", ":"),
        ("floor_ping", "Django floor ping (bench.floor)", (0, (3, 1, 1, 1))),
        ("floor_push", "Django floor push (bench.floor)", (0, (1, 1))),
    ):
        samples = pooled(name)
        if samples:
            middle.plot(
                samples, [(i + 1) / len(samples) for i in range(len(samples))], linestyle=style, label=label
            )
    middle.axvline(TARGETS["ping_p95_ms"], color="#c44", ls="--", lw=0.8, label="10 / 15 ms targets")
    middle.axvline(TARGETS["push_p95_ms"], color="#c44", ls="--", lw=0.8)
    middle.axhline(0.95, color="#bbb", lw=0.6)
    middle.set_xscale("log")
    middle.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]))
    middle.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    middle.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    middle.set_xlabel("ms (log scale)")
    middle.set_title("Approve → callback arrival (CDF, all rounds)", fontsize=9)
    middle.legend(loc="lower right", fontsize=7)

    cpu = summary.get("cpu_per_1000", {})
    scenarios = [
        ("polls", "polls"),
        ("backchannel", "backchannel\nno worker"),
        ("sustained", "backchannel\n+ notification"),
    ]
    hatches = {"server": "", "workers": "//", "postgres": "..", "redis": "xx"}
    for n, name in enumerate(SERVERS):
        bottoms = [0.0] * len(scenarios)
        for part in CPU_PARTS:
            heights = [
                ((cpu.get(s, {}).get(name) or {}).get(part) or {"median": 0.0})["median"]
                for s, _ in scenarios
            ]
            right.bar(
                [i + (n - middle_of) * width for i in range(len(scenarios))], heights, width, bottom=bottoms,
                color=COLOURS[name], hatch=hatches[part], edgecolor="white", linewidth=0.3,
                label=SERVERS[name] if part == "server" else None,
            )  # fmt: skip
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    for part, hatch in hatches.items():
        right.bar([0], [0], color="white", edgecolor="#555", hatch=hatch, label=f"part: {part}")
    right.set_xticks(range(len(scenarios)), [label for _, label in scenarios], fontsize=8)
    right.set_title("CPU-seconds per 1,000 requests (PostgreSQL, Redis: whole servers)", fontsize=9)
    right.legend(loc="upper left", fontsize=6, ncol=2)

    setup = results["setup"]
    floor = f"; Django floor: {setup['floor']}" if "floor" in setup else ""
    title = textwrap.wrap(f"{setup['ours']} vs {setup['theirs']}{floor}; {setup['load']}", 200)
    fig.suptitle("\n".join(title), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# --- main -----------------------------------------------------------------------------------


def free_port(port: int) -> int:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise RuntimeError(f"port {port} is in use; choose another (--port / --anchor-port)") from None
    return port


def versions(db: Database, env: dict[str, str], anchor_dir: Path) -> dict[str, Any]:
    import redis

    def package(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    wrk_version = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0].split(" [")[0]
    )
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            name: package(name)
            for name in (
                "django",
                "django-oauth-toolkit",
                "celery",
                "kombu",
                "redis",
                "psycopg",
                "gunicorn",
                "granian",
            )
        },
        "postgresql": db.version(),
        "redis": redis.Redis.from_url(env["CACHE_URL"]).info("server")["redis_version"],
        "wrk": wrk_version,
        **anchor_versions(anchor_dir),
        "commit": git("rev-parse", "HEAD").strip(),
        # the working tree measured: other people edit it meanwhile
        "uncommitted_changes": git("status", "--porcelain").splitlines(),
        "uncommitted_diff_sha256": hashlib.sha256(git("diff", "HEAD").encode()).hexdigest(),
        "load_average_at_start": os.getloadavg(),
        "psutil": package("psutil"),
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, servers alternating (median, spread)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="wrk warm-up seconds, first round")
    parser.add_argument("--pending", type=int, default=1000, help="pending requests per server")
    parser.add_argument("--approvals", type=int, default=50, help="sequential approvals per callback run")
    parser.add_argument("--burst", type=int, default=10000, help="backchannel requests in the burst")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between a request and its approval")
    parser.add_argument("--idle", type=float, default=3, help="seconds at rest to measure idle CPU")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=90,
        help="seconds to wait for other load to stop before a scenario",
    )
    parser.add_argument(
        "--secret-cache-seconds",
        type=int,
        default=86400,
        help="CLIENT_SECRET_CACHE_SECONDS for our server (300 is the default a site runs with)",
    )
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (1 thread)")
    parser.add_argument("--workers", type=int, default=2, help="web server processes (WEB_CONCURRENCY)")
    parser.add_argument("--callback-concurrency", type=int, default=1, help="ciba-callbacks worker processes")
    parser.add_argument(
        "--notify-concurrency", type=int, default=1, help="ciba-notify,ciba-sweeps worker processes"
    )
    parser.add_argument("--drain-timeout", type=float, default=None, help="seconds to wait for notifications")
    parser.add_argument("--port", type=int, default=8777, help="our web server's port")
    parser.add_argument(
        "--anchor-port",
        type=int,
        default=3777,
        help="the reference OP's port (in memory; its Redis-store twin listens on the next one)",
    )
    parser.add_argument(
        "--anchor-redis-url",
        default=os.environ.get("BENCH_ANCHOR_REDIS_URL", "redis://127.0.0.1:6379/10"),
        help="the Redis database of the reference OP's Redis store (flushed)",
    )
    parser.add_argument("--ceiling-port", type=int, default=8190, help="the durable ceiling's port")
    parser.add_argument(
        "--ceiling-database-url",
        default=os.environ.get("BENCH_CEILING_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ciba_limit"),
        help="the durable ceiling's PostgreSQL database (created with its table when missing)",
    )
    parser.add_argument(
        "--ceiling-redis-url",
        default=os.environ.get("BENCH_CEILING_REDIS_URL", "redis://127.0.0.1:6379/11"),
        help="the durable ceiling's Redis database (flushed)",
    )
    parser.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve and load the Django floor (bench.floor) beside the ceiling in the backchannel "
        "scenarios (default: on; --no-floor leaves it out)",
    )
    parser.add_argument("--floor-port", type=int, default=8779, help="the Django floor's port")
    parser.add_argument(
        "--results", type=Path, help="where to write (default docs/performance; --smoke: a temp dir)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="1 round, 2 s runs, 50 pending, 5 approvals, 200 burst"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"which scenarios each round runs, comma-separated (default all: {','.join(SCENARIOS)}); "
        "sustained runs backchannel too (the others' sustained rates are their backchannel rates); "
        "the burst's p95 is judged against callbacks' quiet p95",
    )
    args = parser.parse_args(argv)
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown or not args.scenarios:
        parser.error(
            f"--scenarios: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(SCENARIOS)}"
        )
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.pending = 1, 2, 1, 50
        args.approvals, args.burst, args.idle, args.quiet_wait = 5, 200, 1, 0
        args.results = args.results or Path(tempfile.mkdtemp(prefix="bench-compare-"))
    args.results = args.results or RESULTS
    args.drain_timeout = args.drain_timeout or max(60.0, 20.0 * args.duration)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    if shutil.which("wrk") is None:
        sys.exit("bench.compare needs wrk: apt-get install wrk")
    try:
        anchor_dir = install_anchor()
    except AnchorUnavailable as exc:
        print(f"bench.compare: skipped, the reference OP is unavailable: {exc}", file=sys.stderr)
        sys.exit(ANCHOR_UNAVAILABLE)
    try:
        results = measure(args, anchor_dir)
    except RuntimeError as exc:
        sys.exit(f"bench.compare: error: {exc}")

    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / "compare.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    chart(results, args.results / "compare.png")
    print()
    print(f"{results['setup']['ours']}\nvs {results['setup']['theirs']}")
    print(f"{args.rounds} round(s), wrk -t1 -c{args.connections} -d{args.duration}s, {args.pending} pending, "
          f"{args.approvals} approvals, burst {args.burst}")  # fmt: skip
    print(table(results["summary"]))
    print(
        "The reference OP's and the ceiling's sustained rates are their backchannel rates: the reference\n"
        "OP's device notification is inline, the ceiling has none; the floor's rows are notified by our\n"
        "workers, as ours. CPU of PostgreSQL and Redis is the whole servers' (anything else using them\n"
        "counts too)."
    )
    print(f"written to {path} and {path.with_suffix('.png')}")
    if results["errors"]:
        for problem in results["problems"]:
            print(f"error: {problem}", file=sys.stderr)
        sys.exit(f"{results['errors']} errors: these figures are not valid")


def measure(args: argparse.Namespace, anchor_dir: Path) -> dict[str, Any]:
    backchannel_runs = bool({"backchannel", "sustained"} & set(args.scenarios))
    with_floor = args.floor and (backchannel_runs or "callbacks" in args.scenarios)
    for port in (args.port, args.anchor_port, args.anchor_port + 1, args.ceiling_port):
        free_port(port)
    if with_floor:
        free_port(args.floor_port)
    # A verified client secret is remembered for CLIENT_SECRET_CACHE_SECONDS from its check;
    # when it lapses mid-run, the client's concurrent requests meet the failed-authentication
    # guard's "one unverified check in flight" and get 429 invalid_client while one re-hashes
    # (ciba/client_auth/guard.py). That is by design, not throughput: the default keeps every
    # verification for the whole run, and any 429 still counts as an error.
    env = environment(
        args.port,
        CIBA_POLL_STATE_REDIS_URL="",
        BENCH_CLIENT_SECRET_CACHE_SECONDS=str(args.secret_cache_seconds),
    )
    prepare_database(env)
    flush_redis(env["CACHE_URL"], env["CELERY_BROKER_URL"], args.anchor_redis_url, args.ceiling_redis_url)
    work = Path(tempfile.mkdtemp(prefix="bench-compare-run-"))
    tls, cert = self_signed(work)
    receivers = {"ours": Receiver(keep_alive=True), "theirs": Receiver(tls=tls, keep_alive=True)}
    for receiver in receivers.values():
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
    demo = json.loads(
        manage(env, "ciba_demo_data", "--json", "--notification-base-url", receivers["ours"].url)
    )
    ours_setup = json.loads(manage(env, "shell", "-c", SETUP_OURS).strip().splitlines()[-1])
    db = Database(env["DATABASE_URL"], ours_setup["table"], ours_setup["open"])

    results: dict[str, Any] = {"command": " ".join(["python -m bench.compare", *sys.argv[1:]])}
    rounds: list[dict] = []
    notify = f"{receivers['theirs'].url}/ping"
    try:
        with (
            serve(env, args.port, args.workers) as ours,
            anchor(anchor_dir, args.anchor_port, notify, cert, work / "anchor.log") as theirs,
            anchor(
                anchor_dir,
                args.anchor_port + 1,
                notify,
                cert,
                work / "anchor-redis.log",
                args.anchor_redis_url,
            ) as theirs_redis,
            ceiling(
                CEILING_SOURCE,
                work,
                args.ceiling_port,
                args.ceiling_database_url,
                args.ceiling_redis_url,
                work / "ceiling.log",
                wanted=backchannel_runs,
            ) as limit,
            floor_server(
                env, args.floor_port, args.workers, demo["clients"]["poll"]["client_id"], with_floor
            ) as floor,
        ):
            anchors = {"theirs": theirs, "theirs_redis": theirs_redis}
            results["environment"] = versions(db, env, anchor_dir)
            found = results["environment"]
            reference = f"oidc-provider {found['oidc-provider']} on Node {found['node']}"
            results["setup"] = {
                "ours": f"django-ciba: {ours.command}; PostgreSQL, Redis (cache, poll state, broker); Celery "
                f"workers -Q ciba-callbacks (concurrency {args.callback_concurrency}) and -Q "
                f"ciba-notify,ciba-sweeps (concurrency {args.notify_concurrency})",
                "theirs": f"{reference}, one process each, storage in memory and in Redis "
                f"({args.anchor_redis_url})"
                + (
                    f"; durable ceiling: durable_app.py on granian, 2 workers, 1 thread each "
                    f"({args.ceiling_database_url}, {args.ceiling_redis_url})"
                    if limit
                    else "; no durable ceiling (durable_app.py missing)"
                    if {"backchannel", "sustained"} & set(args.scenarios)
                    else "; no durable ceiling (not in --scenarios)"
                ),
                "floor": f"bench.floor's views (objects.create: {FLOOR_PATHS['floor']}; raw INSERT: "
                f"{FLOOR_PATHS['floor_sql']}) on {floor.command}, ours' settings and database"
                if floor
                else "no Django floor (--no-floor, or not in --scenarios)",
                "load": f"wrk -t1 -c{args.connections}, {args.duration} s runs, "
                f"{args.rounds} rounds alternating, scenarios: {', '.join(args.scenarios)}",
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            }
            for index in range(args.rounds):
                rounds.append(run_round(index, args, env, ours, anchors, limit, demo, db, receivers, floor))
    finally:
        for receiver in receivers.values():
            receiver.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    problems = []
    errors = 0
    for r in rounds:
        for scenario, run in scenario_runs(r):
            run["scenario"] = scenario
            if run.get("errors"):
                errors += run["errors"]
                detail = run.get("problems") or run.get("problem") or {
                    "answers": run.get("answers"), "socket_errors": run.get("socket_errors")
                }  # fmt: skip
                problems.append(f"round {r['round']}, {run['scenario']}, {run.get('server')}: {detail}")
    results.update(
        rounds=rounds, summary=summarize(rounds), targets=TARGETS, errors=errors, problems=problems
    )
    return results


if __name__ == "__main__":
    main()
