"""Timestamps of each hop from an approval to its callback, taken from bench-only code.

``bench.settings`` installs this app when ``BENCH_HOPS_LOG`` names a file. It changes nothing in
``ciba``: it listens to Django's and Celery's signals and wraps a few of ``ciba``'s module
functions from the outside (the same functions, called through a timing shim), then appends
one JSON line per hop to that file (``time.time()``: every process of the run shares the
machine's clock). ``bench.breakdown`` adds the load generator's own two hops (approve sent,
callback arrived) and joins them by the delivery's primary key.

Hops, in order, with the process that logs them:

- web: ``approve_received`` (Django's ``request_started`` for ``…/approve/``), ``committed``
  (the first ``on_commit`` of the approval's transaction: the outbox row is durable),
  ``publish_start`` / ``published`` (``ciba.dispatch.send`` of ``ciba.deliver_callback``),
  ``response_done`` (Django's ``request_finished``);
- worker: ``picked_up`` (Celery's ``task_prerun``), ``db_connected`` (Django opened a new
  PostgreSQL connection for the task, if it did), ``claimed`` (the outbox lease taken),
  ``payload_start`` / ``payload_done`` (``ciba.callbacks.outbox.payload``: minting the
  tokens of a push), ``send_start`` / ``send_done`` (``ciba.callbacks.outbox.post``: the HTTP
  POST), ``task_done`` (Celery's ``task_postrun``: after the result is recorded);
- the committing process's sender thread (``ciba.callbacks.inline``): ``sender_start`` (the
  thread begins ``inline.send``), then ``claimed``, ``payload_*``, ``send_*`` as a worker, and
  ``recorded`` (``outbox._record`` returned: the outcome is written) in either, and
  ``sender_done``; ``sender_start`` and ``sender_done`` carry the thread's CPU time
  (``time.thread_time()``), so the sender's own CPU per callback is known whatever the load.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import time
from typing import Any

from django.apps import AppConfig

LOG_ENV = "BENCH_HOPS_LOG"
_APPROVE = re.compile(r"/requests/(?P<id>[^/]+)/approve/?$")
_local = threading.local()
_fd: dict[int, int] = {}


def write(hop: str, **fields: Any) -> None:
    """Append one hop (``O_APPEND``: lines from several processes do not interleave)."""
    now = time.time()
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    pid = os.getpid()
    if pid not in _fd:  # a forked pool process opens its own descriptor
        _fd[pid] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd[pid], (json.dumps({"hop": hop, "t": now, "pid": pid, **fields}) + "\n").encode())


def read(path: str) -> list[dict[str, Any]]:
    try:
        with open(path) as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError:
        return []


class HopsConfig(AppConfig):
    name = "bench"
    label = "bench_hops"
    verbose_name = "bench: approve -> callback hop timestamps"

    def ready(self) -> None:
        install()


def install() -> None:
    from celery.signals import task_postrun, task_prerun
    from django.core.signals import request_finished, request_started
    from django.db import transaction
    from django.db.backends.signals import connection_created

    from ciba import dispatch
    from ciba.callbacks import inline, outbox
    from ciba.outbox_engine import Outbox

    if getattr(dispatch, "_bench_hops", False):
        return
    dispatch._bench_hops = True  # type: ignore[attr-defined]
    callback_tasks = {dispatch.DELIVER_CALLBACK, dispatch.DELIVER_CALLBACK_SLOW}

    def started(sender: Any, environ: dict | None = None, **_: Any) -> None:
        match = _APPROVE.search((environ or {}).get("PATH_INFO", ""))
        _local.approving = match["id"] if match else None
        if match:
            write("approve_received", auth_req_id=match["id"])

    def finished(sender: Any, **_: Any) -> None:
        if getattr(_local, "approving", None):
            write("response_done", auth_req_id=_local.approving)
            _local.approving = None

    request_started.connect(started, weak=False, dispatch_uid="bench_hops_started")
    request_finished.connect(finished, weak=False, dispatch_uid="bench_hops_finished")

    original_after_commit = dispatch.after_commit

    @functools.wraps(original_after_commit)
    def after_commit(task: str, *args: Any, using: str | None = None, **kwargs: Any) -> None:
        if task in callback_tasks and args:
            auth_req_id = getattr(_local, "approving", None)
            # registered first, so it runs first when the transaction commits
            transaction.on_commit(
                lambda: write("committed", pk=args[0], auth_req_id=auth_req_id), using=using
            )
        original_after_commit(task, *args, using=using, **kwargs)

    dispatch.after_commit = after_commit

    original_send = dispatch.send

    @functools.wraps(original_send)
    def send(task: str, *args: Any, **kwargs: Any) -> bool:
        if task not in callback_tasks or not args:
            return original_send(task, *args, **kwargs)
        write("publish_start", pk=args[0])
        try:
            return original_send(task, *args, **kwargs)
        finally:
            write("published", pk=args[0])

    dispatch.send = send

    def prerun(sender: Any = None, task: Any = None, args: Any = None, **_: Any) -> None:
        if task is not None and task.name in callback_tasks and args:
            _local.task_pk = args[0]
            write("picked_up", pk=args[0])

    def connected(sender: Any, connection: Any, **_: Any) -> None:
        if getattr(_local, "task_pk", None) is not None:
            write("db_connected", pk=_local.task_pk)

    connection_created.connect(connected, weak=False, dispatch_uid="bench_hops_connected")

    def postrun(sender: Any = None, task: Any = None, args: Any = None, retval: Any = None, **_: Any) -> None:
        if task is not None and task.name in callback_tasks and args:
            write("task_done", pk=args[0], outcome=str(retval))
            _local.task_pk = None

    task_prerun.connect(prerun, weak=False, dispatch_uid="bench_hops_prerun")
    task_postrun.connect(postrun, weak=False, dispatch_uid="bench_hops_postrun")

    original_claim = Outbox.claim

    @functools.wraps(original_claim)
    def claim(self: Outbox, pk: int, now: Any, **fields: Any) -> Any:
        lease = original_claim(self, pk, now, **fields)
        if self.name == "callbacks":
            write("claimed", pk=pk, leased=lease is not None)
        return lease

    Outbox.claim = claim  # type: ignore[method-assign]

    # The committing process's sender claims the row it wrote without reading it back
    # (``outbox._claim_as_committed``; ``Outbox.claim`` only when that declines).
    original_claim_as_committed = outbox._claim_as_committed

    @functools.wraps(original_claim_as_committed)
    def claim_as_committed(pk: int, now: Any) -> Any:
        delivery = original_claim_as_committed(pk, now)
        if delivery is not None:
            write("claimed", pk=pk, leased=True)
        return delivery

    outbox._claim_as_committed = claim_as_committed

    original_payload = outbox.payload

    @functools.wraps(original_payload)
    def payload(delivery: Any) -> Any:
        write("payload_start", pk=delivery.pk, kind=str(delivery.kind))
        try:
            return original_payload(delivery)
        finally:
            write("payload_done", pk=delivery.pk)

    outbox.payload = payload

    original_post = outbox.post

    @functools.wraps(original_post)
    def post(url: str, notification_token: str, body: dict[str, Any]) -> Any:
        key = body.get("auth_req_id")
        write("send_start", auth_req_id=key)
        try:
            return original_post(url, notification_token, body)
        finally:
            write("send_done", auth_req_id=key)

    outbox.post = post

    # The sender thread's job: ``inline.submit`` binds ``inline.send`` by name when it hands
    # the row over, so the wrapper is what the thread runs.
    original_inline_send = inline.send

    @functools.wraps(original_inline_send)
    def inline_send(delivery_pk: int) -> Any:
        write("sender_start", pk=delivery_pk, cpu=time.thread_time())
        try:
            return original_inline_send(delivery_pk)
        finally:
            # The sender thread's own CPU for the callback (not inflated by waiting).
            write("sender_done", pk=delivery_pk, cpu=time.thread_time())

    inline.send = inline_send

    original_record = outbox._record

    @functools.wraps(original_record)
    def record(delivery: Any, outcome: Any, **kwargs: Any) -> Any:
        try:
            return original_record(delivery, outcome, **kwargs)
        finally:
            write("recorded", pk=delivery.pk)

    outbox._record = record
