"""Running the example project on gunicorn with PostgreSQL and Redis, and loading it.

Everything runs on loopback and every run is bounded in requests and time. Shared by the
benchmarks: the web server (``serve``: ``./scripts/serve`` when it exists, else gunicorn), the
Celery worker, wrk and its Lua scripts, the clients' notification endpoint (``Receiver``), and
the CPU-time and memory of a process tree (``/proc``, or psutil when installed).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ciba.dispatch import QUEUES

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "performance"
GRANT = "urn:openid:params:grant-type:ciba"
SERVE_SCRIPT = ROOT / "scripts" / "serve"


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
        # Production as docs/deployment.md recommends it without PgBouncer: each hot statement
        # planned once per connection (ours and the Django floor alike). BENCH_PREPARED_STATEMENTS=off
        # measures Django's default, client-side binding.
        "DATABASE_PREPARED_STATEMENTS": os.environ.get("BENCH_PREPARED_STATEMENTS", "on"),
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


def gunicorn_command(port: int, workers: int) -> list[str]:
    return [
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
    ]


def wait_until_serving(
    base: str, process: subprocess.Popen, name: str, path: str, seconds: float = 30
) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{base}{path}", timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{name} did not start") from None
            time.sleep(0.2)


@contextmanager
def gunicorn(env: dict[str, str], port: int, workers: int = 2) -> Iterator[str]:
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(gunicorn_command(port, workers), cwd=ROOT, env=env)
    try:
        wait_until_serving(base, process, "gunicorn", "/o/.well-known/openid-configuration")
        yield base
    finally:
        process.terminate()
        process.wait(20)


@dataclass
class Server:
    base: str
    pid: int
    command: str  # what started it: "./scripts/serve" or the gunicorn fallback


def serve_command(port: int, workers: int) -> tuple[list[str], dict[str, str], str]:
    """The production web server's command line, extra environment, and a label for it."""
    if SERVE_SCRIPT.is_file() and os.access(SERVE_SCRIPT, os.X_OK):
        extra = {"PORT": str(port), "WEB_CONCURRENCY": str(workers)}
        return [str(SERVE_SCRIPT)], extra, f"PORT={port} WEB_CONCURRENCY={workers} ./scripts/serve"
    label = f"gunicorn, {workers} sync workers (fallback: no executable scripts/serve)"
    return gunicorn_command(port, workers), {}, label


@contextmanager
def serve(env: dict[str, str], port: int, workers: int = 2) -> Iterator[Server]:
    """The example project on the production web server: ``./scripts/serve`` (``PORT``,
    ``WEB_CONCURRENCY``, everything else from ``env``) when it exists and is executable, else
    gunicorn with ``workers`` sync workers. Prints which one ran. The server gets a session of
    its own, so stopping it stops every process it started."""
    command, extra, label = serve_command(port, workers)
    print(f"web server: {label}", flush=True)
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(command, cwd=ROOT, env={**env, **extra}, start_new_session=True)
    try:
        wait_until_serving(base, process, f"the web server ({label})", "/o/.well-known/openid-configuration")
        yield Server(base, process.pid, label)
    finally:
        stop_session(process)


