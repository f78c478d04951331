"""The floor: the least a Django implementation of the backchannel endpoint must do, as views.

Beside the durable ceiling (``../shared/limits/durable_app.py``: a bare WSGI app that parses
the form, commits one ``INSERT`` and sets one Redis key), ``bench.compare`` serves these views
exactly as ours is served (``./scripts/serve``, ``bench.settings``, the example project's whole
middleware, the fast lane in front) and loads them as it loads ours. What separates ours from
the ceiling then splits in two: what Django itself costs for the same work (ceiling → floor),
and what our endpoint adds to it (floor → ours: client authentication, the §7.1 rules, the
block list, the answer's rendering). Issue 29 accepts, for a target not met, "the measured
reason it cannot be on this machine": the floor is that measurement.

Each view does only the ceiling's work, the Django way, with what a CIBA server cannot leave
out: the form parsed (``request.POST``), one complete ``ciba.AuthenticationRequest`` row
inserted and committed (autocommit: the ``INSERT`` is its own transaction) before answering,
pending with ``expires_at``, its device notification due now and a 128-bit ``auth_req_id``,
for one fixed client (no client authentication) and the user the ``login_hint`` names (the
users' ids are read once per process, not per request); the same Redis ``SET`` as the ceiling
(through Django's cache); the §7.3 JSON answer with ours' headers. Its rows are real pending
requests, so our notification worker notifies them as it does ours; the worker is handed the
work the way ours is (``dispatch.kick_after_commit``: one broker message per
``NOTIFY_BATCH_WINDOW`` per process, not per request), so "the floor + our notification work"
is measured the same way too.

Two variants, one path each:

- ``/bench/floor/orm/``: the ORM's ``AuthenticationRequest.objects.create``;
- ``/bench/floor/sql/``: a raw parameterised ``INSERT`` (``cursor.execute``), its statement and
  its constant values prepared once per process.

Served only with ``BENCH_FLOOR=1`` (``bench.settings`` then uses ``bench.floor_urls``); the
fixed client is ``BENCH_FLOOR_CLIENT_ID``'s, else the first poll-mode client.
"""

from __future__ import annotations

import os
import secrets
import threading
import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ciba import dispatch
from ciba.conf import ciba_settings
from ciba.models import Application, AuthenticationRequest

#: ours' answer headers (ciba.views.backchannel.CREATED_HEADERS): the §7.3 answer is never stored
HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: the columns each request fills itself; every other column gets the model's default
VARYING = (
    "auth_req_id",
    "client_id",
    "user_id",
    "hint_kind",
    "scope",
    "binding_message",
    "requested_expiry",
    "expires_at",
    "interval",
    "created_at",
    "updated_at",
    "device_notification_id",
    "device_notification_due_at",
)


class _Fixed:
    """What every request shares, read once per process: the client, the users' ids, and the
    raw variant's statement. (Two threads racing at the first request compute the same.)"""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready = False

    def load(self) -> None:
        with self.lock:
            if self.ready:
                return
            client_id = os.environ.get("BENCH_FLOOR_CLIENT_ID")
            clients = Application.objects.order_by("pk")
            client = (
                clients.get(client_id=client_id)
                if client_id
                else clients.filter(backchannel_token_delivery_mode="poll").first()
            )
            if client is None:
                raise RuntimeError("the floor needs a poll-mode client (or BENCH_FLOOR_CLIENT_ID)")
            self.client_pk = client.pk
            users = get_user_model().objects.values_list(get_user_model().USERNAME_FIELD, "pk")
            self.users: dict[str, int] = dict(users)
            self.sql, self.constants, self.slots = _insert_statement()
            self.ready = True


_fixed = _Fixed()


def _insert_statement() -> tuple[str, list[Any], dict[str, int]]:
    """``INSERT INTO <table> (<every column but id>) VALUES (%s, ...)``, the values of the
    columns no request changes (each field's default, as the ORM prepares it for this
    database), and where each of ``VARYING`` goes in the parameters."""
    model = AuthenticationRequest
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    template = model()  # every default, as objects.create would store it
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    constants = [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields]
    slots = {f.attname: n for n, f in enumerate(fields) if f.attname in VARYING}
    missing = set(VARYING) - set(slots)
    if missing:
        raise RuntimeError(f"the floor's INSERT found no column for {sorted(missing)}")
    return sql, constants, slots


def _new(request: HttpRequest) -> dict[str, Any] | HttpResponse:
    """The row's values from the form; a 400 like ours for a user nobody knows or an expiry
    that is no number (nothing else is checked: the floor has none of the §7.1 rules)."""
    if not _fixed.ready:
        _fixed.load()
    form = request.POST
    user_pk = _fixed.users.get(form.get("login_hint", ""))
    if user_pk is None:
        return JsonResponse({"error": "unknown_user_id"}, status=400, headers=HEADERS)
    try:
        expires_in = int(form.get("requested_expiry") or ciba_settings.DEFAULT_EXPIRES_IN)
    except ValueError:
        return JsonResponse({"error": "invalid_request"}, status=400, headers=HEADERS)
    now = timezone.now()
    return {
        "auth_req_id": secrets.token_urlsafe(16),  # 128 bits, CIBA §7.3's least
        "client_id": _fixed.client_pk,
        "user_id": user_pk,
        "hint_kind": AuthenticationRequest.HintKind.LOGIN_HINT,
        "scope": form.get("scope", ""),
        "binding_message": form.get("binding_message", ""),
        "requested_expiry": expires_in,
        "expires_at": now + timedelta(seconds=expires_in),
        "interval": ciba_settings.DEFAULT_INTERVAL,
        "created_at": now,
        "updated_at": now,
        "device_notification_id": uuid.uuid4().hex,
        "device_notification_due_at": now,
    }


def _answer(row: dict[str, Any]) -> HttpResponse:
    """After the commit: the ceiling's Redis SET, the worker's hand-off, the §7.3 answer."""
    cache.set(f"req:{row['auth_req_id']}", "pending", 300)
    dispatch.kick_after_commit(dispatch.NOTIFY_DUE, window=ciba_settings.NOTIFY_BATCH_WINDOW)
    body = {"auth_req_id": row["auth_req_id"], "expires_in": row["requested_expiry"]}
    body["interval"] = row["interval"]
    return JsonResponse(body, headers=HEADERS)


@csrf_exempt
@require_POST
def orm(request: HttpRequest) -> HttpResponse:
    """The row stored with ``objects.create`` (one ``INSERT ... RETURNING id``)."""
    row = _new(request)
    if isinstance(row, HttpResponse):
        return row
    AuthenticationRequest.objects.create(**row)
    return _answer(row)


@csrf_exempt
@require_POST
def sql(request: HttpRequest) -> HttpResponse:
    """The row stored with one raw parameterised ``INSERT`` (no ``RETURNING``)."""
    row = _new(request)
    if isinstance(row, HttpResponse):
        return row
    params = list(_fixed.constants)
    for name, slot in _fixed.slots.items():
        params[slot] = row[name]
    with connection.cursor() as cursor:
        cursor.execute(_fixed.sql, params)
    return _answer(row)
