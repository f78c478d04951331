"""The two endpoints clients call, fuzzed parameter by parameter: whatever a client sends, the
answer is a success or an OAuth error (RFC 6749 §5.2), never a 5xx.

Bodies are built from the parameters some grant or the backchannel request reads, and from
names nobody uses, any of them repeated; values are junk of every kind: empty, NUL and other
control characters, any Unicode, bytes that are not UTF-8, 100 000 characters, numbers,
JWT-shaped strings, JSON, and the real identifiers of this server's clients and requests (so
that some requests get far: a poll of a pending request, tokens for an approved one).
Credentials are a real client's (each delivery mode, and clients of DOT's own grants), wrong
ones, malformed ones, or none.
"""

import base64
import json
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oauth2_provider.models import get_application_model

from ciba import services
from ciba.constants import CIBA_GRANT_TYPE, JWT_BEARER_ASSERTION_TYPE
from tests.conftest import basic_auth
from tests.protocol import BACKCHANNEL, DESCRIPTION, FORM, TOKEN

Application = get_application_model()
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
SECRET = "fuzz-secret-0123456789abcdef0123456789abcdef"
#: client_id → delivery mode (CIBA clients) or DOT grant type.
CLIENTS = {
    "fuzz-poll": "poll",
    "fuzz-ping": "ping",
    "fuzz-push": "push",
    "fuzz-code": Application.GRANT_AUTHORIZATION_CODE,
    "fuzz-client-credentials": Application.GRANT_CLIENT_CREDENTIALS,
}
PENDING, APPROVED = "fuzz-pending-request", "fuzz-approved-request"
EXAMPLES = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def server(alice, make_client):
    """The clients and requests the fuzzer's values name."""
    for client_id, kind in CLIENTS.items():
        if kind in ("poll", "ping", "push"):
            make_client(kind, secret=SECRET, client_id=client_id)
        else:
            Application.objects.create(
                client_id=client_id,
                client_secret=SECRET,
                client_type=Application.CLIENT_CONFIDENTIAL,
                authorization_grant_type=kind,
                redirect_uris="https://app.example.com/cb",
            )
    poll = Application.objects.get(client_id="fuzz-poll")
    for auth_req_id in (PENDING, APPROVED):
        ar = services.create_request(
            expires_in=600,
            client=poll,
            user=alice,
            hint_kind="login_hint",
            scope="openid profile",
            interval=5,
            auth_req_id=auth_req_id,
        )
    services.approve(ar, user=alice)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


