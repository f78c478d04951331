"""``ciba_health --queues`` against real workers on the Redis broker: a worker started as Part A
of the integration guide starts it (no ``-Q``: Celery's default queue only) leaves every queue
Part B routes ciba's tasks to unconsumed, and the command names each one; the layout of
docs/operations.md consumes them all."""

import os
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import call_command

from ciba import dispatch
from ciba.dispatch import QUEUES
from tests.integration.conftest import Worker, _running, wait_for


def health(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("ciba_health", *args, stdout=out, stderr=err)
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    return status, out.getvalue(), err.getvalue()


def swept() -> bool:
    return all(dispatch.last_sweeps()[name] is not None for name in ("callbacks", "notifications"))


@pytest.fixture
def part_a_worker(transactional_db: Any, tmp_path: Path) -> Iterator[Worker]:
    """``celery -A mysite worker`` as Part A starts it, with beat: without ``-Q`` a worker
    consumes ``task_default_queue``, ``celery`` (named here because the fixture always says
    ``-Q``)."""
    yield from _running(
        ("--pool=solo", "--beat", f"--schedule={tmp_path / 'beat-schedule'}"), queues=("celery",)
    )


def test_a_worker_without_the_routed_queues_is_named_and_fails_the_check(part_a_worker):
    status, out, err = health("--queues", "--timeout", "5")
    assert status == 1
    assert "FAIL  queue ciba-callbacks (ciba.deliver_callback): no worker consumes it" in err
    unconsumed = err.split("queues no worker consumes: ")[1].split(" (")[0].split(", ")
    assert sorted(unconsumed) == sorted(QUEUES)
    # What beat sends meanwhile waits in ciba-sweeps, which nobody reads: the sweeps never run.
    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    assert wait_for(lambda: broker.llen("ciba-sweeps") >= 2, timeout=10)
    assert not swept()


def test_the_operations_layout_consumes_every_routed_queue(lane_workers):
    normal, slow = lane_workers
    assert wait_for(swept, timeout=20), "".join(normal.output[-40:])
    status, out, err = health("--queues", "--timeout", "5")
    assert status == 0, err
    lines = {line.split(" (")[0]: line for line in out.splitlines() if line.startswith("ok    queue ")}
    assert set(lines) == {f"ok    queue {queue}" for queue in QUEUES}
    assert lines["ok    queue ciba-callbacks-slow"].split("consumed by ")[1].startswith("slow@")
    sweepers = lines["ok    queue ciba-sweeps"].split("consumed by ")[1].split(", ")
    assert [name.split("@")[0] for name in sweepers] == ["normal", "slow"]


@pytest.mark.django_db(transaction=True)
def test_no_worker_answering_fails_with_a_clear_message():
    from example_project.celery import app

    app.conf.task_always_eager = False  # as a deployment: tasks go to the broker
    try:
        status, _, err = health("--queues", "--timeout", "1")
    finally:
        app.conf.task_always_eager = True
    assert status == 1
    assert "FAIL  queues: no worker answered within 1 s (is one running, on this broker?)" in err
