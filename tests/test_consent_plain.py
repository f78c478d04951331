"""The consent API's bearer-token requests, taken through fewer of DRF's generic steps (issue 29):
the same question asked of PostgreSQL, the same oauthlib check, the same answers.

A device app's decision is authenticated by DOT's resource check on an oauthlib server kept per
process (as DOT's own views keep theirs) and the request is read with the statement DRF's
``get_object`` sends, compiled once. The answers themselves are pinned byte for byte in
``tests/test_consent_answers.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from oauth2_provider.models import get_access_token_model

from ciba.models import AuthenticationRequest
from ciba.views import consent_initial
from ciba.views.consent import _OWN_REQUEST
from tests.conftest import start_request
from tests.protocol import consent_bearer

API = "/o/ciba/requests/"
State = AuthenticationRequest.State


def decide(ar: AuthenticationRequest, decision: str, headers: dict[str, str], **extra: Any) -> Any:
    return Client().post(
        f"{API}{ar.auth_req_id}/{decision}/", b"{}", content_type="application/json", **headers, **extra
    )


def request_reads(response_of: Any) -> list[str]:
    """The SQL of the statements that read an ``AuthenticationRequest`` by its ``auth_req_id``."""
    with CaptureQueriesContext(connection) as queries:
        response_of()
    table = AuthenticationRequest._meta.db_table
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT") and table in q["sql"]]


def test_the_request_is_read_with_the_statement_drfs_get_object_sends(alice, alices_request):
    orm = AuthenticationRequest.objects.filter(user=alice).select_related("client")
    expected = orm.filter(auth_req_id=alices_request.auth_req_id).order_by()
    expected.query.set_limits(high=21)
    assert str(_OWN_REQUEST.queryset(alice.pk, alices_request.auth_req_id).query) == str(expected.query)
    reads = request_reads(lambda: decide(alices_request, "deny", consent_bearer(alice)))
    assert len(reads) == 1 and "LIMIT 21" in reads[0]


def test_a_session_approval_reads_the_request_the_same_way(alice, alices_request):
    browser = Client()
    browser.force_login(alice)
    url = f"{API}{alices_request.auth_req_id}/approve/"
    reads = request_reads(lambda: browser.post(url, b"{}", content_type="application/json"))
    assert len(reads) == 1
    assert AuthenticationRequest.objects.get(pk=alices_request.pk).state == State.APPROVED


@pytest.fixture
def one_server_per_process(settings: Any) -> None:
    """DOT's production default: oauthlib cores are kept, not rebuilt per request."""
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "ALWAYS_RELOAD_OAUTHLIB_CORE": False}
    yield
    consent_initial._core.clear()


def test_one_server_per_process_answers_each_token_for_itself(
    client, alice, make_client, alices_request, django_user_model, no_user_limits, one_server_per_process
):
    bob = django_user_model.objects.create_user("bob", "bob@example.com", "bob-password")
    app, secret = make_client("poll")
    bobs = AuthenticationRequest.objects.get(
        auth_req_id=start_request(client, app, secret, "scope=openid&login_hint=bob")
    )
    assert consent_initial.oauthlib_core() is consent_initial.oauthlib_core()
    assert decide(bobs, "deny", consent_bearer(alice)).status_code == 404  # not alice's
    expired = decide(alices_request, "approve", consent_bearer(alice, expires_in=-1))
    assert expired.status_code == 401 and 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    assert decide(alices_request, "approve", consent_bearer(alice)).json()["state"] == "approved"
    assert decide(bobs, "deny", consent_bearer(bob)).json()["state"] == "denied"
    assert decide(bobs, "deny", {}).status_code == 401


def test_a_changed_provider_setting_builds_a_new_server(settings, one_server_per_process):
    first = consent_initial.oauthlib_core()
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "ACCESS_TOKEN_EXPIRE_SECONDS": 60}
    assert consent_initial.oauthlib_core() is not first


def test_a_token_in_the_dpop_scheme_is_left_to_drf(alice, alices_request):
    token = consent_bearer(alice)["HTTP_AUTHORIZATION"].split()[1]
    response = decide(alices_request, "approve", {"HTTP_AUTHORIZATION": f"DPoP {token}"})
    # An unbound token in the DPoP scheme without a proof: refused, whichever path answered.
    assert response.status_code == 401
    assert AuthenticationRequest.objects.get(pk=alices_request.pk).state == State.PENDING


def test_a_token_in_the_query_string_is_refused_as_before(alice, alices_request):
    token = consent_bearer(alice)["HTTP_AUTHORIZATION"].split()[1]
    response = Client().post(
        f"{API}{alices_request.auth_req_id}/approve/?access_token={token}",
        b"{}",
        content_type="application/json",
    )
    assert response.status_code == 401
    assert AuthenticationRequest.objects.get(pk=alices_request.pk).state == State.PENDING


def test_a_revoked_token_is_refused_at_once(alice, alices_request):
    headers = consent_bearer(alice)
    get_access_token_model().objects.filter(token=headers["HTTP_AUTHORIZATION"].split()[1]).delete()
    assert decide(alices_request, "approve", headers).status_code == 401
    assert AuthenticationRequest.objects.get(pk=alices_request.pk).state == State.PENDING
