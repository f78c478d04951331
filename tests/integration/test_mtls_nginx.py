"""Mutual TLS (RFC 8705) end to end: a client with a certificate, a real nginx terminating TLS
and verifying it (``ssl_verify_client optional_no_ca``), gunicorn behind it.

The first tests check the harness itself: nginx in front of a recording upstream forwards the
certificate and its verdict, and overwrites whatever a client sends in those headers. The
others speak CIBA through nginx: ``tls_client_auth`` (by subject DN or SAN, CA-issued
certificates only), ``self_signed_tls_client_auth`` (by the key registered in ``jwks``) and
certificate-bound access tokens (``cnf.x5t#S256``).

Not tested, documented instead (docs/nginx-mtls.md): a request straight to gunicorn. Here
gunicorn also sees 127.0.0.1, a trusted proxy, so it would believe a made-up header; in a
deployment nothing but the proxy may reach the web processes' port.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from oauth2_provider.models import get_access_token_model

from ciba import services
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest, TokenBinding
from tests.integration.nginx import (
    DISCOVERY,
    MTLS_SETTINGS,
    MtlsServer,
    check_config,
    documented_config,
    proxy,
    running,
)
from tests.integration.tls import Credential, Pki, jwks
from tests.protocol import BACKCHANNEL, TOKEN

pytestmark = pytest.mark.django_db(transaction=True)

USERINFO = "/o/userinfo/"
DN = "CN=kiosk-1,O=Test Shop"
#: FAPI 1.0 Advanced §8.5's TLS 1.2 suites (the ECDHE ones; docs/nginx-mtls.md).
FAPI_SUITES = ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384")


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_server(
    django_db_setup: Any, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MtlsServer]:
    """nginx (TLS, client certificates) in front of gunicorn, on this run's test database."""
    with running(pki, tmp_path_factory.mktemp("mtls")) as server:
        yield server


@pytest.fixture(autouse=True)
def mtls_settings(settings: Any) -> None:
    """This process (which registers clients and approves requests) configured as the server is."""
    settings.CIBA = {**settings.CIBA, **MTLS_SETTINGS}


@pytest.fixture(scope="module")
def kiosk(pki: Pki) -> Credential:
    return pki.issue("kiosk-1", san_dns=("kiosk-1.shop.example",))


class Recorder(ThreadingHTTPServer):
    daemon_threads, block_on_close = True, False


