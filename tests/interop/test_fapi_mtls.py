"""FAPI-CIBA through a real nginx verifying client certificates, with openid-client.

The example server runs the FAPI-CIBA profile behind nginx as docs/fapi.md and
docs/nginx-mtls.md deploy it (``tests.interop.harness.fapi_site``). The relying party is
docs/clients.md's poll example with mutual TLS (a client certificate on every request), a
PS256-signed authentication request and PS256 ID tokens; the client authenticates with its
certificate (``tls_client_auth``) or with a PS256 assertion (``private_key_jwt``), and either
way its tokens are bound to the certificate (RFC 8705 section 3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import binding_message, client_key, node_command
from tests.interop.harness import Site
from tests.interop.test_openid_client import SCOPE, assert_alice


@pytest.fixture(scope="module")
def fapi_clients(fapi, node: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    site, pki = fapi
    keys = tmp_path_factory.mktemp("fapi-keys")
    common = {
        "backchannel_token_delivery_mode": "poll",
        "backchannel_authentication_request_signing_alg": "PS256",
        "id_token_signed_response_alg": "PS256",
        "tls_client_certificate_bound_access_tokens": True,
    }
    certificates = {"tls_client_auth": pki.issue("interop-tls"), "private_key_jwt": pki.issue("interop-jwt")}
    wanted, signing_keys = {}, {}
    for method in certificates:
        signing_keys[method], jwks = client_key("PS256", keys)
        wanted[method] = {**common, "token_endpoint_auth_method": method, "jwks": jwks}
    wanted["tls_client_auth"]["tls_client_auth_subject_dn"] = certificates["tls_client_auth"].subject_dn
    wanted["private_key_jwt"]["token_endpoint_auth_signing_alg"] = "PS256"
    registered = site.register(wanted)
    for method, certificate in certificates.items():
        registered[method].update(certificate=certificate, signing_key=signing_keys[method])
    return registered


def bound_thumbprints(site: Site, client_id: str) -> set[str]:
    """The certificate thumbprints the server bound this client's access tokens to."""
    code = (
        "import json; from ciba.models import TokenBinding; print(json.dumps(sorted(set("
        f"TokenBinding.objects.filter(access_token__application__client_id={client_id!r})"
        ".values_list('x5t_s256', flat=True)))))"
    )
    return set(json.loads(site.manage("shell", "-c", code).strip().splitlines()[-1]))


@pytest.mark.parametrize("method", ["tls_client_auth", "private_key_jwt"])
def test_fapi_ciba_poll_over_mutual_tls_gets_certificate_bound_ps256_tokens(
    fapi, fapi_clients, relying_party, method
):
    site, _ = fapi
    client = fapi_clients[method]
    certificate = client["certificate"]
    env = {
        "CLIENT_ID": client["client_id"],
        "CLIENT_CERT": str(certificate.cert_path),
        "CLIENT_CERT_KEY": str(certificate.key_path),
        "SERVER_CA": site.ca_file,
        "REQUEST_KEY": client["signing_key"],
        "ID_TOKEN_ALG": "PS256",
        "SCOPE": SCOPE,
        "BINDING_MESSAGE": binding_message(f"FAPI {method}"),
    }
    if method == "private_key_jwt":
        env["CLIENT_KEY"] = client["signing_key"]
    result = relying_party(site, node_command("poll.mjs"), env)

    assert_alice(result, site)
    assert result["id_token_alg"] == "PS256"
    assert result["refreshed"]["id_token_alg"] == "PS256"
    # Every access token (the first and the refreshed one) is bound to the client's certificate.
    assert bound_thumbprints(site, client["client_id"]) == {certificate.x5t_s256}
