"""The approve request with fewer round trips (issue 29): the same answers and guarantees.

The device prompt's withdrawal is marked by the decision's own UPDATE, committed with it (no
second write after the commit, when the request read showed the device notified); the worker
is still handed it at once, also for a notification sent after the request was read, and a
request never notified still sends nothing. The consent API's check that
a consent-scoped token belongs to a designated device app is answered from the token's own
row when the token query joined the designation, and still refuses at once an app whose
designation was removed. On PostgreSQL, an approval racing a denial of the same request ends
in exactly one decision, with exactly one callback row.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from ciba import dispatch, services
from ciba.errors import RequestNotPending
from ciba.models import AuthenticationRequest, CallbackDelivery, ConsentClient
from ciba.views.permissions import _held_by_device_app
from tests.conftest import start_request
from tests.protocol import consent_bearer

API = "/o/ciba/requests/"
AccessToken = get_access_token_model()


@pytest.fixture
def published():
    """Tasks published after the decision (withdrawals, callbacks), instead of a broker."""
    sent: list[tuple[str, tuple]] = []

    def send(task: str, *args: Any, **kwargs: Any) -> bool:
        if task not in (dispatch.NOTIFY_DUE, dispatch.NOTIFY_DEVICE):
            sent.append((task, args))
        return True

    with mock.patch.object(dispatch, "send", side_effect=send):
        yield sent


#: The withdrawal handed on: the batch task (``NOTIFY_BATCH_WINDOW``, on by default), which
#: withdraws every due prompt; without a window, a task for the request.
BATCH_OF_WITHDRAWALS = [(dispatch.WITHDRAW_DUE, ())]


def notified(ar: AuthenticationRequest, **fields: Any) -> AuthenticationRequest:
    """As if the device had been notified once (and a retry of another notifier were planned)."""
    values = {"device_notification_attempts": 1, "device_notification_retry": ["a.Notifier"], **fields}
    AuthenticationRequest.objects.filter(pk=ar.pk).update(**values)
    return AuthenticationRequest.objects.get(pk=ar.pk)


@pytest.mark.parametrize("window", ["default", 0])
@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_a_decision_on_a_notified_request_owes_its_prompt_withdrawal_in_the_same_commit(
    client, alice, make_client, published, decision, window, django_capture_on_commit_callbacks, settings
):
    """Handed on to the batch task, or without a batch window to a task of its own."""
    app, secret = make_client("poll")
    ar = notified(AuthenticationRequest.objects.get(auth_req_id=start_request(client, app, secret)))
    phone = consent_bearer(alice)
    published.clear()
    if window == 0:
        settings.CIBA = {**settings.CIBA, "NOTIFY_BATCH_WINDOW": 0}
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
        response = Client().post(f"{API}{ar.auth_req_id}/{decision}/", **phone)
    assert response.status_code == 200, response.content
    row = AuthenticationRequest.objects.get(pk=ar.pk)
    assert row.device_notification_due_at >= before  # owed: the sweep finds it even if no task runs
    assert AuthenticationRequest.objects.filter(pk=ar.pk, device_notification_retry__isnull=True).exists()
    assert published == (BATCH_OF_WITHDRAWALS if window else [(dispatch.WITHDRAW_PROMPT, (ar.pk,))])
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("UPDATE", "INSERT"))]
    assert [w.split()[1] for w in writes] == ['"ciba_authenticationrequest"']  # the decision alone


def test_a_decision_while_a_notification_is_in_flight_hands_the_withdrawal_on(
    client, alice, make_client, published, django_capture_on_commit_callbacks
):
    app, secret = make_client("poll")
    ar = AuthenticationRequest.objects.get(auth_req_id=start_request(client, app, secret))
    AuthenticationRequest.objects.filter(pk=ar.pk).update(
        device_notification_lease_until=timezone.now() + timedelta(seconds=30)
    )
    phone = consent_bearer(alice)
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(f"{API}{ar.auth_req_id}/approve/", **phone)
    assert response.status_code == 200
    assert published == BATCH_OF_WITHDRAWALS  # it waits for the lease, then withdraws


def test_a_request_decided_before_any_notification_sends_no_withdrawal(
    client, alice, make_client, published, django_capture_on_commit_callbacks
):
    app, secret = make_client("poll")
    ar = AuthenticationRequest.objects.get(auth_req_id=start_request(client, app, secret))
    due = AuthenticationRequest.objects.get(pk=ar.pk).device_notification_due_at
    phone = consent_bearer(alice)
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert Client().post(f"{API}{ar.auth_req_id}/approve/", **phone).status_code == 200
    assert published == []
    assert AuthenticationRequest.objects.get(pk=ar.pk).device_notification_due_at == due


def test_a_notification_sent_after_the_decider_read_the_request_is_still_withdrawn_at_once(
    client, alice, make_client, published, django_capture_on_commit_callbacks
):
    app, secret = make_client("poll")
    ar = AuthenticationRequest.objects.select_related("client").get(
        auth_req_id=start_request(client, app, secret)
    )
    notified(ar)  # a worker notified the device after ``ar`` was read
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(ar, user=alice)
    assert published == BATCH_OF_WITHDRAWALS
    assert AuthenticationRequest.objects.get(pk=ar.pk).device_notification_due_at is not None


def test_an_expiry_still_marks_the_withdrawal_after_its_commit(
    client, alice, make_client, published, django_capture_on_commit_callbacks
):
    app, secret = make_client("poll")
    ar = notified(AuthenticationRequest.objects.get(auth_req_id=start_request(client, app, secret)))
    AuthenticationRequest.objects.filter(pk=ar.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.expire(AuthenticationRequest.objects.select_related("client").get(pk=ar.pk))
    assert published == BATCH_OF_WITHDRAWALS


# --- the device app's designation, read with the token ----------------------------------------


def device_token(user: Any, app: Any) -> Any:
    return AccessToken.objects.create(
        user=user,
        application=app,
        token=uuid.uuid4().hex,
        scope="openid ciba:consent",
        expires=timezone.now() + timedelta(hours=1),
    )


def joined(token: Any) -> Any:
    """The token as the bearer-token validation loads it, its application's designation joined."""
    return AccessToken.objects.select_related("application__ciba_consent_client").get(pk=token.pk)


