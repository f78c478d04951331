"""A client secret re-hashed under the keyed hash on first use, on the production parts (Redis poll
state, PostgreSQL): every process's cached row follows, and pending polls keep being answered
from Redis (``FastLane``) once the full path verified them again."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from oauth2_provider.models import get_application_model

from ciba.client_auth import forget_client, hashers, load_client
from ciba.models import AuthenticationRequest
from ciba.tasks import notify_authentication_device
from tests.conftest import basic_auth, start_request
from tests.integration import test_fast_lane
from tests.test_fast_lane import call, environ, grant

pytestmark = pytest.mark.django_db(transaction=True)
Application = get_application_model()
# The fast-lane tests' fixtures: the Redis poll state (autouse) and the lane around Django.
redis_poll_state = test_fast_lane.redis_poll_state
site = test_fast_lane.site


def stored(app: Any) -> str:
    return Application.objects.values_list("client_secret", flat=True).get(pk=app.pk)


def under_the_password_hasher(app: Any, secret: str) -> None:
    """As a row saved before the keyed hash was turned on (an UPDATE: no signal, so forget it)."""
    Application.objects.filter(pk=app.pk).update(client_secret=make_password(secret, hasher="md5"))
    forget_client(app.client_id)


def test_a_secret_upgraded_at_the_token_endpoint_keeps_the_fast_lane(site, client, alice, make_client):
    secret = secrets.token_urlsafe(32)
    app, _ = make_client("poll", secret=secret)
    auth_req_id = start_request(client, app, secret)
    notify_authentication_device.apply((AuthenticationRequest.objects.get(auth_req_id=auth_req_id).pk,))
    under_the_password_hasher(app, secret)
    assert load_client(app.client_id).client_secret == stored(app)  # this process re-read it
    headers = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}

    full_path = call(site.lane, environ(grant(auth_req_id), **headers))
    assert full_path.error == "authorization_pending" and site.spy.calls == 1
    assert hashers.is_keyed(stored(app))
    assert load_client(app.client_id).client_secret == stored(app)  # the stamp moved: re-read

    from_redis = call(site.lane, environ(grant(auth_req_id), **headers))
    assert from_redis.error == "slow_down" and site.spy.calls == 1  # the lane answered
    wrong = call(site.lane, environ(grant(auth_req_id), HTTP_AUTHORIZATION=basic_auth(app.client_id, "x")))
    assert wrong.status.startswith("401") and site.spy.calls == 2


def test_a_secret_upgraded_at_the_backchannel_endpoint_is_used_by_the_next_poll(
    site, client, alice, make_client
):
    secret = secrets.token_urlsafe(32)
    app, _ = make_client("poll", secret=secret)
    under_the_password_hasher(app, secret)
    auth_req_id = start_request(client, app, secret)  # one password hash, then re-hashed
    assert hashers.is_keyed(stored(app))
    notify_authentication_device.apply((AuthenticationRequest.objects.get(auth_req_id=auth_req_id).pk,))
    headers = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    assert call(site.lane, environ(grant(auth_req_id), **headers)).error == "authorization_pending"
    assert call(site.lane, environ(grant(auth_req_id), **headers)).error == "slow_down"
    assert site.spy.calls == 1
