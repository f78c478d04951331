"""The production tier: PostgreSQL, Redis and a real Celery worker.

These tests run with ``./scripts/test --production`` (and in CI). They fail, never skip,
when a production part is missing: a green run must mean the parts were really used.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.db import connection

from ciba.dispatch import QUEUES
from tests.integration.faultproxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def production_parts(db: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.fail(
            "The integration tier runs on PostgreSQL: set DATABASE_URL (./scripts/test --production)."
        )
    if "Redis" not in type(caches["default"]).__name__:
        pytest.fail("The integration tier uses the Redis cache: set CACHE_URL=redis://... .")
    cache.set("ciba-integration-probe", 1, 5)  # raises if Redis is unreachable


@pytest.fixture(autouse=True)
def dispatch_breaker_closed() -> Iterator[None]:
    """A broker failure one test caused (on purpose) must not keep the next test's sends
    from the broker (``ciba.dispatch.breaker``)."""
    from ciba.dispatch import breaker

    breaker.reset()
    yield
    breaker.reset()


WORKER_TIMING = {
    "CIBA_TEST_BACKOFF_BASE": "0.2",
    "CIBA_TEST_READ_TIMEOUT": "2",
    "CIBA_TEST_CONNECT_TIMEOUT": "1",
    "CIBA_TEST_TOTAL_TIMEOUT": "3",
    "CIBA_SWEEP_SECONDS": "1",
}


class Worker:
    """Starts (and restarts) a real ``celery worker`` process sharing the test database."""

    def __init__(
        self,
        env: dict[str, str],
        options: tuple[str, ...] = ("--pool=solo",),
        queues: tuple[str, ...] = QUEUES,
    ) -> None:
        self.env = env
        self.options = options
        self.queues = queues
        self.process: subprocess.Popen | None = None
        self.output: list[str] = []

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "example_project",
                "worker",
                "-Q",
                ",".join(self.queues),
                *self.options,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Its own process group, so the embedded beat process dies with it (an orphaned
            # beat would go on sending sweeps to later tests, and outlive the run).
            start_new_session=True,
        )
        ready = threading.Event()

        log_path = os.environ.get("CIBA_TEST_WORKER_LOG")  # every line, for debugging a test
        log = open(log_path, "a") if log_path else None  # noqa: SIM115 - closed by the reader

        def read(process: subprocess.Popen) -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.output.append(line)
                if log is not None:
                    log.write(line)
                    log.flush()
                if " ready." in line:
                    ready.set()
            if log is not None:
                log.close()

        threading.Thread(target=read, args=(self.process,), daemon=True).start()
        if not ready.wait(60):
            self.process.kill()
            pytest.fail("The Celery worker did not start:\n" + "".join(self.output[-40:]))

    def kill(self) -> None:
        """SIGKILL to every process of the worker: it dies mid-task, as on a lost host."""
        assert self.process is not None
        self._kill_group()
        self.process.wait(10)

    def _kill_group(self) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def kill_pool_child(self) -> int:
        """SIGKILL the prefork pool child running the task: the main process lives on."""
        assert self.process is not None
        children = subprocess.run(
            ["ps", "--ppid", str(self.process.pid), "-o", "pid="], capture_output=True, text=True
        ).stdout.split()
        assert children, "no pool child"
        for pid in children:
            os.kill(int(pid), 9)
        return len(children)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        if self.process:
            self._kill_group()  # whatever of the group outlived the warm shutdown


def _worker_env() -> dict[str, str]:
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis"):
        pytest.fail("Set CELERY_BROKER_URL=redis://... for the worker tests (./scripts/test --production).")
    # The broker database belongs to the test run: drop messages a previous run left behind.
    redis.Redis.from_url(broker).flushdb()
    db = connection.settings_dict
    return {
        **os.environ,
        **WORKER_TIMING,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CIBA_TEST_WORKER": "1",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CIBA_TEST_NOTIFIERS": "tests.integration.notifiers.CacheRecordingNotifier",
        # Workers sign ID tokens (push) with the same key as the web processes, as in production.
        "OIDC_RSA_PRIVATE_KEY": settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"],
        "PYTHONPATH": str(ROOT),
    }


def _running(
    options: tuple[str, ...], env: dict[str, str] | None = None, queues: tuple[str, ...] = QUEUES
) -> Iterator[Worker]:
    """For the duration of the test this process stops running tasks eagerly, so production
    code paths (sending after commit) reach the worker exactly as in a deployment."""
    from example_project.celery import app

    worker = Worker({**_worker_env(), **(env or {})}, options, queues)
    worker.start()
    app.conf.task_always_eager = False
    try:
        yield worker
        print("".join(worker.output[-80:]))  # shown by pytest when the test fails
    finally:
        _senders_done()
        app.conf.task_always_eager = True
        worker.stop()


def _senders_done() -> None:
    """While a worker runs, this process sends the callbacks its approvals commit on threads of
    its own (``ciba.callbacks.inline``): let them finish before the next test, and close their
    database connections (one left open keeps the test database from being dropped). Its batch
    kicks still waiting (``dispatch.kick_after_commit``) go to this worker's broker now."""
    from ciba import dispatch
    from ciba.callbacks import inline

    assert inline.drain(30), "a callback sender thread of this process did not finish"
    dispatch.flush_kicks()  # to this worker's broker, before Celery is eager again


