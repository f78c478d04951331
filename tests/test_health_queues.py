"""``manage.py ciba_health --queues``: the queues ciba's tasks are routed to, against the queues
the running workers consume. A routed queue nobody consumes is where pings wait for ever."""

import socket
import time
from io import StringIO
from pathlib import Path

import pytest
from celery import Celery
from django.core import checks
from django.core.management import call_command
from kombu import Queue

from ciba import dispatch
from ciba.checks import workers
from ciba.dispatch import TASK_ROUTES
from ciba.management.commands import ciba_health
from ciba.tasks import expire_requests, sweep_callbacks


def closed_port():
    """A port nothing listens on: bound by the system, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: The broker is down: nothing listens there.
CLOSED_BROKER = f"redis://127.0.0.1:{closed_port()}/0"


def celery_app(**conf):
    app = Celery("site", broker=CLOSED_BROKER, set_as_current=False)
    app.conf.update(task_always_eager=False, **conf)
    return app


def health(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command("ciba_health", *args, stdout=out, stderr=err)
        status = 0
    except SystemExit as exc:
        status = exc.code
    return status, out.getvalue(), err.getvalue()


ROUTED = ciba_health.routed_queues(celery_app(task_routes=TASK_ROUTES)).queues


def test_ciba_routes_send_each_kind_of_work_to_its_queue():
    assert ROUTED == {
        "ciba-notify": [
            dispatch.NOTIFY_DEVICE,
            dispatch.NOTIFY_DUE,
            dispatch.WITHDRAW_PROMPT,
            dispatch.WITHDRAW_DUE,
        ],
        "ciba-callbacks": [dispatch.DELIVER_CALLBACK],
        "ciba-callbacks-slow": [dispatch.DELIVER_CALLBACK_SLOW],
        "ciba-sweeps": [
            dispatch.SWEEP_CALLBACK_OUTBOX,
            dispatch.SWEEP_NOTIFICATION_OUTBOX,
            dispatch.EXPIRE_REQUESTS,
        ],
    }


def test_without_routes_every_task_goes_to_the_default_queue():
    routes = ciba_health.routed_queues(celery_app())
    assert list(routes.queues) == ["celery"] and not routes.unsendable
    assert list(ciba_health.routed_queues(celery_app(task_default_queue="work")).queues) == ["work"]


def test_routes_in_any_form_celery_accepts_are_followed():
    globbed = ciba_health.routed_queues(celery_app(task_routes={"ciba.*": {"queue": "ciba"}}))
    assert list(globbed.queues) == ["ciba"]

    def router(name, args, kwargs, options, task=None, **kw):
        return {"queue": "lane-b"} if name == dispatch.DELIVER_CALLBACK else None

    routed = ciba_health.routed_queues(celery_app(task_routes=(router,)))
    assert routed.queues["lane-b"] == [dispatch.DELIVER_CALLBACK] and "celery" in routed.queues


def test_the_slow_lane_counts_only_while_it_is_on_and_the_old_sweep_only_when_scheduled(settings):
    settings.CIBA = {**settings.CIBA, "CALLBACK_SLOW_LANE_AFTER": 0}
    scheduled = {"old": {"task": dispatch.SWEEP_CALLBACKS, "schedule": 30.0}}
    routes = ciba_health.routed_queues(celery_app(task_routes=TASK_ROUTES, beat_schedule=scheduled))
    assert "ciba-callbacks-slow" not in routes.queues
    assert dispatch.SWEEP_CALLBACKS in routes.queues["ciba-sweeps"]


def test_a_queue_celery_will_not_create_is_reported_as_unsendable():
    app = celery_app(task_routes=TASK_ROUTES, task_create_missing_queues=False)
    routes = ciba_health.routed_queues(app)
    assert set(routes.unsendable) == {task for task in dispatch.SUBJECTS if task != dispatch.SWEEP_CALLBACKS}
    assert all(reason.startswith("QueueNotFound") for reason in routes.unsendable.values())


def test_every_queue_without_a_consumer_is_named():
    """Part A of the integration guide starts a worker without -Q: it consumes Celery's default
    queue only, while Part B routes ciba's tasks to queues of their own."""
    lines = ciba_health.compare_queues(ROUTED, {"celery@web1": ["celery"]}, 2)
    assert not any(line.ok for line in lines)
    assert "queue ciba-callbacks (ciba.deliver_callback): no worker consumes it" in str(lines[1])
    summary = str(lines[-1])
    assert summary.startswith(
        "FAIL  queues no worker consumes: ciba-notify, ciba-callbacks, ciba-callbacks-slow"
    )
    assert "-Q ciba-notify,ciba-callbacks,ciba-callbacks-slow,ciba-sweeps" in summary


