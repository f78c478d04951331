"""The production tier: PostgreSQL, Redis and a real Celery worker.

These tests run with ``./scripts/test --production`` (and in CI). They fail, never skip,
when a production part is missing: a green run must mean the parts were really used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import cache, caches
from django.db import connection

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


@pytest.fixture
def celery_worker_process(transactional_db: Any) -> Iterator[subprocess.Popen]:
    """A real ``celery worker`` on the Redis broker, sharing the test database.

    For the duration of the test this process stops running tasks eagerly, so production
    code paths (``.delay`` after commit) reach the worker exactly as in a deployment.
    """
    from example_project.celery import app

    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis"):
        pytest.fail("Set CELERY_BROKER_URL=redis://... for the worker tests (./scripts/test --production).")
    # The broker database belongs to the test run: drop messages a previous run left behind.
    redis.Redis.from_url(broker).flushdb()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CIBA_TEST_NOTIFIERS": "tests.integration.notifiers.CacheRecordingNotifier",
        "PYTHONPATH": str(ROOT),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "example_project",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ready = threading.Event()
    output: list[str] = []

    def read() -> None:
        assert worker.stdout is not None
        for line in worker.stdout:
            output.append(line)
            if " ready." in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60):
        worker.kill()
        pytest.fail("The Celery worker did not start:\n" + "".join(output[-40:]))

    app.conf.task_always_eager = False
    try:
        yield worker
        print("".join(output[-60:]))  # shown by pytest when the test fails
    finally:
        app.conf.task_always_eager = True
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()