@pytest.fixture(scope="module")
def echo(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsServer]:
    """nginx with the same configuration in front of an upstream that answers with the
    headers it received, as JSON: what the Django server would be told."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    upstream = Recorder(("127.0.0.1", 0), Handler)
    threading.Thread(target=upstream.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        directory = tmp_path_factory.mktemp("echo")
        with proxy(pki, directory, f"http://127.0.0.1:{upstream.server_address[1]}") as server:
            yield server
    finally:
        upstream.shutdown()
        upstream.server_close()


def forwarded(echo: MtlsServer, cert: Credential | None = None, **headers: str) -> dict[str, str]:
    response = echo.session(cert).get(echo.url + "/", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


# --- the harness: what nginx tells the upstream ----------------------------------------------


def test_nginx_forwards_a_ca_issued_certificate_with_the_verdict_success(echo, kiosk):
    seen = forwarded(echo, kiosk)
    assert seen["x-ssl-client-verify"] == "SUCCESS"
    assert unquote(seen["x-ssl-client-cert"]).encode() == kiosk.cert_pem
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["host"] == "127.0.0.1"


@pytest.mark.parametrize("kind", ["self-signed", "other CA"])
def test_nginx_forwards_an_unverified_certificate_with_a_failed_verdict(echo, pki, kind):
    cert = pki.self_signed("kiosk-1") if kind == "self-signed" else pki.wrong("kiosk-1")
    seen = forwarded(echo, cert)
    assert seen["x-ssl-client-verify"].startswith("FAILED:"), seen
    assert unquote(seen["x-ssl-client-cert"]).encode() == cert.cert_pem


def test_nginx_drops_certificate_headers_a_client_sends_without_a_certificate(echo, kiosk):
    seen = forwarded(
        echo,
        None,
        **{
            "X-SSL-Client-Cert": kiosk.escaped_pem,
            "X-SSL-Client-Verify": "SUCCESS",
            "X-Forwarded-For": "203.0.113.9",
        },
    )
    assert "x-ssl-client-cert" not in seen, seen
    assert seen["x-ssl-client-verify"] == "NONE"
    assert seen["x-forwarded-for"] == "127.0.0.1"


def test_nginx_replaces_certificate_headers_a_client_sends_with_its_own_certificate(echo, pki, kiosk):
    other = pki.wrong("kiosk-1")
    seen = forwarded(
        echo, other, **{"X-SSL-Client-Cert": kiosk.escaped_pem, "X-SSL-Client-Verify": "SUCCESS"}
    )
    assert unquote(seen["x-ssl-client-cert"]).encode() == other.cert_pem
    assert seen["x-ssl-client-verify"].startswith("FAILED:")


def test_nginx_drops_a_certificate_header_spelt_with_underscores(echo, kiosk):
    # WSGI maps X_SSL_Client_Cert to the same HTTP_X_SSL_CLIENT_CERT as X-SSL-Client-Cert.
    seen = forwarded(echo, None, **{"X_SSL_Client_Cert": kiosk.escaped_pem})
    assert not any(k.replace("-", "_") == "x_ssl_client_cert" for k in seen), seen


def handshake(server: MtlsServer, version: ssl.TLSVersion, ciphers: str | None = None) -> str:
    """A bare TLS handshake with nginx, at most ``version``; the suite negotiated."""
    context = ssl.create_default_context(cafile=server.ca_file)
    context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        context.minimum_version = version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that this client offers it at all
    if ciphers:
        context.set_ciphers(ciphers)
    host, port = server.url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), 5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.cipher()[0]


def test_nginx_negotiates_tls_1_2_with_fapi_suites_only(echo):
    assert handshake(echo, ssl.TLSVersion.TLSv1_2) in FAPI_SUITES
    for suite in FAPI_SUITES:
        assert handshake(echo, ssl.TLSVersion.TLSv1_2, suite) == suite
    with pytest.raises(ssl.SSLError):
        handshake(echo, ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-SHA256")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_nginx_refuses_tls_1_1(echo):
    # This client does offer TLS 1.1 (SECLEVEL=0): the refusal is nginx's protocol alert.
    with pytest.raises(ssl.SSLError, match="(?i)protocol.version|unsupported.protocol"):
        handshake(echo, ssl.TLSVersion.TLSv1_1)


# --- the harness: the server behind nginx -------------------------------------------------------


def test_the_discovery_document_is_served_through_nginx_over_tls(mtls_server):
    response = mtls_server.session().get(mtls_server.url + DISCOVERY, timeout=10)
    assert response.status_code == 200, mtls_server.logs()
    assert response.json()["backchannel_authentication_endpoint"]


# --- speaking CIBA through nginx ---------------------------------------------------------------


@pytest.fixture
def mtls_client(make_client: Callable) -> Callable[..., Any]:
    """Register a poll-mode client authenticating with ``method`` (no usable secret)."""

    def register(method: str = "tls_client_auth", **fields: Any) -> Any:
        if method == "tls_client_auth" and not any(k.startswith("tls_client_auth_") for k in fields):
            fields["tls_client_auth_subject_dn"] = DN
        app, _ = make_client("poll", token_endpoint_auth_method=method, **fields)
        return app

    return register


def call(
    server: MtlsServer, cert: Credential | None, path: str, data: dict[str, str] | None = None, **kw: Any
) -> requests.Response:
    session = server.session(cert)
    if data is None:
        return session.get(server.url + path, timeout=15, **kw)
    return session.post(server.url + path, data=data, timeout=15, **kw)


def expect(server: MtlsServer, response: requests.Response, status: int, error: str | None = None) -> Any:
    assert response.status_code == status, f"{response.status_code} {response.text}\n{server.logs()}"
    if error is not None:
        assert response.json()["error"] == error, response.text
    return response.json() if response.content else None


def backchannel(server: MtlsServer, app: Any, cert: Credential | None, **headers: str) -> requests.Response:
    body = {"client_id": app.client_id, "scope": "openid profile", "login_hint": "alice"}
    return call(server, cert, BACKCHANNEL, body, headers=headers)


def poll(server: MtlsServer, app: Any, cert: Credential | None, auth_req_id: str) -> requests.Response:
    body = {"client_id": app.client_id, "grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}
    return call(server, cert, TOKEN, body)


def approve(auth_req_id: str, user: Any) -> None:
    services.approve(AuthenticationRequest.objects.get(auth_req_id=auth_req_id), user=user)


def tokens(server: MtlsServer, app: Any, cert: Credential, user: Any) -> dict[str, Any]:
    """The whole poll-mode flow with ``cert``: request, approval, tokens."""
    auth_req_id = expect(server, backchannel(server, app, cert), 200)["auth_req_id"]
    approve(auth_req_id, user)
    body = expect(server, poll(server, app, cert, auth_req_id), 200)
    assert body["token_type"] == "Bearer" and body["access_token"] and body["id_token"], body
    return body


def bound_to(access_token: str) -> str:
    """The ``x5t#S256`` the server bound ``access_token`` to ("" if none)."""
    checksum = hashlib.sha256(access_token.encode()).hexdigest()  # DOT stores the SHA-256 only
    token = get_access_token_model().objects.get(token_checksum=checksum)
    binding = TokenBinding.objects.filter(access_token=token).first()
    return binding.x5t_s256 if binding else ""


