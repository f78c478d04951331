"""The Django floor of bench.compare (bench/floor.py): the ceiling's work done the Django way.

Its figures only mean something if its rows are what ours are (complete pending requests whose
device notification is due, which our worker notifies as ours) and if its two variants store
the same row; and bench.compare must report it beside the ceiling.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from bench import compare, floor
from ciba import device_outbox
from ciba.models import AuthenticationRequest

FORM = "scope=openid&login_hint=alice&binding_message=BENCH-0001&requested_expiry=600"
#: what differs between two requests whatever stored them
OWN = {"id", "auth_req_id", "device_notification_id", "expires_at", "created_at", "updated_at"}
OWN |= {"device_notification_due_at"}


@pytest.fixture
def floor_site(settings: Any, make_client: Any, alice: Any, monkeypatch: Any) -> Any:
    """The floor's URLconf, its fixed client a poll client, what it reads once read afresh."""
    settings.ROOT_URLCONF = "bench.floor_urls"
    app, _ = make_client("poll")
    monkeypatch.setenv("BENCH_FLOOR_CLIENT_ID", app.client_id)
    floor._fixed.ready = False
    yield app
    floor._fixed.ready = False


def post(client: Any, variant: str, body: str = FORM) -> Any:
    return client.post(f"/bench/floor/{variant}/", body, content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("variant", ["orm", "sql"])
def test_the_floor_commits_a_complete_pending_request_with_its_notification_due_and_answers_like_ours(
    client: Any, floor_site: Any, alice: Any, variant: str
) -> None:
    before = timezone.now()
    response = post(client, variant)

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store" and response["Pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}
    assert body["expires_in"] == 600 and body["interval"] == 5
    assert len(body["auth_req_id"]) == 22  # 128 bits, URL-safe base64
    ar = AuthenticationRequest.objects.get(auth_req_id=body["auth_req_id"])
    assert (ar.client, ar.user, ar.state) == (floor_site, alice, AuthenticationRequest.State.PENDING)
    assert (ar.scope, ar.binding_message, ar.hint_kind) == ("openid", "BENCH-0001", "login_hint")
    assert before + timedelta(seconds=600) <= ar.expires_at <= timezone.now() + timedelta(seconds=600)
    assert ar.device_notification_status == AuthenticationRequest.NotificationStatus.QUEUED
    assert ar.device_notification_due_at <= timezone.now() and ar.device_notification_id
    assert cache.get(f"req:{body['auth_req_id']}") == "pending"  # the ceiling's Redis SET


@pytest.mark.parametrize("variant", ["orm", "sql"])
def test_our_notification_worker_notifies_the_floors_requests_as_it_does_ours(
    client: Any, floor_site: Any, variant: str
) -> None:
    auth_req_id = post(client, variant).json()["auth_req_id"]

    assert device_outbox.notify_due() == 1
    ar = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    assert ar.device_notification_status == AuthenticationRequest.NotificationStatus.SENT


def test_the_raw_insert_stores_the_same_row_as_the_orm(client: Any, floor_site: Any) -> None:
    rows = [
        AuthenticationRequest.objects.get(auth_req_id=post(client, variant).json()["auth_req_id"])
        for variant in ("orm", "sql")
    ]

    fields = [f.attname for f in AuthenticationRequest._meta.concrete_fields if f.attname not in OWN]
    assert [getattr(rows[1], name) for name in fields] == [getattr(rows[0], name) for name in fields]
    for row in rows:  # and the times, each request's own, alike
        assert row.expires_at - row.created_at == timedelta(seconds=600)
        assert row.updated_at == row.created_at == row.device_notification_due_at


def test_the_floor_refuses_a_user_nobody_knows_and_stores_nothing(client: Any, floor_site: Any) -> None:
    response = post(client, "sql", FORM.replace("alice", "mallory"))

    assert response.status_code == 400 and response.json() == {"error": "unknown_user_id"}
    assert not AuthenticationRequest.objects.exists()


