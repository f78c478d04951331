"""A failed client authentication is ``401 invalid_client`` at every endpoint that authenticates
clients, with ``WWW-Authenticate: Basic`` only for a client that used Basic (RFC 6749 §5.2).

A challenge on the answer to a client that authenticated in the body or by its certificate
names a scheme it never used: openid-client then raises its challenge error and the client
never learns ``invalid_client``. oauthlib's ``Bearer`` challenge (RFC 6750's, for protected
resources) is no answer to client authentication at all.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from ciba.constants import CIBA_GRANT_TYPE, JWT_BEARER_ASSERTION_TYPE
from tests.conftest import basic_auth
from tests.integration.tls import MTLS_SETTINGS, Pki
from tests.keys import assertion_claims, public_jwk, rsa_key, sign
from tests.protocol import FORM, oauth_error

ISSUER = "http://testserver/o"
KEY, OTHER_KEY = rsa_key(), rsa_key()

#: Each endpoint that authenticates clients, and the rest of a request to it.
ENDPOINTS = {
    "backchannel": ("/o/backchannel-authentication/", {"scope": "openid", "login_hint": "alice"}),
    "token": ("/o/token/", {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": "a" * 43}),
    "introspection": ("/o/introspect/", {"token": "some-access-token"}),
    "revocation": ("/o/revoke_token/", {"token": "some-access-token"}),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def behind_nginx(settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, **MTLS_SETTINGS}


def wrong_credentials(method: str, make_client: Any, pki: Pki) -> tuple[dict[str, str], dict[str, str]]:
    """The (form parameters, headers) of a client that authenticates with ``method`` and fails."""
    if method == "client_secret_basic":
        app, secret = make_client("poll")
        return {}, {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret + "x")}
    if method == "client_secret_post":
        app, secret = make_client("poll", token_endpoint_auth_method="client_secret_post")
        return {"client_id": app.client_id, "client_secret": secret + "x"}, {}
    if method == "private_key_jwt":
        app, _ = make_client(
            "poll", token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public_jwk(KEY, "k1")]}
        )
        forged = sign(assertion_claims(app.client_id, ISSUER), OTHER_KEY, "RS256", "k1")
        return {"client_assertion_type": JWT_BEARER_ASSERTION_TYPE, "client_assertion": forged}, {}
    if method == "tls_client_auth":
        cert = pki.issue("kiosk-challenges")
        app, _ = make_client(
            "poll", token_endpoint_auth_method="tls_client_auth", tls_client_auth_subject_dn=cert.subject_dn
        )
        return {"client_id": app.client_id}, {}  # connected without its certificate
    assert method == "nothing"
    return {}, {}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize(
    "method", ["client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth", "nothing"]
)
def test_only_a_client_that_used_basic_is_challenged_when_its_authentication_fails(
    client, alice, make_client, pki, endpoint, method
):
    path, params = ENDPOINTS[endpoint]
    credentials, headers = wrong_credentials(method, make_client, pki)
    response = client.post(path, urlencode({**params, **credentials}), content_type=FORM, **headers)
    oauth_error(response, 401, "invalid_client")
    if method == "client_secret_basic":
        assert response["WWW-Authenticate"] == 'Basic realm="ciba"'
    else:
        assert "WWW-Authenticate" not in response, response["WWW-Authenticate"]


def test_the_token_endpoint_never_answers_a_client_with_a_bearer_challenge(client, alice, make_client):
    """oauthlib's InvalidClientError carries ``Bearer error="invalid_client"``: a protected
    resource's challenge, on the endpoint where no token is presented."""
    app, secret = make_client("poll")
    params = urlencode(ENDPOINTS["token"][1])
    unknown = client.post(
        "/o/token/", params, content_type=FORM, HTTP_AUTHORIZATION=basic_auth("no-such-client", secret)
    )
    oauth_error(unknown, 401, "invalid_client")
    assert unknown["WWW-Authenticate"] == 'Basic realm="ciba"'


def test_a_client_that_authenticates_gets_past_client_authentication_at_every_endpoint(
    client, alice, make_client
):
    """The control: the same requests with the right secret are not refused as invalid_client."""
    app, secret = make_client("poll")
    for path, params in ENDPOINTS.values():
        response = client.post(
            path, urlencode(params), content_type=FORM, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
        )
        assert response.status_code != 401, (path, response.content)
        assert "WWW-Authenticate" not in response, path
