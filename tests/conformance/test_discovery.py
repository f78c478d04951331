"""``fapi-ciba-id1-discovery-end-point-verification``: the discovery document."""

from __future__ import annotations

CIBA_GRANT = "urn:openid:params:grant-type:ciba"


def discovery(client):
    response = client.get("/o/.well-known/openid-configuration")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    return response.json()


def test_fapi_ciba_id1_discovery_end_point_verification(client):
    document = discovery(client)
    assert document["issuer"] == "http://testserver/o"  # CheckDiscIssuer...
    assert document["backchannel_authentication_endpoint"].endswith("/o/backchannel-authentication/")
    assert {"poll", "ping"} <= set(document["backchannel_token_delivery_modes_supported"])
    assert {"PS256", "ES256"} & set(
        document["backchannel_authentication_request_signing_alg_values_supported"]
    )
    assert isinstance(document["backchannel_user_code_parameter_supported"], bool)
    assert CIBA_GRANT in document["grant_types_supported"]  # FAPICIBACheckDiscEndpointGrantTypesSupported
    assert "private_key_jwt" in document["token_endpoint_auth_methods_supported"]
    assert document["acr_values_supported"] == ["urn:example:loa:1", "urn:example:loa:2"]
    for url in ("token_endpoint", "jwks_uri"):
        assert document[url].startswith("http://testserver/")


def test_fapi_ciba_id1_discovery_end_point_verification_fapi_items(client):
    """``FAPICIBACheckDiscEndpoint...``: certificate-bound tokens, PS256/ES256 ID tokens and
    nothing weaker, only private_key_jwt and mTLS client authentication, no push mode."""
    document = discovery(client)
    assert document.get("tls_client_certificate_bound_access_tokens") is True
    assert set(document["id_token_signing_alg_values_supported"]) == {"PS256", "ES256"}
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    }
    assert set(document["token_endpoint_auth_signing_alg_values_supported"]) == {"PS256", "ES256"}
    assert set(document["backchannel_authentication_request_signing_alg_values_supported"]) == {
        "PS256",
        "ES256",
    }
    assert set(document["backchannel_token_delivery_modes_supported"]) == {"poll", "ping"}
    assert set(document["dpop_signing_alg_values_supported"]) == {"PS256", "ES256"}
