"""Client management (RFC 7592): a dynamically registered client reads, replaces and deletes
its registration with its registration access token, and nobody else can; a deleted client's
requests, tokens and callbacks end with it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model

from ciba import services, signals
from ciba.client_registration import initial_access_tokens
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest, CallbackDelivery
from tests import keys
from tests.protocol import backchannel, oauth_error

Application = get_application_model()
JSON = "application/json"
pytestmark = pytest.mark.django_db

POLL_CLIENT = {
    "client_name": "Kiosk",
    "grant_types": [CIBA_GRANT_TYPE],
    "backchannel_token_delivery_mode": "poll",
    "token_endpoint_auth_method": "client_secret_basic",
    "contacts": ["ops@kiosk.example"],
}


@pytest.fixture(autouse=True)
def registration_on(settings: Any) -> None:
    settings.CIBA = {**django_settings.CIBA, "REGISTRATION_ENABLED": True}


def register(client: Any, document: dict[str, Any] | None = None) -> dict[str, Any]:
    token, _row = initial_access_tokens.issue("tests")
    response = client.post(
        "/o/register/",
        json.dumps(document or POLL_CLIENT),
        content_type=JSON,
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 201, response.content
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def path_of(registration: dict[str, Any]) -> str:
    return registration["registration_client_uri"].removeprefix("http://testserver")


def put(client: Any, registration: dict[str, Any], document: dict[str, Any], token: str | None = None) -> Any:
    return client.put(
        path_of(registration),
        json.dumps(document),
        content_type=JSON,
        **bearer(token or registration["registration_access_token"]),
    )


# --- read ----------------------------------------------------------------------------------------


def test_a_client_reads_what_it_registered(client: Any) -> None:
    registration = register(client)
    response = client.get(path_of(registration), **bearer(registration["registration_access_token"]))
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["client_id"] == registration["client_id"]
    assert body["contacts"] == ["ops@kiosk.example"]
    assert body["registration_client_uri"] == registration["registration_client_uri"]
    assert "client_secret" not in body  # only its hash is kept
    assert (
        body["registration_access_token"] == registration["registration_access_token"]
    )  # RFC 7592 section 3


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", "Bearer "])
def test_a_missing_or_wrong_token_is_refused_with_a_bearer_challenge(client: Any, header: str | None) -> None:
    registration = register(client)
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    for method in (client.get, client.delete):
        response = method(path_of(registration), **extra)
        oauth_error(response, 401, "invalid_token")
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert Application.objects.filter(client_id=registration["client_id"]).exists()


def test_one_clients_token_does_not_reach_another(client: Any) -> None:
    first, second = register(client), register(client)
    response = client.get(path_of(second), **bearer(first["registration_access_token"]))
    oauth_error(response, 401, "invalid_token")
    response = client.delete(path_of(second), **bearer(first["registration_access_token"]))
    oauth_error(response, 401, "invalid_token")
    assert Application.objects.filter(client_id=second["client_id"]).exists()


def test_an_unknown_client_and_a_known_one_are_refused_alike(client: Any) -> None:
    registration = register(client)
    token = registration["registration_access_token"]
    unknown = client.get("/o/register/no-such-client/", **bearer(token))
    other = register(client)
    known = client.get(path_of(other), **bearer(token))
    assert unknown.status_code == known.status_code == 401
    assert unknown.json() == known.json()


def test_a_client_registered_in_the_admin_cannot_be_managed_over_http(client: Any, make_client: Any) -> None:
    app, _secret = make_client()
    assert app.registration_access_token_hash == ""
    oauth_error(client.get(f"/o/register/{app.client_id}/", **bearer("")), 401, "invalid_token")
    oauth_error(client.delete(f"/o/register/{app.client_id}/", **bearer("x" * 43)), 401, "invalid_token")
    assert Application.objects.filter(pk=app.pk).exists()


def test_post_is_not_a_management_method(client: Any) -> None:
    registration = register(client)
    response = client.post(path_of(registration), "{}", content_type=JSON)
    oauth_error(response, 405, "invalid_request")
    assert response["Allow"] == "GET, PUT, DELETE"


# --- update ------------------------------------------------------------------------------------


def test_an_update_replaces_the_whole_registration_and_rotates_the_token(client: Any) -> None:
    registration = register(client)
    document = {
        "client_id": registration["client_id"],
        "client_name": "Kiosk 2",
        "grant_types": [CIBA_GRANT_TYPE],
        "backchannel_token_delivery_mode": "ping",
        "backchannel_client_notification_endpoint": "https://kiosk.example/cb",
    }
    response = put(client, registration, document)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["client_name"] == "Kiosk 2"
    assert body["backchannel_token_delivery_mode"] == "ping"
    assert "contacts" not in body  # left out: reset
    app = Application.objects.get(client_id=registration["client_id"])
    assert (app.name, app.contacts, app.backchannel_token_delivery_mode) == ("Kiosk 2", [], "ping")
    new_token = body["registration_access_token"]
    assert new_token != registration["registration_access_token"]
    oauth_error(
        client.get(path_of(registration), **bearer(registration["registration_access_token"])),
        401,
        "invalid_token",
    )
    assert client.get(path_of(registration), **bearer(new_token)).status_code == 200
    # The secret stays: the method still needs it, and the client has it.
    assert "client_secret" not in body
    started = backchannel(
        client, app, registration["client_secret"], {"scope": "openid", "login_hint": "alice"}
    )
    assert started.status_code != 401, started.content


def test_without_rotation_the_token_stays(client: Any, settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, "REGISTRATION_ACCESS_TOKEN_ROTATE": False}
    registration = register(client)
    body = put(client, registration, {**POLL_CLIENT, "client_id": registration["client_id"]}).json()
    token = registration["registration_access_token"]
    assert body["registration_access_token"] == token  # repeated: RFC 7592 section 3 requires it
    assert client.get(path_of(registration), **bearer(token)).status_code == 200


def test_an_update_may_echo_the_server_members(client: Any) -> None:
    registration = register(client)
    echoed = {k: v for k, v in registration.items() if k != "client_secret"}
    assert put(client, registration, echoed).status_code == 200


def test_an_update_naming_another_client_id_is_refused(client: Any) -> None:
    registration = register(client)
    response = put(client, registration, {**POLL_CLIENT, "client_id": "someone-else"})
    assert "client_id" in oauth_error(response, 400, "invalid_client_metadata")["error_description"]


def test_an_update_with_a_wrong_secret_is_refused(client: Any) -> None:
    registration = register(client)
    document = {**POLL_CLIENT, "client_id": registration["client_id"], "client_secret": "guess"}
    oauth_error(put(client, registration, document), 400, "invalid_client_metadata")
    document["client_secret"] = registration["client_secret"]
    assert put(client, registration, document).status_code == 200


def test_an_invalid_update_changes_nothing(client: Any) -> None:
    registration = register(client)
    document = {
        **POLL_CLIENT,
        "client_id": registration["client_id"],
        "backchannel_token_delivery_mode": "ping",
    }
    body = oauth_error(put(client, registration, document), 400, "invalid_client_metadata")
    assert "backchannel_client_notification_endpoint" in body["error_description"]
    app = Application.objects.get(client_id=registration["client_id"])
    assert app.backchannel_token_delivery_mode == "poll"
    assert (
        client.get(path_of(registration), **bearer(registration["registration_access_token"])).status_code
        == 200
    )


def test_moving_to_a_secret_method_issues_a_secret(client: Any) -> None:
    jwk = keys.public_jwk(keys.rsa_key(), "k1")
    registration = register(
        client, {**POLL_CLIENT, "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}}
    )
    assert "client_secret" not in registration
    body = put(client, registration, {**POLL_CLIENT, "client_id": registration["client_id"]}).json()
    app = Application.objects.get(client_id=registration["client_id"])
    started = backchannel(client, app, body["client_secret"], {"scope": "openid", "login_hint": "alice"})
    assert started.status_code != 401, started.content


# --- delete ------------------------------------------------------------------------------------


def test_a_deleted_client_is_gone_and_its_token_with_it(client: Any) -> None:
    registration = register(client)
    token = registration["registration_access_token"]
    response = client.delete(path_of(registration), **bearer(token))
    assert response.status_code == 204
    assert response.content == b""
    assert not Application.objects.filter(client_id=registration["client_id"]).exists()
    oauth_error(client.get(path_of(registration), **bearer(token)), 401, "invalid_token")


def test_deleting_a_client_ends_its_pending_requests_and_revokes_its_tokens(
    client: Any, alice: Any, django_capture_on_commit_callbacks: Any
) -> None:
    registration = register(client)
    app = Application.objects.get(client_id=registration["client_id"])
    started = backchannel(
        client, app, registration["client_secret"], {"scope": "openid", "login_hint": "alice"}
    )
    ar = AuthenticationRequest.objects.get(auth_req_id=started.json()["auth_req_id"])
    get_access_token_model().objects.create(
        application=app, user=alice, token="at-1", expires=timezone.now() + timedelta(hours=1), scope="openid"
    )
    ended = []
    signals.auth_request_expired.connect(
        lambda request, **kw: ended.append(request.auth_req_id), weak=False, dispatch_uid="t"
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.delete(
                path_of(registration), **bearer(registration["registration_access_token"])
            )
    finally:
        signals.auth_request_expired.disconnect(dispatch_uid="t")
    assert response.status_code == 204
    assert ended == [ar.auth_req_id]
    assert not AuthenticationRequest.objects.filter(pk=ar.pk).exists()
    assert not get_access_token_model().objects.filter(token="at-1").exists()


def test_a_deleted_push_client_is_never_called_back(
    client: Any, alice: Any, recorder: Any, make_client: Any
) -> None:
    app, _secret = make_client(mode="push", backchannel_client_notification_endpoint=recorder.url("/cb"))
    pending = services.create_request(
        expires_in=60,
        client=app,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token="tok",
    )
    assert services.end_client(app) == 1
    pending.refresh_from_db()
    assert pending.state == AuthenticationRequest.State.EXPIRED
    assert not CallbackDelivery.objects.filter(request=pending).exists()  # no expiry push
    app.delete()
    assert recorder.received == []


def test_a_bulk_delete_ends_requests_too(
    alice: Any, make_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    app, _secret = make_client(mode="ping")
    pending = services.create_request(
        expires_in=60,
        client=app,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token="tok",
    )
    ended = []
    signals.auth_request_expired.connect(
        lambda request, **kw: ended.append(request.pk), weak=False, dispatch_uid="t2"
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            Application.objects.filter(pk=app.pk).delete()  # as the admin's "delete selected" deletes
    finally:
        signals.auth_request_expired.disconnect(dispatch_uid="t2")
    assert ended == [pending.pk]
    assert not AuthenticationRequest.objects.filter(pk=pending.pk).exists()


def test_queued_callbacks_of_a_deleted_client_are_dropped(alice: Any, make_client: Any) -> None:
    app, _secret = make_client(mode="ping")
    approved = services.create_request(
        expires_in=60,
        client=app,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token="tok",
    )
    CallbackDelivery.objects.create(request=approved, kind=CallbackDelivery.Kind.PING)
    services.end_client(app)
    assert set(CallbackDelivery.objects.filter(request=approved).values_list("state", flat=True)) == {
        CallbackDelivery.State.FAILED
    }


def test_workers_meet_a_deleted_clients_work_without_errors(alice: Any, make_client: Any) -> None:
    from ciba import device_outbox
    from ciba.callbacks import outbox

    app, _secret = make_client(mode="ping")
    pending = services.create_request(
        expires_in=60,
        client=app,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token="tok",
    )
    delivery = CallbackDelivery.objects.create(request=pending, kind=CallbackDelivery.Kind.PING)
    app.delete()
    assert outbox.deliver(delivery.pk) == "skipped"
    assert device_outbox.notify(pending.pk) == "skipped"
