"""Push minting does not read back what it has just written (issue 29).

DOT links a new access token to its ID token by parsing the JWT it has just signed, loading the
client named by its audience and the ID token by its ``jti``: two SELECTs and a signature check
per token response. The ID token DOT signed for this very response is the row saved moments
before, so minting links it without reading it back; the access token still points at the ID
token the client received.
"""

from __future__ import annotations

import json
from unittest import mock

import jwt
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from oauth2_provider.models import get_access_token_model, get_id_token_model

from ciba import dispatch, services
from ciba.callbacks import outbox
from ciba.models import CallbackDelivery

NT = "client-notification-token-0123456789"


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
