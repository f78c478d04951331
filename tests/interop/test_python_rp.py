"""A Python relying party on idpyoidc (IdentityPython), against the example server.

Of the Python OpenID Connect client libraries, idpyoidc is the one with CIBA: its backchannel
authentication service and CIBA messages; its own client authentication (client_secret_basic,
private_key_jwt) and ID-token verification (signature, iss, aud, exp, iat, at_hash). It runs in
its own virtualenv (tests/interop/python/requirements.txt), apart from the server's packages.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.conftest import binding_message, client_key, python_command
from tests.interop.harness import Site, free_port

SCOPE = "openid profile email"
AUTH_REQ_ID = "urn:openid:params:jwt:claim:auth_req_id"


@pytest.fixture(scope="module")
def python_clients(site: Site, python_rp: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    key_file, jwks = client_key("ES256", tmp_path_factory.mktemp("python-keys"))
    wanted: dict[str, dict[str, Any]] = {
        "python-poll": {"backchannel_token_delivery_mode": "poll"},
        "python-ping": {
            "backchannel_token_delivery_mode": "ping",
            "backchannel_client_notification_endpoint": f"http://127.0.0.1:{free_port()}/cb",
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "id_token_signed_response_alg": "ES256",
            "jwks": jwks,
        },
    }
    registered = site.register(wanted)
    for name, metadata in wanted.items():
        registered[name].update(metadata)
    registered["python-ping"]["key_file"] = key_file
    return registered


def assert_tokens_for_alice(result: dict[str, Any], site: Site) -> None:
    assert result["token_type"].lower() == "bearer"
    assert set(result["scope"]) == set(SCOPE.split())
    assert result["claims"]["iss"] == site.issuer
    assert result["claims"][AUTH_REQ_ID] == result["auth_req_id"]
    assert result["refresh_token"] is True


def test_idpyoidc_poll_mode_with_client_secret_basic(site, python_rp, python_clients, relying_party):
    client = python_clients["python-poll"]
    env = {
        "MODE": "poll",
        "CLIENT_ID": client["client_id"],
        "CLIENT_SECRET": client["client_secret"],
        "SCOPE": SCOPE,
        "BINDING_MESSAGE": binding_message("Python poll"),
    }
    assert_tokens_for_alice(relying_party(site, python_command(python_rp), env), site)


def test_idpyoidc_ping_mode_with_private_key_jwt_and_es256_id_tokens(
    site, python_rp, python_clients, relying_party
):
    client = python_clients["python-ping"]
    env = {
        "MODE": "ping",
        "CLIENT_ID": client["client_id"],
        "CLIENT_KEY": client["key_file"],
        "ID_TOKEN_ALG": "ES256",
        "NOTIFICATION_ENDPOINT": client["backchannel_client_notification_endpoint"],
        "SCOPE": SCOPE,
        "BINDING_MESSAGE": binding_message("Python ping"),
    }
    assert_tokens_for_alice(relying_party(site, python_command(python_rp), env), site)