def _round(floor_rate: float) -> dict[str, Any]:
    """One round of bench.compare's backchannel scenarios, as ``run_round`` records it."""
    cpu = {"web": 1.0, "workers": 0.5, "postgres": 0.2, "redis": 0.1, "floor": 0.4, "ceiling": 0.3}
    cpu.update(anchor=0.0, anchor_redis=0.0, others=0.0, wall=10.0)

    def run(rate: float, **extra: Any) -> dict[str, Any]:
        return {"requests_per_second": rate, "requests": 1000, "cpu_seconds": cpu, "errors": 0, **extra}

    notified = {"accepted": 1000, "drain_seconds": 0.5}
    return {
        "round": 1,
        "backchannel": {
            "ours": run(600),
            "ceiling": run(3000),
            "floor": run(floor_rate),
            "floor_sql": run(floor_rate * 1.5),
        },
        "sustained": {
            "ours": run(500, sustained_per_second=500, accepted_per_second=550, **notified),
            "floor": run(
                floor_rate, sustained_per_second=floor_rate / 2, accepted_per_second=floor_rate, **notified
            ),
            "floor_sql": run(900, sustained_per_second=900, accepted_per_second=950, **notified),
            "ceiling": {"server": "ceiling", "sustained_per_second": 3000},
        },
    }


def test_the_comparison_reports_the_floor_beside_the_ceiling_with_its_ratio_to_it() -> None:
    summary = compare.summarize([_round(1200)])

    sustained = summary["rows"]["sustained_per_second"]
    assert sustained["floor"]["median"] == 600 and sustained["floor_sql"]["median"] == 900
    assert sustained["floor_ratio_ceiling"] == 0.2 and sustained["floor_sql_ratio_ceiling"] == 0.3
    assert sustained["ratio_floor"] == round(500 / 600, 3)
    assert summary["rows"]["backchannel_per_second"]["floor_ratio_ceiling"] == 0.4
    # its CPU per 1,000 by part: its own web processes, our workers, PostgreSQL, Redis
    floor_cpu = summary["cpu_per_1000"]["sustained"]["floor"]
    assert {part: cell["median"] for part, cell in floor_cpu.items()} == {
        "server": 0.4,
        "workers": 0.5,
        "postgres": 0.2,
        "redis": 0.1,
        "total": 1.2,
    }
    printed = compare.table(summary)
    assert "floor ORM" in printed and "floor÷ceil" in printed and "Django floor, raw SQL" in printed


def test_a_floor_run_that_left_notifications_open_is_an_error_of_the_comparison() -> None:
    failed = _round(1200)
    failed["sustained"]["floor"].update(errors=1, problem="3 device notifications still open after 60 s")

    runs = compare.scenario_runs(failed)

    assert ("sustained", failed["sustained"]["floor"]) in runs
    assert sum(run.get("errors", 0) for _, run in runs) == 1


