"""Malformed and hostile input gets a clear 4xx, never a 500 (on SQLite and PostgreSQL): an OAuth
error at the protocol endpoints, the consent and device APIs' usual bodies, the demo's."""

import base64
import json
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth import get_user_model
from oauth2_provider.models import get_application_model

from ciba import services
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest, Device
from ciba.views.parsers import MAX_DEPTH
from tests.conftest import basic_auth, start_request
from tests.protocol import backchannel, consent_bearer, oauth_error, token

Application = get_application_model()

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    "body",
    [
        "scope=openid&login_hint=ali%00ce",
        "scope=openid&login_hint=%ff%fe",
        "scope=openid%00&login_hint=alice",
        "scope=openid&login_hint=alice&requested_expiry=%EF%BC%91",  # full-width digit one
        "scope=openid&login_hint=alice&requested_expiry=99999999999999999999999999",
        "scope=openid&login_hint=alice&requested_expiry=" + "9" * 5000,  # past int()'s digit limit
        "scope=openid&login_hint=alice&requested_expiry=" + "0" * 100_000 + "1",
        "scope=openid&id_token_hint=a.b.c",
        "scope=openid&id_token_hint=%00.%00.%00",
        "scope=openid&login_hint_token=not-a-jwt",
        "scope=openid&login_hint=alice&request=e30.e30.",
        "scope=openid&login_hint=" + "a" * 100_000,
        "%%%&&&===",
        "scope",
    ],
)
def test_hostile_backchannel_parameters(client, alice, make_client, body):
    app, secret = make_client("poll")
    response = client.post(
        "/o/backchannel-authentication/",
        body,
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert response.json()["error"]


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"cli\x00ent:secret").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:secret").decode(),
        "Basic " + base64.b64encode(b"only-an-id").decode(),
        "Basic !!!!",
        "Bearer something",
    ],
)
def test_hostile_client_credentials(client, alice, authorization):
    response = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice",
        content_type=FORM,
        HTTP_AUTHORIZATION=authorization,
    )
    assert response.status_code == 401, response.content
    assert response.json()["error"] == "invalid_client"


def test_a_nul_in_any_backchannel_parameter_is_invalid_request(client, alice):
    response = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice&client_id=a%00b&client_secret=x",
        content_type=FORM,
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_a_nul_in_a_client_id_at_the_token_endpoint_is_invalid_client(client, alice):
    response = client.post(
        "/o/token/",
        f"grant_type={CIBA_GRANT_TYPE}&auth_req_id=x&client_id=a%00b&client_secret=x",
        content_type=FORM,
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("auth_req_id", ["a%00b", "%ff", "x" * 5000, ""])
def test_hostile_auth_req_ids_at_the_token_endpoint(client, alice, make_client, auth_req_id):
    app, secret = make_client("poll")
    response = client.post(
        "/o/token/",
        f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={auth_req_id}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"] in ("invalid_grant", "invalid_request")


@pytest.mark.parametrize("content_type", [None, "", "text/plain"])
def test_a_bare_post_to_the_backchannel_endpoint_is_an_oauth_error(client, content_type):
    """``curl -X POST`` with no body (or an unparsed one) asks for nothing and proves nothing."""
    extra = {} if content_type is None else {"CONTENT_TYPE": content_type}
    response = client.generic("POST", "/o/backchannel-authentication/", b"", **extra)
    assert response.status_code in (400, 401), response.content
    assert response.json()["error"] in ("invalid_request", "invalid_client")


def test_a_deeply_nested_claims_parameter_is_invalid_request(client, alice, make_client):
    """json.loads raises RecursionError, not ValueError, past Python's recursion limit."""
    app, secret = make_client("poll")
    response = backchannel(
        client, app, secret, {"scope": "openid", "login_hint": "alice", "claims": nested(DEEP)}
    )
    oauth_error(response, 400, "invalid_request")


# --- The token endpoint: what DOT itself would answer with a 500 ------------------------------

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def dot_client(db):
    """A confidential client of DOT's own grants (not a CIBA client)."""
    app = Application.objects.create(
        name="Web app",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://app.example.com/cb",
        client_secret="dot-client-secret",
    )
    return app, "dot-client-secret"


@pytest.mark.parametrize("authenticated", [False, True])
def test_the_device_grant_without_a_device_code_is_invalid_request(client, dot_client, authenticated):
    app, secret = dot_client
    response = token(client, app, secret if authenticated else None, {"grant_type": DEVICE_CODE})
    oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        "grant_type=authorization_code&code=a%00b&redirect_uri=https://app.example.com/cb",
        "grant_type=authorization_code&code=ab&client_id=a%00b",
        "grant_type=password&username=ali%00ce&password=alice-password",
        "grant_type=password&username=alice&password=alice%00",
        "grant_type=refresh_token&refresh_token=r%00t",
        "grant_type=client_credentials&scope=openid%00",
        f"grant_type={DEVICE_CODE}&device_code=d%00c",
        "grant_type=client_credentials&na%00me=value",
        "grant_type=authorization%00_code&code=ab",
    ],
)
@pytest.mark.parametrize("authenticated", [False, True])
def test_a_nul_in_any_parameter_of_the_other_grants_is_invalid_request(
    client, alice, dot_client, body, authenticated
):
    """PostgreSQL refuses a query with a NUL in it (a 500 from DOT's lookups); SQLite hid it."""
    app, secret = dot_client
    response = token(client, app, secret if authenticated else None, body)
    oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize("grant_type", ["openid", "implicit", "urn:example:unknown", ""])
