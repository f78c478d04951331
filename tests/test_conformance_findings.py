"""What a certification audit found, each kept as the behaviour a client sees now.

Error descriptions never repeat client input and stay in RFC 6749's character set; a
notification token is a whole b64token; a request object naming another client is
invalid_request; only a confidential client registered for the CIBA grant, with an ID-token
signing algorithm, takes part in CIBA, checked at request time too; the smaller rules of §7.1.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core import checks
from django.test import override_settings
from django.utils import timezone
from oauth2_provider.models import get_application_model

from ciba import services
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest
from tests.keys import public_jwk, request_object_claims, rsa_key, sign
from tests.protocol import DESCRIPTION, backchannel, oauth_error, poll, token

Application = get_application_model()
KEY = rsa_key()
ISSUER = "http://testserver/o"
HOSTILE = 'é"\\\t<x>'


# --- 1. error_description: RFC 6749's character set, never the client's own words ----------


@pytest.mark.parametrize(
    "params",
    [
        f"scope=openid+{HOSTILE}&login_hint=alice",
        f"scope=openid&login_hint=alice&{HOSTILE}=1&{HOSTILE}=2",
        f"scope=openid&login_hint=alice&{HOSTILE}=a%00b",
        "scope=openid&login_hint=alice&client_notification_token=" + HOSTILE,
        "scope=openid&login_hint=alice&requested_expiry=" + HOSTILE,
        "scope=openid&login_hint=alice&binding_message=" + HOSTILE,
        "scope=openid&id_token_hint=" + HOSTILE,
        "scope=openid&login_hint_token=" + HOSTILE,
    ],
)
def test_backchannel_error_descriptions_never_repeat_client_input(client, alice, make_client, params):
    app, secret = make_client("ping")
    response = backchannel(client, app, secret, params.replace(" ", "+"))
    body = response.json()
    assert response.status_code == 400 and "error" in body, body
    assert DESCRIPTION.fullmatch(body.get("error_description", "")), body
    assert "<x>" not in body.get("error_description", "")


def test_a_request_objects_algorithm_is_not_repeated_back(client, alice, make_client):
    import base64
    import json

    app, secret = make_client(
        "poll", backchannel_authentication_request_signing_alg="PS256", jwks={"keys": [public_jwk(KEY, "k1")]}
    )
    header = base64.urlsafe_b64encode(json.dumps({"alg": HOSTILE + "<x>"}).encode()).decode().rstrip("=")
    forged = sign(request_object_claims(app.client_id, ISSUER), KEY, "PS256", "k1").split(".")
    body = oauth_error(
        backchannel(client, app, secret, {"request": f"{header}.{forged[1]}.{forged[2]}"}),
        400,
        "invalid_request",
    )
    assert "<x>" not in body["error_description"]


@pytest.mark.parametrize(
    "params",
    [
        {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": "x", HOSTILE + "<x>": ["1", "2"]},
        {"grant_type": HOSTILE + "<x>"},
        {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": HOSTILE + "<x>"},
    ],
)
def test_token_endpoint_error_descriptions_stay_in_the_character_set(client, alice, make_client, params):
    from urllib.parse import urlencode

    app, secret = make_client("poll")
    response = token(client, app, secret, urlencode(params, doseq=True))
    body = response.json()
    assert response.status_code == 400, body
    assert DESCRIPTION.fullmatch(body.get("error_description", "")), body
    assert "<x>" not in body.get("error_description", "")


# --- 2. client_notification_token: the whole of it is a b64token ---------------------------


@pytest.mark.parametrize("token_value", ["nt-123\n", "nt\n123", "a" * 1025, " nt", "nt="])
def test_a_notification_token_must_be_a_whole_bearer_token(client, alice, make_client, token_value):
    app, secret = make_client("ping")
    params = {"scope": "openid", "login_hint": "alice", "client_notification_token": token_value}
    response = backchannel(client, app, secret, params)
    if token_value == "nt=":
        assert response.status_code == 200  # padding is part of b64token
        return
    oauth_error(response, 400, "invalid_request")
    assert not AuthenticationRequest.objects.exists()


# --- 3. a request object that names another client --------------------------------------


def test_a_request_object_whose_iss_is_another_client_is_invalid_request(client, alice, make_client):
    app, secret = make_client(
        "poll", backchannel_authentication_request_signing_alg="PS256", jwks={"keys": [public_jwk(KEY, "k1")]}
    )
    other, _ = make_client("poll")
    claims = request_object_claims(other.client_id, ISSUER)
    oauth_error(
        backchannel(client, app, secret, {"request": sign(claims, KEY, "PS256", "k1")}),
        400,
        "invalid_request",
    )


def test_a_form_client_id_that_contradicts_the_request_object_is_invalid_client(client, alice, make_client):
    app, secret = make_client(
        "poll", backchannel_authentication_request_signing_alg="PS256", jwks={"keys": [public_jwk(KEY, "k1")]}
    )
    request = sign(request_object_claims(app.client_id, ISSUER), KEY, "PS256", "k1")
    response = backchannel(client, app, secret, {"request": request, "client_id": "someone-else"})
    oauth_error(response, 401, "invalid_client")


# --- 4-6. who takes part in CIBA, checked at request time -----------------------------------


def _saved_through_the_orm(make_client, **fields):
    """A client written past ``clean()``, as fixtures and data migrations do."""
    app, secret = make_client("poll")
    Application.objects.filter(pk=app.pk).update(**fields)
    return Application.objects.get(pk=app.pk), secret


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"authorization_grant_type": "client-credentials"}, "CIBA grant"),
        ({"client_type": "public"}, "confidential"),
        ({"algorithm": ""}, "signing algorithm"),
    ],
)
def test_a_client_that_cannot_use_ciba_is_unauthorized_at_the_backchannel_endpoint(
    client, alice, make_client, fields, words
):
    app, secret = _saved_through_the_orm(make_client, **fields)
    body = oauth_error(
        backchannel(client, app, secret, "scope=openid&login_hint=alice"), 400, "unauthorized_client"
    )
    assert words in body["error_description"]
    assert not AuthenticationRequest.objects.exists()  # nobody was asked


def test_a_client_that_lost_its_signing_algorithm_gets_an_error_not_a_500(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = backchannel(client, app, secret, "scope=openid&login_hint=alice").json()["auth_req_id"]
    ar = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    services.approve(ar, user=alice)
    Application.objects.filter(pk=app.pk).update(algorithm="")  # after the user approved
    oauth_error(poll(client, app, secret, auth_req_id), 400, "unauthorized_client")
    Application.objects.filter(pk=app.pk).update(algorithm="RS256")
    assert poll(client, app, secret, auth_req_id).status_code == 200  # still collectable once fixed


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"algorithm": ""}, "algorithm"),
        ({"authorization_grant_type": "client-credentials"}, "authorization_grant_type"),
        ({"algorithm": "HS256", "hash_client_secret": True}, "hash_client_secret"),
    ],
)
def test_registration_says_what_a_ciba_client_lacks(db, fields, field):
    from django.core.exceptions import ValidationError

    registration = {
        "name": "Kiosk",
        "client_type": Application.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": CIBA_GRANT_TYPE,
        "backchannel_token_delivery_mode": "poll",
        "algorithm": "RS256",
    }
    app = Application(**{**registration, **fields})
    with pytest.raises(ValidationError) as exc:
        app.full_clean()
    assert field in exc.value.message_dict


def test_the_database_check_names_clients_that_cannot_use_ciba(make_client):
    broken, _ = _saved_through_the_orm(make_client, algorithm="")
    make_client("poll")  # a sound one is not listed
    messages = checks.run_checks(tags=[checks.Tags.database], databases=["default"])
    (warning,) = [m for m in messages if m.id == "ciba.W005"]
    assert broken.client_id in warning.msg and "signing algorithm" in warning.msg
    assert [m for m in checks.run_checks(tags=[checks.Tags.database]) if m.id == "ciba.W005"] == []


def test_a_new_client_in_the_admin_starts_with_an_id_token_algorithm(admin_client):
    response = admin_client.get("/admin/ciba/application/add/")
    form = response.context["adminform"].form
    assert form.initial["algorithm"] == "RS256" and form.initial["client_type"] == "confidential"


# --- 9. the smaller rules ------------------------------------------------------------------


def test_a_request_object_living_longer_than_60_minutes_is_refused_without_leeway(client, alice, make_client):
    app, secret = make_client(
        "poll", backchannel_authentication_request_signing_alg="PS256", jwks={"keys": [public_jwk(KEY, "k1")]}
    )
    now = int(time.time())
    claims = request_object_claims(app.client_id, ISSUER, nbf=now, exp=now + 3600 + 30)
    body = oauth_error(
        backchannel(client, app, secret, {"request": sign(claims, KEY, "PS256", "k1")}),
        400,
        "invalid_request",
    )
    assert "3600" in body["error_description"]
    claims = request_object_claims(app.client_id, ISSUER, nbf=now, exp=now + 3600)
    assert backchannel(client, app, secret, {"request": sign(claims, KEY, "PS256", "k1")}).status_code == 200


@override_settings(CIBA={"BACKCHANNEL_THROTTLE_RATE": "1/minute"})
def test_a_throttled_request_gets_a_section_13_code_with_retry_after(client, alice, make_client):
    from django.core.cache import cache

    cache.clear()
    app, secret = make_client("poll")
    assert backchannel(client, app, secret, "scope=openid&login_hint=alice").status_code == 200
    response = backchannel(client, app, secret, "scope=openid&login_hint=alice")
    oauth_error(response, 429, "access_denied")
    assert int(response["Retry-After"]) > 0


@pytest.mark.parametrize(
    "scope, code",
    [("profile", "invalid_request"), ("", "invalid_request"), ("openid+nonsense", "invalid_scope")],
)
def test_openid_is_a_required_value_and_an_unknown_scope_is_invalid_scope(
    client, alice, make_client, scope, code
):
    app, secret = make_client("poll")
    oauth_error(backchannel(client, app, secret, f"scope={scope}&login_hint=alice"), 400, code)


def test_an_expired_request_is_never_issued_even_when_approved_just_before(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = backchannel(client, app, secret, "scope=openid&login_hint=alice").json()["auth_req_id"]
    ar = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    services.approve(ar, user=alice)
    AuthenticationRequest.objects.filter(pk=ar.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    oauth_error(poll(client, app, secret, auth_req_id), 400, "expired_token")
