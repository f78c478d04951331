"""Registering CIBA clients and browsing requests in the Django admin."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import get_application_model

from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest

Application = get_application_model()
ADD_URL = "/admin/ciba/application/add/"


@pytest.fixture
def staff(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def form_data(**overrides):
    data = {
        "name": "Checkout kiosk",
        "client_id": "kiosk-1",
        "client_secret": "a-long-enough-client-secret",
        "hash_client_secret": "on",
        "client_type": "confidential",
        "authorization_grant_type": CIBA_GRANT_TYPE,
        "algorithm": "RS256",
        "backchannel_token_delivery_mode": "push",
        "backchannel_client_notification_endpoint": "https://kiosk.example.com/cb",
        "token_endpoint_auth_method": "client_secret_basic",
        "backchannel_authentication_request_signing_alg": "",
        "jwks": "",
        "jwks_uri": "",
        "redirect_uris": "",
        "post_logout_redirect_uris": "",
        "allowed_origins": "",
    }
    data.update(overrides)
    return data


def test_the_add_form_has_a_ciba_fieldset(staff):
    page = staff.get(ADD_URL).content.decode()
    assert "<h2" in page and "CIBA" in page
    assert 'name="backchannel_token_delivery_mode"' in page
    assert 'name="backchannel_client_notification_endpoint"' in page


def test_a_ping_client_without_endpoint_is_refused_next_to_the_field(staff):
    response = staff.post(
        ADD_URL,
        form_data(backchannel_token_delivery_mode="ping", backchannel_client_notification_endpoint=""),
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "needs a client notification endpoint" in " ".join(
        form.errors["backchannel_client_notification_endpoint"]
    )
    assert not Application.objects.exists()
    page = response.content.decode()
    assert 'class="errorlist' in page and "needs a client notification endpoint" in page


def test_a_valid_push_client_saves(staff):
    response = staff.post(ADD_URL, form_data())
    assert response.status_code == 302, response.context["adminform"].form.errors
    app = Application.objects.get(client_id="kiosk-1")
    assert app.backchannel_token_delivery_mode == "push"
    assert app.client_secret.startswith("md5$")  # hashed at rest


def test_the_request_admin_is_read_only_and_masks_credentials(staff, alice, make_client):
    client, _ = make_client("ping")
    ar = AuthenticationRequest.objects.create(
        client=client,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token="notification-token-that-is-secret",
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    listing = staff.get("/admin/ciba/authenticationrequest/").content.decode()
    detail = staff.get(f"/admin/ciba/authenticationrequest/{ar.pk}/change/").content.decode()
    for page in (listing, detail):
        assert ar.auth_req_id not in page
        assert "notification-token-that-is-secret" not in page
    assert f"…{ar.auth_req_id[-4:]}" in listing
    assert staff.get("/admin/ciba/authenticationrequest/add/").status_code == 403
    assert (
        staff.post(f"/admin/ciba/authenticationrequest/{ar.pk}/delete/", {"post": "yes"}).status_code == 403
    )


def test_requests_can_be_filtered_by_state_and_searched_by_user(staff, alice, make_client):
    client, _ = make_client()
    AuthenticationRequest.objects.create(
        client=client,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    assert staff.get("/admin/ciba/authenticationrequest/?state=pending").context["cl"].result_count == 1
    assert staff.get("/admin/ciba/authenticationrequest/?state=denied").context["cl"].result_count == 0
    assert staff.get("/admin/ciba/authenticationrequest/?q=alice").context["cl"].result_count == 1
    assert staff.get("/admin/ciba/authenticationrequest/?q=nobody").context["cl"].result_count == 0


def test_staff_can_resend_the_device_notification_of_pending_requests(
    staff, alice, make_client, django_capture_on_commit_callbacks, caplog
):
    import logging

    from ciba import services

    client, _ = make_client("poll")
    pending = services.create_request(
        expires_in=60, client=client, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    decided = services.create_request(
        expires_in=60, client=client, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    services.deny(decided, user=alice)
    AuthenticationRequest.objects.filter(pk=pending.pk).update(device_notification_status="failed")
    with (
        caplog.at_level(logging.INFO, logger="ciba.notifiers"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = staff.post(
            "/admin/ciba/authenticationrequest/",
            {"action": "resend_device_notification", "_selected_action": [pending.pk, decided.pk]},
            follow=True,
        )
    assert "1 notification re-sent; 1 request(s) no longer pending were skipped." in response.content.decode()
    assert caplog.text.count("awaits a decision") == 1
    assert AuthenticationRequest.objects.get(pk=pending.pk).device_notification_status == "sent"


def test_device_admin_never_shows_push_tokens(staff, alice):
    from ciba.models import Device

    device = Device.objects.create(user=alice, kind="fcm", token="very-secret-push-token")
    page = staff.get(f"/admin/ciba/device/{device.pk}/change/").content.decode()
    assert "very-secret-push-token" not in page
    assert str(device.public_id) in page
