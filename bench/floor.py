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

And the approval's floor, for approve -> ping (the issue's third target):

- ``/bench/floor/approve/<auth_req_id>/``: what a decision followed by a ping must do, durably:
  the consent bearer token read by its checksum (one ``SELECT``, no join); in one transaction
  the request's conditional ``UPDATE`` to approved (pending, unexpired, the token's user's; its
  client and notification token returned) and the ping's outbox row ``INSERT``-ed already
  leased to this process (a crash before the send leaves it to the sweep, as ours would);
  ``COMMIT``; then the ping POSTed from the request thread itself (a new connection, as ours
  opens), its outcome recorded (one ``UPDATE``), and the answer. None of ours' approval policy,
  DRF, oauthlib, passkeys, rich authorization details, poll state, prompt withdrawal or signals.

Served only with ``BENCH_FLOOR=1`` (``bench.settings`` then uses ``bench.floor_urls``); the
fixed client is ``BENCH_FLOOR_CLIENT_ID``'s, else the first poll-mode client.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import uuid
from datetime import timedelta
from typing import Any

import requests
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from oauth2_provider.models import get_access_token_model

from ciba import dispatch
from ciba.conf import ciba_settings
from ciba.models import Application, AuthenticationRequest, CallbackDelivery

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


#: the columns each ping's outbox row fills itself
CALLBACK_VARYING = ("request_id", "kind", "attempts", "next_attempt_at", "lease_until", "created_at")


class _Fixed:
    """What every request shares, read once per process: the client, the users' ids, the
    clients' endpoints, and the raw statements (the new request's, the ping row's, the
    approval's). (Two threads racing at the first request compute the same.)"""

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
            self.sql, self.constants, self.slots = _insert_statement(AuthenticationRequest, VARYING)
            self.callback_sql, self.callback_constants, self.callback_slots = _insert_statement(
                CallbackDelivery, CALLBACK_VARYING
            )
            self.callback_sql += f" RETURNING {connection.ops.quote_name('id')}"
            self.approval_sql = _decide_sql()
            self.endpoints: dict[int, str] = dict(
                Application.objects.values_list("pk", "backchannel_client_notification_endpoint")
            )
            self.ready = True


_fixed = _Fixed()


def _insert_statement(model: Any, varying: tuple[str, ...]) -> tuple[str, list[Any], dict[str, int]]:
    """``INSERT INTO <table> (<every column but id>) VALUES (%s, ...)``, the values of the
    columns no request changes (each field's default, as the ORM prepares it for this
    database), and where each of ``varying`` goes in the parameters."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    template = model()  # every default, as objects.create would store it
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    constants = [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields]
    slots = {f.attname: n for n, f in enumerate(fields) if f.attname in varying}
    missing = set(varying) - set(slots)
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


AccessToken = get_access_token_model()


def _decide_sql() -> tuple[str, str, str]:
    """The approval's three statements, from the models' own tables and columns."""
    quote = connection.ops.quote_name
    tokens, requests_, callbacks = (
        quote(m._meta.db_table) for m in (AccessToken, AuthenticationRequest, CallbackDelivery)
    )
    token = (
        f"SELECT {quote('user_id')} FROM {tokens} WHERE {quote('token_checksum')} = %s "
        f"AND {quote('expires')} > %s"
    )
    decide = (
        f"UPDATE {requests_} SET {quote('state')} = %s, {quote('decided_at')} = %s, "
        f"{quote('decided_by_id')} = %s, {quote('granted_scope')} = {quote('scope')}, "
        f"{quote('auth_time')} = %s, {quote('updated_at')} = %s "
        f"WHERE {quote('auth_req_id')} = %s AND {quote('user_id')} = %s AND {quote('state')} = %s "
        f"AND {quote('expires_at')} > %s "
        f"RETURNING {quote('id')}, {quote('client_id')}, {quote('client_notification_token')}"
    )
    delivered = (
        f"UPDATE {callbacks} SET {quote('state')} = %s, {quote('delivered_at')} = %s, "
        f"{quote('last_status')} = %s, {quote('lease_until')} = NULL WHERE {quote('id')} = %s"
    )
    return token, decide, delivered


@csrf_exempt
@require_POST
def approve(request: HttpRequest, auth_req_id: str) -> HttpResponse:
    """The approval's floor (see the module): decided and its ping queued in one commit, the
    ping sent, its outcome recorded, answered."""
    if not _fixed.ready:
        _fixed.load()
    token_sql, decide_sql, delivered_sql = _fixed.approval_sql
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not bearer:
        return JsonResponse({"error": "invalid_token"}, status=401, headers=HEADERS)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(token_sql, [hashlib.sha256(bearer.encode()).hexdigest(), now])
        found = cursor.fetchone()
    if found is None:
        return JsonResponse({"error": "invalid_token"}, status=401, headers=HEADERS)
    user_pk = found[0]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            decide_sql,
            ["approved", now, user_pk, now, now, auth_req_id, user_pk, "pending", now],
        )
        decided = cursor.fetchone()
        if decided is None:
            return JsonResponse({"error": "request_not_pending"}, status=409, headers=HEADERS)
        request_pk, client_pk, notification_token = decided
        params = list(_fixed.callback_constants)
        row = {
            "request_id": request_pk,
            "kind": CallbackDelivery.Kind.PING,
            "attempts": 1,
            "next_attempt_at": now,
            "lease_until": now + timedelta(seconds=30),
            "created_at": now,
        }
        for name, slot in _fixed.callback_slots.items():
            params[slot] = row[name]
        cursor.execute(_fixed.callback_sql, params)
        callback_pk = cursor.fetchone()[0]
    response = requests.post(
        _fixed.endpoints[client_pk],
        data=json.dumps({"auth_req_id": auth_req_id}),
        headers={"Authorization": f"Bearer {notification_token}", "Content-Type": "application/json"},
        timeout=3,
        allow_redirects=False,
    )
    if 200 <= response.status_code < 300:
        with connection.cursor() as cursor:
            cursor.execute(delivered_sql, ["delivered", timezone.now(), response.status_code, callback_pk])
    return JsonResponse({"auth_req_id": auth_req_id, "status": "approved"}, headers=HEADERS)
