"""Only a recent sign-in may add a passkey: a stolen or forgotten browser session must not be
able to enroll its own passkey and then approve at the passkey level (docs/authentication.md)."""

from __future__ import annotations

from typing import Any

from django.test import override_settings
from django.utils import timezone

from ciba.assurance import SESSION_AUTH_TIME_KEY
from ciba.models import Passkey
from tests.test_passkey_api import OPTIONS, browser, device_app, enroll, post
from tests.webauthn_authenticator import SoftAuthenticator


def signed_in_minutes_ago(api: Any, minutes: float | None) -> None:
    session = api.session
    if minutes is None:
        session.pop(SESSION_AUTH_TIME_KEY, None)  # a session from before the stamp existed
    else:
        session[SESSION_AUTH_TIME_KEY] = int(timezone.now().timestamp() - minutes * 60)
    session.save()


def test_a_session_that_just_signed_in_enrolls_a_passkey(alice):
    api = browser(alice)  # force_login: user_logged_in stamps the session now
    assert enroll(api, SoftAuthenticator()).status_code == 201


def test_a_session_signed_in_long_ago_is_asked_to_sign_in_again_and_nothing_is_enrolled(alice):
    api = browser(alice)
    signed_in_minutes_ago(api, 20)
    response = post(api, OPTIONS, {})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_authentication"
    assert response.json()["error_description"].startswith("Sign in again to add a passkey")
    assert not Passkey.objects.exists()


def test_options_fetched_in_time_do_not_enroll_after_the_sign_in_went_stale(alice):
    api = browser(alice)
    options = post(api, OPTIONS, {})
    assert options.status_code == 200
    credential = SoftAuthenticator().create(options.json())
    signed_in_minutes_ago(api, 16)
    response = post(api, "/o/ciba/passkeys/", {"credential": credential})
    assert response.status_code == 400 and not Passkey.objects.exists()


def test_a_session_without_a_sign_in_stamp_must_sign_in_again(alice):
    api = browser(alice)
    signed_in_minutes_ago(api, None)
    assert post(api, OPTIONS, {}).status_code == 400


def test_the_device_app_with_a_token_enrolls_its_user_reauthenticates_itself(alice):
    assert enroll(device_app(alice), SoftAuthenticator()).status_code == 201


@override_settings(CIBA={"PASSKEY_ENROLLMENT_MAX_AUTH_AGE": None})
def test_a_site_may_allow_enrollment_at_any_time(alice):
    api = browser(alice)
    signed_in_minutes_ago(api, 60 * 24 * 30)
    assert enroll(api, SoftAuthenticator()).status_code == 201