KNOWN = [
    "openid",
    "openid profile email",
    "alice",
    "alice@example.com",
    CIBA_GRANT_TYPE,
    DEVICE_CODE,
    JWT_BEARER_ASSERTION_TYPE,
    PENDING,
    APPROVED,
    SECRET,
    "https://app.example.com/cb",
    *CLIENTS,
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
#: A value as the client encodes it: ``str`` is sent as UTF-8, ``bytes`` as they are.
values = st.one_of(
    st.sampled_from(KNOWN),
    st.text(max_size=40),
    st.text(st.characters(max_codepoint=0x1F), max_size=5),  # control characters, NUL among them
    st.binary(max_size=20),  # mostly not UTF-8
    st.builds(
        str.__mul__, st.sampled_from(["a", "\x00", "é", "%", "😀", " ", "+"]), st.integers(1_000, 100_000)
    ),
    st.integers().map(str),
    st.floats().map(str),
    st.lists(st.binary(max_size=30).map(b64url), min_size=2, max_size=5).map(".".join),  # JWT-shaped
    st.builds(
        lambda header, claims: (
            f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.c2ln"
        ),
        json_values,
        json_values,
    ),
    json_values.map(json.dumps),
)


#: The grants DOT's server and ciba know; a grant type it does not know comes from ``values``
#: (``openid`` among them, which oauthlib's code grant answers).
GRANT_TYPES = [
    CIBA_GRANT_TYPE,
    "authorization_code",
    "client_credentials",
    "refresh_token",
    "password",
    DEVICE_CODE,
]


def some(*choices: str) -> st.SearchStrategy:
    """One of ``choices`` (values the server may accept), or any value a third of the time.

    (``st.one_of`` would flatten ``values``, a ``one_of`` itself, and the choices would be
    drawn once in a dozen.)
    """
    return st.integers(0, 2).flatmap(lambda coin: st.sampled_from(choices) if coin else values)


#: Backchannel requests: mostly well formed, every parameter then possibly junk.
backchannel_parameters = st.tuples(
    st.fixed_dictionaries(
        {"scope": some("openid", "openid profile", "openid payments")},
        optional={
            "binding_message": some("Pay EUR 12.50", "W4SCT"),
            "client_notification_token": some("notification-token-0123456789abcdef"),
            "requested_expiry": st.one_of(st.integers(-10, 10**7).map(str), values),
            "acr_values": some("urn:mace:incommon:iap:silver"),
            "user_code": some("123456"),
            "claims": some('{"id_token": {"acr": {"essential": true, "values": ["x"]}}}'),
        },
    ),
    st.one_of(  # the one hint (a signed request carries its own)
        st.tuples(st.just("login_hint"), some("alice", "alice@example.com")),
        st.tuples(st.just("login_hint"), some("alice", "alice@example.com")),
        st.tuples(st.sampled_from(["login_hint_token", "id_token_hint", "request"]), values),
    ),
).map(lambda drawn: [*drawn[0].items(), drawn[1]])
#: Token requests of every grant: the grant's own parameters, then any of them junk.
token_parameters = st.fixed_dictionaries(
    {"grant_type": some(*GRANT_TYPES)},
    optional={
        "auth_req_id": some(PENDING, APPROVED),
        "code": values,
        "redirect_uri": some("https://app.example.com/cb"),
        "code_verifier": values,
        "username": some("alice"),
        "password": some("alice-password"),
        "refresh_token": values,
        "device_code": values,
        "scope": some("openid", "openid profile"),
        "resource": some("https://api.example.com/", "https://[::1", "urn:example:resource"),
    },
)
NAMES = [
    "scope",
    "login_hint",
    "grant_type",
    "auth_req_id",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "code",
    "refresh_token",
    "device_code",
]
#: More parameters, after those: client authentication in the body, names nobody uses,
#: repetitions (RFC 6749 §3.2 forbids them).
extra_parameters = st.lists(
    st.tuples(st.one_of(st.sampled_from(NAMES), st.text(max_size=10), st.binary(max_size=5)), values),
    max_size=3,
)
good_credentials = st.sampled_from(list(CLIENTS)).map(lambda client_id: basic_auth(client_id, SECRET))
credentials = st.one_of(
    good_credentials,
    good_credentials,
    st.just(None),
    st.tuples(st.sampled_from(list(CLIENTS)), values).map(
        lambda pair: basic_auth(pair[0], pair[1] if isinstance(pair[1], str) else pair[1].decode("latin-1"))
    ),
    st.binary(max_size=40).map(lambda raw: "Basic " + base64.b64encode(raw).decode()),
    st.text(max_size=40).filter(lambda header: header.isprintable()),
)


def encode(pairs: list[tuple[str | bytes, str | bytes]]) -> str:
    def part(value: str | bytes) -> str:
        return quote_from_bytes(value if isinstance(value, bytes) else value.encode(), safe="")

    return "&".join(f"{part(name)}={part(value)}" for name, value in pairs)


def post(client, path: str, pairs, authorization: str | None, address: str):
    extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    return client.post(path, encode(pairs), content_type=FORM, REMOTE_ADDR=address, **extra)


def assert_oauth_answer(response) -> None:
    """A success, or an OAuth error: JSON with ``error``, ``error_description`` within RFC 6749's
    characters."""
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), response.content[:500]
        body = json.loads(response.content)
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
        assert DESCRIPTION.fullmatch(body.get("error_description", "")), body


#: Where requests come from: the failed-authentication counter per address would otherwise
#: refuse everything after the first minute's worth of failures.
addresses = st.ip_addresses().map(str)


@pytest.mark.django_db
@EXAMPLES
@given(params=backchannel_parameters, extra=extra_parameters, authorization=credentials, address=addresses)
def test_no_backchannel_request_is_a_server_error(client, server, params, extra, authorization, address):
    assert_oauth_answer(post(client, BACKCHANNEL, [*params, *extra], authorization, address))


@pytest.mark.django_db
@EXAMPLES
@given(params=token_parameters, extra=extra_parameters, authorization=credentials, address=addresses)
def test_no_token_request_is_a_server_error(client, server, params, extra, authorization, address):
    assert_oauth_answer(post(client, TOKEN, [*params.items(), *extra], authorization, address))
