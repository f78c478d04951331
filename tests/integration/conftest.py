"""The production tier: PostgreSQL, Redis and a real Celery worker.

These tests run with ``./scripts/test --production`` (and in CI). They fail, never skip,
when a production part is missing: a green run must mean the parts were really used.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.db import connection

from ciba.dispatch import QUEUES

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


WORKER_TIMING = {
    "CIBA_TEST_BACKOFF_BASE": "0.2",
    "CIBA_TEST_READ_TIMEOUT": "2",
    "CIBA_TEST_CONNECT_TIMEOUT": "1",
    "CIBA_TEST_TOTAL_TIMEOUT": "3",
    "CIBA_SWEEP_SECONDS": "1",
}


class Worker:
    """Starts (and restarts) a real ``celery worker`` process sharing the test database."""

    def __init__(self, env: dict[str, str], options: tuple[str, ...] = ("--pool=solo",)) -> None:
        self.env = env
        self.options = options
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
                ",".join(QUEUES),
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

        def read(process: subprocess.Popen) -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.output.append(line)
                if " ready." in line:
                    ready.set()

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


def _running(options: tuple[str, ...]) -> Iterator[Worker]:
    """For the duration of the test this process stops running tasks eagerly, so production
    code paths (sending after commit) reach the worker exactly as in a deployment."""
    from example_project.celery import app

    worker = Worker(_worker_env(), options)
    worker.start()
    app.conf.task_always_eager = False
    try:
        yield worker
        print("".join(worker.output[-80:]))  # shown by pytest when the test fails
    finally:
        app.conf.task_always_eager = True
        worker.stop()


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


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()
