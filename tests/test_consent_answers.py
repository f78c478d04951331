"""The consent API's answers to approve and deny, byte for byte: status, headers and body.

The device app parses these answers; the approve request's Python was made cheaper (issue 29:
the request serializer's fields built once per process), and nothing a client reads may change
with it: the members, their order, their values, the headers. Each expected body is written out
here from the request's row, in the JSON DRF renders (compact, members in the serializer's
order, times in UTC with ``Z``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.test import Client
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from ciba.models import AuthenticationRequest
from tests.conftest import start_request
from tests.protocol import consent_bearer

API = "/o/ciba/requests/"
OPENID = {"scope": "openid", "description": "Confirm your identity"}
EMAIL = {"scope": "email", "description": "See your email address"}


def drf_time(value: datetime | None) -> str | None:
    """A time as DRF's ``DateTimeField`` renders it (UTC here): ISO 8601 with ``Z``."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def expected_body(ar: AuthenticationRequest, *, state: str, granted: list[dict[str, str]]) -> bytes:
    ar.refresh_from_db()
    answer: dict[str, Any] = {
        "auth_req_id": ar.auth_req_id,
        "client_name": "Corner Shop",
        "scopes": [OPENID, EMAIL],
        "granted_scopes": granted,
        "binding_message": "W4SCT",
        "authorization_details": [],
        "authorization_details_display": [],
        "authorization_details_digest": "",
        "approved_authorization_details": None,
        "displayed_details_hash": "",
        "request_context": None,
        "acr_values": ["urn:acr:high"],
        "authentication": {
            "required_level": "session",
            "required_acr": "",
            "methods": ["session", "password", "passkey"],
        },
        "state": state,
        "created_at": drf_time(ar.created_at),
        "expires_at": drf_time(ar.expires_at),
        "decided_at": drf_time(ar.decided_at),
        "cancel_reason": "",
        "reported_at": None,
        "device_notification_status": ar.device_notification_status,
    }
    return json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()


def decide(ar: AuthenticationRequest, decision: str, headers: dict[str, str], body: bytes = b"{}") -> Any:
    return Client().post(
        f"{API}{ar.auth_req_id}/{decision}/", body, content_type="application/json", **headers
    )


def json_headers(length: int, vary: str = "Accept", allow: str = "POST, OPTIONS") -> dict[str, str]:
    return {"Content-Type": "application/json", "Vary": vary, "Allow": allow, "Content-Length": str(length)}


def test_an_approval_answers_the_approved_request_byte_for_byte(alice, alices_request):
    response = decide(alices_request, "approve", consent_bearer(alice))
    body = expected_body(alices_request, state="approved", granted=[OPENID, EMAIL])
    assert response.status_code == 200
    assert response.content == body
    assert dict(response.headers) == json_headers(len(body), vary="Accept, Cookie")


def test_an_approval_of_fewer_scopes_answers_what_was_granted(alice, alices_request):
    response = decide(alices_request, "approve", consent_bearer(alice), b'{"scopes":["openid"]}')
    body = expected_body(alices_request, state="approved", granted=[OPENID])
    assert (response.status_code, response.content) == (200, body)
    assert dict(response.headers) == json_headers(len(body), vary="Accept, Cookie")


def test_a_denial_answers_the_denied_request_byte_for_byte(alice, alices_request):
    response = decide(alices_request, "deny", consent_bearer(alice))
    body = expected_body(alices_request, state="denied", granted=[])
    assert (response.status_code, response.content) == (200, body)
    assert dict(response.headers) == json_headers(len(body))


def test_every_answer_of_one_process_is_built_afresh_for_its_own_request(
    client, alice, make_client, alices_request, no_user_limits
):
    app, secret = make_client("poll", name="")
    other = AuthenticationRequest.objects.get(
        auth_req_id=start_request(client, app, secret, "scope=openid&login_hint=alice")
    )
    first = decide(alices_request, "approve", consent_bearer(alice)).json()
    second = decide(other, "deny", consent_bearer(alice)).json()
    assert first["client_name"] == "Corner Shop" and first["state"] == "approved"
    assert second["client_name"] == app.client_id and second["state"] == "denied"
    assert second["scopes"] == [OPENID] and second["acr_values"] == [] and second["binding_message"] == ""
    assert second["auth_req_id"] == other.auth_req_id


def test_the_request_read_after_its_approval_is_the_approvals_answer(alice, alices_request):
    approved = decide(alices_request, "approve", consent_bearer(alice))
    read = Client().get(f"{API}{alices_request.auth_req_id}/", **consent_bearer(alice))
    assert read.status_code == 200 and read.content == approved.content
    assert dict(read.headers) == json_headers(len(read.content), allow="GET, HEAD, OPTIONS")


