"""A client deleted while one of its own requests is being handled (by an admin, or by the
client itself through RFC 7592) is refused like any unknown client, never answered with a 500.

RFC 7592 §2.3: once deleted, the client's credentials stop working at once. A request already
past client authentication when the row goes still reaches the database with that client's
id; on PostgreSQL the foreign key refuses it at commit. Every request goes through Django's
WSGI handler as a server calls it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler

from ciba import backchannel
from ciba.models import AuthenticationRequest
from tests.conftest import basic_auth
from tests.protocol import BACKCHANNEL
from tests.test_fast_lane import environ

pytestmark = pytest.mark.django_db(transaction=True)


def call(body: str, client_id: str, secret: str) -> tuple[int, dict[str, Any]]:
    env = environ(body, path=BACKCHANNEL, HTTP_AUTHORIZATION=basic_auth(client_id, secret))
    started: list[Any] = []
    chunks = WSGIHandler()(env, lambda status, headers, exc_info=None: started.append(status))
    try:
        content = b"".join(chunks)
    finally:
        chunks.close()
    return int(started[0].split()[0]), json.loads(content)


def deleted_after_validation(row: Any, monkeypatch: Any) -> None:
    """``row`` is deleted (committed, as another process would) once the §7.1 rules have
    passed and before the request is stored."""
    validate = backchannel.validate

    def deleted_meanwhile(*args: Any, **kwargs: Any) -> Any:
        new = validate(*args, **kwargs)
        type(row).objects.filter(pk=row.pk).delete()
        return new

    monkeypatch.setattr(backchannel, "validate", deleted_meanwhile)


def test_a_client_deleted_after_authenticating_gets_invalid_client_and_nothing_is_stored(
    alice: Any, make_client: Any, monkeypatch: Any
) -> None:
    app, secret = make_client("poll")
    deleted_after_validation(app, monkeypatch)
    status, body = call("scope=openid&login_hint=alice&binding_message=W4", app.client_id, secret)
    assert (status, body["error"]) == (401, "invalid_client")
    assert not AuthenticationRequest.objects.exists()


def test_a_deleted_clients_next_request_is_invalid_client(alice: Any, make_client: Any) -> None:
    app, secret = make_client("poll")
    assert call("scope=openid&login_hint=alice", app.client_id, secret)[0] == 200
    type(app).objects.filter(pk=app.pk).delete()
    status, body = call("scope=openid&login_hint=alice", app.client_id, secret)
    assert (status, body["error"]) == (401, "invalid_client")


def test_a_user_deleted_after_being_resolved_is_unknown_user_id_and_nothing_is_stored(
    alice: Any, make_client: Any, monkeypatch: Any
) -> None:
    app, secret = make_client("poll")
    deleted_after_validation(alice, monkeypatch)
    status, body = call("scope=openid&login_hint=alice&binding_message=W4", app.client_id, secret)
    assert (status, body["error"]) == (400, "unknown_user_id")
    assert not AuthenticationRequest.objects.exists()
