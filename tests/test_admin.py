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


# --- the FAPI-CIBA profile in the client form -----------------------------------------------

FAPI_RULE_FIELDS = (
    "token_endpoint_auth_method",
    "token_endpoint_auth_signing_alg",
    "backchannel_authentication_request_signing_alg",
    "id_token_signed_response_alg",
    "backchannel_token_delivery_mode",
    "jwks",
    "tls_client_certificate_bound_access_tokens",
)


@pytest.fixture
def fapi(settings):
    settings.CIBA = {
        **settings.CIBA,
        "PROFILE": "fapi-ciba",
        "TRUSTED_PROXIES": ["127.0.0.1/32"],
        "MTLS_CERT_HEADER": "HTTP_X_SSL_CLIENT_CERT",
    }


def choices(form, name):
    return [value for value, _label in form.fields[name].choices]


def posted(form):
    """What a browser submits for ``form`` as it was rendered."""
    data = {}
    for name, field in form.fields.items():
        value = field.prepare_value(form[name].value())
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    return data


def test_the_form_has_the_mtls_names_binding_flags_and_the_id_token_algorithm(admin_client):
    page = admin_client.get(ADD_URL).content.decode()
    for name in (
        "tls_client_auth_subject_dn",
        "tls_client_auth_san_dns",
        "tls_client_auth_san_uri",
        "tls_client_auth_san_ip",
        "tls_client_auth_san_email",
        "tls_client_certificate_bound_access_tokens",
        "dpop_bound_access_tokens",
        "id_token_signed_response_alg",
    ):
        assert f'name="{name}"' in page
    assert "Client authentication and keys" in page and "FAPI-CIBA" not in page


def test_the_fapi_profile_states_its_rule_next_to_each_field_it_constrains(admin_client, fapi):
    response = admin_client.get(ADD_URL)
    form = response.context["adminform"].form
    for name in FAPI_RULE_FIELDS:
        assert "FAPI-CIBA: " in str(form.fields[name].help_text), name
    assert "FAPI-CIBA: poll or ping; push is not allowed." in response.content.decode()
    assert "runs the FAPI-CIBA profile" in response.content.decode()


def test_the_fapi_profile_offers_only_what_it_allows(admin_client, fapi):
    form = admin_client.get(ADD_URL).context["adminform"].form
    assert choices(form, "backchannel_token_delivery_mode") == ["", "poll", "ping"]
    assert choices(form, "token_endpoint_auth_method") == [
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    ]
    assert choices(form, "token_endpoint_auth_signing_alg") == ["", "PS256", "ES256"]
    assert choices(form, "backchannel_authentication_request_signing_alg") == ["", "PS256", "ES256"]
    assert choices(form, "id_token_signed_response_alg") == ["", "PS256", "ES256"]
    assert form.initial["token_endpoint_auth_method"] == "private_key_jwt"


def test_without_a_certificate_header_the_fapi_profile_offers_private_key_jwt_only(admin_client, settings):
    settings.CIBA = {**settings.CIBA, "PROFILE": "fapi-ciba"}
    form = admin_client.get(ADD_URL).context["adminform"].form
    assert choices(form, "token_endpoint_auth_method") == ["private_key_jwt"]


def test_a_new_client_under_fapi_is_refused_with_the_profile_reason_at_the_field(admin_client, fapi):
    response = admin_client.post(ADD_URL, form_data(backchannel_token_delivery_mode="poll"))
    errors = response.context["adminform"].form.errors
    assert "Select a valid choice" in " ".join(errors["token_endpoint_auth_method"])  # not offered
    response = admin_client.post(
        ADD_URL,
        form_data(
            backchannel_token_delivery_mode="poll",
            token_endpoint_auth_method="tls_client_auth",
            tls_client_auth_subject_dn="CN=kiosk-1,O=Shop",
        ),
    )
    errors = response.context["adminform"].form.errors
    assert "FAPI-CIBA authentication requests are signed with PS256 or ES256" in " ".join(
        errors["backchannel_authentication_request_signing_alg"]
    )
    assert "FAPI-CIBA ID tokens are signed with PS256 or ES256" in " ".join(
        errors["id_token_signed_response_alg"]
    )
    assert not Application.objects.exists()


def test_a_stored_client_contradicting_the_profile_shows_its_values_and_the_reasons(
    admin_client, make_client, fapi, settings
):
    settings.CIBA = {**settings.CIBA, "PROFILE": ""}
    client, _ = make_client("push")  # client_secret_basic, registered before the switch
    settings.CIBA = {**settings.CIBA, "PROFILE": "fapi-ciba"}
    url = f"/admin/ciba/application/{client.pk}/change/"
    form = admin_client.get(url).context["adminform"].form
    assert form["backchannel_token_delivery_mode"].value() == "push"
    assert ("push", "push (not allowed by FAPI-CIBA)") in form.fields[
        "backchannel_token_delivery_mode"
    ].choices
    assert "client_secret_basic" in choices(form, "token_endpoint_auth_method")

    response = admin_client.post(url, posted(form))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "FAPI-CIBA does not allow the push mode" in " ".join(errors["backchannel_token_delivery_mode"])
    assert (
        "FAPI-CIBA allows private_key_jwt, tls_client_auth or self_signed_tls_client_auth only"
        in " ".join(errors["token_endpoint_auth_method"])
    )
    page = response.content.decode()
    assert 'class="errorlist' in page and "FAPI-CIBA does not allow the push mode" in page
    client.refresh_from_db()
    assert client.backchannel_token_delivery_mode == "push"


# --- actions that change state need the change permission, not only the view permission -------


def staff_with(user_model, *codenames):
    from django.contrib.auth.models import Permission
    from django.test import Client

    user = user_model.objects.create_user(f"staff-{len(codenames)}", "staff@example.com", "pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="ciba", codename__in=codenames)
    )
    browser = Client()
    browser.force_login(user)
    return browser


def offered_actions(browser, url):
    response = browser.get(url)
    assert response.status_code == 200
    form = response.context["action_form"]
    return {name for name, _label in form.fields["action"].choices if name} if form else set()


@pytest.mark.parametrize(
    ("url", "action", "service", "view", "change"),
    [
        (
            "/admin/ciba/authenticationrequest/",
            "resend_device_notification",
            "resend_device_notification",
            "view_authenticationrequest",
            "change_authenticationrequest",
        ),
        (
            "/admin/ciba/callbackdelivery/",
            "retry_deliveries",
            "retry_failed_callbacks",
            "view_callbackdelivery",
            "change_callbackdelivery",
        ),
    ],
)
def test_view_only_staff_can_neither_resend_notifications_nor_retry_callbacks(
    alice, make_client, monkeypatch, url, action, service, view, change
):
    from ciba import services

    calls = []
    monkeypatch.setattr(services, service, lambda *args, **kwargs: calls.append(args) or [])
    app, _ = make_client("poll")
    ar = services.create_request(
        expires_in=60, client=app, user=alice, hint_kind="login_hint", scope="openid", interval=5
    )
    User = get_user_model()
    viewer = staff_with(User, view)
    assert action not in offered_actions(viewer, url)
    viewer.post(url, {"action": action, "_selected_action": [ar.pk]})
    assert calls == []
    operator = staff_with(User, view, change)
    assert action in offered_actions(operator, url)