@pytest.mark.parametrize("make", ["dot", "ciba"])
def test_a_grant_type_dot_does_not_know_is_unsupported_grant_type(
    client, dot_client, make_client, grant_type, make
):
    """oauthlib's code grant also answers ``openid``, and DOT's validator then asserts."""
    app, secret = dot_client if make == "dot" else make_client("poll")
    response = token(client, app, secret, {"grant_type": grant_type, "code": "some-code"})
    oauth_error(response, 400, "unsupported_grant_type")


def test_screening_the_other_grants_leaves_the_ciba_grant_alone(client, alice, make_client):
    """A NUL in the CIBA grant's parameters keeps the grant's own answers (see above)."""
    app, secret = make_client("poll")
    response = token(
        client, app, secret, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": "x", "scope": "open\x00id"}
    )
    oauth_error(response, 400, "invalid_grant")


@pytest.fixture
def service_client(db):
    """A confidential client of the client-credentials grant, whose tokens DOT saves itself."""
    app = Application.objects.create(
        name="Service",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret="service-client-secret",
    )
    return app, "service-client-secret"


@pytest.mark.parametrize("resource", ["https://[::1", "https://[zz]/", "https://a]/", "https://\uff03@x/"])
def test_a_resource_that_cannot_be_split_is_invalid_target(client, service_client, resource):
    """DOT splits RFC 8707 resource indicators with urlsplit, which raises on these."""
    app, secret = service_client
    response = token(client, app, secret, {"grant_type": "client_credentials", "resource": resource})
    oauth_error(response, 400, "invalid_target")


def test_an_approved_ciba_poll_with_a_resource_that_cannot_be_split_is_invalid_target(
    client, alice, make_client
):
    """The CIBA grant skips the other grants' screening, but DOT splits its resources too
    while saving the tokens (found by the parameter fuzzer: a 500 once the request was approved).
    Refused before anything is issued: the request can still be collected."""
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    ar = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    services.approve(ar, user=ar.user)
    poll = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}
    oauth_error(token(client, app, secret, {**poll, "resource": "https://[::1"}), 400, "invalid_target")
    assert token(client, app, secret, poll).status_code == 200


def test_dot_s_own_invalid_target_is_json_and_not_stored(client, service_client):
    """DOT raises it while saving the token, past oauthlib's headers: it came as text/html."""
    app, secret = service_client
    response = token(client, app, secret, {"grant_type": "client_credentials", "resource": "openid"})
    oauth_error(response, 400, "invalid_target")
    assert response["Content-Type"] == "application/json" and response["Cache-Control"] == "no-store"


