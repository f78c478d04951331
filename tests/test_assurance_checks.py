"""`manage.py check` on authentication at approval: the acr mapping, the floors no installed
method can reach, discovery promising an acr the shipped policy never produces, and the
passkey (WebAuthn) settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from ciba import assurance
from ciba import checks as ciba_checks
from ciba.checks import approval_levels


def messages(ciba: dict[str, Any], code: str | None = None) -> list[checks.CheckMessage]:
    with override_settings(CIBA=ciba):
        found = ciba_checks.check_approval_levels()
    return [m for m in found if code is None or m.id == code]


def deploy_messages(ciba: dict[str, Any]) -> list[checks.CheckMessage]:
    with override_settings(CIBA=ciba):
        return ciba_checks.check_webauthn_rp_id()


@pytest.fixture
def no_webauthn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assurance, "passkeys_available", lambda: False)


@pytest.fixture
def no_device_page(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = approval_levels.apps.is_installed
    monkeypatch.setattr(
        approval_levels.apps, "is_installed", lambda name: name != "ciba.device" and installed(name)
    )


def test_the_defaults_are_clean() -> None:
    assert messages({}) == []


def test_the_new_checks_run_with_manage_py_check() -> None:
    with override_settings(CIBA={"APPROVAL_ACR": "phr"}):
        found = checks.run_checks(tags=[checks.Tags.security])
    assert "ciba.E046" in [m.id for m in found]


# --- ciba.E046: APPROVAL_ACR -------------------------------------------------------------------


@pytest.mark.parametrize(
    "mapping, named",
    [
        ("phr", "not a dict"),
        ({"passkey": "phr", "fingerprint": "phr"}, "fingerprint"),
        ({"passkey": 2}, "passkey"),
        ({"passkey": "urn:a urn:b"}, "passkey"),
        ({"passkey": " phr"}, "passkey"),
        ({"passkey": None}, "passkey"),
    ],
)
def test_a_malformed_acr_mapping_is_an_error_naming_what_is_wrong(mapping: Any, named: str) -> None:
    (error,) = messages({"APPROVAL_ACR": mapping}, "ciba.E046")
    assert named in error.msg and "APPROVAL_ACR" in error.msg
    assert "session" in error.hint and "passkey_device_bound" in error.hint


def test_a_partial_mapping_with_empty_values_is_fine() -> None:
    assert messages({"APPROVAL_ACR": {"session": "", "passkey": "urn:example:loa:3"}}) == []


def test_a_malformed_mapping_does_not_crash_the_acr_values_check() -> None:
    found = messages({"APPROVAL_ACR": ["phr"], "ACR_VALUES_SUPPORTED": ["phr"]})
    assert [m.id for m in found] == ["ciba.E046"]


# --- ciba.E047: the floors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "ciba",
    [
        {"APPROVAL_MINIMUM_LEVEL": "strong"},
        {"APPROVAL_MINIMUM_LEVEL": ""},
        {"APPROVAL_MINIMUM_LEVEL": None},
        {"FAPI_APPROVAL_MINIMUM_LEVEL": "hwk"},
        {"FAPI_APPROVAL_MINIMUM_LEVEL": 3},
    ],
)
def test_a_floor_that_is_not_a_level_is_an_error(ciba: dict[str, Any]) -> None:
    (error,) = messages(ciba, "ciba.E047")
    assert "not a level" in error.msg
    assert "passkey_device_bound" in error.hint


def test_no_fapi_floor_of_its_own_is_fine() -> None:
    assert messages({"FAPI_APPROVAL_MINIMUM_LEVEL": ""}) == []


@pytest.mark.parametrize("level", ["session", "password", "passkey", "passkey_device_bound"])
def test_every_level_is_a_reachable_floor_with_everything_installed(level: str) -> None:
    assert messages({"APPROVAL_MINIMUM_LEVEL": level}) == []


def test_a_password_floor_without_password_reentry_or_passkeys_is_an_error(no_webauthn: None) -> None:
    (error,) = messages(
        {"APPROVAL_MINIMUM_LEVEL": "password", "PASSWORD_REAUTHENTICATION": False}, "ciba.E047"
    )
    assert "PASSWORD_REAUTHENTICATION is off" in error.msg
    assert 'CIBA["PASSWORD_REAUTHENTICATION"] = True' in error.hint


def test_a_password_floor_is_reached_by_a_passkey_when_password_reentry_is_off() -> None:
    assert messages({"APPROVAL_MINIMUM_LEVEL": "password", "PASSWORD_REAUTHENTICATION": False}) == []


def test_a_password_floor_is_reached_by_password_reentry_without_passkeys(no_webauthn: None) -> None:
    assert messages({"APPROVAL_MINIMUM_LEVEL": "password"}) == []


@pytest.mark.parametrize("level", ["passkey", "passkey_device_bound"])
def test_a_passkey_floor_without_the_webauthn_library_is_an_error(no_webauthn: None, level: str) -> None:
    (error,) = messages({"APPROVAL_MINIMUM_LEVEL": level}, "ciba.E047")
    assert "webauthn package" in error.msg and "step-up the device cannot perform" in error.msg
    assert "APPROVAL_MINIMUM_LEVEL" in error.hint


def test_a_passkey_floor_without_a_page_or_an_app_origin_is_an_error(no_device_page: None) -> None:
    (error,) = messages({"APPROVAL_MINIMUM_LEVEL": "passkey"}, "ciba.E047")
    assert "ciba.device is not installed" in error.msg
    assert "WEBAUTHN_ORIGINS" in error.hint and "INSTALLED_APPS" in error.hint


def test_a_registered_app_origin_makes_passkeys_reachable_without_the_device_page(
    no_device_page: None,
) -> None:
    ciba = {"APPROVAL_MINIMUM_LEVEL": "passkey", "WEBAUTHN_ORIGINS": ["android:apk-key-hash:abc123"]}
    assert messages(ciba) == []


def test_the_fapi_floor_is_checked_only_under_the_profile(no_webauthn: None) -> None:
    assert messages({"FAPI_APPROVAL_MINIMUM_LEVEL": "passkey"}) == []
    (error,) = messages({"PROFILE": "fapi-ciba", "FAPI_APPROVAL_MINIMUM_LEVEL": "passkey"}, "ciba.E047")
    assert "FAPI_APPROVAL_MINIMUM_LEVEL" in error.msg


# --- ciba.W020: discovery promising what the policy cannot deliver ----------------------------


def test_advertising_an_acr_no_level_maps_to_warns_under_the_shipped_policy() -> None:
    (warning,) = messages({"ACR_VALUES_SUPPORTED": ["phr", "urn:example:loa:4"]}, "ciba.W020")
    assert "lists urn:example:loa:4, which" in warning.msg  # only the value it cannot produce
    assert "APPROVAL_ACR" in warning.hint


def test_advertising_what_the_mapping_produces_is_fine() -> None:
    assert messages({"ACR_VALUES_SUPPORTED": ["phr"]}) == []


def test_advertising_a_passkey_acr_without_passkeys_warns(no_webauthn: None) -> None:
    (warning,) = messages({"ACR_VALUES_SUPPORTED": ["phr"]}, "ciba.W020")
    assert "phr" in warning.msg


def test_a_sites_own_policy_may_advertise_its_own_values() -> None:
    ciba = {
        "ACR_VALUES_SUPPORTED": ["urn:example:loa:4"],
        "APPROVAL_POLICY_CLASS": "ciba.backends.policy.AllowAllApprovalPolicy",
    }
    assert messages(ciba) == []


def test_derived_acr_values_never_warn() -> None:
    assert messages({"APPROVAL_ACR": {"passkey": "urn:example:strong"}}) == []


# --- ciba.E048: passkey settings -------------------------------------------------------------


@pytest.mark.parametrize(
    "ciba, named",
    [
        ({"WEBAUTHN_CHALLENGE_SECONDS": 0}, "WEBAUTHN_CHALLENGE_SECONDS"),
        ({"WEBAUTHN_CHALLENGE_SECONDS": "300"}, "WEBAUTHN_CHALLENGE_SECONDS"),
        ({"PASSKEYS_PER_USER": True}, "PASSKEYS_PER_USER"),
        ({"PASSKEYS_PER_USER": -1}, "PASSKEYS_PER_USER"),
        ({"PASSWORD_REAUTHENTICATION": "yes"}, "PASSWORD_REAUTHENTICATION"),
        ({"WEBAUTHN_RP_NAME": None}, "WEBAUTHN_RP_NAME"),
        ({"WEBAUTHN_RP_ID": "https://example.com"}, "WEBAUTHN_RP_ID"),
        ({"WEBAUTHN_RP_ID": "example.com:443"}, "WEBAUTHN_RP_ID"),
        ({"WEBAUTHN_RP_ID": "Example.com"}, "WEBAUTHN_RP_ID"),
        ({"WEBAUTHN_ORIGINS": "https://example.com"}, "WEBAUTHN_ORIGINS"),
        ({"WEBAUTHN_ORIGINS": ["https://example.com/device"]}, "https://example.com/device"),
        ({"WEBAUTHN_ORIGINS": ["http://login.example.com"]}, "plain http"),
        ({"WEBAUTHN_ORIGINS": ["example.com"]}, "no scheme"),
        ({"WEBAUTHN_ORIGINS": ["https://example.com:x"]}, "malformed port"),
        ({"WEBAUTHN_ORIGINS": [None]}, "None"),
        (
            {"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": ["https://example.org"]},
            "not on WEBAUTHN_RP_ID",
        ),
        (
            {"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": ["https://badexample.com"]},
            "not on WEBAUTHN_RP_ID",
        ),
    ],
)
def test_malformed_passkey_settings_are_an_error_naming_the_setting(ciba: dict[str, Any], named: str) -> None:
    (error,) = messages(ciba, "ciba.E048")
    assert named in error.msg
    assert "WEBAUTHN_RP_ID" in error.hint


@pytest.mark.parametrize(
    "ciba",
    [
        {
            "WEBAUTHN_RP_ID": "example.com",
            "WEBAUTHN_ORIGINS": ["https://example.com", "https://login.example.com"],
        },
        {"WEBAUTHN_RP_ID": "localhost", "WEBAUTHN_ORIGINS": ["http://localhost:8000"]},
        {
            "WEBAUTHN_ORIGINS": [
                "https://example.com:8443",
                "android:apk-key-hash:abc",
                "ios:bundle-id:com.example",
            ]
        },
        {"WEBAUTHN_RP_NAME": "Example Bank", "WEBAUTHN_CHALLENGE_SECONDS": 60, "PASSKEYS_PER_USER": 1},
    ],
)
def test_well_formed_passkey_settings_are_fine(ciba: dict[str, Any]) -> None:
    assert messages(ciba) == []


# --- ciba.W021 (deploy): no RP ID ------------------------------------------------------------


def test_check_deploy_warns_when_passkeys_have_no_fixed_rp_id() -> None:
    (warning,) = deploy_messages({})
    assert warning.id == "ciba.W021"
    assert 'CIBA["WEBAUTHN_RP_ID"]' in warning.hint


def test_a_fixed_rp_id_or_no_passkeys_at_all_do_not_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    assert deploy_messages({"WEBAUTHN_RP_ID": "example.com"}) == []
    monkeypatch.setattr(assurance, "passkeys_available", lambda: False)
    assert deploy_messages({}) == []


def test_the_rp_id_warning_runs_only_with_deploy() -> None:
    with override_settings(CIBA={}):
        plain = [m.id for m in checks.run_checks(tags=[checks.Tags.security])]
        deploy = [
            m.id for m in checks.run_checks(tags=[checks.Tags.security], include_deployment_checks=True)
        ]
    assert "ciba.W021" not in plain and "ciba.W021" in deploy


def test_a_site_policy_without_its_own_acr_list_is_warned_that_discovery_promises_phr():
    from django.test import override_settings

    from ciba.checks.approval_levels import check_approval_levels

    with override_settings(CIBA={"APPROVAL_POLICY_CLASS": "tests.backends.PasskeyForHighAcr"}):
        ids = [message.id for message in check_approval_levels()]
    assert "ciba.W022" in ids
    with override_settings(
        CIBA={"APPROVAL_POLICY_CLASS": "tests.backends.PasskeyForHighAcr", "ACR_VALUES_SUPPORTED": []}
    ):
        assert "ciba.W022" not in [message.id for message in check_approval_levels()]
    assert "ciba.W022" not in [message.id for message in check_approval_levels()]  # the shipped policy