def test_approving_a_decided_request_answers_409_with_its_state(alice, alices_request):
    decide(alices_request, "approve", consent_bearer(alice))
    response = decide(alices_request, "approve", consent_bearer(alice))
    body = (
        b'{"error":"request_not_pending","error_description":"The request is approved.","state":"approved"}'
    )
    assert (response.status_code, response.content) == (409, body)
    assert dict(response.headers) == json_headers(len(body))


def test_a_token_without_the_consent_scope_answers_403_and_decides_nothing(alice, alices_request):
    response = decide(alices_request, "deny", consent_bearer(alice, scope="read"))
    body = b'{"detail":"Authenticate as the user, with a session or a token carrying the consent scope."}'
    assert (response.status_code, response.content) == (403, body)
    assert dict(response.headers) == json_headers(len(body))
    alices_request.refresh_from_db()
    assert alices_request.state == AuthenticationRequest.State.PENDING


def test_an_expired_token_answers_401_with_its_challenge(alice, alices_request):
    response = decide(alices_request, "approve", consent_bearer(alice, expires_in=-1))
    body = b'{"detail":"Authentication credentials were not provided."}'
    assert (response.status_code, response.content) == (401, body)
    assert dict(response.headers) == {
        **json_headers(len(body), vary="Accept, Cookie"),
        "WWW-Authenticate": 'Bearer realm="api",error="invalid_token",error_description="The access token '
        'has expired."',
    }
    alices_request.refresh_from_db()
    assert alices_request.state == AuthenticationRequest.State.PENDING


def test_no_token_answers_401_with_its_challenge(alices_request):
    response = decide(alices_request, "deny", {})
    body = b'{"detail":"Authentication credentials were not provided."}'
    assert (response.status_code, response.content) == (401, body)
    assert dict(response.headers) == {
        **json_headers(len(body), vary="Accept, Cookie"),
        "WWW-Authenticate": 'Bearer realm="api"',
    }


def bound_bearer(user: Any, **binding: str) -> dict[str, str]:
    """A consent token bound to a DPoP key (``jkt``) or a certificate (``x5t_s256``), presented
    as a plain bearer token: the consent API refuses it with its challenge."""
    from ciba.models import TokenBinding

    headers = consent_bearer(user)
    token = get_access_token_model().objects.get(token=headers["HTTP_AUTHORIZATION"].split()[1])
    TokenBinding.objects.create(access_token=token, **binding)
    return headers


def still_pending(ar: AuthenticationRequest) -> bool:
    return AuthenticationRequest.objects.get(pk=ar.pk).state == AuthenticationRequest.State.PENDING


def test_a_report_answers_the_denied_request_byte_for_byte(alice, alices_request):
    response = decide(alices_request, "report", consent_bearer(alice), b'{"block":false}')
    ar = AuthenticationRequest.objects.get(pk=alices_request.pk)
    body = json.loads(expected_body(alices_request, state="denied", granted=[]))
    body["reported_at"] = drf_time(ar.reported_at)
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    assert (response.status_code, response.content) == (200, content)
    assert dict(response.headers) == json_headers(len(content))


def test_a_report_with_a_block_that_is_no_boolean_answers_400(alice, alices_request):
    response = decide(alices_request, "report", consent_bearer(alice), b'{"block":"yes"}')
    body = b'{"block":["block must be true or false."]}'
    assert (response.status_code, response.content) == (400, body)
    assert dict(response.headers) == json_headers(len(body))


def test_an_approval_with_scopes_not_requested_answers_400_and_decides_nothing(alice, alices_request):
    response = decide(alices_request, "approve", consent_bearer(alice), b'{"scopes":["openid","payments"]}')
    body = b'{"error":"invalid_scope","error_description":"Scopes that were not requested: payments"}'
    assert (response.status_code, response.content) == (400, body)
    assert dict(response.headers) == json_headers(len(body), vary="Accept, Cookie")
    assert still_pending(alices_request)


def test_an_approval_with_a_null_authentication_is_a_tap_in_the_session(alice, alices_request):
    response = decide(
        alices_request, "approve", consent_bearer(alice), b'{"scopes":["openid"],"authentication":null}'
    )
    body = expected_body(alices_request, state="approved", granted=[OPENID])
    assert (response.status_code, response.content) == (200, body)
    assert dict(response.headers) == json_headers(len(body), vary="Accept, Cookie")


def test_a_body_that_is_not_json_answers_400(alice, alices_request):
    response = decide(alices_request, "approve", consent_bearer(alice), b'{"scopes":')
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")
    assert dict(response.headers) == json_headers(len(response.content))
    assert still_pending(alices_request)


def test_a_body_that_is_a_json_list_answers_400(alice, alices_request):
    response = decide(alices_request, "approve", consent_bearer(alice), b"[]")
    body = b'{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}'
    assert (response.status_code, response.content) == (400, body)
    assert dict(response.headers) == json_headers(len(body))


