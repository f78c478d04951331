"""The backchannel endpoint's answers, byte for byte: status, every header and the body.

Pinned through the whole stack (the test URLconf, its middleware, the view) before the endpoint
left DRF's ``APIView`` for a plain Django view (issue 29), so that a client sees exactly the
answers it saw before: the same §13 codes, descriptions, statuses and headers
(``Cache-Control``, ``Pragma``, ``WWW-Authenticate``, ``Retry-After``, ``Allow``, ``Vary``…).
Only the value of a new ``auth_req_id`` differs from run to run; it is replaced by ``<id>``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings

from ciba.views.backchannel_hooks import ClientRateThrottle
from tests.conftest import basic_auth
from tests.keys import public_jwk, rsa_key, sign

URL = "/o/backchannel-authentication/"
FORM = "application/x-www-form-urlencoded"
ISSUER = "http://testserver/o"
KEY = rsa_key()
USER_CODE_SETTINGS = {
    "USER_CODE_SUPPORTED": True,
    "USER_CODE_VERIFIER_CLASS": "tests.backends.PinUserCodeVerifier",
    "CALLBACK_ALLOW_HTTP": True,
    "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
}


def seen(response: Any) -> tuple[int, dict[str, str], bytes]:
    """What a client receives, with a new auth_req_id's value masked (and so the length of
    the body, checked here)."""
    body = response.content
    found = dict(response.items())
    if found.get("Content-Length") == str(len(body)):
        found["Content-Length"] = "<length>"  # a HEAD answer keeps the GET's length, without its body
    if response.status_code == 200 and body.startswith(b"{"):
        auth_req_id = json.loads(body).get("auth_req_id")
        if auth_req_id:
            body = body.replace(auth_req_id.encode(), b"<id>")
    return response.status_code, dict(sorted(found.items())), body


def post(client: Any, body: Any, auth: str | None = None, content_type: str = FORM, **extra: Any) -> Any:
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.post(URL, body, content_type=content_type, **headers, **extra)


def login_hint_token(app: Any, **overrides: Any) -> str:
    claims = {"iss": app.client_id, "aud": ISSUER, "sub": "alice", "exp": int(time.time()) + 60}
    claims.update(overrides)
    return sign(claims, KEY, "RS256", "k1")


JSON = {"Content-Type": "application/json", "Content-Length": "<length>"}
ERROR = {**JSON, "Allow": "POST, OPTIONS", "Cache-Control": "no-store"}
CREATED = {
    **JSON,
    "Allow": "POST, OPTIONS",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}


def headers(base: dict[str, str], **more: str) -> dict[str, str]:
    return dict(sorted({**base, **{k.replace("_", "-"): v for k, v in more.items()}}.items()))


def error(status: int, code: str, description: str, **more: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": code, "error_description": description}, separators=(",", ":"))
    return status, headers(ERROR, **more), body.encode()


INVALID_CLIENT = error(401, "invalid_client", "Client authentication failed.")
NO_CLIENT = error(401, "invalid_client", "Client authentication is required.")
BASIC = {"WWW_Authenticate": 'Basic realm="ciba"'}


@pytest.fixture
def poll(make_client: Any) -> tuple[Any, str]:
    return make_client("poll")


@pytest.fixture
def auth(poll: tuple[Any, str]) -> str:
    app, secret = poll
    return basic_auth(app.client_id, secret)


@pytest.mark.parametrize(
    "mode, extra, body",
    [
        ("poll", "", b'{"auth_req_id":"<id>","expires_in":300,"interval":5}'),
        ("ping", "&client_notification_token=nt-1", b'{"auth_req_id":"<id>","expires_in":300,"interval":5}'),
        ("push", "&client_notification_token=nt-1", b'{"auth_req_id":"<id>","expires_in":300}'),
    ],
)
def test_a_started_request_is_answered_with_its_id_and_never_cached(
    client, alice, make_client, mode, extra, body
):
    app, secret = make_client(mode)
    response = post(client, "scope=openid&login_hint=alice" + extra, basic_auth(app.client_id, secret))
    assert seen(response) == (200, headers(CREATED), body)


def test_a_form_with_a_charset_is_read_as_a_form(client, alice, auth):
    response = post(client, "scope=openid&login_hint=alice", auth, content_type=FORM + "; charset=utf-8")
    assert seen(response) == (200, headers(CREATED), b'{"auth_req_id":"<id>","expires_in":300,"interval":5}')


@pytest.mark.parametrize(
    "body, answer",
    [
        (
            "scope=openid",
            error(
                400, "invalid_request", "Send exactly one of login_hint, login_hint_token and id_token_hint."
            ),
        ),
        (
            "scope=openid&login_hint=alice&id_token_hint=x.y.z",
            error(
                400, "invalid_request", "Send exactly one of login_hint, login_hint_token and id_token_hint."
            ),
        ),
        (
            "scope=openid&login_hint=alice&login_hint=bob",
            error(400, "invalid_request", "A parameter is repeated: login_hint."),
        ),
        (
            "scope=openid&login_hint=nobody",
            error(400, "unknown_user_id", "The login_hint does not identify a user of this server."),
        ),
        ("login_hint=alice", error(400, "invalid_request", "scope must contain openid (CIBA section 7.1).")),
        (
            "scope=openid&login_hint=alice&binding_message=a%0Ab",
            error(
                400,
                "invalid_binding_message",
                "binding_message contains characters that cannot be displayed.",
            ),
        ),
        (
            "scope=openid&login_hint=alice&acr_values=a%00b",
            error(400, "invalid_request", "A parameter contains a NUL character: acr_values."),
        ),
    ],
)
def test_a_bad_request_gets_its_section_13_error(client, alice, auth, body, answer):
    assert seen(post(client, body, auth)) == answer


@pytest.mark.parametrize(
    "body, content_type",
    [
        ('{"scope": "openid", "login_hint": "alice"}', "application/json"),
        ("scope=openid&login_hint=alice", "text/plain"),
    ],
)
def test_a_body_that_is_not_a_form_is_invalid_request(client, alice, auth, body, content_type):
    answer = error(400, "invalid_request", "The body must be application/x-www-form-urlencoded.")
    assert seen(post(client, body, auth, content_type=content_type)) == answer


def test_a_multipart_form_is_invalid_request(client, alice, auth):
    response = client.post(URL, {"scope": "openid", "login_hint": "alice"}, HTTP_AUTHORIZATION=auth)
    assert seen(response) == error(
        400, "invalid_request", "The body must be application/x-www-form-urlencoded."
    )


def test_an_empty_body_is_read_as_no_parameters(client, alice):
    assert seen(post(client, "", content_type="application/json")) == NO_CLIENT
    assert seen(post(client, "")) == NO_CLIENT
    assert seen(post(client, "", content_type="")) == NO_CLIENT


def test_an_empty_multipart_body_is_invalid_request(client, alice):
    assert seen(client.post(URL)) == error(
        400, "invalid_request", "The body must be application/x-www-form-urlencoded."
    )


def test_no_credentials_is_invalid_client_without_a_challenge(client, alice):
    assert seen(post(client, "scope=openid&login_hint=alice")) == NO_CLIENT


def test_a_wrong_basic_secret_is_invalid_client_with_the_basic_challenge(client, alice, poll):
    app, _ = poll
    response = post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, "wrong"))
    assert seen(response) == error(401, "invalid_client", "Client authentication failed.", **BASIC)


def test_an_unknown_basic_client_is_invalid_client_with_the_basic_challenge(client, alice):
    response = post(client, "scope=openid&login_hint=alice", basic_auth("nobody", "secret"))
    assert seen(response) == error(401, "invalid_client", "Client authentication failed.", **BASIC)


def test_a_wrong_secret_in_the_form_is_invalid_client_without_a_challenge(client, alice, make_client):
    app, _ = make_client("poll", token_endpoint_auth_method="client_secret_post")
    response = post(client, f"scope=openid&login_hint=alice&client_id={app.client_id}&client_secret=wrong")
    assert seen(response) == INVALID_CLIENT


def test_a_client_not_registered_for_ciba_is_unauthorized_client(client, alice, make_client):
    app, secret = make_client("", authorization_grant_type="client-credentials")
    response = post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, secret))
    assert seen(response) == error(400, "unauthorized_client", "This client is not registered for CIBA.")


@override_settings(CIBA={"BACKCHANNEL_THROTTLE_RATE": "2/minute"})
def test_a_throttled_client_gets_429_access_denied_with_retry_after(client, alice, auth, monkeypatch):
    cache.clear()
    monkeypatch.setattr(ClientRateThrottle, "timer", lambda self: 1_000_000.0)
    for _ in range(2):
        assert post(client, "scope=openid&login_hint=alice", auth).status_code == 200
    response = post(client, "scope=openid&login_hint=alice", auth)
    assert seen(response) == error(
        429, "access_denied", "Too many requests from this client; retry later.", Retry_After="60"
    )


def test_an_expired_login_hint_token_is_expired_login_hint_token(client, alice, make_client):
    app, secret = make_client("poll", jwks={"keys": [public_jwk(KEY, "k1")]})
    token = login_hint_token(app, exp=int(time.time()) - 3600)
    response = post(client, f"scope=openid&login_hint_token={token}", basic_auth(app.client_id, secret))
    assert seen(response) == error(400, "expired_login_hint_token", "The login_hint_token has expired.")


@override_settings(CIBA=USER_CODE_SETTINGS)
def test_a_missing_user_code_is_missing_user_code(client, alice, make_client):
    app, secret = make_client("poll", backchannel_user_code_parameter=True)
    response = post(client, "scope=openid&login_hint=alice", basic_auth(app.client_id, secret))
    assert seen(response) == error(400, "missing_user_code", "user_code is required for this client.")


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_other_methods_are_405_invalid_request_before_authentication(client, alice, auth, method):
    for credentials in ({}, {"HTTP_AUTHORIZATION": auth}):
        response = getattr(client, method)(URL, **credentials)
        assert seen(response) == error(405, "invalid_request", "Use POST.")


def test_head_is_405_invalid_request(client, alice, auth):
    status, sent, _ = error(405, "invalid_request", "Use POST.", Content_Length="59")
    assert seen(client.head(URL)) == (status, sent, b"")
    assert seen(client.head(URL, HTTP_AUTHORIZATION=auth)) == (status, sent, b"")


#: DRF's metadata of the view (its docstring, renderers and parsers), kept as it was.
OPTIONS_BODY = (
    b'{"name":"Backchannel Authentication","description":"``POST /o/backchannel-authentication/`` '
    b"\xe2\x86\x92 ``{auth_req_id, expires_in, interval}``.\\n\\nOnly ``application/x-www-form-urlencoded`` "
    b"bodies are parsed (\xc2\xa77.1); any other content\\ntype, a repeated parameter, or a wrong method is "
    b'an OAuth ``invalid_request``, never\\nDRF\'s ``{\\"detail\\": ...}``.","renders":["application/json"],'
    b'"parses":["application/x-www-form-urlencoded"]}'
)


def test_options_needs_the_client_authenticated_and_describes_the_view(client, alice, auth):
    assert seen(client.options(URL)) == NO_CLIENT
    response = client.options(URL, HTTP_AUTHORIZATION=auth)
    assert seen(response) == (200, headers(JSON, Allow="POST, OPTIONS"), OPTIONS_BODY)


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_a_body_over_the_upload_limit_is_invalid_request(client, alice, auth):
    response = post(client, "scope=openid&login_hint=alice&binding_message=" + "x" * 100, auth)
    assert seen(response) == error(
        400, "invalid_request", "The request body is too large or has too many fields."
    )


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=3)
def test_a_form_with_too_many_fields_is_invalid_request(client, alice, auth):
    response = post(client, "scope=openid&login_hint=alice&a=1&b=2", auth)
    assert seen(response) == error(
        400, "invalid_request", "The request body is too large or has too many fields."
    )


def test_a_database_outage_is_503_temporarily_unavailable_with_retry_after(client, alice, auth, monkeypatch):
    from django.db import OperationalError

    def down(**kwargs: Any) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("ciba.services.create_request", down)
    response = post(client, "scope=openid&login_hint=alice", auth)
    assert seen(response) == error(
        503,
        "temporarily_unavailable",
        "The service is temporarily unavailable; retry in a moment.",
        Retry_After="1",
    )


def test_the_throttle_lets_requests_through_while_the_cache_is_down(client, alice, auth, settings):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connecting is refused
    settings.CACHES = {
        "default": {
            "BACKEND": "ciba.outages.BoundedRedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    settings.CIBA = {**settings.CIBA, "BACKCHANNEL_THROTTLE_RATE": "1/minute"}
    for _ in range(2):
        response = post(client, "scope=openid&login_hint=alice", auth)
        assert seen(response) == (
            200,
            headers(CREATED),
            b'{"auth_req_id":"<id>","expires_in":300,"interval":5}',
        )
