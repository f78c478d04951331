"""What the client gets for an approved transaction (RFC 9396 §7, §9; RFC 8707): the approved
``authorization_details`` in the token response of every delivery mode and in introspection,
stored beside the access token; and tokens restricted to the resources the request named.

Most tests set the request's requested and approved details on its row as the backchannel intake
and the device's approval store them (``authorization_details``, ``approved_authorization_details``)
and check what the client and a resource server see of them; the last goes through both for real.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from oauth2_provider.models import get_access_token_model

from ciba import designations, services
from ciba.models import AccessTokenGrant, AuthenticationRequest, OriginalAuthentication
from tests.conftest import start_request
from tests.protocol import oauth_error, poll, token
from tests.test_introspection import application, introspect

AccessToken = get_access_token_model()


def _checksum(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02100100109307118603"},
    "remittanceInformationUnstructured": "Ref Number Merchant",
}
#: The same payment, approved for a lower amount (what a payment type's narrow rule allows).
LOWER = {**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "100.00"}}
API = "https://api.bank.example/payments"
ACCOUNTS = "https://api.bank.example/accounts"
NT = "client-notification-token-0123456789"


def approved(
    auth_req_id: str,
    *,
    requested: list[dict] | None = None,
    approved: list[dict] | None = None,
    resource: list[str] | None = None,
) -> AuthenticationRequest:
    """The user approved ``auth_req_id``; the request carried ``requested`` details (and
    ``resource``), of which the user approved ``approved`` (``None``: all of them)."""
    ar = AuthenticationRequest.objects.select_related("user").get(auth_req_id=auth_req_id)
    services.approve(ar, user=ar.user)
    AuthenticationRequest.objects.filter(pk=ar.pk).update(
        authorization_details=requested or [],
        approved_authorization_details=approved,
        resource=resource or [],
    )
    return AuthenticationRequest.objects.get(pk=ar.pk)


@pytest.fixture
def resource_server(db: Any) -> tuple[Any, str]:
    app, secret = application("Payments API")
    designations.designate_resource_server(app)
    return app, secret


def tokens_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("mode", ["poll", "ping"])
def test_the_token_response_carries_what_the_user_approved_not_what_was_asked(
    client: Any, alice: Any, make_client: Any, resource_server: Any, mode: str
) -> None:
    app, secret = make_client(mode)
    body = "scope=openid&login_hint=alice" + (f"&client_notification_token={NT}" if mode == "ping" else "")
    auth_req_id = start_request(client, app, secret, body)
    approved(auth_req_id, requested=[PAYMENT], approved=[LOWER])

    tokens = tokens_of(poll(client, app, secret, auth_req_id))

    assert tokens["authorization_details"] == [LOWER]
    answer = introspect(resource_server, tokens["access_token"]).json()
    assert answer["active"] is True
    assert answer["authorization_details"] == [LOWER]


def test_details_approved_whole_come_back_as_requested(client: Any, alice: Any, make_client: Any) -> None:
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approved(auth_req_id, requested=[PAYMENT], approved=None)

    tokens = tokens_of(poll(client, app, secret, auth_req_id))

    assert tokens["authorization_details"] == [PAYMENT]
    grant = AccessTokenGrant.objects.get(access_token__application=app)
    assert grant.authorization_details == [PAYMENT]


def test_a_request_without_details_gets_tokens_without_the_member(
    client: Any, alice: Any, make_client: Any, resource_server: Any
) -> None:
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approved(auth_req_id)

    tokens = tokens_of(poll(client, app, secret, auth_req_id))

    assert "authorization_details" not in tokens
    assert "authorization_details" not in introspect(resource_server, tokens["access_token"]).json()
    assert not AccessTokenGrant.objects.exists()


def test_pushed_tokens_carry_the_approved_details_and_resources(
    client: Any, alice: Any, make_client: Any, recorder: Any, django_capture_on_commit_callbacks: Any
) -> None:
    app, secret = make_client("push", backchannel_client_notification_endpoint=recorder.url("/cb"))
    auth_req_id = start_request(
        client, app, secret, f"scope=openid&login_hint=alice&client_notification_token={NT}"
    )
    # The callback is built after the approval commits, from the row as the approval left it.
    with django_capture_on_commit_callbacks(execute=True):
        approved(auth_req_id, requested=[PAYMENT], approved=[LOWER], resource=[API])

    ((_path, _headers, raw),) = recorder.received
    pushed = json.loads(raw)
    assert pushed["auth_req_id"] == auth_req_id
    assert pushed["authorization_details"] == [LOWER]
    stored = AccessToken.objects.get(application=app)
    assert stored.ciba_grant.authorization_details == [LOWER]
    assert stored.resource == [API]


def test_the_refresh_token_remembers_the_approved_details(client: Any, alice: Any, make_client: Any) -> None:
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approved(auth_req_id, requested=[PAYMENT], approved=[LOWER])

    assert tokens_of(poll(client, app, secret, auth_req_id))["refresh_token"]

    original = OriginalAuthentication.objects.get(refresh_token__application=app)
    assert original.authorization_details == [LOWER]


def test_a_refreshed_token_carries_the_same_details(
    client: Any, alice: Any, make_client: Any, resource_server: Any
) -> None:
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approved(auth_req_id, requested=[PAYMENT], approved=[LOWER])
    first = tokens_of(poll(client, app, secret, auth_req_id))

    refreshed = tokens_of(
        token(client, app, secret, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    )

    assert refreshed["authorization_details"] == [LOWER]
    assert introspect(resource_server, refreshed["access_token"]).json()["authorization_details"] == [LOWER]
    again = tokens_of(
        token(
            client, app, secret, {"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]}
        )
    )
    assert again["authorization_details"] == [LOWER]


def test_a_refreshed_token_carries_the_details_when_the_request_also_asked_for_userinfo_claims(
    client: Any, alice: Any, make_client: Any, resource_server: Any
) -> None:
    """The refreshed access token's userinfo claims are recorded first, in the same row as its
    details: the details must not be read back from that row before they are in it."""
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    ar = approved(auth_req_id, requested=[PAYMENT], approved=[LOWER])
    AuthenticationRequest.objects.filter(pk=ar.pk).update(claims={"userinfo": {"email": None}})
    first = tokens_of(poll(client, app, secret, auth_req_id))
    assert OriginalAuthentication.objects.get(refresh_token__application=app).userinfo_claims

    refreshed = tokens_of(
        token(client, app, secret, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    )

    assert refreshed["authorization_details"] == [LOWER]
    assert introspect(resource_server, refreshed["access_token"]).json()["authorization_details"] == [LOWER]
    grant = AccessToken.objects.get(token_checksum=_checksum(refreshed["access_token"])).ciba_grant
    assert grant.userinfo_claims and grant.authorization_details == [LOWER]


# --- resource indicators (RFC 8707) -------------------------------------------------------


def test_tokens_are_restricted_to_the_resources_the_request_named(
    client: Any, alice: Any, make_client: Any, resource_server: Any
) -> None:
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approved(auth_req_id, resource=[API, ACCOUNTS])

    tokens = tokens_of(poll(client, app, secret, auth_req_id))

    assert introspect(resource_server, tokens["access_token"]).json()["aud"] == [API, ACCOUNTS]
    # The userinfo endpoint is not one of them: the token is refused there.
    userinfo = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert userinfo.status_code == 401


def test_the_token_request_may_narrow_the_resources(
    client: Any, alice: Any, make_client: Any, resource_server: Any
) -> None:
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approved(auth_req_id, resource=[API, ACCOUNTS])

    tokens = tokens_of(
        token(
            client,
            app,
            secret,
            f"grant_type=urn%3Aopenid%3Aparams%3Agrant-type%3Aciba&auth_req_id={auth_req_id}&resource={API}",
        )
    )

    assert introspect(resource_server, tokens["access_token"]).json()["aud"] == [API]
    refresh_token = AccessToken.objects.get(application=app).refresh_token
    assert refresh_token.resource == [API]


def test_the_token_request_may_name_several_resources(
    client: Any, alice: Any, make_client: Any, resource_server: Any
) -> None:
    """RFC 8707 §2: resource may be repeated; it is the one parameter that may."""
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approved(auth_req_id, resource=[API, ACCOUNTS, "https://other.example.com/"])

    tokens = tokens_of(
        token(
            client,
            app,
            secret,
            f"grant_type=urn%3Aopenid%3Aparams%3Agrant-type%3Aciba&auth_req_id={auth_req_id}"
            f"&resource={API}&resource={ACCOUNTS}",
        )
    )

    audience = introspect(resource_server, tokens["access_token"]).json()["aud"]
    assert sorted(audience) == sorted([API, ACCOUNTS])


def test_a_resource_the_request_did_not_name_is_invalid_target_and_costs_nothing(
    client: Any, alice: Any, make_client: Any
) -> None:
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approved(auth_req_id, resource=[API])

    refused = token(
        client,
        app,
        secret,
        {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": auth_req_id, "resource": ACCOUNTS},
    )

    oauth_error(refused, 400, "invalid_target")
    assert not AccessToken.objects.filter(application=app).exists()
    # The request was not consumed: the client can still collect the tokens it may have.
    assert tokens_of(poll(client, app, secret, auth_req_id))["access_token"]


def test_without_resources_named_the_token_is_unrestricted(
    client: Any, alice: Any, make_client: Any, resource_server: Any
) -> None:
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approved(auth_req_id)

    tokens = tokens_of(poll(client, app, secret, auth_req_id))

    assert "aud" not in introspect(resource_server, tokens["access_token"]).json()
    userinfo = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert userinfo.status_code == 200


def test_a_refreshed_token_keeps_the_resources(
    client: Any, alice: Any, make_client: Any, resource_server: Any
) -> None:
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approved(auth_req_id, resource=[API])
    first = tokens_of(poll(client, app, secret, auth_req_id))

    refreshed = tokens_of(
        token(client, app, secret, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    )

    assert introspect(resource_server, refreshed["access_token"]).json()["aud"] == [API]


def test_a_lower_amount_approved_on_the_device_is_what_the_client_collects(
    client: Any, alice: Any, make_client: Any, resource_server: Any
) -> None:
    app, secret = make_client("poll", authorization_details_types=["payment_initiation"])
    body = urlencode(
        {"scope": "openid", "login_hint": "alice", "authorization_details": json.dumps([PAYMENT])}
    )
    auth_req_id = start_request(client, app, secret, body)
    ar = AuthenticationRequest.objects.select_related("user").get(auth_req_id=auth_req_id)

    services.approve(ar, user=alice, authorization_details=[LOWER])
    tokens = tokens_of(poll(client, app, secret, auth_req_id))

    (collected,) = tokens["authorization_details"]
    assert collected["instructedAmount"] == {"currency": "EUR", "amount": "100.00"}
    assert collected["creditorName"] == "Merchant A"
    assert introspect(resource_server, tokens["access_token"]).json()["authorization_details"] == [collected]