def userinfo(server: MtlsServer, cert: Credential | None, access_token: str, **headers: str) -> Any:
    return call(server, cert, USERINFO, headers={"Authorization": f"Bearer {access_token}", **headers})


def test_tls_client_auth_with_a_ca_issued_certificate_gets_certificate_bound_tokens(
    mtls_server, mtls_client, alice, kiosk, pki
):
    app = mtls_client(tls_client_certificate_bound_access_tokens=True)
    body = tokens(mtls_server, app, kiosk, alice)

    assert bound_to(body["access_token"]) == kiosk.x5t_s256
    assert expect(mtls_server, userinfo(mtls_server, kiosk, body["access_token"]), 200)["sub"]
    # RFC 8705 §3: the token is refused with no certificate, or another one.
    expect(mtls_server, userinfo(mtls_server, None, body["access_token"]), 401)
    expect(mtls_server, userinfo(mtls_server, pki.wrong("kiosk-1"), body["access_token"]), 401)
    expect(mtls_server, userinfo(mtls_server, pki.issue("kiosk-2"), body["access_token"]), 401)


def test_a_refresh_with_the_certificate_gets_a_token_bound_to_it(mtls_server, mtls_client, alice, kiosk, pki):
    app = mtls_client(tls_client_certificate_bound_access_tokens=True)
    body = tokens(mtls_server, app, kiosk, alice)
    grant = {
        "client_id": app.client_id,
        "grant_type": "refresh_token",
        "refresh_token": body["refresh_token"],
    }
    expect(mtls_server, call(mtls_server, pki.wrong("kiosk-1"), TOKEN, grant), 401, "invalid_client")
    refreshed = expect(mtls_server, call(mtls_server, kiosk, TOKEN, grant), 200)
    assert bound_to(refreshed["access_token"]) == kiosk.x5t_s256
    expect(mtls_server, userinfo(mtls_server, kiosk, refreshed["access_token"]), 200)
    expect(mtls_server, userinfo(mtls_server, None, refreshed["access_token"]), 401)


def test_a_bound_token_is_refused_with_its_certificate_only_in_a_header_the_client_sent(
    mtls_server, mtls_client, alice, kiosk
):
    app = mtls_client()
    body = tokens(mtls_server, app, kiosk, alice)
    forged = {"X-SSL-Client-Cert": kiosk.escaped_pem, "X-SSL-Client-Verify": "SUCCESS"}
    expect(mtls_server, userinfo(mtls_server, None, body["access_token"], **forged), 401)


def test_tls_client_auth_by_san_dns(mtls_server, mtls_client, alice, pki):
    app = mtls_client(tls_client_auth_san_dns="kiosk-7.shop.example")
    tokens(mtls_server, app, pki.issue("anything", san_dns=("kiosk-7.shop.example",)), alice)
    refused = backchannel(mtls_server, app, pki.issue("anything", san_dns=("kiosk-8.shop.example",)))
    expect(mtls_server, refused, 401, "invalid_client")


def test_tls_client_auth_without_a_certificate_is_invalid_client(mtls_server, mtls_client, alice):
    app = mtls_client()
    expect(mtls_server, backchannel(mtls_server, app, None), 401, "invalid_client")


