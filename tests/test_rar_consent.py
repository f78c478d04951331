"""What the user sees and approves of a rich authorization request (RFC 9396): the consent API
shows the details and their rendering, the approval records the hash of what was displayed
and may approve less where the type allows it, and the push payloads carry a short form."""

from __future__ import annotations

import base64
import copy
import json
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client, override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from ciba import authorization_details as rar
from ciba import services
from ciba.backends.notifier_base import SUMMARIES_MAX_CHARS, SUMMARY_MAX_CHARS, notification_payload
from ciba.conf import ciba_settings
from ciba.errors import InvalidAuthorizationDetails
from ciba.models import AuthenticationRequest, Device
from tests.protocol import consent_bearer as bearer
from tests.protocol import poll
from tests.test_notifications import (  # noqa: F401  (firebase_app: the FCM fixture, HTTP stubbed)
    SECRET,
    RecordingAdapter,
    _session_with,
    firebase_app,
    webhook_settings,
)

State = AuthenticationRequest.State
API = "/o/ciba/requests/"

#: RFC 9396 §2's example of a payment, as a payment kiosk would send it.
PAYMENT = {
    "type": "payment_initiation",
    "locations": ["https://example.com/payments"],
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02100100109307118603"},
    "remittanceInformationUnstructured": "Ref Number Merchant",
}


def with_amount(amount: str, **changes: Any) -> dict[str, Any]:
    detail = copy.deepcopy(PAYMENT)
    detail["instructedAmount"]["amount"] = amount
    detail.update(changes)
    return detail


def validated(*details: dict[str, Any]) -> list[dict[str, Any]]:
    """What the backchannel endpoint stores for these details."""
    return rar.validate(rar.parse(list(details)), allowed_types=["payment_initiation"])


def pending(
    make_client: Any, user: Any, details: list[dict[str, Any]], **fields: Any
) -> AuthenticationRequest:
    app, _ = make_client("poll", name="Corner Shop")
    return services.create_request(
        expires_in=300,
        client=app,
        user=user,
        hint_kind="login_hint",
        scope="openid payments",
        binding_message="K7QP",
        interval=5,
        authorization_details=details,
        **fields,
    )


@pytest.fixture
def payment(alice, make_client) -> AuthenticationRequest:
    return pending(make_client, alice, validated(PAYMENT))


def shown(user: Any, ar: AuthenticationRequest, **headers: Any) -> dict[str, Any]:
    response = Client().get(f"{API}{ar.auth_req_id}/", **bearer(user), **headers)
    assert response.status_code == 200, response.content
    return response.json()


def approve(user: Any, ar: AuthenticationRequest, body: dict[str, Any], language: str = "en") -> Any:
    return Client().post(
        f"{API}{ar.auth_req_id}/approve/",
        json.dumps(body),
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE=language,
        **bearer(user),
    )


# --- what the device shows ---------------------------------------------------------------------------


def test_the_device_sees_the_payment_its_rendering_and_the_digest_to_approve_it(alice, payment):
    item = shown(alice, payment)
    assert item["authorization_details"] == payment.authorization_details
    display = item["authorization_details_display"]
    assert [d["type"] for d in display] == ["payment_initiation"]
    assert "Merchant A" in display[0]["text"] and "123.50" in display[0]["text"]
    assert "\n" not in display[0]["summary"] and "Merchant A" in display[0]["summary"]
    assert item["authorization_details_digest"] == rar.digest(payment.authorization_details, display)
    assert item["approved_authorization_details"] is None and item["displayed_details_hash"] == ""
    # The pending list shows the same to a device that never opens the request itself.
    (listed,) = Client().get(API, **bearer(alice)).json()
    assert listed["authorization_details_display"] == display


