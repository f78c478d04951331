"""The UserInfo endpoint tells a DPoP client how to retry (RFC 9449 §§7.1, 8, 9), the way
openid-client (``fetchUserInfo``, ``fetchProtectedResource``) recovers: it sends a proof without
a nonce, reads ``use_dpop_nonce`` in the ``DPoP`` challenge and the nonce in ``DPoP-Nonce``,
and retries once with it.

Before, every refusal was oauthlib's bare ``Bearer error="invalid_token"``, with no nonce: a
client of a server requiring nonces could never read its userinfo.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from django.test import RequestFactory
from oauth2_provider.views import UserInfoView

from ciba import services
from ciba.conf import ciba_settings
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest
from ciba.sender.dpop import new_nonce
from tests.conftest import basic_auth
from tests.dpop import DPoPKey
from tests.integration.tls import MTLS_SETTINGS, Pki, presenting
from tests.protocol import FORM, TOKEN, backchannel, consent_bearer

USERINFO = "/o/userinfo/"
USERINFO_URL = "http://testserver/o/userinfo/"
TOKEN_URL = "http://testserver/o/token/"

_PARAM = re.compile(r'^[,\s]*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*"((?:[^"\\]|\\.)*)"[,\s]*')


def challenges(header: str) -> dict[str, dict[str, str]]:
    """``WWW-Authenticate`` parsed as oauth4webapi parses it: scheme (lower case) → parameters."""
    parsed: dict[str, dict[str, str]] = {}
    rest = header.strip()
    while rest:
        scheme = re.match(r"^[,\s]*([A-Za-z0-9!#$%&'*+.^_`|~-]+)", rest)
        assert scheme, f"unparseable challenge: {header!r}"
        params: dict[str, str] = {}
        rest = rest[scheme.end() :]
        while match := _PARAM.match(rest):
            params[match.group(1).lower()] = match.group(2)
            rest = rest[match.end() :]
        parsed[scheme.group(1).lower()] = params
    return parsed


@pytest.fixture
def nonces_required(settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, "DPOP_NONCE_REQUIRED": True}


def approved_request(client: Any, app: Any, secret: str) -> str:
    response = backchannel(
        client,
        app,
        None,
        {"scope": "openid profile email", "login_hint": "alice"},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    ar = AuthenticationRequest.objects.get(auth_req_id=response.json()["auth_req_id"])
    services.approve(ar, user=ar.user)
    return ar.auth_req_id


def dpop_bound_token(client: Any, make_client: Any, key: DPoPKey) -> str:
    """A DPoP-bound access token, collected as openid-client collects it (retrying once with the
    nonce a ``use_dpop_nonce`` answer offers)."""
    app, secret = make_client("poll", dpop_bound_access_tokens=True)
    body = f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={approved_request(client, app, secret)}"
    auth = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    nonce = None
    for _ in range(2):
        response = client.post(
            TOKEN, body, content_type=FORM, **auth, HTTP_DPOP=key.proof("POST", TOKEN_URL, nonce=nonce)
        )
        if response.status_code == 200:
            return response.json()["access_token"]
        assert response.json()["error"] == "use_dpop_nonce", response.content
        nonce = response["DPoP-Nonce"]
    raise AssertionError(response.content)


def userinfo(
    client: Any, token: str, key: DPoPKey | None, *, nonce: str | None = None, **headers: Any
) -> Any:
    if key is not None:
        headers["HTTP_DPOP"] = key.proof("GET", USERINFO_URL, access_token=token, nonce=nonce)
    return client.get(USERINFO, HTTP_AUTHORIZATION=f"DPoP {token}", **headers)


def test_a_dpop_client_recovers_from_use_dpop_nonce_as_openid_client_does(
    client, alice, make_client, nonces_required
):
    key = DPoPKey("EC")
    token = dpop_bound_token(client, make_client, key)

    first = userinfo(client, token, key)  # openid-client's first try: no nonce for this URL yet
    assert first.status_code == 401
    dpop = challenges(first["WWW-Authenticate"])["dpop"]
    assert dpop["error"] == "use_dpop_nonce"
    assert dpop["algs"].split() and "ES256" in dpop["algs"].split()
    nonce = first["DPoP-Nonce"]

    retried = userinfo(client, token, key, nonce=nonce)
    assert retried.status_code == 200, retried.content
    assert retried["Content-Type"] == "application/json"
    assert retried.json()["sub"] == str(alice.pk)
    # RFC 9449 §8.2: the next nonce rides on the answer, so the next call needs no retry.
    assert retried["DPoP-Nonce"]
    assert userinfo(client, token, key, nonce=retried["DPoP-Nonce"]).status_code == 200


def test_a_stale_nonce_gets_use_dpop_nonce_and_a_fresh_one(client, alice, make_client, nonces_required):
    key = DPoPKey("EC")
    token = dpop_bound_token(client, make_client, key)
    stale = new_nonce(time.time() - ciba_settings.DPOP_NONCE_LIFETIME - 60)
    refused = userinfo(client, token, key, nonce=stale)
    assert refused.status_code == 401
    assert challenges(refused["WWW-Authenticate"])["dpop"]["error"] == "use_dpop_nonce"
    assert refused["DPoP-Nonce"] != stale
    assert userinfo(client, token, key, nonce=refused["DPoP-Nonce"]).status_code == 200
    without_proof = userinfo(client, token, None)
    assert challenges(without_proof["WWW-Authenticate"])["dpop"]["error"] == "invalid_dpop_proof"
    assert without_proof["DPoP-Nonce"]  # its next proof needs one: it is given one now


def test_a_missing_or_bad_proof_is_invalid_dpop_proof_in_the_dpop_challenge(client, alice, make_client):
    key = DPoPKey("EC")
    token = dpop_bound_token(client, make_client, key)
    for response in (
        userinfo(client, token, None),  # the DPoP scheme, but no proof
        userinfo(client, token, DPoPKey("EC")),  # a proof of another key
    ):
        assert response.status_code == 401
        parsed = challenges(response["WWW-Authenticate"])
        assert parsed["dpop"]["error"] == "invalid_dpop_proof", parsed
        assert parsed["dpop"]["algs"]
        assert "error" not in parsed["bearer"]
        assert response.json()["error"] == "invalid_dpop_proof"
        assert "DPoP-Nonce" not in response  # nonces are not required here
    assert userinfo(client, token, key).status_code == 200


def test_a_dpop_bound_token_presented_as_bearer_gets_a_dpop_challenge(client, alice, make_client):
    key = DPoPKey("EC")
    token = dpop_bound_token(client, make_client, key)
    response = client.get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    parsed = challenges(response["WWW-Authenticate"])
    assert parsed["dpop"]["algs"]  # the scheme this token needs, and the algorithms it takes
    assert parsed["bearer"]["error"] == "invalid_token"
    assert "DPoP scheme" in parsed["bearer"]["error_description"]


def test_a_certificate_bound_token_without_its_certificate_is_invalid_token(
    client, alice, make_client, tmp_path, settings
):
    settings.CIBA = {**settings.CIBA, **MTLS_SETTINGS}
    cert = Pki(tmp_path).issue("kiosk-userinfo")
    app, _ = make_client(
        "poll", token_endpoint_auth_method="tls_client_auth", tls_client_auth_subject_dn=cert.subject_dn
    )
    params = {"client_id": app.client_id, "scope": "openid", "login_hint": "alice"}
    started = backchannel(client, app, None, params, **presenting(cert))
    ar = AuthenticationRequest.objects.get(auth_req_id=started.json()["auth_req_id"])
    services.approve(ar, user=ar.user)
    body = f"client_id={app.client_id}&grant_type={CIBA_GRANT_TYPE}&auth_req_id={ar.auth_req_id}"
    token = client.post(TOKEN, body, content_type=FORM, **presenting(cert)).json()["access_token"]
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    refused = client.get(USERINFO, **bearer)
    assert refused.status_code == 401
    parsed = challenges(refused["WWW-Authenticate"])
    assert parsed["bearer"]["error"] == "invalid_token"
    assert "certificate" in parsed["bearer"]["error_description"]
    assert "error" not in parsed["dpop"]
    assert client.get(USERINFO, **bearer, **presenting(cert)).json()["sub"] == str(alice.pk)


def test_without_a_token_both_challenges_are_offered_and_no_error_is_named(client, db):
    response = client.get(USERINFO)
    assert response.status_code == 401
    parsed = challenges(response["WWW-Authenticate"])
    assert set(parsed) == {"dpop", "bearer"}
    assert "error" not in parsed["dpop"] and "error" not in parsed["bearer"]


def test_an_unknown_bearer_token_is_invalid_token_in_the_bearer_challenge(client, db):
    response = client.get(USERINFO, HTTP_AUTHORIZATION="Bearer no-such-token")
    assert response.status_code == 401
    assert challenges(response["WWW-Authenticate"])["bearer"]["error"] == "invalid_token"
    assert response.json()["error"] == "invalid_token"


def test_a_token_without_openid_is_insufficient_scope(client, alice):
    response = client.get(USERINFO, **consent_bearer(alice, scope="profile"))
    assert response.status_code == 403
    bearer = challenges(response["WWW-Authenticate"])["bearer"]
    assert bearer["error"] == "insufficient_scope" and bearer["scope"] == "openid"


def test_the_claims_are_the_ones_dots_userinfo_view_answers(client, alice):
    headers = consent_bearer(alice, scope="openid profile email")
    ours = client.get(USERINFO, **headers)
    request = RequestFactory().get(USERINFO, **headers)
    dots = UserInfoView.as_view()(request)
    assert ours.status_code == dots.status_code == 200
    assert ours["Content-Type"] == dots["Content-Type"]
    assert ours.json() == json.loads(dots.content)
    assert client.post(USERINFO, **headers).json() == ours.json()  # OIDC Core §5.3.1: GET or POST
