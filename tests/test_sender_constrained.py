"""Mutual-TLS client authentication (RFC 8705 §2) and sender-constrained tokens (RFC 8705 §3,
RFC 9449): what a client sees at the backchannel, token, userinfo and introspection endpoints.

The client certificate arrives as a TLS terminator forwards it (nginx's escaped PEM and verdict
headers), from a trusted proxy address; the integration tier repeats the main cases through a
real nginx (``tests/integration/test_mtls_nginx.py``). DPoP proofs are made with jwcrypto.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from oauth2_provider.settings import oauth2_settings

from ciba import services
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest
from tests.conftest import basic_auth
from tests.dpop import DPoPKey
from tests.integration.tls import MTLS_SETTINGS, Pki, jwks, presenting
from tests.protocol import BACKCHANNEL, FORM, TOKEN, backchannel, consent_bearer, oauth_error

TOKEN_URL = "http://testserver/o/token/"
USERINFO = "/o/userinfo/"
USERINFO_URL = "http://testserver/o/userinfo/"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def behind_nginx(settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, **MTLS_SETTINGS}


def mtls_post(client: Any, path: str, app: Any, params: dict[str, str], **headers: Any) -> Any:
    body = "&".join(f"{k}={quote(v, safe='')}" for k, v in {"client_id": app.client_id, **params}.items())
    return client.post(path, body, content_type=FORM, **headers)


@pytest.fixture
def kiosk(pki: Pki, make_client: Any) -> tuple[Any, Any]:
    """A poll client authenticating with a CA-issued certificate named by its subject DN."""
    cert = pki.issue("kiosk-1")
    app, _ = make_client(
        "poll", token_endpoint_auth_method="tls_client_auth", tls_client_auth_subject_dn=cert.subject_dn
    )
    return app, cert


def approved(client: Any, app: Any, **headers: Any) -> str:
    response = mtls_post(client, BACKCHANNEL, app, {"scope": "openid", "login_hint": "alice"}, **headers)
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    ar = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    services.approve(ar, user=ar.user)
    return auth_req_id


def poll(client: Any, app: Any, auth_req_id: str, **headers: Any) -> Any:
    return mtls_post(
        client, TOKEN, app, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}, **headers
    )


# --- mTLS client authentication ---------------------------------------------------------------


def test_tls_client_auth_with_the_registered_subject_gets_tokens_bound_to_the_certificate(
    client, alice, kiosk
):
    app, cert = kiosk
    auth_req_id = approved(client, app, **presenting(cert))
    response = poll(client, app, auth_req_id, **presenting(cert))
    assert response.status_code == 200, response.content
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    introspection = client.post(
        "/o/introspect/", {"token": tokens["access_token"]}, **consent_bearer(alice, scope="introspection")
    )
    assert introspection.json()["cnf"] == {"x5t#S256": cert.x5t_s256}


@pytest.mark.parametrize(
    "field, value, names",
    [
        ("tls_client_auth_san_dns", "kiosk.shop.example", {"san_dns": ["kiosk.shop.example"]}),
        (
            "tls_client_auth_san_uri",
            "https://shop.example/kiosk/7",
            {"san_uri": ["https://shop.example/kiosk/7"]},
        ),
        ("tls_client_auth_san_ip", "10.1.2.3", {"san_ip": ["10.1.2.3"]}),
        ("tls_client_auth_san_email", "kiosk@shop.example", {"san_email": ["kiosk@shop.example"]}),
    ],
)
def test_tls_client_auth_matches_each_kind_of_subject_alternative_name(
    client, alice, pki, make_client, field, value, names
):
    cert = pki.issue("kiosk-san", **names)
    other = pki.issue("kiosk-san")  # same subject, no such name
    app, _ = make_client("poll", token_endpoint_auth_method="tls_client_auth", **{field: value})
    params = {"scope": "openid", "login_hint": "alice"}
    assert mtls_post(client, BACKCHANNEL, app, params, **presenting(cert)).status_code == 200
    oauth_error(mtls_post(client, BACKCHANNEL, app, params, **presenting(other)), 401, "invalid_client")


def test_tls_client_auth_refuses_a_missing_an_unverified_or_a_differently_named_certificate(
    client, alice, pki, kiosk
):
    app, cert = kiosk
    params = {"scope": "openid", "login_hint": "alice"}
    for headers in (
        {},
        presenting(pki.wrong("kiosk-1"), verdict="FAILED:unable to get local issuer certificate"),
        presenting(pki.issue("kiosk-2")),
        presenting(cert, verdict="NONE"),
    ):
        oauth_error(mtls_post(client, BACKCHANNEL, app, params, **headers), 401, "invalid_client")


def test_a_certificate_header_from_an_untrusted_address_is_ignored(client, alice, kiosk):
    app, cert = kiosk
    params = {"scope": "openid", "login_hint": "alice"}
    response = mtls_post(client, BACKCHANNEL, app, params, REMOTE_ADDR="203.0.113.9", **presenting(cert))
    oauth_error(response, 401, "invalid_client")


def test_self_signed_tls_client_auth_accepts_only_a_certificate_whose_key_is_registered(
    client, alice, pki, make_client
):
    mine, theirs = pki.self_signed("kiosk-self"), pki.self_signed("kiosk-self")
    app, _ = make_client("poll", token_endpoint_auth_method="self_signed_tls_client_auth", jwks=jwks(mine))
    params = {"scope": "openid", "login_hint": "alice"}
    unverified = "FAILED:self-signed certificate"
    assert mtls_post(client, BACKCHANNEL, app, params, **presenting(mine, unverified)).status_code == 200
    oauth_error(
        mtls_post(client, BACKCHANNEL, app, params, **presenting(theirs, unverified)), 401, "invalid_client"
    )


def test_a_secret_client_cannot_authenticate_with_its_client_id_and_a_certificate(
    client, alice, pki, make_client
):
    app, _ = make_client("poll")
    response = mtls_post(
        client, BACKCHANNEL, app, {"scope": "openid", "login_hint": "alice"}, **presenting(pki.issue("x"))
    )
    oauth_error(response, 401, "invalid_client")


def test_mtls_clients_are_refused_when_no_tls_terminator_forwards_certificates(
    client, alice, settings, kiosk
):
    app, cert = kiosk
    settings.CIBA = {**settings.CIBA, "MTLS_CERT_HEADER": ""}
    response = mtls_post(
        client, BACKCHANNEL, app, {"scope": "openid", "login_hint": "alice"}, **presenting(cert)
    )
    oauth_error(response, 401, "invalid_client")


def test_the_forwarded_certificate_may_come_as_envoy_xfcc_or_base64_der(client, alice, settings, kiosk):
    app, cert = kiosk
    params = {"scope": "openid", "login_hint": "alice"}
    xfcc = f'By=spiffe://as;Hash=abc;Cert="{cert.escaped_pem}";Subject="{cert.subject_dn}"'
    settings.CIBA = {**settings.CIBA, "MTLS_CERT_HEADER_FORMAT": "xfcc", "MTLS_CERT_VERIFY_HEADER": ""}
    spoofed = f'Cert="garbage",{xfcc}'  # the nearest proxy's element is the last one
    assert mtls_post(client, BACKCHANNEL, app, params, HTTP_X_SSL_CLIENT_CERT=spoofed).status_code == 200
    der = base64.b64encode(cert.certificate.public_bytes(Encoding.DER)).decode()
    settings.CIBA = {**settings.CIBA, "MTLS_CERT_HEADER_FORMAT": "der-base64"}
    assert mtls_post(client, BACKCHANNEL, app, params, HTTP_X_SSL_CLIENT_CERT=der).status_code == 200


def test_an_unreadable_certificate_header_is_a_failed_authentication_not_an_error(client, alice, kiosk):
    app, _ = kiosk
    params = {"scope": "openid", "login_hint": "alice"}
    for junk in ("-----BEGIN%20CERTIFICATE-----%0Azzz", "%ZZ", "x" * 20000):
        headers = {"HTTP_X_SSL_CLIENT_CERT": junk, "HTTP_X_SSL_CLIENT_VERIFY": "SUCCESS"}
        oauth_error(mtls_post(client, BACKCHANNEL, app, params, **headers), 401, "invalid_client")


# --- certificate-bound tokens ---------------------------------------------------------------


def test_a_certificate_bound_token_is_honoured_only_with_its_certificate(client, alice, pki, kiosk):
    app, cert = kiosk
    auth_req_id = approved(client, app, **presenting(cert))
    access_token = poll(client, app, auth_req_id, **presenting(cert)).json()["access_token"]
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {access_token}"}
    assert client.get(USERINFO, **bearer, **presenting(cert)).status_code == 200
    assert client.get(USERINFO, **bearer).status_code == 401
    assert client.get(USERINFO, **bearer, **presenting(pki.issue("kiosk-1"))).status_code == 401
    assert client.get(USERINFO, **bearer, REMOTE_ADDR="203.0.113.9", **presenting(cert)).status_code == 401


def test_a_private_key_jwt_client_over_mtls_also_gets_certificate_bound_tokens(
    client, alice, pki, make_client
):
    """RFC 8705 §3: binding does not depend on how the client authenticated."""
    cert = pki.issue("secret-kiosk")
    app, secret = make_client("poll")
    headers = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret), **presenting(cert)}
    ar = secret_client_approved(client, app, headers)
    tokens = mtls_post(
        client, TOKEN, app, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": ar.auth_req_id}, **headers
    )
    access_token = tokens.json()["access_token"]
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code == 401


def test_a_client_registered_for_bound_tokens_must_poll_over_mtls(client, alice, pki, make_client):
    app, secret = make_client("poll", tls_client_certificate_bound_access_tokens=True)
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    ar = secret_client_approved(client, app, auth)
    refused = mtls_post(
        client, TOKEN, app, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": ar.auth_req_id}, **auth
    )
    oauth_error(refused, 400, "invalid_request")
    cert = pki.issue("bound")
    granted = mtls_post(
        client,
        TOKEN,
        app,
        {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": ar.auth_req_id},
        **auth,
        **presenting(cert),
    )
    assert granted.status_code == 200, granted.content


def test_a_refreshed_token_stays_bound_to_a_certificate(client, alice, pki, kiosk):
    app, cert = kiosk
    auth_req_id = approved(client, app, **presenting(cert))
    refresh_token = poll(client, app, auth_req_id, **presenting(cert)).json()["refresh_token"]
    refresh = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    # Without mTLS the client cannot even authenticate; a secret client is covered by refresh_keeps.
    oauth_error(mtls_post(client, TOKEN, app, refresh), 401, "invalid_client")
    refreshed = mtls_post(client, TOKEN, app, refresh, **presenting(cert))
    assert refreshed.status_code == 200, refreshed.content
    access_token = refreshed.json()["access_token"]
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code == 401
    assert (
        client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {access_token}", **presenting(cert)).status_code
        == 200
    )


# --- DPoP ----------------------------------------------------------------------------------------


@pytest.fixture
def dpop_client(make_client: Any) -> tuple[Any, str, DPoPKey]:
    app, secret = make_client("poll", dpop_bound_access_tokens=True)
    return app, secret, DPoPKey("EC")


def secret_client_approved(client: Any, app: Any, auth: dict[str, str], **headers: Any) -> Any:
    """A backchannel request of a secret client (``auth``), approved by alice; its row."""
    response = backchannel(client, app, None, {"scope": "openid", "login_hint": "alice"}, **auth, **headers)
    assert response.status_code == 200, response.content
    ar = AuthenticationRequest.objects.get(auth_req_id=response.json()["auth_req_id"])
    services.approve(ar, user=ar.user)
    return ar


def dpop_tokens(client: Any, app: Any, secret: str, key: DPoPKey) -> dict[str, Any]:
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    ar = secret_client_approved(client, app, auth)
    body = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": ar.auth_req_id}
    granted = mtls_post(client, TOKEN, app, body, **auth, HTTP_DPOP=key.proof("POST", TOKEN_URL))
    assert granted.status_code == 200, granted.content
    return granted.json()


def test_a_dpop_proof_at_the_token_endpoint_yields_a_dpop_token_bound_to_its_key(client, alice, dpop_client):
    app, secret, key = dpop_client
    tokens = dpop_tokens(client, app, secret, key)
    assert tokens["token_type"] == "DPoP"
    introspection = client.post(
        "/o/introspect/", {"token": tokens["access_token"]}, **consent_bearer(alice, scope="introspection")
    )
    assert introspection.json()["cnf"] == {"jkt": key.jkt}
    assert introspection.json()["token_type"] == "DPoP"


def test_a_dpop_bound_token_needs_the_dpop_scheme_and_a_fresh_proof_of_its_key(client, alice, dpop_client):
    app, secret, key = dpop_client
    access_token = dpop_tokens(client, app, secret, key)["access_token"]
    dpop = {"HTTP_AUTHORIZATION": f"DPoP {access_token}"}
    good = key.proof("GET", USERINFO_URL, access_token=access_token)
    assert client.get(USERINFO, **dpop, HTTP_DPOP=good).status_code == 200
    assert client.get(USERINFO, **dpop, HTTP_DPOP=good).status_code == 401  # replayed
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code == 401
    assert client.get(USERINFO, **dpop).status_code == 401
    thief = DPoPKey("EC").proof("GET", USERINFO_URL, access_token=access_token)
    assert client.get(USERINFO, **dpop, HTTP_DPOP=thief).status_code == 401
    no_ath = key.proof("GET", USERINFO_URL)
    assert client.get(USERINFO, **dpop, HTTP_DPOP=no_ath).status_code == 401
    other_url = key.proof("GET", "http://testserver/o/elsewhere/", access_token=access_token)
    assert client.get(USERINFO, **dpop, HTTP_DPOP=other_url).status_code == 401


def test_a_dpop_client_without_a_proof_or_with_a_bad_one_gets_invalid_dpop_proof(client, alice, dpop_client):
    app, secret, key = dpop_client
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    ar = secret_client_approved(client, app, auth)
    body = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": ar.auth_req_id}
    oauth_error(mtls_post(client, TOKEN, app, body, **auth), 400, "invalid_dpop_proof")
    wrong_method = key.proof("GET", TOKEN_URL)
    oauth_error(
        mtls_post(client, TOKEN, app, body, **auth, HTTP_DPOP=wrong_method), 400, "invalid_dpop_proof"
    )
    # Nothing was issued by the refusals: the request can still be collected.
    assert (
        mtls_post(client, TOKEN, app, body, **auth, HTTP_DPOP=key.proof("POST", TOKEN_URL)).status_code == 200
    )


def test_when_nonces_are_required_the_token_endpoint_hands_one_out(client, alice, settings, dpop_client):
    settings.CIBA = {**settings.CIBA, "DPOP_NONCE_REQUIRED": True}
    app, secret, key = dpop_client
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    ar = secret_client_approved(client, app, auth)
    body = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": ar.auth_req_id}
    first = mtls_post(client, TOKEN, app, body, **auth, HTTP_DPOP=key.proof("POST", TOKEN_URL))
    oauth_error(first, 400, "use_dpop_nonce")
    nonce = first["DPoP-Nonce"]
    second = mtls_post(client, TOKEN, app, body, **auth, HTTP_DPOP=key.proof("POST", TOKEN_URL, nonce=nonce))
    assert second.status_code == 200, second.content
    assert second["DPoP-Nonce"]  # the nonce for the client's next proof (RFC 9449 §8.2)


def test_a_dpop_refresh_needs_a_proof_and_rebinds_to_its_key(client, alice, dpop_client):
    app, secret, key = dpop_client
    refresh_token = dpop_tokens(client, app, secret, key)["refresh_token"]
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    oauth_error(mtls_post(client, TOKEN, app, body, **auth), 400, "invalid_dpop_proof")
    new_key = DPoPKey("RSA")
    refreshed = mtls_post(client, TOKEN, app, body, **auth, HTTP_DPOP=new_key.proof("POST", TOKEN_URL))
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed.json()["token_type"] == "DPoP"
    access_token = refreshed.json()["access_token"]
    proof = new_key.proof("GET", USERINFO_URL, access_token=access_token)
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"DPoP {access_token}", HTTP_DPOP=proof).status_code == 200


def test_a_bearer_token_is_not_accepted_in_the_dpop_scheme(client, alice, make_client):
    app, secret = make_client("poll")
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    ar = secret_client_approved(client, app, auth)
    body = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": ar.auth_req_id}
    access_token = mtls_post(client, TOKEN, app, body, **auth).json()["access_token"]
    key = DPoPKey()
    proof = key.proof("GET", USERINFO_URL, access_token=access_token)
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"DPoP {access_token}", HTTP_DPOP=proof).status_code == 401
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code == 200


# --- the key or certificate declared with the request (push, RFC 9449 §10) -----------------

BACKCHANNEL_URL = "http://testserver/o/backchannel-authentication/"
NT = "client-notification-token-0123456789"


def push_request(client: Any, app: Any, secret: str, **headers: Any) -> Any:
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    params = {"scope": "openid", "login_hint": "alice", "client_notification_token": NT}
    return backchannel(client, app, None, params, **auth, **headers)


def pushed(recorder: Any, capture: Any, auth_req_id: str) -> dict[str, Any]:
    ar = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    with capture(execute=True):
        services.approve(ar, user=ar.user)
    assert len(recorder.received) == 1
    return json.loads(recorder.received[0][2])


def test_a_dpop_bound_push_client_declares_its_key_with_the_request_and_receives_dpop_tokens(
    client, alice, make_client, recorder, django_capture_on_commit_callbacks
):
    app, secret = make_client(
        "push", dpop_bound_access_tokens=True, backchannel_client_notification_endpoint=recorder.url("/cb")
    )
    oauth_error(push_request(client, app, secret), 400, "invalid_dpop_proof")
    key = DPoPKey()
    response = push_request(client, app, secret, HTTP_DPOP=key.proof("POST", BACKCHANNEL_URL))
    assert response.status_code == 200, response.content
    body = pushed(recorder, django_capture_on_commit_callbacks, response.json()["auth_req_id"])
    assert body["token_type"] == "DPoP"
    access_token = body["access_token"]
    proof = key.proof("GET", USERINFO_URL, access_token=access_token)
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"DPoP {access_token}", HTTP_DPOP=proof).status_code == 200
    assert client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code == 401


def test_a_push_client_declaring_dpop_jkt_gets_tokens_bound_to_that_key(
    client, alice, make_client, recorder, django_capture_on_commit_callbacks
):
    app, secret = make_client("push", backchannel_client_notification_endpoint=recorder.url("/cb"))
    key = DPoPKey("RSA")
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    params = {"scope": "openid", "login_hint": "alice", "client_notification_token": NT}
    malformed = backchannel(client, app, None, {**params, "dpop_jkt": "not a thumbprint"}, **auth)
    oauth_error(malformed, 400, "invalid_request")
    mismatched = backchannel(
        client,
        app,
        None,
        {**params, "dpop_jkt": DPoPKey().jkt},
        **auth,
        HTTP_DPOP=key.proof("POST", BACKCHANNEL_URL),
    )
    oauth_error(mismatched, 400, "invalid_dpop_proof")
    response = backchannel(client, app, None, {**params, "dpop_jkt": key.jkt}, **auth)
    assert response.status_code == 200, response.content
    body = pushed(recorder, django_capture_on_commit_callbacks, response.json()["auth_req_id"])
    introspection = client.post(
        "/o/introspect/", {"token": body["access_token"]}, **consent_bearer(alice, scope="introspection")
    )
    assert introspection.json()["cnf"] == {"jkt": key.jkt}


def test_a_push_client_over_mtls_receives_tokens_bound_to_its_certificate(
    client, alice, pki, make_client, recorder, django_capture_on_commit_callbacks
):
    cert = pki.issue("push-kiosk")
    app, _ = make_client(
        "push",
        token_endpoint_auth_method="tls_client_auth",
        tls_client_auth_subject_dn=cert.subject_dn,
        tls_client_certificate_bound_access_tokens=True,
        backchannel_client_notification_endpoint=recorder.url("/cb"),
    )
    params = {"scope": "openid", "login_hint": "alice", "client_notification_token": NT}
    response = mtls_post(client, BACKCHANNEL, app, params, **presenting(cert))
    assert response.status_code == 200, response.content
    body = pushed(recorder, django_capture_on_commit_callbacks, response.json()["auth_req_id"])
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {body['access_token']}"}
    assert client.get(USERINFO, **bearer, **presenting(cert)).status_code == 200
    assert client.get(USERINFO, **bearer).status_code == 401


def test_a_request_made_with_a_dpop_key_is_collected_only_with_that_key(client, alice, make_client):
    app, secret = make_client("poll")
    key = DPoPKey()
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    ar = secret_client_approved(client, app, auth, HTTP_DPOP=key.proof("POST", BACKCHANNEL_URL))
    body = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": ar.auth_req_id}
    oauth_error(mtls_post(client, TOKEN, app, body, **auth), 400, "invalid_dpop_proof")
    other = DPoPKey().proof("POST", TOKEN_URL)
    oauth_error(mtls_post(client, TOKEN, app, body, **auth, HTTP_DPOP=other), 400, "invalid_dpop_proof")
    granted = mtls_post(client, TOKEN, app, body, **auth, HTTP_DPOP=key.proof("POST", TOKEN_URL))
    assert granted.status_code == 200 and granted.json()["token_type"] == "DPoP", granted.content


def test_pushed_tokens_live_as_long_as_polled_ones(
    client, alice, make_client, recorder, django_capture_on_commit_callbacks
):
    """Both are minted by the token endpoint's handler, with DOT's ACCESS_TOKEN_EXPIRE_SECONDS."""
    app, secret = make_client("push", backchannel_client_notification_endpoint=recorder.url("/cb"))
    response = push_request(client, app, secret)
    body = pushed(recorder, django_capture_on_commit_callbacks, response.json()["auth_req_id"])
    assert body["expires_in"] == oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS


# --- a site's own DRF API ------------------------------------------------------------------

ACCOUNTS = "/api/accounts/"
ACCOUNTS_URL = "http://testserver/api/accounts/"


def test_a_sites_drf_api_honours_bindings_and_tells_dpop_clients_how_to_retry(
    client, alice, pki, kiosk, dpop_client
):
    app, cert = kiosk
    auth_req_id = approved(client, app, **presenting(cert))
    cert_bound = poll(client, app, auth_req_id, **presenting(cert)).json()["access_token"]
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {cert_bound}"}
    assert client.get(ACCOUNTS, **bearer, **presenting(cert)).json() == {"user": "alice"}
    refused = client.get(ACCOUNTS, **bearer)
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith(
        'DPoP algs="PS256 ES256 RS256 EdDSA Ed25519 Ed448", Bearer realm="api"'
    )

    dpop_app, secret, key = dpop_client
    dpop_bound = dpop_tokens(client, dpop_app, secret, key)["access_token"]
    scheme = {"HTTP_AUTHORIZATION": f"DPoP {dpop_bound}"}
    proof = key.proof("GET", ACCOUNTS_URL, access_token=dpop_bound)
    assert client.get(ACCOUNTS, **scheme, HTTP_DPOP=proof).json() == {"user": "alice"}
    replayed = client.get(ACCOUNTS, **scheme, HTTP_DPOP=proof)
    assert replayed.status_code == 401
    assert (
        'DPoP algs="PS256 ES256 RS256 EdDSA Ed25519 Ed448",error="invalid_dpop_proof"'
        in replayed["WWW-Authenticate"]
    )