@pytest.fixture
def ping_receiver() -> Any:
    """A client notification endpoint on loopback, recording what arrives."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    arrived: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            arrived.append((self.headers["Authorization"], body))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.arrived = arrived
    server.url = f"http://127.0.0.1:{server.server_address[1]}/cb"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def floor_ping(floor_site: Any, make_client: Any, alice: Any, ping_receiver: Any) -> Any:
    """A pending request of a ping client whose endpoint is ``ping_receiver``, and alice's
    consent bearer token."""
    return floor_request("ping", make_client, alice, ping_receiver)


@pytest.fixture
def floor_push(floor_site: Any, make_client: Any, alice: Any, ping_receiver: Any) -> Any:
    """The same for a push client."""
    return floor_request("push", make_client, alice, ping_receiver)


def floor_request(mode: str, make_client: Any, alice: Any, ping_receiver: Any) -> Any:
    from oauth2_provider.models import get_access_token_model

    from ciba import services
    from ciba.models import Application

    app, _ = make_client(mode)
    # loopback http: the floor's own test endpoint, which registration rightly refuses
    Application.objects.filter(pk=app.pk).update(backchannel_client_notification_endpoint=ping_receiver.url)
    ar = services.create_request(
        expires_in=300,
        client=app,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token="floor-notification-token",
    )
    token = get_access_token_model().objects.create(
        user=alice,
        application=app,
        token="floor-consent-token",
        scope="openid ciba:consent",
        expires=timezone.now() + timedelta(hours=1),
    )
    return ar, token.token


def approve(client: Any, auth_req_id: str, token: str) -> Any:
    return client.post(
        f"/bench/floor/approve/{auth_req_id}/",
        "{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def test_the_floors_approval_commits_the_decision_and_its_ping_then_sends_the_ping(
    client: Any, floor_ping: Any, ping_receiver: Any, alice: Any
) -> None:
    from ciba.models import CallbackDelivery

    ar, token = floor_ping

    response = approve(client, ar.auth_req_id, token)

    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    ar.refresh_from_db()
    assert (ar.state, ar.decided_by, ar.granted_scope) == ("approved", alice, "openid")
    assert ping_receiver.arrived == [("Bearer floor-notification-token", {"auth_req_id": ar.auth_req_id})]
    [ping] = CallbackDelivery.objects.filter(request=ar)
    assert (ping.kind, ping.state, ping.last_status, ping.lease_until) == ("ping", "delivered", 204, None)


def test_the_floors_approval_refuses_a_wrong_token_and_a_decided_request(
    client: Any, floor_ping: Any, ping_receiver: Any
) -> None:
    from ciba.models import CallbackDelivery

    ar, token = floor_ping

    assert approve(client, ar.auth_req_id, "not-a-token").status_code == 401
    assert approve(client, ar.auth_req_id, token).status_code == 200
    assert approve(client, ar.auth_req_id, token).status_code == 409  # decided already
    assert len(ping_receiver.arrived) == 1 and CallbackDelivery.objects.count() == 1


def test_the_floors_push_mints_stores_and_sends_tokens_the_client_can_verify(
    client: Any, floor_push: Any, ping_receiver: Any, alice: Any
) -> None:
    import hashlib

    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from oauth2_provider.models import get_access_token_model, get_id_token_model, get_refresh_token_model
    from oauth2_provider.settings import oauth2_settings

    from ciba.callbacks.sealing import unseal
    from ciba.models import CallbackDelivery

    ar, token = floor_push

    assert approve(client, ar.auth_req_id, token).status_code == 200

    [(authorization, body)] = ping_receiver.arrived
    assert authorization == "Bearer floor-notification-token"
    assert body["auth_req_id"] == ar.auth_req_id and body["token_type"] == "Bearer"
    public = load_pem_private_key(oauth2_settings.OIDC_RSA_PRIVATE_KEY.encode(), None).public_key()
    claims = jwt.decode(body["id_token"], public, algorithms=["RS256"], audience=ar.client.client_id)
    assert claims["urn:openid:params:jwt:claim:auth_req_id"] == ar.auth_req_id
    assert claims["sub"] == str(alice.pk)
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert claims["at_hash"] == jwt.utils.base64url_encode(digest[:16]).decode()
    stored = get_access_token_model().objects.get(
        token_checksum=hashlib.sha256(body["access_token"].encode()).hexdigest()
    )
    assert (stored.user, stored.application, str(stored.id_token.jti)) == (alice, ar.client, claims["jti"])
    assert get_refresh_token_model().objects.get(access_token=stored).user == alice
    assert get_id_token_model().objects.count() == 1
    [push] = CallbackDelivery.objects.filter(request=ar)
    assert (push.kind, push.state, unseal(push.payload)) == ("push_tokens", "delivered", body)


def test_the_comparison_reports_the_floors_ping_beside_ours() -> None:
    rounds = []
    for ours, floor_ms in ((14.0, 6.0), (16.0, 7.0), (15.0, 8.0)):
        run = {
            "approval_to_callback_ms": {"p50": ours - 2, "p95": ours},
            "approve_request_ms": {"p50": ours - 3},
        }
        theirs = {"approval_to_callback_ms": {"p50": 2.0, "p95": 4.0}, "approve_request_ms": {"p50": 3.0}}
        mine = {
            "approval_to_callback_ms": {"p50": floor_ms - 1, "p95": floor_ms},
            "approve_request_ms": {"p50": 4.0},
        }
        rounds.append(
            {"round": 1, "callbacks": {"ours_ping": run, "theirs_ping": theirs, "floor_ping": mine}}
        )

    rows = compare.summarize(rounds)["rows"]

    assert rows["ping_p95_ms"]["floor"]["median"] == 7.0 and rows["ping_p95_ms"]["ratio_floor"] == round(
        15 / 7, 3
    )
    assert rows["approve_request_p50_ms"]["floor"]["median"] == 4.0


def test_the_comparison_reports_the_floors_push_beside_ours() -> None:
    def run(p95: float) -> dict[str, Any]:
        return {"approval_to_callback_ms": {"p50": p95 - 2, "p95": p95}, "approve_request_ms": {"p50": 3.0}}

    rounds = [
        {"round": 1, "callbacks": {"ours_ping": run(12), "ours_push": run(ours), "floor_push": run(floor)}}
        for ours, floor in ((24.0, 8.0), (22.0, 11.0), (26.0, 9.0))
    ]

    row = compare.summarize(rounds)["rows"]["push_p95_ms"]

    assert (row["ours"]["median"], row["floor"]["median"]) == (24.0, 9.0)
    assert row["ratio_floor"] == round(24 / 9, 3)
