"""panva's openid-client (Node), unchanged, against the example server: the examples of
docs/clients.md (tests/interop/js) in every delivery mode, with the client authentication
methods and proof-of-possession the library offers.

Each test runs one example as a relying party would run it (configuration in the environment),
approves the request on alice's phone (the consent API) and asserts what the library received:
ID tokens validated by openid-client (signature, iss, aud, exp, iat, auth_time) and by the
example's own checks (at_hash, rt_hash, auth_req_id), refreshed tokens, userinfo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import binding_message, client_key, node_command
from tests.interop.harness import Site, free_port

SCOPE = "openid profile email"
AUTH_REQ_ID = "urn:openid:params:jwt:claim:auth_req_id"

#: private_key_jwt clients: (assertion alg, registered token_endpoint_auth_signing_alg, ID token alg).
#: Only RS256 registers its algorithm; the others rely on OpenID Connect Registration 2.0: with
#: none registered, the server accepts any algorithm it supports.
PRIVATE_KEY_JWT = [
    ("RS256", "RS256", "RS256"),
    ("PS256", "", "PS256"),
    ("ES256", "", "ES256"),
    ("Ed25519", "", "RS256"),
]


@pytest.fixture(scope="module")
def clients(site: Site, node: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every client these tests use, registered as a site owner registers them."""
    keys = tmp_path_factory.mktemp("keys")
    wanted: dict[str, dict[str, Any]] = {
        "poll": {"backchannel_token_delivery_mode": "poll"},
        "ping": {"backchannel_token_delivery_mode": "ping"},
        "push": {"backchannel_token_delivery_mode": "push"},
        "dpop-poll": {"backchannel_token_delivery_mode": "poll", "dpop_bound_access_tokens": True},
        "dpop-ping": {"backchannel_token_delivery_mode": "ping", "dpop_bound_access_tokens": True},
    }
    for mode in ("ping", "push", "dpop-ping"):
        wanted[mode]["backchannel_client_notification_endpoint"] = f"http://127.0.0.1:{free_port()}/cb"
    private_keys = {}
    for alg, registered, id_token_alg in PRIVATE_KEY_JWT:
        private_keys[alg], jwks = client_key(alg, keys)
        wanted[f"private_key_jwt-{alg}"] = {
            "backchannel_token_delivery_mode": "poll",
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": registered,
            "id_token_signed_response_alg": id_token_alg,
            "jwks": jwks,
        }
    registered = site.register(wanted)
    for name, metadata in wanted.items():
        registered[name].update(metadata)
    for alg, path in private_keys.items():
        registered[f"private_key_jwt-{alg}"]["key_file"] = path
    return registered


def credentials(client: dict[str, Any]) -> dict[str, str]:
    """The environment a deployment of the example gives it for this client."""
    env = {"CLIENT_ID": client["client_id"], "SCOPE": SCOPE}
    if "key_file" in client:
        env["CLIENT_KEY"] = client["key_file"]
        env["ID_TOKEN_ALG"] = client["id_token_signed_response_alg"]
    else:
        env["CLIENT_SECRET"] = client["client_secret"]
    if client.get("backchannel_client_notification_endpoint"):
        env["NOTIFICATION_ENDPOINT"] = client["backchannel_client_notification_endpoint"]
    return env


def assert_alice(result: dict[str, Any], site: Site, token_type: str = "bearer") -> None:
    """Tokens for alice, for the scopes asked, with her claims at userinfo."""
    claims = result["claims"]
    assert result["token_type"].lower() == token_type
    assert set(result["scope"].split()) == set(SCOPE.split())
    assert claims["iss"] == site.issuer
    assert claims[AUTH_REQ_ID] == result["auth_req_id"]
    assert isinstance(claims["auth_time"], int)
    assert result["userinfo"]["sub"] == claims["sub"]
    # The profile and email scopes' claims, from the user model.
    assert result["userinfo"]["preferred_username"] == "alice"
    assert result["userinfo"]["email"] == "alice@example.com"


def test_poll_mode_after_openid_connect_discovery(site, clients, relying_party):
    env = {**credentials(clients["poll"]), "BINDING_MESSAGE": binding_message("Poll")}
    result = relying_party(site, node_command("poll.mjs"), env)

    assert_alice(result, site)
    assert result["interval"] == 5 and result["refresh_token"] is True
    assert result["refreshed"]["claims"]["sub"] == result["claims"]["sub"]
    # OpenID Connect Core 12.2: the refreshed ID token keeps the time the user authenticated.
    assert result["refreshed"]["claims"]["auth_time"] == result["claims"]["auth_time"]


def test_poll_mode_after_rfc8414_discovery_at_the_path_inserted_url(site, clients, relying_party):
    """openid-client's ``algorithm: 'oauth2'`` reads the metadata at
    ``/.well-known/oauth-authorization-server/o`` (RFC 8414 section 3.1) for issuer ``.../o``."""
    env = {
        **credentials(clients["poll"]),
        "DISCOVERY": "oauth2",
        "BINDING_MESSAGE": binding_message("Poll 8414"),
    }
    assert_alice(relying_party(site, node_command("poll.mjs"), env), site)


def test_ping_mode_calls_the_client_back_and_it_fetches_the_tokens_once(site, clients, relying_party):
    env = {**credentials(clients["ping"]), "BINDING_MESSAGE": binding_message("Ping")}
    result = relying_party(site, node_command("ping.mjs"), env)

    assert_alice(result, site)


def test_push_mode_delivers_tokens_the_client_verifies_itself(site, clients, relying_party):
    env = {**credentials(clients["push"]), "BINDING_MESSAGE": binding_message("Push")}
    result = relying_party(site, node_command("push.mjs"), env)

    assert_alice(result, site)
    # Pushed tokens are bound to the request and to each other (CIBA 10.3.1): push.mjs checked
    # at_hash, rt_hash and auth_req_id before it printed anything.
    assert result["refresh_token"] is True


def test_dpop_bound_tokens_with_nonces_at_the_token_endpoint_and_userinfo(site, clients, relying_party):
    """The server requires DPoP nonces: openid-client's first token request is answered
    ``use_dpop_nonce`` with a ``DPoP-Nonce``, it retries once with the nonce, and its later
    proofs (the refresh, userinfo) carry the newest nonce the server sent."""
    env = {
        **credentials(clients["dpop-poll"]),
        "DPOP_ALG": "ES256",
        "BINDING_MESSAGE": binding_message("DPoP"),
    }
    result = relying_party(site, node_command("poll.mjs"), env)

    assert_alice(result, site, token_type="dpop")
    assert result["refreshed"]["token_type"].lower() == "dpop"


def test_dpop_proofs_signed_with_ed25519(site, clients, relying_party):
    """openid-client names the algorithm ``Ed25519`` (fully specified, RFC 9864), not ``EdDSA``."""
    env = {
        **credentials(clients["dpop-ping"]),
        "DPOP_ALG": "Ed25519",
        "BINDING_MESSAGE": binding_message("DPoP Ed25519"),
    }
    assert_alice(relying_party(site, node_command("ping.mjs"), env), site, token_type="dpop")


@pytest.mark.parametrize("alg", [alg for alg, _, _ in PRIVATE_KEY_JWT])
def test_private_key_jwt_client_authentication(site, clients, relying_party, alg):
    client = clients[f"private_key_jwt-{alg}"]
    env = {**credentials(client), "BINDING_MESSAGE": binding_message(f"Key {alg}")}
    result = relying_party(site, node_command("poll.mjs"), env)

    assert_alice(result, site)
    assert result["id_token_alg"] == client["id_token_signed_response_alg"]
