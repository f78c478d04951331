"""What a new backchannel request costs (issue 29), and that the cheaper path answers exactly
as before: a ``login_hint`` the default resolver finds asks the block list in the same
statement that finds the user, so a request is the user lookup and the INSERT, and a client
the user blocked is still refused at the time of each request, never from an earlier answer."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ciba import identifiers, user_limits
from ciba.errors import AccessDenied
from ciba.models import Application, AuthenticationRequest, ClientBlock
from tests.conftest import basic_auth

NO_CAPS = {"MAX_PENDING_PER_USER": None, "MAX_PENDING_PER_CLIENT_USER": None, "USER_REQUEST_RATE": None}
REFUSED = {"error": "access_denied", "error_description": user_limits.REFUSAL}


@pytest.fixture(autouse=True)
def no_caps(settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, **NO_CAPS}


def ask(client: Any, app: Any, secret: str, hint: str = "alice", extra: str = "") -> Any:
    return client.post(
        "/o/backchannel-authentication/",
        f"scope=openid&login_hint={hint}{extra}",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def statements_of(queries: CaptureQueriesContext) -> list[str]:
    """The statements on the request's path (the client's row and version, read by client
    authentication, are not the new request's: their caching is another module's)."""
    clients = f'"{Application._meta.db_table}"'
    return [q["sql"] for q in queries if clients not in q["sql"]]


def test_a_new_request_by_login_hint_is_the_user_lookup_and_the_insert(client, alice, make_client):
    kiosk, secret = make_client()
    ask(client, kiosk, secret)  # the client's row is read (and kept) by its first request
    with CaptureQueriesContext(connection) as queries:
        response = ask(client, kiosk, secret)
    assert response.status_code == 200, response.content
    statements = statements_of(queries)
    assert len(statements) == 2, statements
    assert "ciba_clientblock" in statements[0] and f'"{alice._meta.db_table}"' in statements[0]
    assert statements[1].startswith("INSERT")


def test_a_client_the_user_blocked_is_refused_with_nothing_stored(client, alice, make_client):
    kiosk, secret = make_client()
    ClientBlock.objects.create(user=alice, client=kiosk)
    with CaptureQueriesContext(connection) as queries:
        response = ask(client, kiosk, secret)
    assert (response.status_code, response.json()) == (403, REFUSED)
    assert not AuthenticationRequest.objects.exists()
    assert not any(q["sql"].startswith("INSERT") for q in queries)


def test_a_block_refuses_the_very_next_request_and_an_unblock_admits_it(client, alice, make_client):
    kiosk, secret = make_client()
    assert ask(client, kiosk, secret).status_code == 200
    user_limits.block(alice, kiosk)
    assert (ask(client, kiosk, secret).status_code, ask(client, kiosk, secret).json()) == (403, REFUSED)
    assert user_limits.unblock(alice, kiosk)
    assert ask(client, kiosk, secret).status_code == 200
    assert AuthenticationRequest.objects.count() == 2


def test_a_block_of_another_client_refuses_only_that_client(client, alice, make_client):
    kiosk, kiosk_secret = make_client()
    shop, shop_secret = make_client()
    user_limits.block(alice, shop)
    assert ask(client, kiosk, kiosk_secret).status_code == 200
    assert ask(client, shop, shop_secret).json() == REFUSED
    assert list(AuthenticationRequest.objects.values_list("client", flat=True)) == [kiosk.pk]


def test_another_users_block_of_the_client_refuses_nobody_else(client, alice, make_client):
    bob = get_user_model().objects.create_user("bob", "bob@example.com", "bob-password")
    kiosk, secret = make_client()
    user_limits.block(bob, kiosk)
    assert ask(client, kiosk, secret).status_code == 200
    assert ask(client, kiosk, secret, hint="bob").json() == REFUSED


def test_a_blocked_client_is_refused_by_e_mail_address_too(client, alice, make_client):
    kiosk, secret = make_client()
    user_limits.block(alice, kiosk)
    assert ask(client, kiosk, secret, hint="ALICE%40example.com").json() == REFUSED
    assert not AuthenticationRequest.objects.exists()


def test_an_inactive_or_unknown_user_is_still_unknown_in_one_query(client, alice, make_client):
    kiosk, secret = make_client()
    alice.is_active = False
    alice.save()
    for hint in ("alice", "nobody"):
        response = ask(client, kiosk, secret, hint=hint)
        assert (response.status_code, response.json()["error"]) == (400, "unknown_user_id")
    with CaptureQueriesContext(connection) as queries:
        assert identifiers.find_user("alice", annotations=user_limits.block_annotation(kiosk)) is None
    assert len(queries) == 1


# --- the answer the lookup brought is used once, for its own client -----------------------------------


def found(hint: str, app: Any) -> Any:
    user = identifiers.find_user(hint, annotations=user_limits.block_annotation(app))
    user_limits.keep_block_answer(user, app)
    return user


def test_a_kept_answer_is_used_once_then_the_block_list_is_asked_again(alice, make_client):
    kiosk, _ = make_client()
    user = found("alice", kiosk)
    with CaptureQueriesContext(connection) as queries:
        user_limits.check_block(client=kiosk, user=user)  # the lookup's answer: not blocked
    assert len(queries) == 0
    user_limits.block(alice, kiosk)
    with pytest.raises(AccessDenied):  # the same instance, a later request: asked again
        user_limits.check_block(client=kiosk, user=user)


def test_a_kept_answer_about_another_client_is_not_used(alice, make_client):
    kiosk, _ = make_client()
    shop, _ = make_client()
    user_limits.block(alice, shop)
    user = found("alice", kiosk)  # kiosk is not blocked
    with pytest.raises(AccessDenied):
        user_limits.check_block(client=shop, user=user)


def test_a_user_found_without_the_annotation_is_asked_in_a_query_of_its_own(alice, make_client):
    kiosk, _ = make_client()
    user_limits.block(alice, kiosk)
    user = identifiers.find_user("alice")
    user_limits.keep_block_answer(user, kiosk)  # nothing to keep
    with CaptureQueriesContext(connection) as queries, pytest.raises(AccessDenied):
        user_limits.check_block(client=kiosk, user=user)
    assert len(queries) == 1 and "ciba_clientblock" in queries[0]["sql"]


def test_with_caps_the_block_is_still_counted_under_the_lock(client, alice, make_client, settings):
    settings.CIBA = {**settings.CIBA, "MAX_PENDING_PER_USER": 5}
    kiosk, secret = make_client()
    assert ask(client, kiosk, secret).status_code == 200
    user_limits.block(alice, kiosk)
    assert ask(client, kiosk, secret).json() == REFUSED
    assert AuthenticationRequest.objects.count() == 1
