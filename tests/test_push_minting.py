"""Push tokens minted in one transaction without savepoints (issue 29): still once, still whole.

The blocks DOT nests inside minting (saving the tokens, saving the ID token) join the
delivery's transaction instead of a savepoint each. What the client sees does not change:
the tokens are minted once per request however often the callback is attempted, and a mint
that fails halfway leaves no token behind (the client is told ``transaction_failed``), with
the connection usable and savepoints working again afterwards.
"""

from __future__ import annotations

import json
from unittest import mock

import jwt
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from oauth2_provider.models import get_access_token_model, get_id_token_model, get_refresh_token_model

from ciba import dispatch, services
from ciba.callbacks import outbox
from ciba.callbacks.sealing import unseal
from ciba.models import AuthenticationRequest, CallbackDelivery, OriginalAuthentication
from ciba.oauth.validators import CibaValidator

NT = "client-notification-token-0123456789"
TOKEN_MODELS = (
    get_access_token_model(),
    get_refresh_token_model(),
    get_id_token_model(),
    OriginalAuthentication,
)


@pytest.fixture
def queued_push(make_client, alice, recorder):
    """An approved push request whose callback row is written and not yet sent."""
    app, _ = make_client("push", backchannel_client_notification_endpoint=recorder.url("/cb"))
    ar = services.create_request(
        expires_in=60,
        client=app,
        user=alice,
        hint_kind="login_hint",
        scope="openid profile",
        interval=5,
        client_notification_token=NT,
    )
    with mock.patch.object(dispatch, "after_commit"):  # the row only: the test sends it
        services.approve(ar, user=alice)
    return CallbackDelivery.objects.get(request=ar)


def received(recorder) -> list[dict]:
    return [json.loads(body) for _, _, body in recorder.received]


@pytest.mark.django_db(transaction=True)  # the delivery's transaction is the outermost, as in a worker
def test_push_tokens_are_minted_without_a_savepoint(queued_push, recorder):
    with CaptureQueriesContext(connection) as queries:
        assert outbox.deliver(queued_push.pk) == "delivered"
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert "SAVEPOINT" not in statements and "RELEASE" not in statements
    (body,) = received(recorder)
    assert {"access_token", "refresh_token", "id_token", "auth_req_id"} <= set(body)
    assert get_access_token_model().objects.count() == 1
    assert AuthenticationRequest.objects.get(pk=queued_push.request_id).state == "issued"


def test_push_tokens_are_minted_once_however_often_the_callback_is_sent(queued_push, recorder):
    first = outbox.payload(CallbackDelivery.objects.select_related("request__client", "request__user").get())
    again = outbox.payload(CallbackDelivery.objects.select_related("request__client", "request__user").get())
    assert first == again and "access_token" in first
    assert [model.objects.count() for model in TOKEN_MODELS] == [1, 1, 1, 1]


@pytest.mark.django_db(transaction=True)
def test_a_mint_failing_halfway_leaves_no_token_and_tells_the_client_transaction_failed(
    queued_push, recorder, caplog
):
    # After the ID token, the access token and the refresh token rows are written.
    with mock.patch.object(CibaValidator, "_remember_authentication", side_effect=RuntimeError("disk full")):
        assert outbox.deliver(queued_push.pk) == "delivered"
    (body,) = received(recorder)
    assert body["error"] == "transaction_failed" and body["auth_req_id"] == queued_push.request.auth_req_id
    assert [model.objects.count() for model in TOKEN_MODELS] == [0, 0, 0, 0]
    assert AuthenticationRequest.objects.get(pk=queued_push.request_id).state == "approved"  # not issued
    assert unseal(CallbackDelivery.objects.get().payload)["error"] == "transaction_failed"
    # The connection is left as found: savepoints are back for everybody else.
    assert "_savepoint_allowed" not in vars(connection)
    with transaction.atomic(), transaction.atomic():
        assert connection.savepoint_ids[-1] is not None or not connection.features.uses_savepoints


# --- minting does not read back what it has just written ---------------------------------------
#
# DOT links a new access token to its ID token by parsing the JWT it has just signed, loading the
# client named by its audience and the ID token by its ``jti``: two SELECTs and a signature check
# per token response. The ID token DOT signed for this very response is the row saved moments
# before, so minting links it without reading it back.


@pytest.mark.django_db(transaction=True)
def test_pushed_access_token_is_linked_to_the_id_token_pushed_with_it_without_reading_either_back(
    queued_push, recorder
):
    with CaptureQueriesContext(connection) as queries:
        assert outbox.deliver(queued_push.pk) == "delivered"
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    id_tokens, clients = get_id_token_model()._meta.db_table, queued_push.request.client._meta.db_table
    assert not [sql for sql in selects if f'FROM "{id_tokens}"' in sql or f'FROM "{clients}"' in sql]

    ((_, _, raw),) = recorder.received
    body = json.loads(raw)
    jti = jwt.decode(body["id_token"], options={"verify_signature": False})["jti"]
    access = get_access_token_model().objects.select_related("id_token").get()
    assert access.id_token is not None and str(access.id_token.jti) == jti
    assert get_id_token_model().objects.count() == 1