UNREADABLE = [
    (FORM, f"grant_type={CIBA_GRANT_TYPE}&auth_req_id=x&pad=" + "a" * 3_000_000),  # > 2.5 MB
    (FORM, f"grant_type={CIBA_GRANT_TYPE}&" + "&".join(f"p{i}=1" for i in range(1_001))),
    (FORM + "; charset=latin-1", f"grant_type={CIBA_GRANT_TYPE}&auth_req_id=x"),
    ("multipart/form-data", "--b\r\n"),
]


@pytest.mark.parametrize("content_type, body", UNREADABLE, ids=["size", "fields", "charset", "boundary"])
def test_a_body_django_will_not_read_is_an_oauth_error_at_the_token_endpoint(
    client, make_client, content_type, body
):
    """Django's own answer is an HTML page: a client cannot read ``error`` from it."""
    app, secret = make_client("poll")
    response = client.post(
        "/o/token/", body, content_type=content_type, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    )
    oauth_error(response, 400, "invalid_request")


# --- The consent and device APIs: bodies nested too deeply, or too large to read ------------

DEEP = 100_000


def nested(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


def deep_payloads() -> list:
    """Nested past Python's recursion limit (the parser's RecursionError), and just short of it
    (parsed, then walked again by a JSONField that re-encodes what it validates)."""
    shallower = sys.getrecursionlimit() - 60
    return [
        nested(DEEP),
        '{"kind": "webpush", "subscription": ' + nested(shallower) + "}",
        '{"kind": "fcm", "token": "t", "label": ' + nested(shallower) + "}",
    ]


@pytest.mark.parametrize(
    "body", deep_payloads(), ids=["past-the-limit", "short-of-it-in-subscription", "short-of-it-in-label"]
)
@pytest.mark.parametrize(
    "method, path",
    [("post", "/o/ciba/devices/"), ("put", "/o/ciba/user-code/"), ("post", "/o/ciba/requests/{id}/approve/")],
)
def test_deeply_nested_json_is_a_parse_error(client, alice, make_client, method, path, body):
    app, secret = make_client("poll")
    path = path.format(id=start_request(client, app, secret))
    response = getattr(client, method)(path, body, content_type="application/json", **consent_bearer(alice))
    assert response.status_code == 400, response.content
    assert "nested deeper" in response.json()["detail"]
    assert not Device.objects.exists()


def test_json_nested_up_to_the_limit_is_read(client, alice):
    """The parser refuses only what is deeper than ``MAX_DEPTH``: the serializer answers the rest."""
    for depth, refused_by in ((MAX_DEPTH, "label"), (MAX_DEPTH + 1, "detail")):
        body = '{"kind": "fcm", "token": "t", "label": ' + nested(depth - 1) + "}"  # the object is 1
        response = client.post(
            "/o/ciba/devices/", body, content_type="application/json", **consent_bearer(alice)
        )
        assert response.status_code == 400 and refused_by in response.json(), (depth, response.content)


@pytest.mark.parametrize(
    "content_type, body",
    [
        (FORM, "kind=fcm&token=" + "a" * 3_000_000),
        ("application/json", '{"kind": "fcm", "token": "' + "a" * 3_000_000 + '"}'),
        (FORM, "kind=fcm&" + "&".join(f"p{i}=1" for i in range(1_001))),
        (
            "multipart/form-data; boundary=b",
            "--b\r\n"
            + "".join(
                f'Content-Disposition: form-data; name="p{i}"\r\n\r\n1\r\n--b\r\n' for i in range(1_001)
            ),
        ),
    ],
    ids=["form-size", "json-size", "form-fields", "multipart-fields"],
)
def test_a_body_django_will_not_read_is_a_parse_error_at_the_device_api(client, alice, content_type, body):
    """Django refuses it when DOT's token check first reads it; its own answer is an HTML page."""
    response = client.post("/o/ciba/devices/", body, content_type=content_type, **consent_bearer(alice))
    assert response.status_code == 400, response.content[:200]
    assert response.json()["detail"] in ("The request body is too large.", "The request has too many fields.")


# --- Web Push subscriptions at registration ----------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


P256DH = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
)
COMPRESSED = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
)
AUTH = bytes(range(16))
ENDPOINT = "https://push.example.net/send/abc"


