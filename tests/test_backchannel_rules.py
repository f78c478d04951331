"""CIBA §7.1, rule by rule, without HTTP: what a client may put in an authentication request."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from django.http import QueryDict
from django.test import override_settings
from oauth2_provider.models import get_application_model

from ciba.backchannel import rules
from ciba.constants import CIBA_GRANT_TYPE
from ciba.errors import (
    AccessDenied,
    InvalidBindingMessage,
    InvalidRequest,
    InvalidScope,
    InvalidUserCode,
    MissingUserCode,
)

Application = get_application_model()


def client_in(mode: str, **fields) -> object:
    """An unsaved CIBA client: the rules only read its registration metadata."""
    return Application(
        client_id=f"{mode}-client",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=CIBA_GRANT_TYPE,
        backchannel_token_delivery_mode=mode,
        **fields,
    )


POLL, PING = client_in("poll"), client_in("ping")
HTTP = SimpleNamespace(META={})


# --- the shape of the request -------------------------------------------------------------


def test_a_repeated_parameter_is_refused_by_name():
    with pytest.raises(InvalidRequest, match="repeated: scope"):
        rules.single_valued(QueryDict("scope=openid&scope=profile&login_hint=alice"))


def test_a_nul_in_any_parameter_is_refused():
    with pytest.raises(InvalidRequest, match="NUL"):
        rules.single_valued(QueryDict("login_hint=al%00ice"))


def test_an_unparsed_empty_body_is_no_parameters_at_all():
    assert rules.single_valued({}) == {}
    assert rules.single_valued(QueryDict("scope=openid")) == {"scope": "openid"}


def test_a_client_that_registered_a_signing_algorithm_must_sign():
    signer = client_in("poll", backchannel_authentication_request_signing_alg="PS256")
    with pytest.raises(InvalidRequest, match="signed request"):
        rules.signed_request({"scope": "openid"}, client=signer, http_request=HTTP)
    assert rules.signed_request({"scope": "openid"}, client=POLL, http_request=HTTP) == {"scope": "openid"}


# --- scope ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["profile", "", "openidx profile"])
def test_a_scope_without_openid_is_a_missing_required_value(scope):
    with pytest.raises(InvalidRequest, match="openid"):
        rules.scope({"scope": scope}, client=POLL)


@pytest.mark.parametrize(
    "scope, words",
    [
        ("openid nonsense", "does not offer"),
        ('openid é"x', "does not allow"),
        ("openid ciba:consent", "cannot"),
    ],
)
def test_scope_needs_known_scopes_and_never_the_consent_scope(scope, words):
    with pytest.raises(InvalidScope, match=words):
        rules.scope({"scope": scope}, client=POLL)


def test_scopes_are_kept_once_in_the_order_asked():
    assert rules.scope({"scope": "profile openid profile email"}, client=POLL) == [
        "profile",
        "openid",
        "email",
    ]


# --- who the request is for -----------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{}, {"login_hint": "a", "id_token_hint": "b"}, {"login_hint": ""}],
)
def test_exactly_one_hint_is_required(params):
    with pytest.raises(InvalidRequest, match="exactly one"):
        rules.one_hint(params)


def test_the_one_hint_sent_is_named():
    assert rules.one_hint({"login_hint_token": "jwt", "login_hint": ""}) == ("login_hint_token", "jwt")


# --- callbacks ------------------------------------------------------------------------------


def test_a_poll_clients_notification_token_is_ignored():
    assert rules.client_notification_token({"client_notification_token": "x y"}, client=POLL) == ""


@pytest.mark.parametrize(
    "token, words",
    [
        (None, "required"),
        ("a" * 1025, "1024"),
        ("has space", "bearer token"),
        ("=abc", "bearer token"),
        ("ends-in-a-newline\n", "bearer token"),
    ],
)
def test_a_ping_clients_notification_token_is_required_and_a_short_bearer_token(token, words):
    params = {} if token is None else {"client_notification_token": token}
    with pytest.raises(InvalidRequest, match=words):
        rules.client_notification_token(params, client=PING)


def test_a_well_formed_notification_token_is_kept():
    token = "Abc-._~+/9=="
    assert rules.client_notification_token({"client_notification_token": token}, client=PING) == token


# --- lifetime, binding message, free text ----------------------------------------------------


@override_settings(CIBA={"DEFAULT_EXPIRES_IN": 120, "MAX_EXPIRES_IN": 600})
def test_requested_expiry_defaults_and_is_capped():
    assert rules.requested_expiry({}) == 120
    assert rules.requested_expiry({"requested_expiry": "30"}) == 30
    assert rules.requested_expiry({"requested_expiry": "86400"}) == 600


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "", "٣", str(2**31), "9" * 5000, "0" * 20])
def test_requested_expiry_must_be_a_positive_whole_number(value):
    with pytest.raises(InvalidRequest, match="requested_expiry"):
        rules.requested_expiry({"requested_expiry": value})


def test_a_requested_expiry_with_leading_zeros_is_still_its_number():
    assert rules.requested_expiry({"requested_expiry": "0" * 5000 + "30"}) == 30


def test_a_binding_message_is_checked_by_the_configured_validator():
    assert rules.binding_message({}, client=POLL) == ""
    assert rules.binding_message({"binding_message": "Cafe\u0301 W4SCT"}, client=POLL) == "Café W4SCT"
    with pytest.raises(InvalidBindingMessage):
        rules.binding_message({"binding_message": "evil\u202etxt"}, client=POLL)


@override_settings(CIBA={"BINDING_MESSAGE_REQUIRED": True})
def test_a_server_may_require_a_binding_message():
    with pytest.raises(InvalidBindingMessage, match="required"):
        rules.binding_message({}, client=POLL)


def test_acr_values_hold_no_control_characters():
    assert rules.plain_text("acr_values", "urn:a urn:b") == "urn:a urn:b"
    with pytest.raises(InvalidRequest, match="acr_values"):
        rules.plain_text("acr_values", "urn:a\nurn:b")


# --- user code ------------------------------------------------------------------------------


def test_a_user_code_is_not_asked_for_when_the_server_does_not_support_them():
    coded = client_in("poll", backchannel_user_code_parameter=True)
    assert rules.user_code({}, user=SimpleNamespace(), client=coded) is None


@override_settings(
    CIBA={"USER_CODE_SUPPORTED": True, "USER_CODE_VERIFIER_CLASS": "tests.backends.PinUserCodeVerifier"}
)
def test_a_user_code_is_required_and_checked_for_clients_that_registered_it():
    coded = client_in("poll", backchannel_user_code_parameter=True)
    bob = SimpleNamespace(get_username=lambda: "bob")
    with pytest.raises(MissingUserCode):
        rules.user_code({}, user=bob, client=coded)
    with pytest.raises(InvalidUserCode):
        rules.user_code({"user_code": "pin-alice"}, user=bob, client=coded)
    assert rules.user_code({"user_code": "pin-bob"}, user=bob, client=coded) is None
    assert rules.user_code({}, user=bob, client=POLL) is None  # a client that never registered codes


# --- all rules together ---------------------------------------------------------------------


def test_a_valid_request_becomes_a_frozen_new_request(alice):
    new = rules.validate(
        {
            "scope": "openid profile",
            "login_hint": "alice@example.com",
            "binding_message": "W4SCT",
            "client_notification_token": "nt-123",
            "requested_expiry": "120",
        },
        client=PING,
        http_request=HTTP,
    )
    assert (new.user, new.hint_kind, new.scopes, new.expires_in) == (
        alice,
        "login_hint",
        ("openid", "profile"),
        120,
    )
    assert new.client_notification_token == "nt-123" and new.requested_expiry == 120
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.scopes = ("openid", "payments")
    assert new.create_kwargs()["scope"] == "openid profile"


@override_settings(CIBA={"REQUEST_POLICY_CLASS": "tests.backends.NoBobPolicy"})
def test_the_request_policy_can_refuse_before_anyone_is_asked(django_user_model):
    django_user_model.objects.create_user("bob")
    with pytest.raises(AccessDenied):
        rules.validate({"scope": "openid", "login_hint": "bob"}, client=POLL, http_request=HTTP)
