"""The OpenID conformance suite's FAPI-CIBA OP plan (``fapi-ciba-id1-test-plan``), played here.

The server runs as a site runs it for certification: ``CIBA["PROFILE"] = "fapi-ciba"`` behind a
TLS terminator that forwards client certificates (nginx's headers; the integration tier runs
the real nginx), with a PS256 ID-token key. ``Suite`` behaves as the suite does
(``AbstractFAPICIBAID1``): two registered clients, each connecting with its own certificate,
authenticating by ``private_key_jwt`` or by ``tls_client_auth`` (the plan's
``client_auth_type`` variant: every module runs in both unless it belongs to one), PS256
signed requests, the request object built with ``iss``, ``aud``,
``iat``, ``nbf``, ``exp``, ``jti``, one hint and ``binding_message="1234"``; after the
acknowledgement two polls that must be pending (or ``slow_down``), then the automated approval
call (``automated_ciba_approval_url``), then tokens by polling or after the ping. The checks
are the suite's conditions, named in comments, so that a test here fails where the suite would.
There is no plain CIBA OP plan in the suite: this is the one certification uses.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest

from ciba import signing
from tests.integration.tls import MTLS_SETTINGS, Pki, presenting
from tests.keys import public_jwk, rsa_key, sign
from tests.protocol import BACKCHANNEL, FORM, TOKEN, oauth_error

ISSUER = "http://testserver/o"
APPROVAL_SECRET = "conformance-run-secret"
NOTIFICATION_TOKEN = "bWFkZS11cC1jbGllbnQtbm90aWZpY2F0aW9uLXRva2VuLWZvci10aGUtc3VpdGU"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
KEYS = {"client1": rsa_key(), "client2": rsa_key()}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: Any) -> Pki:
    return Pki(tmp_path_factory.mktemp("conformance-pki"))


@pytest.fixture(autouse=True)
def conformance_server(settings: Any, db: Any) -> None:
    """The example server configured as a site runs it for certification (docs/fapi.md)."""
    settings.CIBA = {
        **settings.CIBA,
        **MTLS_SETTINGS,
        "PROFILE": "fapi-ciba",
        "DELIVERY_MODES": ["poll", "ping"],
        "REQUEST_SIGNING_ALGS": ["PS256", "ES256"],
        "DPOP_SIGNING_ALGS": ["PS256", "ES256"],
        "BINDING_MESSAGE_REQUIRED": True,
        "AUTOMATED_APPROVAL_SECRET": APPROVAL_SECRET,
        "ACR_VALUES_SUPPORTED": ["urn:example:loa:1", "urn:example:loa:2"],
    }
    if signing.generate_key("RSA").state == "next":  # waits while OIDC_RSA_PRIVATE_KEY signs RS256
        signing.activate("RSA")  # a new server: no relying party has cached its JWKS
    signing.generate_key("EC")


class Suite:
    """One of the suite's two clients, speaking to the server over HTTP only."""

    def __init__(
        self, http: Any, app: Any, key: Any, kid: str, recorder: Any, capture: Callable, cert: Any, auth: str
    ) -> None:
        self.http, self.app, self.key, self.kid = http, app, key, kid
        self.recorder, self.capture = recorder, capture
        self.cert, self.auth = cert, auth
        #: The TLS connection's certificate, as nginx forwards it (None: connect without one).
        self.tls: dict[str, str] | None = presenting(cert)

    # --- building what the suite sends -----------------------------------------------------

    def assertion(self, aud: Any = ISSUER, alg: str = "PS256", key: Any = None) -> str:
        now = int(time.time())
        claims = {"iss": self.app.client_id, "sub": self.app.client_id, "aud": aud, "iat": now}
        claims.update(exp=now + 60, jti=uuid.uuid4().hex)
        return sign(claims, key or self.key, alg, self.kid)

    def request_claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.app.client_id,
            "aud": ISSUER,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "scope": "openid email",
            "login_hint": "alice",
            "binding_message": "1234",
        }
        if self.app.backchannel_token_delivery_mode == "ping":
            claims["client_notification_token"] = NOTIFICATION_TOKEN
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def request_object(self, alg: str = "PS256", key: Any = None, **overrides: Any) -> str:
        return sign(self.request_claims(**overrides), key or self.key, alg, self.kid)

    # --- calls -------------------------------------------------------------------------------

    def post(
        self, url: str, params: dict[str, str], assertion: str | None = "default", **headers: Any
    ) -> Any:
        """POST as this client: over its TLS connection, authenticated by ``private_key_jwt``
        (``assertion``) or, for a ``tls_client_auth`` client, by the certificate and ``client_id``."""
        if assertion == "default":
            assertion = self.assertion() if self.auth == "private_key_jwt" else None
        if assertion is not None:
            params = {**params, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        elif self.auth == "mtls":
            params = {"client_id": self.app.client_id, **params}
        return self.http.post(url, urlencode(params), content_type=FORM, **{**(self.tls or {}), **headers})

    def backchannel(self, request_object: str | None = None, **form: str) -> Any:
        params = {"request": request_object or self.request_object(), **form}
        return self.post(BACKCHANNEL, {k: v for k, v in params.items() if v is not None})

    def token(self, auth_req_id: str, assertion: str | None = "default") -> Any:
        grant = {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": auth_req_id}
        return self.post(TOKEN, grant, assertion)

    def automated_approval(self, auth_req_id: str, action: str = "allow") -> Any:
        """``CallAutomatedCibaApprovalEndpoint``: POST, no body, no credentials; any 2xx passes."""
        url = f"/o/ciba/automated-approval/{APPROVAL_SECRET}/?auth_req_id={auth_req_id}&action={action}"
        with self.capture(execute=True):  # the ping is sent once the decision commits
            response = self.http.generic("POST", url, b"", HTTP_ACCEPT="application/json")
        assert 200 <= response.status_code < 300, response.content
        return response

    # --- the suite's flow and checks -----------------------------------------------------------

    def acknowledged(self, response: Any) -> str:
        """G1-G4: ``CheckBackchannelAuthenticationEndpointHttpStatus200``, content type JSON,
        ``ValidateAuthenticationRequestId`` (alphabet, >= 128 bits), ``expires_in``, ``interval``."""
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("application/json")
        body = response.json()
        assert re.fullmatch(r"[A-Za-z0-9\-_.]+", body["auth_req_id"]) and len(body["auth_req_id"]) * 6 >= 160
        assert isinstance(body["expires_in"], int) and 0 < body["expires_in"] <= 365 * 86400
        if "interval" in body:
            assert isinstance(body["interval"], int) and 0 <= body["interval"] <= 6 * 3600
        return body["auth_req_id"]

    def pending(self, response: Any) -> str:
        """``CheckTokenEndpointHttpStatus400``, then
        ``EnsureErrorTokenEndpointSlowdownOrAuthorizationPending``."""
        body = response.json()
        assert response.status_code == 400 and body["error"] in ("authorization_pending", "slow_down"), body
        oauth_error(response, 400, body["error"])
        return body["error"]

    def start(self, **overrides: Any) -> str:
        auth_req_id = self.acknowledged(self.backchannel(self.request_object(**overrides)))
        self.pending(self.token(auth_req_id))  # "Call token endpoint expecting pending"
        self.pending(self.token(auth_req_id))  # "... (second time)"
        return auth_req_id

    def tokens(self, auth_req_id: str) -> dict[str, Any]:
        """Poll mode polls; ping mode waits for the ping, checks it, then calls once."""
        if self.app.backchannel_token_delivery_mode == "ping":
            self.ping_received(auth_req_id)
        response = self.token(auth_req_id)
        return self.token_response(response, auth_req_id)

    def ping_received(self, auth_req_id: str) -> None:
        """``VerifyBearerTokenHeaderCallback``, ``CheckIncomingContentTypeIsApplicationJson``,
        ``CheckNotificationCallbackOnlyAuthReqId``."""
        assert len(self.recorder.received) >= 1, "no ping"
        path, headers, body = self.recorder.received[0]
        assert headers["Authorization"] == f"Bearer {NOTIFICATION_TOKEN}"
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(body) == {"auth_req_id": auth_req_id}

    def token_response(self, response: Any, auth_req_id: str) -> dict[str, Any]:
        """J8 and the ID token checks (1.M): ``CheckTokenEndpointCacheHeaders``, bearer token,
        ``kid`` in the header, signature by the server's published key, ``iss``/``aud``/``sub``,
        the ``auth_req_id`` claim if present, no ``c_hash``/``s_hash``."""
        assert response.status_code == 200, response.content
        assert "no-store" in response["Cache-Control"]
        body = response.json()
        assert body["token_type"] == "Bearer" and body["access_token"] and body["expires_in"] > 0
        header = jwt.get_unverified_header(body["id_token"])
        assert header.get("kid"), "ID token header has no kid"
        jwks = self.http.get("/o/.well-known/jwks.json").json()
        key = next(jwt.PyJWK(k, algorithm=header["alg"]) for k in jwks["keys"] if k["kid"] == header["kid"])
        claims = jwt.decode(body["id_token"], key, algorithms=[header["alg"]], audience=self.app.client_id)
        assert claims["iss"] == ISSUER and claims["sub"]
        assert claims.get("urn:openid:params:jwt:claim:auth_req_id", auth_req_id) == auth_req_id
        assert "c_hash" not in claims and "s_hash" not in claims
        return body


@pytest.fixture(params=["private_key_jwt", "mtls"])
def client_auth_type(request: Any) -> str:
    """The plan's ``client_auth_type`` variant (a module may pin one by overriding this)."""
    return request.param


@pytest.fixture
def suite_clients(
    db: Any,
    make_client: Callable,
    client: Any,
    recorder: Any,
    django_capture_on_commit_callbacks,
    pki: Pki,
    client_auth_type: str,
):
    """``suite_clients(mode, auth=None)``: the suite's client1 and client2, registered as a site
    registers FAPI clients (PS256 everywhere, certificate-bound tokens)."""

    def register(mode: str, auth: str | None = None) -> tuple[Suite, Suite]:
        auth = auth or client_auth_type
        made = []
        for name in ("client1", "client2"):
            key = KEYS[name]
            cert = pki.issue(f"suite-{name}-{uuid.uuid4().hex[:8]}")
            fields: dict[str, Any] = {
                "backchannel_authentication_request_signing_alg": "PS256",
                "jwks": {"keys": [public_jwk(key, f"{name}-key")]},
                "id_token_signed_response_alg": "PS256",
                "tls_client_certificate_bound_access_tokens": True,
            }
            if auth == "mtls":
                fields.update(
                    token_endpoint_auth_method="tls_client_auth", tls_client_auth_subject_dn=cert.subject_dn
                )
            else:
                fields.update(
                    token_endpoint_auth_method="private_key_jwt", token_endpoint_auth_signing_alg="PS256"
                )
            if mode == "ping":
                fields["backchannel_client_notification_endpoint"] = recorder.url(f"/{name}/cb")
            app, _ = make_client(mode, **fields)
            made.append(
                Suite(
                    client, app, key, f"{name}-key", recorder, django_capture_on_commit_callbacks, cert, auth
                )
            )
        return made[0], made[1]

    return register


@pytest.fixture(params=["poll", "ping"])
def ciba_mode(request: Any) -> str:
    """The plan's ``ciba_mode`` variant: every module runs in both."""
    return request.param


@pytest.fixture
def suite(suite_clients: Callable, ciba_mode: str, alice: Any) -> Suite:
    return suite_clients(ciba_mode)[0]


#: ``AddPotentiallyBadBindingMessageToAuthorizationEndpointRequest``: an emoji with a skin-tone
#: modifier, Japanese, and some 450 characters of Lorem ipsum.
POTENTIALLY_BAD_BINDING_MESSAGE = (
    "1234 \U0001f44d\U0001f3ff 品川 Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do "
    "eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in "
    "reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint "
    "occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum."
)