def subscription(endpoint: str = ENDPOINT, p256dh: str = b64url(P256DH), auth: str = b64url(AUTH)) -> dict:
    return {
        "kind": "webpush",
        "subscription": {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
    }


def register(client, user, body):
    return client.post("/o/ciba/devices/", body, content_type="application/json", **consent_bearer(user))


def test_a_real_web_push_subscription_is_registered_with_canonical_keys(client, alice):
    padded = base64.urlsafe_b64encode(P256DH).decode()  # some libraries pad; browsers do not
    response = register(client, alice, subscription(p256dh=padded))
    assert response.status_code == 201, response.content
    assert Device.objects.get().subscription == subscription()["subscription"]


@pytest.mark.parametrize(
    "body",
    [
        subscription(p256dh=b64url(P256DH)[:40] + "\x00" + b64url(P256DH)[41:]),
        subscription(auth="\x00" * 22),
        subscription(auth=b64url(AUTH) + "\x00"),
        subscription(p256dh="A" * 2_000_000),
        subscription(auth="A" * 2_000_000),
        subscription(p256dh="BPub"),
        subscription(p256dh=b64url(COMPRESSED)),
        subscription(p256dh=b64url(b"\x04" + bytes(64))),  # the right size, not on the curve
        subscription(p256dh=b64url(b"\x05" + P256DH[1:])),
        subscription(p256dh=b64url(P256DH + b"\x00")),
        subscription(p256dh="!" * 87),
        subscription(p256dh=b64url(P256DH)[:-1]),  # 4n+1 characters cannot be base64
        subscription(auth="c2VjcmV0"),
        subscription(auth=b64url(AUTH[:15])),
        subscription(auth=b64url(AUTH + b"\x00")),
        subscription(auth=b64url(AUTH) + "===="),
        {"kind": "webpush", "subscription": {"endpoint": ENDPOINT, "keys": {"p256dh": 65, "auth": []}}},
        subscription(endpoint=ENDPOINT + "\x00"),
        subscription(endpoint=ENDPOINT + "\n"),
        subscription(endpoint="https://[::1"),
        subscription(endpoint="https://user:pw@push.example.net/send/abc"),
        subscription(endpoint=ENDPOINT + "#fragment"),
        subscription(endpoint="https://" + "a" * 2_000_000 + ".example/"),
        subscription(endpoint="http://push.example.net/send/abc"),  # even with CALLBACK_ALLOW_HTTP
        subscription(endpoint="ftp://push.example.net/send/abc"),
    ],
)
def test_unusable_web_push_subscriptions_are_refused(client, alice, body):
    response = register(client, alice, body)
    assert response.status_code == 400, response.content
    assert response.json()["subscription"]
    assert not Device.objects.exists()


@pytest.mark.parametrize(
    "endpoint",
    ["https://127.0.0.1/push", "https://localhost/push", "https://10.0.0.7/push", "https://[::1]/push"],
)
def test_web_push_endpoints_on_internal_hosts_are_refused(client, alice, settings, endpoint):
    settings.CIBA = {**settings.CIBA, "CALLBACK_ALLOW_PRIVATE_NETWORKS": False}
    response = register(client, alice, subscription(endpoint=endpoint))
    assert response.status_code == 400, response.content
    assert "public host" in response.json()["subscription"][0]
    settings.CIBA = {**settings.CIBA, "CALLBACK_ALLOW_PRIVATE_NETWORKS": True}
    assert register(client, alice, subscription(endpoint=endpoint)).status_code == 201


def test_a_user_registers_at_most_max_devices_per_user(client, alice, settings):
    settings.CIBA = {**settings.CIBA, "MAX_DEVICES_PER_USER": 2}
    bob = get_user_model().objects.create_user("bob")
    fcm = {"kind": "fcm", "token": "fcm-token"}
    assert [register(client, alice, body).status_code for body in (fcm, subscription())] == [201, 201]
    refused = register(client, alice, fcm)
    assert refused.status_code == 400, refused.content
    assert refused.json() == {"non_field_errors": ["At most 2 devices can be registered; remove one first."]}
    assert Device.objects.filter(user=alice).count() == 2
    assert register(client, bob, fcm).status_code == 201  # per user
    Device.objects.filter(user=alice, kind="fcm").delete()
    assert register(client, alice, fcm).status_code == 201


# --- The demo's kiosk --------------------------------------------------------------------------


@pytest.fixture
def demo_clients(settings, tmp_path):
    """Demo clients on file, so that a purchase gets as far as reading its amount."""
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"clients": {"poll": {"client_id": "kiosk", "client_secret": "s"}}}))
    settings.CIBA_DEMO_CLIENTS_FILE = str(path)


