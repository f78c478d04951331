"""The client cancel and the supersede under concurrency, on PostgreSQL with Redis (issue 27).

A cancel racing the user's approval (or denial) ends in exactly one outcome, whatever the
timing: either the request is cancelled (the client got 200, the approval ``RequestNotPending``,
no callback, polls ``expired_token``) or it is decided (the client got ``invalid_grant`` naming
the state). Threads of this process with their own connections meet at a barrier, round after
round, so both orders and true overlaps happen. Supersede under a burst from one client
cancels, at each new request, exactly the oldest pending one (in the order the per-user lock
let them in), and leaves exactly the cap pending.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from oauth2_provider.models import get_application_model

from ciba import services, signals
from ciba.constants import CIBA_GRANT_TYPE
from ciba.errors import RequestNotPending
from ciba.models import AuthenticationRequest, CallbackDelivery

pytestmark = pytest.mark.django_db(transaction=True)

Application = get_application_model()
State = AuthenticationRequest.State
CANCEL = "/o/backchannel-authentication/cancel/"
TOKEN = "/o/token/"
FORM = "application/x-www-form-urlencoded"
ROUNDS = 24


def ciba_client(name: str, mode: str = "ping") -> tuple[Any, str]:
    secret = secrets.token_urlsafe(32)
    values: dict[str, Any] = {}
    if mode != "poll":
        values["backchannel_client_notification_endpoint"] = "https://client.example.com/cb"
    app = Application.objects.create(
        name=name,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=CIBA_GRANT_TYPE,
        backchannel_token_delivery_mode=mode,
        client_secret=secret,
        algorithm="RS256",
        **values,
    )
    return app, secret


def basic(app: Any, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()


@pytest.fixture
def alice() -> Any:
    return get_user_model().objects.create_user("alice", "alice@example.com", "pw")


@pytest.fixture
def no_limits(settings: Any) -> None:
    settings.CIBA = {
        **settings.CIBA,
        "MAX_PENDING_PER_USER": None,
        "MAX_PENDING_PER_CLIENT_USER": None,
        "USER_REQUEST_RATE": None,
        "BACKCHANNEL_THROTTLE_RATE": None,
    }


def race(*steps: Callable[[], Any]) -> list[Any]:
    """Run ``steps`` at once, each in a thread with its own connection; their results (or the
    exception each raised)."""
    start = threading.Barrier(len(steps))
    results: list[Any] = [None] * len(steps)

    def run(i: int) -> None:
        try:
            connection.ensure_connection()  # the race is for the row, not for connecting
            start.wait(30)
            results[i] = steps[i]()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each step met
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(steps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def new(app: Any, user: Any) -> AuthenticationRequest:
    return services.create_request(
        expires_in=300,
        client=app,
        user=user,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token="token-" + secrets.token_hex(8),
    )


def http_cancel(app: Any, secret: str, auth_req_id: str) -> tuple[int, dict[str, Any]]:
    response = Client().post(
        CANCEL,
        urlencode({"auth_req_id": auth_req_id}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic(app, secret),
    )
    return response.status_code, response.json()


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_a_cancel_racing_the_users_decision_ends_in_exactly_one_outcome(
    alice: Any, no_limits: None, decision: str
) -> None:
    app, secret = ciba_client("Kiosk", "ping")
    outcomes: Counter = Counter()
    decide = getattr(services, decision)

    def deciding(ar: AuthenticationRequest, delay: float) -> Any:
        # The HTTP cancel authenticates the client first: a decision started as late lets
        # the cancel win some rounds, and meet the decision head-on in others.
        time.sleep(delay)
        return decide(AuthenticationRequest.objects.select_related("client").get(pk=ar.pk), user=alice)

    for round_ in range(ROUNDS):
        ar = new(app, alice)
        cancelled, decided = race(
            lambda ar=ar: http_cancel(app, secret, ar.auth_req_id),
            lambda ar=ar, delay=(round_ % 8) * 0.002: deciding(ar, delay),
        )
        assert not isinstance(cancelled, Exception), cancelled
        status, body = cancelled
        ar.refresh_from_db()
        callbacks = CallbackDelivery.objects.filter(request=ar).count()
        if status == 200:
            # The cancel won: the decision found nothing pending, nothing was sent.
            assert body == {"auth_req_id": ar.auth_req_id, "state": "cancelled"}
            assert isinstance(decided, RequestNotPending) and decided.state == State.CANCELLED, decided
            assert (ar.state, ar.cancel_reason, ar.decided_at, callbacks) == (
                State.CANCELLED,
                "client",
                None,
                0,
            )
            outcomes["cancelled"] += 1
        else:
            # The decision won: the client is told which, and gets its ping.
            state = State.APPROVED if decision == "approve" else State.DENIED
            assert (status, body["error"]) == (400, "invalid_grant"), body
            assert body["error_description"] == f"The request is {state}; it can no longer be cancelled."
            assert not isinstance(decided, Exception), decided
            assert (ar.state, ar.cancel_reason, callbacks) == (state, "", 1)
            outcomes["decided"] += 1
    assert sum(outcomes.values()) == ROUNDS, outcomes
    print(f"cancel vs {decision}: {dict(outcomes)}")  # shown with -s: how often each won


def test_two_cancels_at_once_both_answer_200_and_cancel_once(alice: Any, no_limits: None) -> None:
    app, secret = ciba_client("Kiosk", "poll")
    sent: list[Any] = []
    receiver = lambda **kwargs: sent.append(kwargs["request"].pk)  # noqa: E731
    signals.auth_request_cancelled.connect(receiver, weak=False)
    try:
        for _ in range(ROUNDS // 4):
            ar = new(app, alice)
            answers = race(*[lambda ar=ar: http_cancel(app, secret, ar.auth_req_id)] * 3)
            assert [status for status, _ in answers] == [200, 200, 200], answers
            assert sent.count(ar.pk) == 1
    finally:
        signals.auth_request_cancelled.disconnect(receiver)


def test_a_cancelled_requests_poll_is_expired_token_on_the_production_poll_state(
    alice: Any, no_limits: None
) -> None:
    """The shared poll state (Redis) learned the cancel: the token endpoint's fast path
    answers the next poll from it as from the database."""
    app, secret = ciba_client("Kiosk", "poll")
    ar = new(app, alice)
    client = Client()
    poll = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": ar.auth_req_id}
    first = client.post(TOKEN, urlencode(poll), content_type=FORM, HTTP_AUTHORIZATION=basic(app, secret))
    assert first.json()["error"] == "authorization_pending"
    assert http_cancel(app, secret, ar.auth_req_id)[0] == 200
    for _ in range(2):
        answer = client.post(TOKEN, urlencode(poll), content_type=FORM, HTTP_AUTHORIZATION=basic(app, secret))
        assert answer.status_code == 400 and answer.json()["error"] == "expired_token", answer.content


def test_a_burst_from_one_client_supersedes_exactly_the_oldest_each_time(alice: Any, settings: Any) -> None:
    settings.CIBA = {
        **settings.CIBA,
        "MAX_PENDING_PER_USER": None,
        "MAX_PENDING_PER_CLIENT_USER": 2,
        "USER_REQUEST_RATE": None,
        "PENDING_CAP_ACTION": "supersede",
    }
    app, _ = ciba_client("Kiosk", "poll")
    other, _ = ciba_client("Shop", "poll")
    theirs = new(other, alice)
    existing = [new(app, alice).pk for _ in range(2)]
    burst = 30
    made_by: dict[int, list[int]] = {}  # new request pk -> pks it superseded
    local = threading.local()
    lock = threading.Lock()

    def receiver(request: Any, reason: str, **kwargs: Any) -> None:
        assert reason == "superseded"
        local.superseded.append(request.pk)

    def one() -> int:
        local.superseded = []
        ar = new(app, alice)  # the cancelled signals fire in this thread, after its commit
        with lock:
            made_by[ar.pk] = list(local.superseded)
        return ar.pk

    signals.auth_request_cancelled.connect(receiver, weak=False)
    try:
        results = race(*[one] * burst)
    finally:
        signals.auth_request_cancelled.disconnect(receiver)
    assert all(isinstance(pk, int) for pk in results), results

    # Replay the burst in the order the lock let it in (the order of the rows' pks): each new
    # request must have superseded exactly the oldest of the two pending before it.
    pending = list(existing)
    for pk in sorted(made_by):
        assert made_by[pk] == [min(pending)], (pk, made_by[pk], pending)
        pending.remove(min(pending))
        pending.append(pk)
    rows = AuthenticationRequest.objects.filter(client=app)
    assert sorted(rows.filter(state=State.PENDING).values_list("pk", flat=True)) == sorted(pending)
    assert rows.filter(state=State.CANCELLED, cancel_reason="superseded").count() == burst
    theirs.refresh_from_db()
    assert theirs.state == State.PENDING  # another client's request is never superseded
