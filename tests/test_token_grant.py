"""Collecting tokens at DOT's token endpoint with the CIBA grant (CIBA §10.1, §11)."""

from datetime import timedelta

import jwt
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_id_token_model

from ciba import services
from ciba.constants import AUTH_REQ_ID_CLAIM, CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest
from tests.conftest import basic_auth, start_request

State = AuthenticationRequest.State
FORM = "application/x-www-form-urlencoded"


def poll(client, app, secret, auth_req_id):
    return client.post(
        "/o/token/",
        f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={auth_req_id}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def approve(auth_req_id, **kwargs):
    ar = AuthenticationRequest.objects.select_related("user").get(auth_req_id=auth_req_id)
    return services.approve(ar, user=ar.user, **kwargs)


def error_of(response):
    assert response.status_code == 400, response.content
    assert response["Cache-Control"] == "no-store"
    return response.json()["error"]


def test_the_poll_flow_ends_with_tokens_a_client_can_verify(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    assert error_of(poll(client, app, secret, auth_req_id)) == "authorization_pending"
    ar = approve(auth_req_id, acr="urn:acr:high")

    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    tokens = response.json()
    assert {"access_token", "token_type", "expires_in", "id_token", "refresh_token"} <= set(tokens)

    discovery = client.get("/o/.well-known/openid-configuration").json()
    jwks = client.get(discovery["jwks_uri"].removeprefix("http://testserver")).json()
    header = jwt.get_unverified_header(tokens["id_token"])
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        tokens["id_token"], key, algorithms=["RS256"], audience=app.client_id, issuer=discovery["issuer"]
    )
    assert claims["sub"] == str(alice.pk)
    assert claims[AUTH_REQ_ID_CLAIM] == auth_req_id
    assert claims["auth_time"] == int(ar.decided_at.timestamp())
    assert claims["acr"] == "urn:acr:high"
    algorithm = jwt.get_algorithm_by_name("RS256")
    digest = algorithm.compute_hash_digest(tokens["access_token"].encode())
    assert claims["at_hash"] == jwt.utils.base64url_encode(digest[: len(digest) // 2]).decode()


def test_tokens_are_issued_once(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approve(auth_req_id)
    assert poll(client, app, secret, auth_req_id).status_code == 200
    assert error_of(poll(client, app, secret, auth_req_id)) == "invalid_grant"
    assert get_access_token_model().objects.count() == 1
    assert get_id_token_model().objects.count() == 1


def test_polling_faster_than_the_interval_slows_the_client_down(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    assert error_of(poll(client, app, secret, auth_req_id)) == "authorization_pending"
    assert error_of(poll(client, app, secret, auth_req_id)) == "slow_down"
    assert error_of(poll(client, app, secret, auth_req_id)) == "slow_down"
    assert AuthenticationRequest.objects.get(auth_req_id=auth_req_id).interval == 15


def test_a_denied_request_answers_access_denied(client, alice, make_client):
    app, secret = make_client(
        "ping",
    )
    auth_req_id = start_request(
        client, app, secret, "scope=openid&login_hint=alice&client_notification_token=nt"
    )
    AuthenticationRequest.objects.get(auth_req_id=auth_req_id).transition_to(State.DENIED)
    assert error_of(poll(client, app, secret, auth_req_id)) == "access_denied"


def test_an_expired_request_answers_expired_token_without_a_sweep(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    AuthenticationRequest.objects.filter(auth_req_id=auth_req_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert error_of(poll(client, app, secret, auth_req_id)) == "expired_token"


def test_another_clients_or_an_unknown_auth_req_id_is_invalid_grant(client, alice, make_client):
    app, secret = make_client("poll")
    other, other_secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approve(auth_req_id)
    assert error_of(poll(client, other, other_secret, auth_req_id)) == "invalid_grant"
    assert error_of(poll(client, app, secret, "not-an-id")) == "invalid_grant"
    assert poll(client, app, secret, auth_req_id).status_code == 200  # still the owner's


def test_push_clients_may_not_use_the_ciba_grant(client, alice, make_client):
    app, secret = make_client("push")
    auth_req_id = start_request(
        client, app, secret, "scope=openid&login_hint=alice&client_notification_token=nt"
    )
    approve(auth_req_id)
    assert error_of(poll(client, app, secret, auth_req_id)) == "unauthorized_client"


def test_refresh_tokens_from_ciba_keep_working(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    approve(auth_req_id)
    refresh_token = poll(client, app, secret, auth_req_id).json()["refresh_token"]
    response = client.post(
        "/o/token/",
        f"grant_type=refresh_token&refresh_token={refresh_token}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    assert "access_token" in response.json()


def test_a_pending_poll_costs_three_queries_and_one_write(
    client, alice, make_client, django_assert_max_num_queries
):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    poll(client, app, secret, auth_req_id)  # warm-up: the secret check is remembered after this
    with django_assert_max_num_queries(3):
        assert error_of(poll(client, app, secret, auth_req_id)) == "slow_down"


def test_a_repeated_parameter_is_invalid_request_not_silently_collapsed(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    other = start_request(client, app, secret)
    approve(auth_req_id)

    response = client.post(
        "/o/token/",
        f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={other}&auth_req_id={auth_req_id}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )

    assert error_of(response) == "invalid_request"
    assert "auth_req_id" in response.json()["error_description"]
    assert poll(client, app, secret, auth_req_id).status_code == 200  # nothing was consumed


def test_a_client_not_registered_for_ciba_is_unauthorized(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    other, other_secret = make_client("", authorization_grant_type="client-credentials")
    response = poll(client, other, other_secret, auth_req_id)
    assert error_of(response) == "unauthorized_client"


def test_the_tokens_carry_the_scopes_the_user_approved(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret, "scope=openid+profile+email&login_hint=alice")
    approve(auth_req_id, scopes=["openid", "email"])
    tokens = poll(client, app, secret, auth_req_id).json()
    assert set(tokens["scope"].split()) == {"openid", "email"}
    assert get_access_token_model().objects.get().scope == "openid email"


def test_an_acr_is_only_claimed_when_the_approval_recorded_one(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(
        client, app, secret, "scope=openid&login_hint=alice&acr_values=urn%3Aacr%3Ahigh"
    )
    approve(auth_req_id)
    claims = jwt.decode(
        poll(client, app, secret, auth_req_id).json()["id_token"], options={"verify_signature": False}
    )
    assert "acr" not in claims


def test_auth_req_id_and_assertions_are_hidden_from_error_reports(rf, alice, make_client):
    from django.urls import resolve
    from django.views.debug import SafeExceptionReporterFilter

    app, secret = make_client("poll")
    request = rf.post(
        "/o/token/",
        f"grant_type={CIBA_GRANT_TYPE}&auth_req_id=secret-id&client_assertion=a.b.c",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    resolve("/o/token/").func(request)
    shown = SafeExceptionReporterFilter().get_post_parameters(request)
    assert shown["auth_req_id"] != "secret-id"
    assert shown["client_assertion"] != "a.b.c"
    assert shown["grant_type"] == CIBA_GRANT_TYPE
