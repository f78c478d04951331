""" "Show my code" upkeep: the system checks on its settings (``ciba.E052``, ``ciba.W024``) and
the expiry sweep that deletes codes no longer redeemable (``ciba.hint_tokens``)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ciba import tasks
from ciba.checks import check_hint_tokens
from ciba.models import LoginHintHandle

ISSUER = {"OIDC_ISS_ENDPOINT": "https://login.example/o"}


def ids(messages):
    return [m.id for m in messages]


def test_the_defaults_pass():
    assert check_hint_tokens() == []


@pytest.mark.parametrize("lifetime", [0, 5, 601, 3600, 120.5, "120", True, None])
def test_a_lifetime_that_is_not_whole_seconds_within_bounds_is_an_error(lifetime, settings):
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_LIFETIME": lifetime}
    assert ids(check_hint_tokens()) == ["ciba.E052"]


@pytest.mark.parametrize("lifetime", [10, 120, 600])
def test_a_lifetime_within_bounds_passes(lifetime, settings):
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_LIFETIME": lifetime}
    assert check_hint_tokens() == []


def test_issuance_that_is_not_a_boolean_is_an_error(settings):
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_ISSUANCE": "yes"}
    assert ids(check_hint_tokens()) == ["ciba.E052"]


def test_issuance_with_an_issuer_taken_from_the_host_is_warned(settings):
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_ISSUANCE": True}
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": ""}
    assert ids(check_hint_tokens()) == ["ciba.W024"]
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, **ISSUER}
    assert check_hint_tokens() == []


def test_no_issuer_warning_while_issuance_is_off(settings):
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_ISSUANCE": False}
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": ""}
    assert check_hint_tokens() == []


@pytest.mark.django_db
def test_the_expiry_sweep_deletes_codes_that_can_no_longer_be_used(alice, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    now = timezone.now()
    LoginHintHandle.objects.create(digest="a" * 64, user=alice, expires_at=now - timedelta(seconds=1))
    LoginHintHandle.objects.create(digest="b" * 64, user=bob, expires_at=now + timedelta(seconds=60))
    tasks.expire_requests()
    assert list(LoginHintHandle.objects.values_list("user__username", flat=True)) == ["bob"]