@pytest.mark.parametrize(
    "body",
    [
        nested(DEEP),
        '{"login_hint": ' + nested(DEEP) + "}",
        "[]",
        '"a string"',
        "null",
        '{"login_hint": "alice", "amount": "NaN"}',
        '{"login_hint": "alice", "amount": "-sNaN"}',
        '{"login_hint": "alice", "amount": "Infinity"}',
        '{"login_hint": "alice", "amount": "1e999999999"}',
        '{"login_hint": "alice", "amount": "1e-999999999"}',
        '{"login_hint": "alice", "amount": "' + "9" * 100_000 + '"}',
        '{"login_hint": "alice", "amount": NaN}',
        '{"login_hint": "alice", "amount": 1e999}',
        '{"login_hint": "alice", "amount": ' + "9" * 5000 + "}",
        '{"login_hint": "alice", "amount": 12.5}',
        '{"login_hint": ["alice"], "amount": "12.50"}',
        '{"mode": {"poll": 1}, "login_hint": "alice", "amount": "12.50"}',
    ],
)
def test_hostile_kiosk_purchases_are_refused(client, demo_clients, body):
    response = client.post("/demo/kiosk/purchases/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]


@pytest.mark.parametrize(
    "body", [nested(DEEP), '{"auth_req_id": ' + nested(sys.getrecursionlimit() - 60) + "}", "[]"]
)
def test_hostile_kiosk_callbacks_are_refused(client, body):
    response = client.post("/demo/callbacks/ping/", body, content_type="application/json")
    assert response.status_code in (400, 401), response.content


# --- Found here and by the fuzzers, owned elsewhere ---------------------------------------------


@pytest.mark.parametrize("content_type, body", UNREADABLE[:2], ids=["size", "fields"])
def test_a_body_django_will_not_read_is_an_oauth_error_at_the_backchannel_endpoint(
    client, make_client, content_type, body
):
    app, secret = make_client("poll")
    response = client.post(
        "/o/backchannel-authentication/",
        body,
        content_type=content_type,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize("value", ["9" * 5000, 10**4000, "1" + "0" * 20])
def test_a_huge_requested_expiry_in_a_signed_request_is_invalid_request(client, alice, make_client, value):
    from tests.keys import public_jwk, request_object_claims, rsa_key, sign

    key = rsa_key()
    app, secret = make_client(
        "poll", backchannel_authentication_request_signing_alg="PS256", jwks={"keys": [public_jwk(key, "k1")]}
    )
    claims = request_object_claims(app.client_id, "http://testserver/o", requested_expiry=value)
    response = client.post(
        "/o/backchannel-authentication/",
        f"request={sign(claims, key, 'PS256', 'k1')}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    body = oauth_error(response, 400, "invalid_request")
    assert "requested_expiry" in body["error_description"]
    assert not AuthenticationRequest.objects.exists()