def test_a_designated_device_apps_token_is_accepted_without_another_query(alice, make_client):
    app, _ = make_client("poll")
    ConsentClient.objects.create(application=app)
    token = joined(device_token(alice, app))
    with CaptureQueriesContext(connection) as queries:
        assert _held_by_device_app(token) is True
    assert queries.captured_queries == []


def test_a_token_of_an_app_not_designated_is_refused_without_another_query(alice, make_client):
    app, _ = make_client("poll")
    token = joined(device_token(alice, app))
    with CaptureQueriesContext(connection) as queries:
        assert _held_by_device_app(token) is False
    assert queries.captured_queries == []


def test_a_token_loaded_without_the_designation_is_checked_with_a_query(alice, make_client):
    app, _ = make_client("poll")
    ConsentClient.objects.create(application=app)
    token = AccessToken.objects.select_related("application").get(pk=device_token(alice, app).pk)
    assert _held_by_device_app(token) is True
    ConsentClient.objects.filter(application=app).delete()
    assert _held_by_device_app(AccessToken.objects.get(pk=token.pk)) is False


def test_a_removed_designation_refuses_the_device_app_at_its_next_request(client, alice, make_client):
    app, _ = make_client("poll")
    designation = ConsentClient.objects.create(application=app)
    phone = {"HTTP_AUTHORIZATION": f"Bearer {device_token(alice, app).token}"}
    assert Client().get(API, **phone).status_code == 200
    designation.delete()
    assert Client().get(API, **phone).status_code == 403


# --- one winner, on PostgreSQL ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_approval_racing_a_denial_ends_in_one_decision_with_one_callback(make_client, alice, published):
    if connection.vendor != "postgresql":
        pytest.skip("true concurrency needs PostgreSQL (the production tier)")
    app, _ = make_client("ping")
    for _ in range(12):
        ar = services.create_request(
            expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
        )
        notified(ar)
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def decide(how: str, pk: int, barrier: threading.Barrier, outcomes: dict[str, str]) -> None:
            mine = AuthenticationRequest.objects.select_related("client").get(pk=pk)
            barrier.wait()
            try:
                getattr(services, how)(mine, user=alice)
                outcomes[how] = "won"
            except RequestNotPending:
                outcomes[how] = "lost"
            finally:
                connection.close()

        threads = [
            threading.Thread(target=decide, args=(how, ar.pk, barrier, outcomes))
            for how in ("approve", "deny")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes.values()) == ["lost", "won"], outcomes
        winner = "approved" if outcomes["approve"] == "won" else "denied"
        assert AuthenticationRequest.objects.get(pk=ar.pk).state == winner
        assert CallbackDelivery.objects.filter(request=ar).count() == 1
        AuthenticationRequest.objects.filter(pk=ar.pk).delete()


def test_the_decided_request_handed_back_holds_values_not_the_updates_expressions(
    client, alice, make_client, published
):
    """What services.approve returns (the consent API renders it, signal receivers read it) has
    the withdrawal's columns as stored, read back on use, and can be saved as any row."""
    app, secret = make_client("poll")
    ar = notified(AuthenticationRequest.objects.get(auth_req_id=start_request(client, app, secret)))
    decided = services.approve(ar, user=alice)
    assert isinstance(decided.device_notification_due_at, type(timezone.now()))
    assert decided.device_notification_retry is None
    decided.save()
    row = AuthenticationRequest.objects.get(pk=ar.pk)
    assert (row.state, row.device_notification_due_at) == ("approved", decided.device_notification_due_at)


@pytest.mark.django_db(transaction=True)
def test_the_approve_request_reads_its_request_with_the_bearer_token_in_one_statement(
    client, alice, make_client, published, prepared_statements
):
    """With prepared statements on PostgreSQL the request's row rides in the token's own
    statement (one round trip fewer before the decision); elsewhere it is read after it, as
    before. Either way the caller's own request is approved."""
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    phone = consent_bearer(alice)
    with CaptureQueriesContext(connection) as queries:
        response = Client().post(f"{API}{auth_req_id}/approve/", **phone)
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved"
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    table = AuthenticationRequest._meta.db_table
    before_decision = reads[: next(i for i, q in enumerate(reads) if table in q) + 1]
    if prepared_statements:
        assert len(before_decision) == 1 and AccessToken._meta.db_table in before_decision[0]
    else:
        assert len(before_decision) == 2
    assert AuthenticationRequest.objects.get(auth_req_id=auth_req_id).state == "approved"


@pytest.mark.django_db(transaction=True)
def test_a_request_read_with_another_users_token_is_neither_shown_nor_decided(
    client, alice, make_client, published, django_user_model, prepared_statements
):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)  # alice's
    bobs = consent_bearer(django_user_model.objects.create_user("bob", password="pw"))
    assert Client().get(f"{API}{auth_req_id}/", **bobs).status_code == 404
    assert Client().post(f"{API}{auth_req_id}/approve/", **bobs).status_code == 404
    assert AuthenticationRequest.objects.get(auth_req_id=auth_req_id).state == "pending"
    assert Client().post(f"{API}{auth_req_id}/approve/", **consent_bearer(alice)).status_code == 200