@pytest.fixture
def celery_worker_process(transactional_db: Any, tmp_path: Path) -> Iterator[Worker]:
    """A real ``celery worker`` on the Redis broker, sharing the test database, with Celery
    beat inside it running the outbox sweep every second, as a deployment runs beat."""
    yield from _running(("--pool=solo", "--beat", f"--schedule={tmp_path / 'beat-schedule'}"))


@pytest.fixture
def prefork_worker(transactional_db: Any) -> Iterator[Worker]:
    """A prefork worker (one pool child) and no beat: what is recovered, is recovered by the
    tasks themselves."""
    yield from _running(("--pool=prefork", "--concurrency=1"))


def redis_poll_state_on(settings: Any) -> Any:
    """Pending polls kept in Redis (``RedisPollState``, the test Redis database) for this test;
    the store, checked to be the Redis one."""
    from ciba.polling import RedisPollState, poll_state

    settings.CIBA = {
        **settings.CIBA,
        "POLL_STATE_CLASS": "ciba.polling.RedisPollState",
        "POLL_STATE_REDIS_URL": os.environ.get("CACHE_URL", "redis://127.0.0.1:6379/15"),
    }
    store = poll_state()
    assert isinstance(store, RedisPollState)
    return store


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def broker_proxy() -> Iterator[FaultProxy]:
    """A ``FaultProxy`` in front of the test run's broker (``CELERY_BROKER_URL``): point a
    worker or this process's publisher at ``broker_proxy.broker_url`` and break the broker."""
    url = urlsplit(os.environ.get("CELERY_BROKER_URL", ""))
    if url.scheme != "redis":
        pytest.fail("Set CELERY_BROKER_URL=redis://... for the broker fault tests.")
    proxy = FaultProxy(url.hostname or "127.0.0.1", url.port or 6379)
    proxy.broker_url = f"redis://127.0.0.1:{proxy.port}{url.path or '/0'}"  # type: ignore[attr-defined]
    try:
        yield proxy
    finally:
        proxy.close()


@contextlib.contextmanager
def publishing_to(broker_url: str) -> Iterator[None]:
    """This process's Celery publisher sends to ``broker_url`` (say, through a fault proxy),
    as a web process whose broker connection breaks with the workers'."""
    from example_project.celery import app

    saved = app.conf.broker_write_url, app.amqp._producer_pool
    app.conf.broker_write_url, app.amqp._producer_pool = broker_url, None
    try:
        yield
    finally:
        pool = app.amqp._producer_pool
        app.conf.broker_write_url, app.amqp._producer_pool = saved
        if pool is not None:
            pool.force_close_all()


@pytest.fixture
def proxied_worker(
    request: pytest.FixtureRequest, transactional_db: Any, tmp_path: Path, broker_proxy: FaultProxy
) -> Iterator[Worker]:
    """A worker consuming every queue, with beat inside it, whose broker connection runs
    through ``broker_proxy``: the test breaks it and asserts what survives. Parametrize it
    indirectly with ``"prefork"`` for a prefork pool of two (the documented layout) instead
    of the solo pool."""
    pool = getattr(request, "param", "solo")
    options = ("--pool=prefork", "--concurrency=2") if pool == "prefork" else ("--pool=solo",)
    yield from _running(
        (*options, "--beat", f"--schedule={tmp_path / 'beat-schedule'}"),
        {"CELERY_BROKER_URL": broker_proxy.broker_url},  # type: ignore[attr-defined]
    )


@pytest.fixture
def lane_workers(transactional_db: Any, tmp_path: Path) -> Iterator[tuple[Worker, Worker]]:
    """The callback lanes as docs/operations.md lays them out: a worker for the normal lane (and
    notifications and sweeps, with beat inside it), solo so that one held slot would show, and
    a prefork worker of two for the slow lane ``ciba-callbacks-slow`` (and sweeps)."""
    from example_project.celery import app

    env = _worker_env()
    normal = Worker(
        env,
        ("--pool=solo", "--beat", f"--schedule={tmp_path / 'beat-schedule'}", "-n", "normal@%h"),
        ("ciba-callbacks", "ciba-notify", "ciba-sweeps"),
    )
    slow = Worker(
        env, ("--pool=prefork", "--concurrency=2", "-n", "slow@%h"), ("ciba-callbacks-slow", "ciba-sweeps")
    )
    normal.start()
    try:
        slow.start()
        app.conf.task_always_eager = False
        yield normal, slow
        print("".join(normal.output[-60:]), "".join(slow.output[-60:]))  # shown when the test fails
    finally:
        _senders_done()
        app.conf.task_always_eager = True
        slow.stop()
        normal.stop()
