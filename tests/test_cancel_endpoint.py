"""The client cancel endpoint (issue 27, an extension): the client that started a CIBA request
withdraws it while pending. Polls then get ``expired_token``, no ping or push is sent, the
device is told (``auth_request_cancelled``), and every wrong call is the OAuth error the view's
docstring states, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from django.test import override_settings
from django.utils import timezone

from ciba import services, signals
from ciba.constants import JWT_BEARER_ASSERTION_TYPE
from ciba.errors import RequestNotPending
from ciba.models import AuthenticationRequest, CallbackDelivery
from tests.conftest import basic_auth
from tests.integration.tls import MTLS_SETTINGS, Pki, presenting
from tests.keys import assertion_claims, public_jwk, rsa_key, sign
from tests.protocol import FORM, oauth_error, poll

State = AuthenticationRequest.State
CANCEL = "/o/backchannel-authentication/cancel/"
ISSUER = "http://testserver/o"
KEY = rsa_key()
JWKS = {"keys": [public_jwk(KEY, "k1")]}


def cancel(client: Any, app: Any, secret: str | None, body: str | dict[str, str], **extra: Any) -> Any:
    if isinstance(body, dict):
        body = "&".join(f"{k}={quote(v, safe='')}" for k, v in body.items())
    if secret is not None:
        extra.setdefault("HTTP_AUTHORIZATION", basic_auth(app.client_id, secret))
    return client.post(CANCEL, body, content_type=FORM, **extra)


def new(app: Any, user: Any, **extra: Any) -> AuthenticationRequest:
    return services.create_request(
        expires_in=300, client=app, user=user, hint_kind="login_hint", scope="openid", interval=5, **extra
    )


@pytest.fixture
def cancelled_signals() -> Iterator[list[dict[str, Any]]]:
    """``auth_request_cancelled`` as sent (after commit: wrap the calls in
    ``django_capture_on_commit_callbacks(execute=True)``)."""
    sent: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        sent.append(kwargs)

    signals.auth_request_cancelled.connect(receiver, weak=False)
    yield sent
    signals.auth_request_cancelled.disconnect(receiver)


@pytest.fixture
def kiosk(make_client: Any) -> tuple[Any, str]:
    return make_client("poll")


# --- the client withdraws its request --------------------------------------------------------


def test_the_client_cancels_its_pending_request_and_its_polls_then_get_expired_token(
    client, alice, kiosk, cancelled_signals, django_capture_on_commit_callbacks
):
    app, secret = kiosk
    ar = new(app, alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = cancel(client, app, secret, {"auth_req_id": ar.auth_req_id})
    assert response.status_code == 200, response.content
    assert response.json() == {"auth_req_id": ar.auth_req_id, "state": "cancelled"}
    assert response["Cache-Control"] == "no-store"
    ar.refresh_from_db()
    assert (ar.state, ar.cancel_reason) == (State.CANCELLED, "client")
    assert [(s["request"].pk, s["reason"]) for s in cancelled_signals] == [(ar.pk, "client")]
    oauth_error(poll(client, app, secret, ar.auth_req_id), 400, "expired_token")


@pytest.mark.parametrize("mode", ["ping", "push"])
def test_no_ping_and_no_push_is_sent_for_a_cancelled_request(client, alice, make_client, mode):
    app, secret = make_client(mode)
    ar = new(app, alice, client_notification_token="token-" + "x" * 20)
    assert cancel(client, app, secret, {"auth_req_id": ar.auth_req_id}).status_code == 200
    assert not CallbackDelivery.objects.filter(request=ar).exists()


def test_the_user_can_no_longer_approve_or_deny_a_cancelled_request(client, alice, kiosk):
    app, secret = kiosk
    ar = new(app, alice)
    cancel(client, app, secret, {"auth_req_id": ar.auth_req_id})
    for decide in (lambda: services.approve(ar, user=alice), lambda: services.deny(ar, user=alice)):
        with pytest.raises(RequestNotPending) as exc:
            decide()
        assert exc.value.state == State.CANCELLED


def test_cancelling_again_answers_200_and_changes_nothing(
    client, alice, kiosk, cancelled_signals, django_capture_on_commit_callbacks
):
    app, secret = kiosk
    ar = new(app, alice)
    with django_capture_on_commit_callbacks(execute=True):
        first = cancel(client, app, secret, {"auth_req_id": ar.auth_req_id})
        again = cancel(client, app, secret, {"auth_req_id": ar.auth_req_id})
    assert again.status_code == 200 and again.json() == first.json()
    assert len(cancelled_signals) == 1


def test_a_request_its_newer_one_superseded_is_already_cancelled(client, alice, kiosk, settings):
    settings.CIBA = {**settings.CIBA, "PENDING_CAP_ACTION": "supersede", "MAX_PENDING_PER_CLIENT_USER": 1}
    app, secret = kiosk
    old = new(app, alice)
    new(app, alice)
    response = cancel(client, app, secret, {"auth_req_id": old.auth_req_id})
    assert response.json() == {"auth_req_id": old.auth_req_id, "state": "cancelled"}
    old.refresh_from_db()
    assert old.cancel_reason == "superseded"  # the first reason stays


# --- what a client may not cancel ------------------------------------------------------------


def test_another_clients_request_reads_exactly_as_an_unknown_one(client, alice, kiosk, make_client):
    app, _ = kiosk
    other, other_secret = make_client("poll")
    ar = new(app, alice)
    theirs = oauth_error(
        cancel(client, other, other_secret, {"auth_req_id": ar.auth_req_id}), 400, "invalid_grant"
    )
    unknown = oauth_error(
        cancel(client, other, other_secret, {"auth_req_id": "no-such-id"}), 400, "invalid_grant"
    )
    assert theirs == unknown == {"error": "invalid_grant", "error_description": "Unknown auth_req_id."}
    ar.refresh_from_db()
    assert ar.state == State.PENDING


def test_a_deleted_request_is_unknown(client, alice, kiosk):
    app, secret = kiosk
    ar = new(app, alice)
    services.deny(ar, user=alice)
    AuthenticationRequest.objects.filter(pk=ar.pk).delete()
    oauth_error(cancel(client, app, secret, {"auth_req_id": ar.auth_req_id}), 400, "invalid_grant")


def _approved(ar: AuthenticationRequest, user: Any) -> None:
    services.approve(ar, user=user)


def _denied(ar: AuthenticationRequest, user: Any) -> None:
    services.deny(ar, user=user)


def _past_expiry(ar: AuthenticationRequest, user: Any) -> None:
    AuthenticationRequest.objects.filter(pk=ar.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def _swept(ar: AuthenticationRequest, user: Any) -> None:
    _past_expiry(ar, user)
    services.expire_due()


def _issued(ar: AuthenticationRequest, user: Any) -> None:
    services.approve(ar, user=user)
    assert services.mark_issued(ar)


@pytest.mark.parametrize(
    "finish, state",
    [
        (_approved, "approved"),
        (_denied, "denied"),
        (_past_expiry, "expired"),
        (_swept, "expired"),
        (_issued, "issued"),
    ],
    ids=["approved", "denied", "past expires_at", "swept expired", "issued"],
)
def test_a_finished_request_is_invalid_grant_naming_its_state(
    client, alice, kiosk, cancelled_signals, django_capture_on_commit_callbacks, finish, state
):
    app, secret = kiosk
    ar = new(app, alice)
    finish(ar, alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = cancel(client, app, secret, {"auth_req_id": ar.auth_req_id})
    body = oauth_error(response, 400, "invalid_grant")
    assert body["error_description"] == f"The request is {state}; it can no longer be cancelled."
    ar.refresh_from_db()
    assert ar.state != State.CANCELLED and not ar.cancel_reason
    assert cancelled_signals == []


def test_a_decision_that_lands_between_the_read_and_the_cancel_wins(client, alice, kiosk, monkeypatch):
    """The view read the request pending; the user approved before its UPDATE: the UPDATE
    finds nothing pending and the client is told the state that won."""
    app, secret = kiosk
    ar = new(app, alice)
    real_cancel = services.cancel

    def approve_first(request: AuthenticationRequest, *, reason: str) -> AuthenticationRequest:
        services.approve(AuthenticationRequest.objects.get(pk=request.pk), user=alice)
        return real_cancel(request, reason=reason)

    monkeypatch.setattr(services, "cancel", approve_first)
    body = oauth_error(cancel(client, app, secret, {"auth_req_id": ar.auth_req_id}), 400, "invalid_grant")
    assert body["error_description"] == "The request is approved; it can no longer be cancelled."
    ar.refresh_from_db()
    assert ar.state == State.APPROVED


# --- client authentication, as at the backchannel endpoint -----------------------------------


def test_client_secret_post(client, alice, make_client):
    app, secret = make_client("poll", token_endpoint_auth_method="client_secret_post")
    ar = new(app, alice)
    body = {"client_id": app.client_id, "client_secret": secret, "auth_req_id": ar.auth_req_id}
    assert cancel(client, app, None, body).status_code == 200


def test_client_secret_jwt(client, alice, make_client):
    secret = "s" * 48
    app, _ = make_client(
        "poll", secret=secret, token_endpoint_auth_method="client_secret_jwt", hash_client_secret=False
    )
    ar = new(app, alice)
    assertion = sign(assertion_claims(app.client_id, ISSUER), secret, "HS256")
    body = {
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": assertion,
        "auth_req_id": ar.auth_req_id,
    }
    assert cancel(client, app, None, body).status_code == 200


@pytest.mark.parametrize("aud", [ISSUER, "http://testserver/o/token/"])
def test_private_key_jwt(client, alice, make_client, aud):
    app, _ = make_client("poll", token_endpoint_auth_method="private_key_jwt", jwks=JWKS)
    ar = new(app, alice)
    assertion = sign(assertion_claims(app.client_id, aud), KEY, "RS256", "k1")
    body = {
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": assertion,
        "auth_req_id": ar.auth_req_id,
    }
    assert cancel(client, app, None, body).status_code == 200
    # The assertion was used: sent again, it is a failed authentication.
    oauth_error(cancel(client, app, None, body), 401, "invalid_client")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def test_tls_client_auth(client, alice, make_client, pki, settings):
    settings.CIBA = {**settings.CIBA, **MTLS_SETTINGS}
    cert = pki.issue("kiosk-cancel")
    app, _ = make_client(
        "poll", token_endpoint_auth_method="tls_client_auth", tls_client_auth_subject_dn=cert.subject_dn
    )
    ar = new(app, alice)
    body = {"client_id": app.client_id, "auth_req_id": ar.auth_req_id}
    oauth_error(cancel(client, app, None, body), 401, "invalid_client")  # no certificate
    assert cancel(client, app, None, body, **presenting(cert)).status_code == 200


@pytest.mark.parametrize(
    "auth",
    [None, "Basic " + "x" * 10, "wrong-secret"],
    ids=["no credentials", "garbled basic", "wrong secret"],
)
def test_bad_client_authentication_is_invalid_client_and_cancels_nothing(client, alice, kiosk, auth):
    app, _ = kiosk
    ar = new(app, alice)
    headers = {}
    if auth == "wrong-secret":
        headers["HTTP_AUTHORIZATION"] = basic_auth(app.client_id, "not-the-secret")
    elif auth is not None:
        headers["HTTP_AUTHORIZATION"] = auth
    response = cancel(client, app, None, {"auth_req_id": ar.auth_req_id}, **headers)
    oauth_error(response, 401, "invalid_client")
    ar.refresh_from_db()
    assert ar.state == State.PENDING


def test_a_client_no_longer_registered_for_ciba_still_withdraws_what_it_started(client, alice, kiosk):
    app, secret = kiosk
    ar = new(app, alice)
    type(app).objects.filter(pk=app.pk).update(authorization_grant_type="client-credentials")
    assert cancel(client, app, secret, {"auth_req_id": ar.auth_req_id}).status_code == 200


@override_settings(CIBA={"BACKCHANNEL_THROTTLE_RATE": "2/minute", "MAX_PENDING_PER_CLIENT_USER": None})
def test_cancels_are_throttled_per_client_apart_from_new_requests(client, alice, kiosk):
    app, secret = kiosk
    ids = [new(app, alice).auth_req_id for _ in range(3)]
    assert [cancel(client, app, secret, {"auth_req_id": i}).status_code for i in ids[:2]] == [200, 200]
    throttled = cancel(client, app, secret, {"auth_req_id": ids[2]})
    oauth_error(throttled, 429, "access_denied")
    assert "Retry-After" in throttled
    # Starting requests has its own budget.
    start = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert start.status_code == 200, start.content


# --- hostile input: an OAuth error, never a 500 ------------------------------------------------


@pytest.mark.parametrize(
    "body, code",
    [
        ("", "invalid_request"),
        ("auth_req_id=", "invalid_request"),
        ("auth_req_id=" + "a" * 256, "invalid_request"),
        ("auth_req_id=" + "a" * 100_000, "invalid_request"),
        ("auth_req_id=abc%00def", "invalid_request"),
        ("auth_req_id%00=abc", "invalid_request"),
        ("auth_req_id=a&auth_req_id=b", "invalid_request"),
        ("auth_req_id=%E2%98%83", "invalid_request"),
        ("auth_req_id=a%20b", "invalid_request"),
        ("auth_req_id=abc%0A", "invalid_request"),
        ("auth_req_id=%27%3B+DROP+TABLE", "invalid_request"),
        ("auth_req_id=%FF%FE", "invalid_request"),
        ("auth_req_id=" + "a" * 255, "invalid_grant"),
        ("auth_req_id=...", "invalid_grant"),
    ],
    ids=[
        "empty body",
        "empty id",
        "256 characters",
        "100k characters",
        "NUL in the value",
        "NUL in the name",
        "repeated",
        "non-ASCII",
        "a space",
        "a trailing newline",
        "SQL",
        "invalid UTF-8",
        "255 characters",
        "dots",
    ],
)
def test_hostile_ids_are_oauth_errors(client, alice, kiosk, body, code):
    app, secret = kiosk
    oauth_error(cancel(client, app, secret, body), 400, code)


def test_other_content_types_and_methods_are_oauth_errors(client, alice, kiosk):
    app, secret = kiosk
    ar = new(app, alice)
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    as_json = client.post(CANCEL, {"auth_req_id": ar.auth_req_id}, content_type="application/json", **auth)
    oauth_error(as_json, 400, "invalid_request")
    oauth_error(client.get(CANCEL, {"auth_req_id": ar.auth_req_id}, **auth), 405, "invalid_request")
    oauth_error(client.delete(CANCEL, **auth), 405, "invalid_request")
    ar.refresh_from_db()
    assert ar.state == State.PENDING


# --- discovery ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/o/.well-known/openid-configuration", "/o/.well-known/oauth-authorization-server"]
)
def test_discovery_advertises_the_extension_where_it_answers(client, db, path):
    data = client.get(path).json()
    url = data["backchannel_authentication_cancel_endpoint"]
    assert url == "http://testserver" + CANCEL
    assert client.post(url.removeprefix("http://testserver"), "", content_type=FORM).json()["error"] == (
        "invalid_client"
    )


def test_discovery_names_its_mtls_alias_with_the_backchannel_endpoints(client, db, settings):
    settings.CIBA = {**settings.CIBA, "MTLS_BASE_URL": "https://mtls.example.com"}
    aliases = client.get("/o/.well-known/openid-configuration").json()["mtls_endpoint_aliases"]
    assert (
        aliases["backchannel_authentication_endpoint"]
        == "https://mtls.example.com/o/backchannel-authentication/"
    )
    assert aliases["backchannel_authentication_cancel_endpoint"] == "https://mtls.example.com" + CANCEL


def test_the_openapi_schema_describes_it_as_an_extension(client, db):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    operation = schema["paths"][CANCEL]["post"]
    assert "extension" in operation["description"]
    assert set(operation["responses"]) == {"200", "400", "401", "429"}
