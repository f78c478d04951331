"""Clients that register themselves over HTTP, then run CIBA against the running example server.

The example server runs with its production parts (``tests.interop.harness.example_site``:
PostgreSQL, Redis, a Celery worker with beat, the production web server; registration on, as
``example_project/settings.py`` has it). The operator issues an initial access token with
``manage.py ciba_initial_access_token``; each client registers at the ``registration_endpoint``
discovery names, with ``requests`` and nothing else, then runs backchannel → approval (alice's
phone, the consent API) → token:

* poll, ping and push, each with ``client_secret_basic`` and with ``private_key_jwt``; ping and
  push reach a real HTTP receiver on loopback (the example allows plain http to local addresses,
  as its development posture);
* ``tls_client_auth`` through a real nginx verifying client certificates (the FAPI-CIBA profile,
  ``tests.interop.harness.fapi_site``), with certificate-bound tokens.

A client deletes itself at the end (RFC 7592) and its credentials stop working.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from tests.interop.harness import Site, example_site, fapi_site
from tests.keys import public_jwk, rsa_key

CIBA = "urn:openid:params:grant-type:ciba"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JSON = {"Content-Type": "application/json"}


# --- the running example and its operator --------------------------------------------------------


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registration-flows")


@pytest.fixture(scope="module")
def site(directory: Path) -> Iterator[Site]:
    with example_site(directory / "site") as running:
        yield running


@pytest.fixture(scope="module")
def fapi(site: Site, directory: Path) -> Iterator[tuple[Site, Any]]:
    with fapi_site(site, directory / "fapi") as running:
        yield running


@pytest.fixture(scope="module")
def initial_access_token(site: Site) -> str:
    """What the operator hands the developer: ``ciba_initial_access_token``, printed once."""
    printed = site.manage("ciba_initial_access_token", "registration flows", "--uses", "unlimited", "--json")
    return json.loads(printed.strip().splitlines()[-1])["initial_access_token"]


class Receiver:
    """The client's notification endpoint: records each POST (headers and JSON body)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((dict(self.headers), json.loads(body or b"{}")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ciba/notify"

    def wait_for(
        self, auth_req_id: str, site: Site, seconds: float = 30
    ) -> tuple[dict[str, str], dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for headers, body in list(self.received):
                if body.get("auth_req_id") == auth_req_id:
                    return headers, body
            time.sleep(0.1)
        pytest.fail(f"nothing for {auth_req_id} reached the client within {seconds:g} s\n{site.tail()}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


# --- a client that registered itself -------------------------------------------------------------


class Client:
    """A relying party that knows only the issuer and its initial access token."""

    def __init__(self, site: Site, session: requests.Session | None = None) -> None:
        self.site = site
        self.http = session or requests.Session()
        self.http.trust_env = False
        self.metadata = self.http.get(f"{site.base}/o/.well-known/openid-configuration", timeout=10).json()
        self.registration: dict[str, Any] = {}
        self.key: Any = None
        self.kid = ""
        self.alg = "RS256"

    @property
    def client_id(self) -> str:
        return self.registration["client_id"]

    def register(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(
            self.metadata["registration_endpoint"],
            data=json.dumps(body),
            headers={**JSON, "Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 201, f"{response.status_code} {response.text}\n{self.site.tail()}"
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["Cache-Control"] == "no-store"
        self.registration = response.json()
        for name, value in body.items():
            if name != "jwks":
                assert self.registration[name] == value, name
        return self.registration

    def authenticated(self, form: dict[str, str], audience: str) -> dict[str, Any]:
        """``requests`` arguments authenticating ``form`` as the registered method says."""
        method = self.registration["token_endpoint_auth_method"]
        if method == "client_secret_basic":
            return {"data": form, "auth": (self.client_id, self.registration["client_secret"])}
        if method == "private_key_jwt":
            now = int(time.time())
            claims = {
                "iss": self.client_id,
                "sub": self.client_id,
                "aud": audience,
                "iat": now,
                "exp": now + 60,
            }
            assertion = jwt.encode(
                {**claims, "jti": uuid.uuid4().hex}, self.key, algorithm=self.alg, headers={"kid": self.kid}
            )
            return {"data": {**form, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}}
        return {"data": {**form, "client_id": self.client_id}}  # tls_client_auth: the certificate

    def backchannel(self, binding_message: str, **form: str) -> dict[str, Any]:
        params = {"scope": "openid", "login_hint": "alice", "binding_message": binding_message, **form}
        endpoint = self.metadata["backchannel_authentication_endpoint"]
        response = self.http.post(endpoint, timeout=10, **self.authenticated(params, self.site.issuer))
        assert response.status_code == 200, f"{response.text}\n{self.site.tail()}"
        return response.json()

    def token(self, auth_req_id: str) -> requests.Response:
        form = {"grant_type": CIBA, "auth_req_id": auth_req_id}
        endpoint = self.metadata["token_endpoint"]
        return self.http.post(endpoint, timeout=10, **self.authenticated(form, self.site.issuer))

    def tokens(self, auth_req_id: str) -> dict[str, Any]:
        response = self.token(auth_req_id)
        assert response.status_code == 200, f"{response.text}\n{self.site.tail()}"
        return response.json()

    def id_token_claims(self, id_token: str) -> dict[str, Any]:
        """The ID token verified with the server's published keys, for this client."""
        jwks = self.http.get(self.metadata["jwks_uri"], timeout=10).json()
        header = jwt.get_unverified_header(id_token)
        key = next(jwt.PyJWK(k, algorithm=header["alg"]) for k in jwks["keys"] if k["kid"] == header["kid"])
        return jwt.decode(
            id_token, key, algorithms=[header["alg"]], audience=self.client_id, issuer=self.site.issuer
        )

    def configuration(self, method: str = "GET", body: dict[str, Any] | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.registration['registration_access_token']}"}
        if body is not None:
            headers.update(JSON)
        return self.http.request(
            method,
            self.registration["registration_client_uri"],
            data=None if body is None else json.dumps(body),
            headers=headers,
            timeout=10,
        )


def binding_message(label: str) -> str:
    return f"{label} {secrets.token_hex(3).upper()}"


def registration(mode: str, auth: str, receiver: Receiver, client: Client) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_name": f"Self-registered {mode} {auth}",
        "grant_types": [CIBA, "refresh_token"],
        "backchannel_token_delivery_mode": mode,
        "token_endpoint_auth_method": auth,
    }
    if mode != "poll":
        body["backchannel_client_notification_endpoint"] = receiver.url
    if auth == "private_key_jwt":
        client.key, client.kid = rsa_key(), f"key-{secrets.token_hex(4)}"
        body["jwks"] = {"keys": [public_jwk(client.key, client.kid)]}
        body["token_endpoint_auth_signing_alg"] = client.alg
    return body


@pytest.mark.parametrize("auth", ["client_secret_basic", "private_key_jwt"])
@pytest.mark.parametrize("mode", ["poll", "ping", "push"])
def test_a_self_registered_client_gets_tokens_for_alice(site, initial_access_token, receiver, mode, auth):
    client = Client(site)
    client.register(initial_access_token, registration(mode, auth, receiver, client))
    message = binding_message(f"{mode} {auth}")
    notification_token = secrets.token_urlsafe(32)
    extra = {"client_notification_token": notification_token} if mode != "poll" else {}
    started = client.backchannel(message, **extra)
    auth_req_id = started["auth_req_id"]

    if mode == "poll":
        assert client.token(auth_req_id).json()["error"] == "authorization_pending"
    approved = site.approve(message)
    assert approved["client_name"] == f"Self-registered {mode} {auth}"

    if mode == "poll":
        time.sleep(started["interval"])
        tokens = client.tokens(auth_req_id)
    else:
        headers, body = receiver.wait_for(auth_req_id, site)
        assert headers["Authorization"] == f"Bearer {notification_token}"
        if mode == "ping":
            assert body == {"auth_req_id": auth_req_id}
            tokens = client.tokens(auth_req_id)
        else:  # push: the tokens themselves, CIBA §10.3.1
            tokens = body
    claims = client.id_token_claims(tokens["id_token"])
    assert claims["urn:openid:params:jwt:claim:auth_req_id"] == auth_req_id
    assert tokens["access_token"] and tokens["refresh_token"]
    userinfo = client.http.get(
        f"{site.issuer}/userinfo/", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
    )
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == claims["sub"]


def test_a_self_registered_client_deletes_itself_and_its_credentials_stop_working(site, initial_access_token):
    client = Client(site)
    client.register(
        initial_access_token,
        {"client_name": "Short-lived kiosk", "backchannel_token_delivery_mode": "poll"},
    )
    message = binding_message("Deleted")
    auth_req_id = client.backchannel(message)["auth_req_id"]
    assert client.configuration().json()["client_name"] == "Short-lived kiosk"

    deleted = client.configuration("DELETE")
    assert deleted.status_code == 204, deleted.text
    assert client.configuration().status_code == 401
    assert client.token(auth_req_id).json()["error"] == "invalid_client"
    assert not [r for r in site.pending() if r["binding_message"] == message]  # alice is not asked


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "invalid_client_metadata"),
        ('{"backchannel_token_delivery_mode": "ping"}', "invalid_client_metadata"),
        (
            '{"backchannel_token_delivery_mode": "poll", "token_endpoint_auth_method": "magic"}',
            "invalid_client_metadata",
        ),
        ('{"grant_types": "urn:openid:params:grant-type:ciba"}', "invalid_client_metadata"),
    ],
)
def test_a_malformed_registration_is_a_400_with_the_rfc_7591_code_and_registers_nothing(
    site, initial_access_token, body, code
):
    client = Client(site)
    count = "from oauth2_provider.models import get_application_model as m; print(m().objects.count())"
    before = site.manage("shell", "-c", count).strip()
    response = client.http.post(
        client.metadata["registration_endpoint"],
        data=body,
        headers={**JSON, "Authorization": f"Bearer {initial_access_token}"},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == code
    assert site.manage("shell", "-c", count).strip() == before


def test_a_tls_client_auth_client_registers_through_nginx_and_gets_certificate_bound_tokens(
    fapi, initial_access_token
):
    """FAPI-CIBA behind nginx: the client registers its certificate's subject DN, its PS256 key
    and certificate-bound tokens, then authenticates with the certificate alone."""
    site, pki = fapi
    certificate = pki.issue(f"self-registered-{secrets.token_hex(3)}")
    session = requests.Session()
    session.verify, session.cert = site.ca_file, certificate.paths
    client = Client(site, session)
    client.key, client.kid = rsa_key(), "request-key"
    client.register(
        initial_access_token,
        {
            "client_name": "Self-registered FAPI kiosk",
            "grant_types": [CIBA],
            "backchannel_token_delivery_mode": "poll",
            "backchannel_authentication_request_signing_alg": "PS256",
            "id_token_signed_response_alg": "PS256",
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": certificate.subject_dn,
            "tls_client_certificate_bound_access_tokens": True,
            "jwks": {"keys": [public_jwk(client.key, client.kid)]},
        },
    )
    message = binding_message("FAPI")
    now = int(time.time())
    request_object = jwt.encode(
        {
            "iss": client.client_id,
            "aud": site.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "scope": "openid",
            "login_hint": "alice",
            "binding_message": message,
        },
        client.key,
        algorithm="PS256",
        headers={"kid": client.kid},
    )
    endpoint = client.metadata["backchannel_authentication_endpoint"]
    started = session.post(
        endpoint, data={"request": request_object, "client_id": client.client_id}, timeout=10
    )
    assert started.status_code == 200, f"{started.text}\n{site.tail()}"
    auth_req_id = started.json()["auth_req_id"]
    site.approve(message)
    time.sleep(started.json()["interval"])
    tokens = client.tokens(auth_req_id)

    assert jwt.get_unverified_header(tokens["id_token"])["alg"] == "PS256"
    client.id_token_claims(tokens["id_token"])
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert session.get(f"{site.issuer}/userinfo/", headers=bearer, timeout=10).status_code == 200
    without = requests.Session()  # the same connection, without the client certificate
    without.trust_env, without.verify = False, site.ca_file
    assert without.get(f"{site.issuer}/userinfo/", headers=bearer, timeout=10).status_code == 401