def test_each_routed_queue_is_listed_with_its_consumers():
    consumed = {
        "callbacks@web1": ["ciba-callbacks", "ciba-sweeps"],
        "slow@web1": ["ciba-callbacks-slow", "ciba-sweeps"],
        "notify@web2": ["ciba-notify", "ciba-sweeps"],
    }
    lines = ciba_health.compare_queues(ROUTED, consumed, 2)
    assert all(line.ok for line in lines)
    assert "ok    queue ciba-sweeps (ciba.sweep_callback_outbox, ciba.sweep_notification_outbox, " in str(
        lines[-1]
    )
    assert str(lines[-1]).endswith("consumed by callbacks@web1, notify@web2, slow@web1")


def test_one_missing_consumer_fails_and_only_it_is_named():
    consumed = {"all@web1": ["ciba-callbacks", "ciba-notify", "ciba-sweeps"]}
    lines = ciba_health.compare_queues(ROUTED, consumed, 2)
    assert [line.text.split(":")[0] for line in lines if not line.ok] == [
        "queue ciba-callbacks-slow (ciba.deliver_callback_slow)",
        "queues no worker consumes",
    ]
    assert "consumes: ciba-callbacks-slow (start a worker with -Q ciba-callbacks-slow, or add it" in str(
        lines[-1]
    )


def test_no_worker_answering_is_a_failure_that_says_so():
    [line] = ciba_health.compare_queues(ROUTED, {}, 1.5)
    assert not line.ok and "no worker answered within 1.5 s" in line.text and "ciba-notify" in line.text


def test_a_broker_that_cannot_be_reached_fails_quickly_and_clearly(monkeypatch):
    # Celery prefers the CELERY_BROKER_URL environment variable (set in the production tier) to
    # the app's own broker: without this, the app would ask the live broker.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    started = time.monotonic()
    lines = ciba_health.queue_lines(celery_app(task_routes=TASK_ROUTES), timeout=1)
    assert time.monotonic() - started < 5
    [line] = lines
    assert not line.ok and line.text.startswith("queues: the broker cannot be reached (OperationalError")
    assert "ciba-callbacks" in line.text


def test_the_command_fails_naming_the_queues_and_exits_1(db, monkeypatch):
    sweep_callbacks.apply().get()
    expire_requests.apply().get()
    app = celery_app(task_routes=TASK_ROUTES)
    monkeypatch.setattr(ciba_health, "current_app", app)
    monkeypatch.setattr(ciba_health, "worker_queues", lambda app, timeout: {"celery@web1": ["celery"]})
    status, out, err = health("--queues")
    assert status == 1
    assert "ok    sweep callbacks" in out  # the other checks still run
    assert "FAIL  queues no worker consumes: ciba-notify, ciba-callbacks" in err


def test_eager_tasks_need_no_queue(db):
    sweep_callbacks.apply().get()
    expire_requests.apply().get()
    status, out, err = health("--queues")
    assert status == 0, err
    assert "info  queues: tasks run in the process that sends them (CELERY_TASK_ALWAYS_EAGER)" in out


@pytest.mark.parametrize("option", ["--queues", "--timeout"])
def test_the_options_are_documented_in_the_help(option):
    from django.core.management import get_commands, load_command_class

    command = load_command_class(get_commands()["ciba_health"], "ciba_health")
    assert option in command.create_parser("manage.py", "ciba_health").format_help()


# --- the static check: what the settings alone decide ----------------------------------------


def test_routes_to_queues_celery_will_not_create_are_a_system_check_error(monkeypatch):
    """``ciba.E043``: with ``task_create_missing_queues`` off, a route to an undeclared queue
    makes every send of the task fail. Whether a worker consumes a queue is not decidable from
    the settings (it is the worker's ``-Q``): ``ciba_health --queues`` asks the workers."""
    app = celery_app(task_routes=TASK_ROUTES, task_create_missing_queues=False)
    monkeypatch.setattr(workers, "current_app", app)
    [error] = workers.check_task_queues()
    assert error.id == "ciba.E043" and error.level == checks.ERROR
    assert "ciba.deliver_callback (" in error.msg and "ciba.notify_due_devices (" in error.msg
    app.conf.task_queues = [Queue(queue) for queue in dispatch.QUEUES]
    assert workers.check_task_queues() == []
    monkeypatch.setattr(workers, "current_app", celery_app(task_routes=TASK_ROUTES))  # creates them
    assert workers.check_task_queues() == []


def test_the_output_docs_operations_md_shows_is_what_the_command_prints():
    text = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    start = text.index("<!-- operations: queues -->")
    shown = [
        line for line in text[start:].split("\n## ")[0].splitlines() if line.startswith(("ok ", "FAIL "))
    ]
    consumed = {
        "callbacks@web1": ["ciba-callbacks", "ciba-sweeps"],
        "slow@web1": ["ciba-callbacks-slow", "ciba-sweeps"],
        "notify@web2": ["ciba-notify", "ciba-sweeps"],
    }
    printed = [str(line) for line in ciba_health.compare_queues(ROUTED, consumed, 2)]
    part_a = [str(line) for line in ciba_health.compare_queues(ROUTED, {"celery@web1": ["celery"]}, 2)]
    assert shown[:4] == printed
    assert shown[4:] == [part_a[1], part_a[-1]]
