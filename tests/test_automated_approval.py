"""The conformance suite's automated approval hook: off by default, guarded by a secret, and
refused by check --deploy when on."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from ciba.models import AuthenticationRequest
from tests.protocol import backchannel, oauth_error, poll

SECRET = "conformance-run-7f3a9c"
ON = {"AUTOMATED_APPROVAL_SECRET": SECRET, "ACR_VALUES_SUPPORTED": ["urn:acr:low", "urn:acr:high"]}


def start(client, make_client, **params):
    app, secret = make_client("poll")
    response = backchannel(client, app, secret, {"scope": "openid", "login_hint": "alice", **params})
    return app, secret, response.json()["auth_req_id"]


def automate(client, auth_req_id, action, secret=SECRET):
    # Exactly the suite's call: POST, no body, no credentials, Accept: application/json.
    url = f"/o/ciba/automated-approval/{secret}/?auth_req_id={auth_req_id}&action={action}"
    return client.generic("POST", url, b"", HTTP_ACCEPT="application/json")


def test_it_is_off_unless_a_secret_is_configured(client, alice, make_client):
    _, _, auth_req_id = start(client, make_client)
    assert automate(client, auth_req_id, "allow", secret="anything").status_code == 404
    assert AuthenticationRequest.objects.get().state == "pending"


@override_settings(CIBA=ON)
def test_a_wrong_secret_is_not_found(client, alice, make_client):
    _, _, auth_req_id = start(client, make_client)
    assert automate(client, auth_req_id, "allow", secret=SECRET + "x").status_code == 404
    assert AuthenticationRequest.objects.get().state == "pending"


@override_settings(CIBA=ON)
def test_allow_approves_as_the_user_at_the_acr_the_client_asked_for(client, alice, make_client):
    app, secret, auth_req_id = start(client, make_client, acr_values="urn:acr:high")
    oauth_error(poll(client, app, secret, auth_req_id), 400, "authorization_pending")
    response = automate(client, auth_req_id, "allow")
    assert response.status_code == 200 and response.json() == {"state": "approved"}
    ar = AuthenticationRequest.objects.get()
    assert (ar.decided_by, ar.acr) == (alice, "urn:acr:high")
    assert poll(client, app, secret, auth_req_id).status_code == 200


@override_settings(CIBA=ON)
def test_deny_denies_and_a_decided_request_is_a_conflict(client, alice, make_client):
    app, secret, auth_req_id = start(client, make_client)
    assert automate(client, auth_req_id, "deny").status_code == 200
    oauth_error(poll(client, app, secret, auth_req_id), 400, "access_denied")
    assert automate(client, auth_req_id, "allow").status_code == 409


@override_settings(CIBA=ON)
@pytest.mark.parametrize("auth_req_id, action, status", [("unknown", "allow", 404), (None, "maybe", 400)])
def test_bad_calls_change_nothing(client, alice, make_client, auth_req_id, action, status):
    _, _, real = start(client, make_client)
    assert automate(client, auth_req_id or real, action).status_code == status
    assert AuthenticationRequest.objects.get().state == "pending"


def test_check_deploy_refuses_it_on():
    with override_settings(CIBA=ON):
        messages = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    (error,) = [m for m in messages if m.id == "ciba.E017"]
    assert error.level == checks.ERROR
    messages = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    assert "ciba.E017" not in [m.id for m in messages]
