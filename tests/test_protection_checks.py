"""System checks of the settings that protect the person being asked (issue 27): per-user caps
and rate, the action at a cap, and the subject types."""

import pytest
from django.test import override_settings

from ciba.checks import check_subject_types, check_user_limits


def ids(messages):
    return [m.id for m in messages]


def test_the_shipped_defaults_pass_both_checks():
    assert check_subject_types() == [] and check_user_limits() == []


@pytest.mark.parametrize(
    "ciba",
    [
        {"SUBJECT_TYPES_SUPPORTED": []},
        {"SUBJECT_TYPES_SUPPORTED": "public"},
        {"SUBJECT_TYPES_SUPPORTED": ["public", "ppid"]},
        {"SUBJECT_TYPES_SUPPORTED": ["pairwise"], "DEFAULT_SUBJECT_TYPE": "public"},
        {"DEFAULT_SUBJECT_TYPE": "secret"},
    ],
)
def test_subject_types_that_discovery_could_not_honour_are_an_error(ciba):
    with override_settings(CIBA=ciba):
        assert ids(check_subject_types()) == ["ciba.E049"]


def test_pairwise_only_with_a_pairwise_default_passes():
    with override_settings(
        CIBA={"SUBJECT_TYPES_SUPPORTED": ["pairwise"], "DEFAULT_SUBJECT_TYPE": "pairwise"}
    ):
        assert check_subject_types() == []


@pytest.mark.parametrize(
    "ciba",
    [
        {"MAX_PENDING_PER_USER": 0},
        {"MAX_PENDING_PER_USER": "5"},
        {"MAX_PENDING_PER_CLIENT_USER": True},
        {"MAX_PENDING_PER_CLIENT_USER": 1.5},
        {"USER_REQUEST_RATE": "20 per hour"},
        {"USER_REQUEST_RATE": "/hour"},
        {"USER_REQUEST_RATE": 20},
        {"PENDING_CAP_ACTION": "drop"},
        {"PENDING_CAP_ACTION": None},
    ],
)
def test_limits_that_cannot_be_read_are_an_error_naming_the_setting(ciba):
    with override_settings(CIBA=ciba):
        (message,) = check_user_limits()
    assert message.id == "ciba.E050"
    assert next(iter(ciba)) in message.msg


def test_limits_switched_off_or_set_pass():
    off = {"MAX_PENDING_PER_USER": None, "MAX_PENDING_PER_CLIENT_USER": None, "USER_REQUEST_RATE": None}
    with override_settings(CIBA=off):
        assert check_user_limits() == []
    with override_settings(
        CIBA={"MAX_PENDING_PER_USER": 1, "USER_REQUEST_RATE": "3/min", "PENDING_CAP_ACTION": "supersede"}
    ):
        assert check_user_limits() == []
