"""A push issued and its tokens written in one statement on PostgreSQL (issue 29).

The request's ``UPDATE`` to issued, the token rows (ID token, access token, refresh token, the
original authentication, and where the request asked for them the bindings and the grant's
details) and the stored body are one round trip inside the delivery's transaction.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from oauth2_provider.models import get_access_token_model, get_id_token_model, get_refresh_token_model

from ciba import tokens
from ciba.callbacks import outbox
from ciba.models import AccessTokenGrant, OriginalAuthentication, TokenBinding
from tests.test_push_token_rows import DETAILS, JKT, approve_push

ACCESS, REFRESH, ID_TOKEN = get_access_token_model(), get_refresh_token_model(), get_id_token_model()
__all__ = ["approve_push"]


def statements_inside_the_transaction(queries) -> list[str]:
    sql = [q["sql"].strip() for q in queries.captured_queries]
    return sql[sql.index("BEGIN") + 1 : sql.index("COMMIT")]


@pytest.mark.django_db(transaction=True)  # the delivery's transaction is the outermost, as in a worker
def test_a_push_is_issued_and_its_tokens_written_in_one_statement(approve_push, recorder):
    delivery = approve_push()
    with CaptureQueriesContext(connection) as queries:
        assert outbox.deliver(delivery.pk) == "delivered"
    (statement,) = statements_inside_the_transaction(queries)
    assert statement.startswith('WITH "gate" AS (UPDATE "ciba_authenticationrequest"')
    body = json.loads(recorder.received[0][2])
    assert {"access_token", "refresh_token", "id_token"} <= set(body)
    access = ACCESS.objects.select_related("id_token").get()
    assert access.token_checksum == tokens.hashlib.sha256(body["access_token"].encode()).hexdigest()
    assert REFRESH.objects.get().access_token_id == access.pk
    assert OriginalAuthentication.objects.get().refresh_token.access_token_id == access.pk
    assert access.id_token.jti is not None and ID_TOKEN.objects.count() == 1
    assert type(delivery.request).objects.get(pk=delivery.request_id).state == "issued"


@pytest.mark.django_db(transaction=True)
def test_the_bindings_and_approved_details_of_a_push_ride_in_the_same_statement(approve_push, recorder):
    delivery = approve_push(
        dpop_jkt=JKT,
        authorization_details=DETAILS,
        claims={"userinfo": {"email": None}},
    )
    with CaptureQueriesContext(connection) as queries:
        assert outbox.deliver(delivery.pk) == "delivered"
    assert len(statements_inside_the_transaction(queries)) == 1
    body = json.loads(recorder.received[0][2])
    assert body["token_type"] == "DPoP" and body["authorization_details"] == DETAILS
    access, refresh = ACCESS.objects.get(), REFRESH.objects.get()
    assert TokenBinding.objects.get(access_token=access).jkt == JKT
    assert TokenBinding.objects.get(refresh_token=refresh).jkt == JKT
    grant = AccessTokenGrant.objects.get(access_token=access)
    assert grant.authorization_details == DETAILS and grant.userinfo_claims == {"email": None}
    assert OriginalAuthentication.objects.get(refresh_token=refresh).authorization_details == DETAILS
