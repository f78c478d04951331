"""ciba.assurance: the levels of authentication at approval, the acr each achieves, what a
request requires, and which acr values this server can really produce (discovery)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import override_settings

from ciba import assurance
from ciba.assurance import LEVELS, PASSKEY, PASSKEY_DEVICE_BOUND, PASSWORD, SESSION

#: Every level its own value, so that which level an answer came from is visible.
LADDER = {
    SESSION: "urn:loa:1",
    PASSWORD: "urn:loa:2",
    PASSKEY: "urn:loa:3",
    PASSKEY_DEVICE_BOUND: "urn:loa:4",
}


@pytest.fixture
def no_webauthn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assurance, "passkeys_available", lambda: False)


def request(acr_values: str = "", approval_level: str = "") -> Any:
    """What ``required_level`` reads of an AuthenticationRequest and its client."""
    return SimpleNamespace(acr_values=acr_values, client=SimpleNamespace(approval_level=approval_level))


# --- the levels ------------------------------------------------------------------------------


def test_levels_go_from_weakest_to_strongest() -> None:
    assert LEVELS == ("session", "password", "passkey", "passkey_device_bound")
    assert [assurance.rank(level) for level in LEVELS] == [0, 1, 2, 3]


def test_an_unknown_level_ranks_below_every_known_one() -> None:
    assert assurance.rank("retina") == -1
    assert assurance.stronger("retina", SESSION) == SESSION
    assert not assurance.satisfies("retina", SESSION)


def test_stronger_and_satisfies_compare_by_rank() -> None:
    assert assurance.stronger(PASSWORD, PASSKEY) == PASSKEY == assurance.stronger(PASSKEY, PASSWORD)
    assert assurance.satisfies(PASSKEY_DEVICE_BOUND, PASSKEY)
    assert assurance.satisfies(PASSKEY, PASSKEY)
    assert not assurance.satisfies(PASSWORD, PASSKEY)


def test_every_level_is_reachable_with_password_reentry_and_the_webauthn_library() -> None:
    assert assurance.passkeys_available()
    assert assurance.reachable_levels() == list(LEVELS)


@override_settings(CIBA={"PASSWORD_REAUTHENTICATION": False})
def test_without_password_reentry_the_password_level_is_not_reachable() -> None:
    assert assurance.reachable_levels() == [SESSION, PASSKEY, PASSKEY_DEVICE_BOUND]


def test_without_the_webauthn_library_no_passkey_level_is_reachable(no_webauthn: None) -> None:
    assert assurance.reachable_levels() == [SESSION, PASSWORD]


# --- acr_for: the mapping and its inheritance -------------------------------------------------


def test_by_default_only_passkeys_claim_an_acr_phishing_resistant() -> None:
    assert [assurance.acr_for(level) for level in LEVELS] == ["", "", "phr", "phr"]


@override_settings(CIBA={"APPROVAL_ACR": LADDER})
def test_each_listed_level_achieves_its_own_acr() -> None:
    assert [assurance.acr_for(level) for level in LEVELS] == list(LADDER.values())


@override_settings(CIBA={"APPROVAL_ACR": {SESSION: "urn:loa:1", PASSKEY: "urn:loa:3"}})
def test_a_level_missing_from_the_mapping_takes_the_strongest_weaker_listed_one() -> None:
    assert assurance.acr_for(PASSWORD) == "urn:loa:1"
    assert assurance.acr_for(PASSKEY_DEVICE_BOUND) == "urn:loa:3"


@override_settings(CIBA={"APPROVAL_ACR": {PASSKEY_DEVICE_BOUND: "urn:loa:4"}})
def test_a_weaker_level_never_inherits_a_stronger_ones_acr() -> None:
    assert [assurance.acr_for(level) for level in LEVELS] == ["", "", "", "urn:loa:4"]


@override_settings(CIBA={"APPROVAL_ACR": {SESSION: "urn:loa:1", PASSWORD: ""}})
def test_an_empty_value_claims_no_acr_and_stops_the_inheritance() -> None:
    assert assurance.acr_for(PASSWORD) == "" == assurance.acr_for(PASSKEY)


@override_settings(CIBA={"APPROVAL_ACR": {}})
def test_an_empty_mapping_claims_nothing_anywhere() -> None:
    assert {assurance.acr_for(level) for level in LEVELS} == {""}
    assert assurance.acr_values_supported() == []


# --- level_for_acr ---------------------------------------------------------------------------


def test_the_weakest_reachable_level_achieving_an_acr_is_chosen() -> None:
    assert assurance.level_for_acr("phr") == PASSKEY
    assert assurance.level_for_acr("urn:unknown") is None
    assert assurance.level_for_acr("") is None


def test_an_acr_only_unreachable_levels_achieve_has_no_level(no_webauthn: None) -> None:
    assert assurance.level_for_acr("phr") is None


# --- acr_values_supported (discovery) --------------------------------------------------------


def test_discovery_derives_the_values_from_the_mapping_by_default() -> None:
    assert assurance.acr_values_supported() == ["phr"]


@override_settings(CIBA={"APPROVAL_ACR": LADDER})
def test_derived_values_are_listed_weakest_first() -> None:
    assert assurance.acr_values_supported() == list(LADDER.values())


@override_settings(CIBA={"APPROVAL_ACR": LADDER, "PASSWORD_REAUTHENTICATION": False})
def test_without_password_reentry_its_acr_is_not_advertised() -> None:
    assert assurance.acr_values_supported() == ["urn:loa:1", "urn:loa:3", "urn:loa:4"]


@override_settings(
    CIBA={"APPROVAL_ACR": {SESSION: "", PASSWORD: "urn:loa:2"}, "PASSWORD_REAUTHENTICATION": False}
)
def test_a_value_a_passkey_inherits_stays_advertised_when_password_reentry_is_off() -> None:
    assert assurance.acr_values_supported() == ["urn:loa:2"]


def test_without_passkeys_the_passkey_acr_is_not_advertised(no_webauthn: None) -> None:
    assert assurance.acr_values_supported() == []


@pytest.mark.parametrize("explicit", [["urn:own:1", "urn:own:2"], []])
def test_an_explicit_list_is_published_as_the_site_set_it(explicit: list[str]) -> None:
    with override_settings(CIBA={"ACR_VALUES_SUPPORTED": explicit}):
        assert assurance.acr_values_supported() == explicit


# --- minimum_level and required_level ---------------------------------------------------------


def test_the_default_floor_is_a_tap_in_the_session() -> None:
    assert assurance.minimum_level() == SESSION
    assert assurance.required_level(request()) == SESSION


@override_settings(CIBA={"APPROVAL_MINIMUM_LEVEL": PASSWORD})
def test_the_site_floor_applies_to_every_client() -> None:
    assert assurance.required_level(request()) == PASSWORD


@override_settings(CIBA={"APPROVAL_MINIMUM_LEVEL": PASSWORD})
def test_a_client_floor_raises_but_never_lowers_the_site_floor() -> None:
    assert assurance.required_level(request(approval_level=PASSKEY_DEVICE_BOUND)) == PASSKEY_DEVICE_BOUND
    assert assurance.required_level(request(approval_level=SESSION)) == PASSWORD


def test_a_client_without_a_floor_of_its_own_takes_the_sites() -> None:
    assert assurance.minimum_level(SimpleNamespace(approval_level="")) == SESSION
    assert assurance.minimum_level(SimpleNamespace()) == SESSION


def test_the_fapi_floor_applies_only_under_the_fapi_ciba_profile() -> None:
    with override_settings(CIBA={"FAPI_APPROVAL_MINIMUM_LEVEL": PASSKEY}):
        assert assurance.minimum_level() == SESSION
    with override_settings(CIBA={"PROFILE": "fapi-ciba", "FAPI_APPROVAL_MINIMUM_LEVEL": PASSKEY}):
        assert assurance.minimum_level() == PASSKEY
    with override_settings(
        CIBA={
            "PROFILE": "fapi-ciba",
            "FAPI_APPROVAL_MINIMUM_LEVEL": PASSWORD,
            "APPROVAL_MINIMUM_LEVEL": PASSKEY,
        }
    ):
        assert assurance.minimum_level() == PASSKEY  # the strongest floor wins


def test_requested_acr_values_raise_the_level_to_one_achieving_them() -> None:
    assert assurance.required_level(request(acr_values="phr")) == PASSKEY


@override_settings(CIBA={"APPROVAL_ACR": LADDER})
def test_of_several_requested_values_the_weakest_achievable_one_decides() -> None:
    assert assurance.required_level(request(acr_values="urn:loa:4 urn:loa:2")) == PASSWORD
    assert assurance.required_level(request(acr_values="urn:loa:2", approval_level=PASSKEY)) == PASSKEY


def test_requested_values_no_level_achieves_are_ignored() -> None:
    assert assurance.required_level(request(acr_values="urn:nowhere")) == SESSION
    assert assurance.required_level(request(acr_values="urn:nowhere phr")) == PASSKEY


def test_no_acr_values_at_all_leave_the_floor() -> None:
    assert assurance.required_level(SimpleNamespace(acr_values=None, client=None)) == SESSION


# --- methods_for ------------------------------------------------------------------------------


def test_the_methods_reaching_a_level_are_listed_weakest_first() -> None:
    assert assurance.methods_for(SESSION) == ["session", "password", "passkey"]
    assert assurance.methods_for(PASSWORD) == ["password", "passkey"]
    assert assurance.methods_for(PASSKEY_DEVICE_BOUND) == ["passkey"]


@override_settings(CIBA={"PASSWORD_REAUTHENTICATION": False})
def test_a_method_the_site_turned_off_is_never_offered() -> None:
    assert assurance.methods_for(PASSWORD) == ["passkey"]


def test_without_passkeys_nothing_reaches_a_passkey_level(no_webauthn: None) -> None:
    assert assurance.methods_for(PASSKEY) == []


# --- claimed_acr --------------------------------------------------------------------------------


def test_the_acr_of_the_achieved_level_is_claimed_when_none_was_requested() -> None:
    assert assurance.claimed_acr(PASSKEY_DEVICE_BOUND) == "phr"
    assert assurance.claimed_acr(SESSION) == ""


def test_a_requested_value_the_approval_did_not_reach_is_never_claimed() -> None:
    assert assurance.claimed_acr(SESSION, "phr") == ""
    assert assurance.claimed_acr(PASSWORD, ["phr"]) == ""


@override_settings(CIBA={"APPROVAL_ACR": LADDER})
def test_of_the_requested_values_met_the_strongest_is_claimed() -> None:
    assert assurance.claimed_acr(PASSKEY, "urn:loa:1 urn:loa:2") == "urn:loa:2"
    assert assurance.claimed_acr(PASSWORD, ["urn:loa:3", "urn:loa:1"]) == "urn:loa:1"
    assert assurance.claimed_acr(PASSKEY_DEVICE_BOUND, "urn:loa:4 urn:loa:3") == "urn:loa:4"


@override_settings(CIBA={"APPROVAL_ACR": LADDER})
def test_unknown_requested_values_fall_back_to_the_achieved_levels_acr() -> None:
    assert assurance.claimed_acr(PASSKEY, "urn:nowhere") == "urn:loa:3"


# --- auth_time of a session --------------------------------------------------------------------


def test_a_tap_claims_when_the_session_signed_in() -> None:
    http_request = SimpleNamespace(session={})
    assurance.stamp_session_auth_time(None, http_request, None)
    stamp = http_request.session[assurance.SESSION_AUTH_TIME_KEY]
    assert isinstance(stamp, int)
    user = SimpleNamespace(last_login=datetime(2020, 1, 1, tzinfo=UTC))
    assert assurance.session_auth_time(http_request, user) == datetime.fromtimestamp(stamp, tz=UTC)


def test_without_a_session_stamp_the_users_last_login_is_claimed() -> None:
    last_login = datetime(2024, 5, 1, 12, tzinfo=UTC)
    user = SimpleNamespace(last_login=last_login)
    assert assurance.session_auth_time(SimpleNamespace(session={}), user) == last_login
    assert assurance.session_auth_time(SimpleNamespace(), user) == last_login  # a bearer token: no session
    assert assurance.session_auth_time(SimpleNamespace(), SimpleNamespace(last_login=None)) is None