def test_tls_client_auth_with_the_right_subject_from_another_ca_is_invalid_client(
    mtls_server, mtls_client, alice, pki
):
    app = mtls_client()
    expect(mtls_server, backchannel(mtls_server, app, pki.wrong("kiosk-1")), 401, "invalid_client")


def test_tls_client_auth_with_a_self_signed_certificate_of_the_right_subject_is_invalid_client(
    mtls_server, mtls_client, alice, pki
):
    app = mtls_client()
    expect(mtls_server, backchannel(mtls_server, app, pki.self_signed("kiosk-1")), 401, "invalid_client")


def test_tls_client_auth_with_another_subject_is_invalid_client(mtls_server, mtls_client, alice, pki):
    app = mtls_client()
    expect(mtls_server, backchannel(mtls_server, app, pki.issue("kiosk-2")), 401, "invalid_client")


def test_a_certificate_a_client_sends_in_a_header_does_not_authenticate_it(
    mtls_server, mtls_client, alice, kiosk
):
    app = mtls_client()
    forged = {"X-SSL-Client-Cert": kiosk.escaped_pem, "X-SSL-Client-Verify": "SUCCESS"}
    expect(mtls_server, backchannel(mtls_server, app, None, **forged), 401, "invalid_client")


def test_a_verdict_a_client_sends_in_a_header_does_not_make_its_certificate_trusted(
    mtls_server, mtls_client, alice, pki
):
    app = mtls_client()
    refused = backchannel(mtls_server, app, pki.wrong("kiosk-1"), **{"X-SSL-Client-Verify": "SUCCESS"})
    expect(mtls_server, refused, 401, "invalid_client")


def test_the_token_endpoint_authenticates_the_poll_by_certificate_too(
    mtls_server, mtls_client, alice, kiosk, pki
):
    app = mtls_client()
    auth_req_id = expect(mtls_server, backchannel(mtls_server, app, kiosk), 200)["auth_req_id"]
    approve(auth_req_id, alice)
    expect(mtls_server, poll(mtls_server, app, None, auth_req_id), 401, "invalid_client")
    expect(mtls_server, poll(mtls_server, app, pki.wrong("kiosk-1"), auth_req_id), 401, "invalid_client")
    expect(mtls_server, poll(mtls_server, app, kiosk, auth_req_id), 200)


def test_self_signed_tls_client_auth_with_the_registered_key(mtls_server, mtls_client, alice, pki):
    cert = pki.self_signed("kiosk-9")
    app = mtls_client("self_signed_tls_client_auth", jwks=jwks(cert))
    body = tokens(mtls_server, app, cert, alice)
    expect(mtls_server, userinfo(mtls_server, cert, body["access_token"]), 200)
    expect(mtls_server, userinfo(mtls_server, pki.self_signed("kiosk-9"), body["access_token"]), 401)


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_self_signed_tls_client_auth_with_another_key_is_invalid_client(
    mtls_server, mtls_client, alice, pki, key_type
):
    registered = pki.self_signed("kiosk-9", key_type)
    app = mtls_client("self_signed_tls_client_auth", jwks=jwks(registered))
    other = pki.self_signed("kiosk-9", key_type)  # same subject, another key
    expect(mtls_server, backchannel(mtls_server, app, other), 401, "invalid_client")
    expect(mtls_server, backchannel(mtls_server, app, None), 401, "invalid_client")


def test_self_signed_tls_client_auth_accepts_a_ca_issued_certificate_of_its_registered_key(
    mtls_server, mtls_client, alice, pki
):
    # RFC 8705 §2.2: the trust is the registered key; the chain verdict does not matter.
    cert = pki.issue("kiosk-10", key_type="rsa")
    app = mtls_client("self_signed_tls_client_auth", jwks=jwks(cert))
    expect(mtls_server, backchannel(mtls_server, app, cert), 200)


# --- the documentation's block is the tested one ------------------------------------------------


def test_nginx_accepts_the_documented_server_block(tmp_path: Path, pki: Pki):
    """docs/nginx-mtls.md's production block, with the test PKI's files, passes ``nginx -t``."""
    check_config(documented_config(pki, tmp_path), tmp_path)