def stop_session(process: subprocess.Popen, seconds: float = 20) -> None:
    """SIGTERM the process's whole session (it was started with ``start_new_session``)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


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


# --- wrk ------------------------------------------------------------------------------------


def wrk(
    base: str,
    path: str,
    authorization: str,
    bodies: list[str],
    seconds: int,
    connections: int,
    script: str = "post.lua",
    extra: Iterable[str] = (),
) -> dict:
    """Run wrk (1 thread) with a script of bench/wrk/ (post.lua: ``PATH AUTHORIZATION BODIES``,
    then ``extra``) and return its RESULT line, with requests/s added."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(bodies) + "\n")
    try:
        output = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                str(ROOT / "bench" / "wrk" / script),
                base,
                "--",
                path,
                authorization,
                handle.name,
                *extra,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    line = next(x for x in output.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    seconds_run = result.pop("duration_us") / 1e6
    latency = {k: round(v / 1000, 2) for k, v in result.pop("latency_us").items()}
    return {
        "requests": result["requests"],
        "seconds": round(seconds_run, 2),
        "requests_per_second": round(result["requests"] / seconds_run, 1),
        "latency_ms": latency,
        "answers": dict(sorted(result["answers"].items())),
        "socket_errors": result["socket_errors"],
    }


def count_errors(result: dict, expected: set[str]) -> int:
    unexpected = sum(n for answer, n in result["answers"].items() if answer not in expected)
    return unexpected + sum(result["socket_errors"].values())


# --- the clients' notification endpoint -----------------------------------------------------


class Receiver(ThreadingHTTPServer):
    """The ping and push clients' notification endpoint: records when each callback arrived.

    ``tls``: serve https with this server-side context. ``keep_alive``: answer HTTP/1.1 and
    keep connections open (as a real endpoint would), instead of one connection per callback.
    """

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None, keep_alive: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _KeepAliveHandler if keep_alive else _ReceiverHandler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.arrived: dict[str, tuple[float, str, dict, str]] = {}
        self.events: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}/cb"

    def expect(self, auth_req_id: str) -> threading.Event:
        with self.lock:
            return self.events.setdefault(auth_req_id, threading.Event())


class _ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        at = time.perf_counter()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.send_response(204)
        self.end_headers()
        server: Receiver = self.server  # type: ignore[assignment]
        auth_req_id = body.get("auth_req_id", "")
        server.arrived[auth_req_id] = (at, self.path, body, self.headers.get("Authorization", ""))
        server.expect(auth_req_id).set()

    def log_message(self, *args: Any) -> None:
        pass


class _KeepAliveHandler(_ReceiverHandler):
    protocol_version = "HTTP/1.1"


# --- the Celery worker ----------------------------------------------------------------------


def start_worker(
    env: dict[str, str], queues: Iterable[str] = QUEUES, concurrency: int = 1
) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "example_project",
            "worker",
            "-Q",
            ",".join(queues),
            "--concurrency",
            str(concurrency),
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    for line in process.stdout:
        if " ready." in line:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the Celery worker did not start")
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # drain
    return process


# --- requests -------------------------------------------------------------------------------


def basic(client: dict) -> str:
    return "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 2)}


# --- CPU time and memory of process trees ---------------------------------------------------

try:
    import psutil
except ImportError:  # not a dependency: /proc answers the same on Linux
    psutil = None

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state, ppid, ...), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant."""
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            return [pid, *(child.pid for child in root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def processes_named(*names: str) -> list[int]:
    """Live processes whose command name is one of ``names`` (PostgreSQL, Redis)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(f"/proc/{entry.name}/comm").read_text().strip() in names:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of these processes, including their children already reaped
    (a process that exited and was waited for by one of them is counted in its parent)."""
    total = 0.0
    for pid in pids:
        if psutil is not None:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        elif fields := _stat(pid):
            total += sum(int(x) for x in fields[11:15]) / _TICK
    return total


def tree_cpu_seconds(*roots: int) -> float:
    return cpu_seconds(pid for root in roots for pid in process_tree(root))


def rss_mib(pid: int) -> float | None:
    if psutil is not None:
        try:
            return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
        except psutil.NoSuchProcess:
            return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def describe_tree(root: int) -> list[dict[str, Any]]:
    """Each process of the tree: pid, parent, command name, resident memory (MiB)."""
    rows = []
    for pid in process_tree(root):
        fields = _stat(pid)
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        rows.append(
            {"pid": pid, "ppid": int(fields[1]) if fields else None, "name": name, "rss_mib": rss_mib(pid)}
        )
    return rows


def wsgi_call(
    application: Any,
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[str, bytes]:
    """``application`` called in this process as a WSGI server on 127.0.0.1:``port`` calls it:
    the status line and the body. ``headers`` by their HTTP names (``Content-Type`` included)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": f"127.0.0.1:{port}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    status: list[str] = []
    result = application(environ, lambda line, _headers, exc_info=None: status.append(line))
    try:
        content = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return status[0], content
