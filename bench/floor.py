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

For a push client the same view is the push's floor (the issue's push target): in the
decision's transaction the tokens are minted the least a Django server storing them can: an
access and a refresh token (``secrets``, 256 bits each, stored by their SHA-256 checksum as
ours are) and the ID token (RS256 with the server's ``OIDC_RSA_PRIVATE_KEY``, through PyJWT,
with CIBA §10.3.1's ``urn:openid:params:jwt:claim:auth_req_id``, ``at_hash`` and ``rt_hash``),
each row one raw ``INSERT``, and the body stored sealed in the outbox row (as ours are: a
retry sends the same tokens, unreadable at rest); after the commit, the body POSTed. None of
ours' DOT and oauthlib machinery, claims, bindings or the original authentication's record.

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

import jwt
import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from oauth2_provider.models import get_access_token_model, get_id_token_model, get_refresh_token_model
from oauth2_provider.settings import oauth2_settings

from ciba import dispatch
from ciba.callbacks.sealing import seal
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
CALLBACK_VARYING = (
    "request_id",
    "kind",
    "payload",
    "attempts",
    "next_attempt_at",
    "lease_until",
    "created_at",
)
#: The push's token rows: what varies per token (the rest are each model's defaults).
TOKEN_TIMES = ("user_id", "application_id", "expires", "scope", "created", "updated")
ID_TOKEN_VARYING = ("jti", *TOKEN_TIMES)
ACCESS_TOKEN_VARYING = ("token_checksum", "id_token_id", *TOKEN_TIMES)
REFRESH_TOKEN_VARYING = (
    "token_checksum",
    "access_token_id",
    "user_id",
    "application_id",
    "created",
    "updated",
)


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
            returning = f" RETURNING {connection.ops.quote_name('id')}"
            self.callback_sql += returning
            self.approval_sql = _decide_sql()
            clients = Application.objects.values_list(
                "pk",
                "backchannel_client_notification_endpoint",
                "backchannel_token_delivery_mode",
                "client_id",
            )
            self.endpoints: dict[int, str] = {pk: endpoint for pk, endpoint, _, _ in clients}
            self.modes: dict[int, str] = {pk: mode for pk, _, mode, _ in clients}
            self.client_ids: dict[int, str] = {pk: client_id for pk, _, _, client_id in clients}
            self.token_statements = {
                name: (sql + returning, constants, slots)
                for name, (sql, constants, slots) in (
                    ("id", _insert_statement(get_id_token_model(), ID_TOKEN_VARYING)),
                    ("access", _insert_statement(AccessToken, ACCESS_TOKEN_VARYING)),
                    ("refresh", _insert_statement(get_refresh_token_model(), REFRESH_TOKEN_VARYING)),
                )
            }
            self.jti_field = get_id_token_model()._meta.get_field("jti")
            self.signing_key = load_pem_private_key(oauth2_settings.OIDC_RSA_PRIVATE_KEY.encode(), None)
            self.issuer = oauth2_settings.OIDC_ISS_ENDPOINT
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
    with connection.cursor() as cursor:
        cursor.execute(_fixed.sql, _params(_fixed.constants, _fixed.slots, row))
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
        body: dict[str, Any] = {"auth_req_id": auth_req_id}
        kind, sealed = CallbackDelivery.Kind.PING, None
        if _fixed.modes[client_pk] == "push":
            body.update(_mint(cursor, auth_req_id, user_pk, client_pk, now))
            kind, sealed = CallbackDelivery.Kind.PUSH_TOKENS, seal(body)
        row = {
            "request_id": request_pk,
            "kind": kind,
            "payload": sealed,
            "attempts": 1,
            "next_attempt_at": now,
            "lease_until": now + timedelta(seconds=30),
            "created_at": now,
        }
        cursor.execute(_fixed.callback_sql, _params(_fixed.callback_constants, _fixed.callback_slots, row))
        callback_pk = cursor.fetchone()[0]
    response = requests.post(
        _fixed.endpoints[client_pk],
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {notification_token}", "Content-Type": "application/json"},
        timeout=3,
        allow_redirects=False,
    )
    if 200 <= response.status_code < 300:
        with connection.cursor() as cursor:
            cursor.execute(delivered_sql, ["delivered", timezone.now(), response.status_code, callback_pk])
    return JsonResponse({"auth_req_id": auth_req_id, "status": "approved"}, headers=HEADERS)


def _mint(cursor: Any, auth_req_id: str, user_pk: int, client_pk: int, now: Any) -> dict[str, Any]:
    """The push's tokens (see the module), their rows inserted with ``cursor``, in the
    caller's transaction; the token response's members."""
    access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    lifetime = oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS
    common = {"user_id": user_pk, "application_id": client_pk, "scope": "openid"}
    common.update(created=now, updated=now)
    jti = uuid.uuid4()
    claims = {
        "iss": _fixed.issuer,
        "sub": str(user_pk),
        "aud": _fixed.client_ids[client_pk],
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + oauth2_settings.ID_TOKEN_EXPIRE_SECONDS,
        "auth_time": int(now.timestamp()),
        "jti": str(jti),
        "urn:openid:params:jwt:claim:auth_req_id": auth_req_id,
        "at_hash": _half_hash(access),
        "urn:openid:params:jwt:claim:rt_hash": _half_hash(refresh),
    }
    id_token = jwt.encode(claims, _fixed.signing_key, algorithm="RS256")
    expires = now + timedelta(seconds=oauth2_settings.ID_TOKEN_EXPIRE_SECONDS)
    jti_value = _fixed.jti_field.get_db_prep_save(jti, connection)  # a UUID is text on SQLite
    id_pk = _insert_token(cursor, "id", {**common, "jti": jti_value, "expires": expires})
    access_pk = _insert_token(
        cursor,
        "access",
        {
            **common,
            "token_checksum": hashlib.sha256(access.encode()).hexdigest(),
            "id_token_id": id_pk,
            "expires": now + timedelta(seconds=lifetime),
        },
    )
    _insert_token(
        cursor,
        "refresh",
        {
            **common,
            "token_checksum": hashlib.sha256(refresh.encode()).hexdigest(),
            "access_token_id": access_pk,
        },
    )
    return {
        "access_token": access,
        "token_type": "Bearer",
        "refresh_token": refresh,
        "expires_in": lifetime,
        "id_token": id_token,
    }


def _insert_token(cursor: Any, name: str, values: dict[str, Any]) -> int:
    sql, constants, slots = _fixed.token_statements[name]
    cursor.execute(sql, _params(constants, slots, values))
    return cursor.fetchone()[0]


def _params(constants: list[Any], slots: dict[str, int], values: dict[str, Any]) -> list[Any]:
    """An ``_insert_statement``'s parameters: its constants, each varying column's value in
    its slot."""
    params = list(constants)
    for name, slot in slots.items():
        params[slot] = values[name]
    return params


def _half_hash(token: str) -> str:
    """OIDC Core §3.1.3.6's ``at_hash``: the left half of the SHA-256, base64url."""
    digest = hashlib.sha256(token.encode()).digest()
    return jwt.utils.base64url_encode(digest[: len(digest) // 2]).decode()