GERMAN = {
    "MIDDLEWARE": [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.locale.LocaleMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    "LANGUAGES": [("en", "English"), ("de", "German")],
}


def test_the_display_is_in_the_users_language_and_the_approval_records_that_display(alice, payment):
    english = shown(alice, payment)
    with override_settings(**GERMAN):
        german = shown(alice, payment, HTTP_ACCEPT_LANGUAGE="de")
        assert "123,50" in german["authorization_details_display"][0]["text"]  # German decimals
        assert german["authorization_details_digest"] != english["authorization_details_digest"]
        # A device that showed the English display cannot pass it off as the German one.
        wrong = approve(
            alice, payment, {"displayed_details_hash": english["authorization_details_digest"]}, "de"
        )
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_request"
        response = approve(
            alice, payment, {"displayed_details_hash": german["authorization_details_digest"]}, "de"
        )
    assert response.status_code == 200, response.content
    payment.refresh_from_db()
    assert payment.displayed_details_hash == german["authorization_details_digest"]


def test_a_request_without_details_shows_none_and_approves_as_before(alice, make_client):
    ar = pending(make_client, alice, [])
    item = shown(alice, ar)
    assert item["authorization_details"] == [] and item["authorization_details_display"] == []
    assert item["authorization_details_digest"] == ""
    response = Client().post(f"{API}{ar.auth_req_id}/approve/", **bearer(alice))
    assert response.status_code == 200, response.content
    ar.refresh_from_db()
    assert ar.state == State.APPROVED
    assert ar.approved_authorization_details is None and ar.displayed_details_hash == ""


def test_the_device_is_shown_the_clients_request_context(alice, make_client):
    context = {"channel": "kiosk", "location": "Corner Shop, till 3"}
    ar = pending(make_client, alice, validated(PAYMENT), request_context=context)
    assert shown(alice, ar)["request_context"] == context


def test_the_details_cannot_be_changed_through_the_consent_api(alice, payment):
    url = f"{API}{payment.auth_req_id}/"
    other = json.dumps({"authorization_details": [with_amount("1.00")]})
    for method in (Client().put, Client().patch):
        assert method(url, other, content_type="application/json", **bearer(alice)).status_code == 405
    payment.refresh_from_db()
    assert payment.authorization_details == validated(PAYMENT)


# --- approving what was displayed ----------------------------------------------------------------------


def test_approving_records_the_hash_of_what_was_displayed_and_the_approved_details(alice, payment):
    digest = shown(alice, payment)["authorization_details_digest"]
    response = approve(alice, payment, {"displayed_details_hash": digest})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "approved"
    assert body["approved_authorization_details"] == payment.authorization_details
    assert body["displayed_details_hash"] == digest
    payment.refresh_from_db()
    assert payment.state == State.APPROVED
    assert payment.displayed_details_hash == digest
    assert payment.approved_authorization_details == payment.authorization_details


def test_an_approval_that_does_not_say_what_was_displayed_is_refused(alice, payment):
    response = approve(alice, payment, {})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "displayed_details_hash" in response.json()["error_description"]
    payment.refresh_from_db()
    assert payment.state == State.PENDING and payment.displayed_details_hash == ""


def test_an_approval_of_what_another_request_displayed_is_refused(alice, make_client, payment):
    other = pending(make_client, alice, validated(with_amount("12.35")))
    response = approve(
        alice, payment, {"displayed_details_hash": shown(alice, other)["authorization_details_digest"]}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    payment.refresh_from_db()
    assert payment.state == State.PENDING


@pytest.mark.parametrize("value", ["", "ABC", "0" * 63, "g" * 64, 64, None])
def test_a_malformed_hash_is_a_400(alice, payment, value):
    response = approve(alice, payment, {"displayed_details_hash": value})
    assert response.status_code == 400
    payment.refresh_from_db()
    assert payment.state == State.PENDING


def test_the_device_may_approve_a_lower_amount_and_that_is_what_is_recorded(alice, payment):
    digest = shown(alice, payment)["authorization_details_digest"]
    response = approve(
        alice, payment, {"displayed_details_hash": digest, "authorization_details": [with_amount("100.00")]}
    )
    assert response.status_code == 200, response.content
    payment.refresh_from_db()
    (approved,) = payment.approved_authorization_details
    assert approved["instructedAmount"] == {"currency": "EUR", "amount": "100.00"}
    assert approved["creditorName"] == "Merchant A"
    assert payment.displayed_details_hash == digest  # what was shown: the requested payment
    assert payment.authorization_details == validated(PAYMENT)  # the request itself is unchanged
    assert response.json()["approved_authorization_details"] == payment.approved_authorization_details


def test_the_client_collects_the_lower_amount_the_device_approved(client, alice, make_client):
    app, secret = make_client("poll", authorization_details_types=["payment_initiation"])
    ar = services.create_request(
        expires_in=300,
        client=app,
        user=alice,
        hint_kind="login_hint",
        scope="openid payments",
        interval=5,
        authorization_details=validated(PAYMENT),
    )
    digest = shown(alice, ar)["authorization_details_digest"]
    body = {"displayed_details_hash": digest, "authorization_details": [with_amount("100.00")]}
    assert approve(alice, ar, body).status_code == 200

    tokens = poll(client, app, secret, ar.auth_req_id)
    assert tokens.status_code == 200, tokens.content
    (collected,) = tokens.json()["authorization_details"]
    assert collected["instructedAmount"] == {"currency": "EUR", "amount": "100.00"}
    assert collected["creditorName"] == "Merchant A"


@pytest.mark.parametrize(
    "approved",
    [
        [with_amount("200.00")],  # more than requested
        [with_amount("100.00", creditorName="Someone Else")],  # another payee
        [with_amount("100.00", instructedAmount={"currency": "USD", "amount": "100.00"})],
        [],  # nothing at all: that is a denial
        [{"type": "account_information"}],
        "not json",
        {"type": "payment_initiation"},
        [1, 2],
        [{"type": "payment_initiation", "nested": [[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]}],
    ],
)
def test_approving_more_or_other_than_was_requested_is_refused(alice, payment, approved):
    digest = shown(alice, payment)["authorization_details_digest"]
    response = approve(alice, payment, {"displayed_details_hash": digest, "authorization_details": approved})
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_authorization_details"
    payment.refresh_from_db()
    assert payment.state == State.PENDING and payment.approved_authorization_details is None


def test_details_cannot_be_approved_for_a_request_that_has_none(alice, make_client):
    ar = pending(make_client, alice, [])
    response = approve(alice, ar, {"authorization_details": [PAYMENT]})
    assert response.status_code == 400 and response.json()["error"] == "invalid_authorization_details"
    ar.refresh_from_db()
    assert ar.state == State.PENDING


def test_a_request_whose_type_is_no_longer_configured_is_shown_but_can_only_be_denied(alice, payment):
    with override_settings(CIBA={"AUTHORIZATION_DETAILS_TYPES": {}}):
        item = shown(alice, payment)
        assert item["authorization_details"] == payment.authorization_details
        (display,) = item["authorization_details_display"]
        assert "Merchant A" in display["text"]  # enough to recognise it, and deny it
        assert item["authorization_details_digest"] == ""  # nothing to approve with
        digest = rar.digest(payment.authorization_details, item["authorization_details_display"])
        for body in ({"displayed_details_hash": digest}, {"displayed_details_hash": "0" * 64}):
            response = approve(alice, payment, body)
            assert response.status_code == 400 and response.json()["error"] == "invalid_authorization_details"
        with pytest.raises(InvalidAuthorizationDetails):
            services.approve(payment, user=alice)  # nor from the server side
        payment.refresh_from_db()
        assert payment.state == State.PENDING
        assert Client().post(f"{API}{payment.auth_req_id}/deny/", **bearer(alice)).status_code == 200


def test_a_server_side_approval_records_the_hash_of_the_standard_display(alice, payment):
    services.approve(payment, user=alice)
    display = rar.rendering(payment.authorization_details)
    assert payment.displayed_details_hash == rar.digest(payment.authorization_details, display)
    assert payment.approved_authorization_details == payment.authorization_details


# --- what the push payloads carry -----------------------------------------------------------------------


def test_notifications_carry_one_short_line_per_detail(alice, make_client):
    ar = pending(make_client, alice, validated(PAYMENT, with_amount("5.00", creditorName="Merchant B")))
    payload = notification_payload(ar)
    summaries = payload["authorization_details"]
    assert [s["type"] for s in summaries] == ["payment_initiation", "payment_initiation"]
    assert "Merchant A" in summaries[0]["summary"] and "Merchant B" in summaries[1]["summary"]
    assert all("\n" not in s["summary"] and len(s["summary"]) <= SUMMARY_MAX_CHARS for s in summaries)
    assert "creditorAccount" not in json.dumps(payload)  # the short form, never the details themselves


def test_a_request_without_details_has_the_same_payload_as_before(alice, make_client):
    assert "authorization_details" not in notification_payload(pending(make_client, alice, []))


def test_a_notification_of_a_type_no_longer_configured_still_goes_out(alice, payment):
    with override_settings(CIBA={"AUTHORIZATION_DETAILS_TYPES": {}}):
        payload = notification_payload(payment)
    (summary,) = payload["authorization_details"]
    assert summary["type"] == "payment_initiation" and summary["summary"]


def test_the_more_details_the_shorter_each_line_so_a_notification_stays_small(alice, make_client):
    most = ciba_settings.AUTHORIZATION_DETAILS_MAX_ITEMS
    name = "Merchant with a rather long registered trading name of seventy chars"[:70]
    ar = pending(
        make_client,
        alice,
        validated(*(with_amount(f"{i}.00", creditorName=name) for i in range(1, most + 1))),
    )
    summaries = [s["summary"] for s in notification_payload(ar)["authorization_details"]]
    assert len(summaries) == most
    assert all(len(s) <= SUMMARIES_MAX_CHARS // most and s.endswith("…") for s in summaries)
    assert sum(map(len, summaries)) <= SUMMARIES_MAX_CHARS


def test_the_webhook_event_carries_the_short_form(
    alice, make_client, recorder, django_capture_on_commit_callbacks
):
    Device.objects.create(user=alice, kind="apns", token="apns-token", label="iPhone")
    with override_settings(CIBA=webhook_settings(recorder)), django_capture_on_commit_callbacks(execute=True):
        ar = pending(make_client, alice, validated(PAYMENT))
    ((_, headers, body),) = recorder.received
    event = Webhook(SECRET).verify(body, {k.lower(): v for k, v in headers.items()})
    assert event["data"]["authorization_details"] == notification_payload(ar)["authorization_details"]
    assert "Merchant A" in event["data"]["authorization_details"][0]["summary"]


def test_fcm_data_carries_the_short_form_as_json(alice, make_client, firebase_app):  # noqa: F811
    from ciba.backends.fcm import FcmNotifier

    app, sent = firebase_app
    Device.objects.create(user=alice, kind="fcm", token="fcm-token-1")
    ar = pending(make_client, alice, validated(PAYMENT))
    with override_settings(CIBA={"FCM_APP_NAME": app.name}):
        assert FcmNotifier().send(auth_request=ar, devices=list(Device.objects.all())).delivered
    data = sent[0][2]["message"]["data"]
    assert json.loads(data["authorization_details"]) == notification_payload(ar)["authorization_details"]


def test_a_web_push_of_the_most_details_allowed_fits_in_one_push_message(alice, make_client, monkeypatch):
    """RFC 8030 §7.2: a push service need not accept more than 4096 bytes of payload."""
    pytest.importorskip("pywebpush", reason="the webpush extra is not installed")
    import http_ece
    from py_vapid import Vapid

    from ciba.backends.webpush import WebPushNotifier

    receiver = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    public = receiver.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    b64 = lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")  # noqa: E731
    Device.objects.create(
        user=alice,
        kind="webpush",
        subscription={
            "endpoint": "https://push.example.net/send/abc",
            "keys": {"p256dh": b64(public), "auth": b64(auth)},
        },
    )
    vapid = Vapid()
    vapid.generate_keys()
    adapter = RecordingAdapter()
    monkeypatch.setattr(WebPushNotifier, "session", lambda self: _session_with(adapter))
    name = "商" * 67  # three bytes a character in UTF-8; creditorName holds at most 70
    most = ciba_settings.AUTHORIZATION_DETAILS_MAX_ITEMS
    ar = pending(
        make_client,
        alice,
        validated(*(with_amount(f"{i}.00", creditorName=f"{i} {name}".strip()) for i in range(1, most + 1))),
    )
    with override_settings(
        CIBA={
            "WEBPUSH_VAPID_PRIVATE_KEY": vapid.private_pem().decode(),
            "WEBPUSH_VAPID_SUBJECT": "mailto:ops@example.com",
        }
    ):
        assert WebPushNotifier().send(auth_request=ar, devices=list(Device.objects.all())).delivered
    (request,) = adapter.requests
    assert len(request.body) <= 4096
    plain = http_ece.decrypt(request.body, private_key=receiver, auth_secret=auth, version="aes128gcm")
    summaries = json.loads(plain)["authorization_details"]
    assert len(summaries) == most and all(s["summary"] for s in summaries)  # a line for each, cut short


# --- whatever a device sends -----------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)
#: Approvals that look like the payment: amounts as numbers or odd strings, other payees, unicode.
PAYMENT_LIKE = st.lists(
    st.builds(
        with_amount,
        st.one_of(st.decimals(allow_nan=False, places=2).map(str), st.text(max_size=12)),
        creditorName=st.one_of(st.just("Merchant A"), st.text(max_size=80)),
    ).map(lambda d: {**d, "instructedAmount": {**d["instructedAmount"]}}),
    max_size=3,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(approved=st.one_of(JSON, PAYMENT_LIKE), keep_hash=st.booleans())
@example(approved=[with_amount("0.01")], keep_hash=True)
@example(approved=None, keep_hash=True)
@example(approved=[with_amount("123.50"), with_amount("1.00")], keep_hash=True)
def test_any_approval_body_is_an_approval_or_a_400_and_a_refusal_changes_nothing(
    alice, make_client, no_user_limits, approved, keep_hash
):
    ar = pending(make_client, alice, validated(PAYMENT))
    digest = shown(alice, ar)["authorization_details_digest"]
    body = {"authorization_details": approved, "displayed_details_hash": digest if keep_hash else "f" * 64}
    response = approve(alice, ar, body)
    ar.refresh_from_db()
    if response.status_code == 200:
        assert keep_hash and ar.state == State.APPROVED
        assert rar.narrow(ar.authorization_details, ar.approved_authorization_details)
    else:
        assert response.status_code == 400, response.content
        refusal = response.json()
        # An OAuth error, the consent API's field errors (as for a malformed scopes list), or
        # its parser's refusal of a body that is not JSON (NaN).
        assert (
            refusal.get("error") in {"invalid_request", "invalid_authorization_details"}
            or set(refusal) <= {"authorization_details", "displayed_details_hash"}
            or set(refusal) == {"detail"}
        ), refusal
        assert ar.state == State.PENDING and ar.approved_authorization_details is None
