"""acr_values and amr (CIBA §7.1, OIDC Core §2, §5.5.1.1, RFC 8176): what the server supports
is published, what the approval achieved is recorded and reaches the ID token, and an essential
acr is never approved by anything weaker."""

from __future__ import annotations

import json

import jwt
import pytest
from django.test import Client, override_settings

from ciba.models import AuthenticationRequest
from tests.protocol import backchannel, consent_bearer, oauth_error, poll

#: A site whose tap achieves a low acr and whose passkey a high one (ciba.assurance).
ACR = {"APPROVAL_ACR": {"session": "urn:acr:low", "passkey": "urn:acr:high"}}
PASSKEY = {**ACR, "APPROVAL_POLICY_CLASS": "tests.backends.PasskeyForHighAcr"}


def start(client, make_client, **params):
    app, secret = make_client("poll")
    response = backchannel(client, app, secret, {"scope": "openid", "login_hint": "alice", **params})
    return app, secret, response


def approve(alice, auth_req_id, **headers):
    return Client().post(f"/o/ciba/requests/{auth_req_id}/approve/", **consent_bearer(alice), **headers)


def id_token_claims(response):
    return jwt.decode(response.json()["id_token"], options={"verify_signature": False})


def test_discovery_publishes_the_acr_values_the_server_supports(client, db):
    with override_settings(CIBA={"ACR_VALUES_SUPPORTED": []}):
        assert "acr_values_supported" not in client.get("/o/.well-known/openid-configuration").json()
    with override_settings(CIBA=ACR):
        document = client.get("/o/.well-known/openid-configuration").json()
    assert document["acr_values_supported"] == ["urn:acr:low", "urn:acr:high"]


@override_settings(CIBA=ACR)
def test_a_plain_approval_achieves_the_weakest_supported_acr(client, alice, make_client):
    app, secret, response = start(client, make_client, acr_values="urn:acr:high urn:acr:low")
    auth_req_id = response.json()["auth_req_id"]
    assert approve(alice, auth_req_id).status_code == 200
    claims = id_token_claims(poll(client, app, secret, auth_req_id))
    assert claims["acr"] == "urn:acr:low" and "amr" not in claims  # no method claimed that ciba cannot know


@override_settings(CIBA=PASSKEY)
def test_a_policy_that_verified_more_claims_the_stronger_acr_and_its_amr(client, alice, make_client):
    app, secret, response = start(client, make_client, acr_values="urn:acr:high")
    auth_req_id = response.json()["auth_req_id"]
    assert approve(alice, auth_req_id, HTTP_X_PASSKEY="ok").status_code == 200
    ar = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    assert (ar.acr, ar.amr) == ("urn:acr:high", "hwk user")
    claims = id_token_claims(poll(client, app, secret, auth_req_id))
    assert claims["acr"] == "urn:acr:high" and claims["amr"] == ["hwk", "user"]


def essential(*values):
    return json.dumps({"id_token": {"acr": {"essential": True, "values": list(values)}}})


@override_settings(CIBA=PASSKEY)
def test_an_essential_acr_is_not_approved_by_anything_weaker(client, alice, make_client):
    app, secret, response = start(client, make_client, claims=essential("urn:acr:high"))
    auth_req_id = response.json()["auth_req_id"]
    ar = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    assert ar.acr_essential and ar.acr_values == "urn:acr:high"
    refused = approve(alice, auth_req_id)
    assert refused.status_code == 403 and refused.json()["error"] == "step_up_required"
    assert "urn:acr:high" in refused.json()["error_description"]
    assert AuthenticationRequest.objects.get(pk=ar.pk).state == "pending"  # the device may step up
    assert approve(alice, auth_req_id, HTTP_X_PASSKEY="ok").status_code == 200
    assert id_token_claims(poll(client, app, secret, auth_req_id))["acr"] == "urn:acr:high"


@override_settings(CIBA={"APPROVAL_POLICY_CLASS": "ciba.backends.policy.AllowAllApprovalPolicy"})
def test_a_site_policy_that_falls_short_of_an_essential_acr_still_tells_the_device_how_to_step_up(
    client, alice, make_client
):
    app, secret, response = start(client, make_client, claims=essential("phr"))
    refused = approve(alice, response.json()["auth_req_id"])
    assert refused.status_code == 403 and refused.json()["error"] == "step_up_required"
    assert (refused.json()["acr"], refused.json()["level"], refused.json()["methods"]) == (
        "phr",
        "passkey",
        ["passkey"],
    )


@pytest.mark.parametrize("settings", [ACR, {}])
def test_an_essential_acr_the_server_cannot_meet_is_refused_before_anyone_is_asked(
    client, alice, make_client, settings
):
    with override_settings(CIBA=settings):
        _, _, response = start(client, make_client, claims=essential("urn:acr:unheard-of"))
    oauth_error(response, 403, "access_denied")
    assert not AuthenticationRequest.objects.exists()


@override_settings(CIBA=ACR)
def test_voluntary_acr_values_never_refuse_a_request(client, alice, make_client):
    _, _, response = start(client, make_client, acr_values="urn:acr:unheard-of")
    assert response.status_code == 200
    claims = json.dumps({"id_token": {"acr": {"values": ["urn:acr:unheard-of"]}}})
    _, _, response = start(client, make_client, claims=claims)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "claims",
    [
        "not json",
        "[]",
        json.dumps({"id_token": []}),
        json.dumps({"id_token": {"acr": "urn:acr:low"}}),
        json.dumps({"id_token": {"acr": {"essential": "yes", "values": ["urn:acr:low"]}}}),
        json.dumps({"id_token": {"acr": {"essential": True}}}),
        json.dumps({"id_token": {"acr": {"essential": True, "values": ["urn acr"]}}}),
    ],
)
def test_a_malformed_claims_parameter_is_invalid_request(client, alice, make_client, claims):
    with override_settings(CIBA=ACR):
        _, _, response = start(client, make_client, claims=claims)
    oauth_error(response, 400, "invalid_request")