def test_another_users_request_answers_404(alice, alices_request, django_user_model):
    bob = django_user_model.objects.create_user("bob-the-other", password="x")
    response = decide(alices_request, "approve", consent_bearer(bob))
    body = b'{"detail":"No AuthenticationRequest matches the given query."}'
    assert (response.status_code, response.content) == (404, body)
    assert dict(response.headers) == json_headers(len(body))
    assert still_pending(alices_request)


def test_an_unknown_request_answers_404(alice, alices_request):
    response = Client().post(
        f"{API}no-such-request/deny/", b"{}", content_type="application/json", **consent_bearer(alice)
    )
    body = b'{"detail":"No AuthenticationRequest matches the given query."}'
    assert (response.status_code, response.content) == (404, body)
    assert dict(response.headers) == json_headers(len(body))


def test_a_token_of_an_app_the_site_did_not_designate_answers_403(alice, alices_request, make_client):
    app, _ = make_client("poll", name="Not a device app")
    headers = consent_bearer(alice)
    get_access_token_model().objects.filter(token=headers["HTTP_AUTHORIZATION"].split()[1]).update(
        application=app
    )
    response = decide(alices_request, "approve", headers)
    body = b'{"detail":"Authenticate as the user, with a session or a token carrying the consent scope."}'
    assert (response.status_code, response.content) == (403, body)
    assert dict(response.headers) == json_headers(len(body))
    assert still_pending(alices_request)


def test_a_token_of_a_designated_device_app_approves(alice, alices_request, make_client):
    from ciba import designations

    app, _ = make_client("poll", name="Phone")
    designations.designate(app)
    headers = consent_bearer(alice)
    get_access_token_model().objects.filter(token=headers["HTTP_AUTHORIZATION"].split()[1]).update(
        application=app
    )
    response = decide(alices_request, "approve", headers)
    body = expected_body(alices_request, state="approved", granted=[OPENID, EMAIL])
    assert (response.status_code, response.content) == (200, body)
    assert dict(response.headers) == json_headers(len(body), vary="Accept, Cookie")


def test_a_dpop_bound_token_sent_as_bearer_answers_401_with_its_challenge(alice, alices_request):
    response = decide(alices_request, "approve", bound_bearer(alice, jkt="k" * 43))
    body = b'{"detail":"Authentication credentials were not provided."}'
    assert response.status_code == 401 and response.content == body
    headers = dict(response.headers)
    assert headers.pop("WWW-Authenticate").startswith('Bearer realm="api",error="invalid_token"')
    assert headers == json_headers(len(body), vary="Accept, Cookie")
    assert still_pending(alices_request)


def test_a_certificate_bound_token_without_its_certificate_answers_401(alice, alices_request):
    response = decide(alices_request, "deny", bound_bearer(alice, x5t_s256="c" * 43))
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="api",error="invalid_token"')
    assert still_pending(alices_request)


def test_a_deactivated_users_token_answers_401(alice, alices_request):
    headers = consent_bearer(alice)
    alice.is_active = False
    alice.save()
    response = decide(alices_request, "approve", headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert still_pending(alices_request)


def test_a_session_approval_with_its_csrf_token_answers_as_a_token_approval(alice, alices_request):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    browser.get("/admin/login/")  # any page that sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    url = f"{API}{alices_request.auth_req_id}/approve/"
    refused = browser.post(url, b"{}", content_type="application/json")
    body = b'{"detail":"CSRF Failed: CSRF token missing."}'
    assert (refused.status_code, refused.content) == (403, body)
    assert dict(refused.headers) == json_headers(len(body), vary="Accept, Cookie")
    response = browser.post(url, b"{}", content_type="application/json", HTTP_X_CSRFTOKEN=token)
    body = expected_body(alices_request, state="approved", granted=[OPENID, EMAIL])
    assert (response.status_code, response.content) == (200, body)
    assert dict(response.headers) == json_headers(len(body), vary="Accept, Cookie")


def test_accept_json_answers_json_and_accept_html_the_browsable_page(alice, alices_request):
    api = Client()
    url = f"{API}{alices_request.auth_req_id}/deny/"
    headers = consent_bearer(alice)
    html = api.post(url, b"{}", content_type="application/json", HTTP_ACCEPT="text/html", **headers)
    assert html.status_code == 200 and html.headers["Content-Type"] == "text/html; charset=utf-8"
    again = api.post(url, b"{}", content_type="application/json", HTTP_ACCEPT="application/json", **headers)
    body = b'{"error":"request_not_pending","error_description":"The request is denied.","state":"denied"}'
    assert (again.status_code, again.content) == (409, body)
    assert dict(again.headers) == json_headers(len(body))


def test_a_get_of_a_decision_answers_405(alice, alices_request):
    response = Client().get(f"{API}{alices_request.auth_req_id}/approve/", **consent_bearer(alice))
    body = b'{"detail":"Method \\"GET\\" not allowed."}'
    assert (response.status_code, response.content) == (405, body)
    assert dict(response.headers) == json_headers(len(body))
