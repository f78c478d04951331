"""`manage.py check` on the identifiers a login_hint may match: a configuration that cannot be
read is an error at start-up (ciba.E051), a field without an index a warning at check --deploy
(ciba.W023) that says how to add one or when to silence it."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks
from django.db import models
from django.db.models.functions import Lower, Upper
from django.test import override_settings
from django.test.utils import isolate_apps

from ciba import checks as ciba_checks
from ciba.checks.identifiers import indexed

DEMO = [
    {"field": "username", "normalizer": "ciba.identifiers.exact", "lookup": "exact"},
    {"field": "email", "normalizer": "ciba.identifiers.email", "lookup": "iexact"},
    {"field": "profile__phone_number", "normalizer": "ciba.identifiers.phone_number", "lookup": "exact"},
    {"field": "profile__account_iban", "normalizer": "ciba.identifiers.iban", "lookup": "exact"},
]
NOT_CALLABLE = 42


def errors(ciba: dict[str, Any]) -> list[checks.CheckMessage]:
    with override_settings(CIBA=ciba):
        return ciba_checks.check_identifiers()


def warnings(ciba: dict[str, Any]) -> list[checks.CheckMessage]:
    with override_settings(CIBA=ciba):
        return ciba_checks.check_identifier_indexes()


@pytest.mark.parametrize("ciba", [{}, {"LOGIN_HINT_IDENTIFIERS": DEMO, "PHONE_NUMBER_REGION": "GB"}])
def test_the_default_and_the_examples_identifiers_are_readable(ciba):
    assert errors(ciba) == []


@pytest.mark.parametrize(
    "identifiers, says",
    [
        ("username", "must be None or a list"),
        ([], "is empty"),
        (["username"], "is not a dict"),
        ([{"field": "username", "normaliser": "ciba.identifiers.exact"}], "unknown keys ['normaliser']"),
        ([{"normalizer": "ciba.identifiers.exact"}], "names no 'field'"),
        ([{"field": "email", "lookup": "icontains"}], "lookup 'icontains'"),
        ([{"field": "telephone"}], "has no field 'telephone'"),
        ([{"field": "profile__phone"}], "demo.Profile has no field 'phone'"),
        ([{"field": "username__lower"}], "auth.User.username is not a relation"),
        ([{"field": "profile"}], "is not a column"),
        ([{"field": "profile__"}], "is not a field path"),
        ([{"field": "email", "normalizer": "ciba.identifiers.telephone"}], "cannot be imported"),
        ([{"field": "email", "normalizer": "tests.test_identifier_checks.NOT_CALLABLE"}], "is not callable"),
    ],
)
def test_an_identifier_that_cannot_be_read_is_an_error_naming_what_is_wrong(identifiers, says):
    (message,) = errors({"LOGIN_HINT_IDENTIFIERS": identifiers})
    assert message.id == "ciba.E051" and isinstance(message, checks.Error)
    assert says in message.msg, message.msg
    assert 'CIBA["LOGIN_HINT_IDENTIFIERS"]' in message.hint


@pytest.mark.parametrize("region", ["XX", "gb", "United Kingdom", None])
def test_a_phone_region_libphonenumber_does_not_know_is_an_error(region):
    (message,) = errors({"PHONE_NUMBER_REGION": region})
    assert message.id == "ciba.E051" and "PHONE_NUMBER_REGION" in message.msg


def test_the_errors_run_with_manage_py_check():
    with override_settings(CIBA={"LOGIN_HINT_IDENTIFIERS": [{"field": "nope"}]}):
        found = checks.run_checks(tags=[checks.Tags.security])
    assert "ciba.E051" in [m.id for m in found]


# --- ciba.W023: a configured field without an index ------------------------------------------------


def test_stock_auth_users_email_warns_and_says_how_to_index_it_or_silence_it():
    (warning,) = warnings({})
    assert warning.id == "ciba.W023" and isinstance(warning, checks.Warning)
    assert "'email'" in warning.msg and "auth.User.email" in warning.msg
    assert "custom user model" in warning.hint and "profile" in warning.hint
    assert 'SILENCED_SYSTEM_CHECKS = ["ciba.W023"]' in warning.hint
    assert 'Upper("email")' in warning.hint  # an iexact lookup: the index that serves it


def test_unique_profile_fields_and_the_username_need_no_warning():
    assert [w.msg.split("'")[1] for w in warnings({"LOGIN_HINT_IDENTIFIERS": DEMO})] == ["email"]


def test_an_unindexed_field_reached_through_a_relation_warns_with_its_model():
    (warning,) = warnings({"LOGIN_HINT_IDENTIFIERS": [{"field": "ciba_devices__label"}]})
    assert "ciba.Device.label" in warning.msg


def test_a_broken_entry_is_left_to_the_error_not_warned_about():
    assert warnings({"LOGIN_HINT_IDENTIFIERS": [{"field": "nope"}, {"field": "username"}]}) == []


def test_the_index_warning_runs_only_with_check_deploy():
    with override_settings(CIBA={}):
        plain = [m.id for m in checks.run_checks(tags=[checks.Tags.models])]
        deploy = [m.id for m in checks.run_checks(tags=[checks.Tags.models], include_deployment_checks=True)]
    assert "ciba.W023" not in plain and "ciba.W023" in deploy


@isolate_apps("tests")
def test_what_counts_as_an_index_for_each_lookup():
    class Customer(models.Model):
        plain = models.CharField(max_length=20)
        flagged = models.CharField(max_length=20, db_index=True)
        unique = models.CharField(max_length=20, unique=True)
        first = models.CharField(max_length=20)
        second = models.CharField(max_length=20)
        constrained = models.CharField(max_length=20)
        upper = models.CharField(max_length=20)
        lower = models.CharField(max_length=20)
        partial = models.CharField(max_length=20)
        upper_unique = models.CharField(max_length=20)

        class Meta:
            app_label = "tests"
            indexes = [
                models.Index(fields=["first", "second"], name="first_second"),
                models.Index(Upper("upper").desc(), name="upper_email"),
                models.Index(Lower("lower"), name="lower_email"),
                models.Index(fields=["partial"], name="partial", condition=models.Q(plain="x")),
            ]
            constraints = [
                models.UniqueConstraint(fields=["constrained"], name="constrained_unique"),
                models.UniqueConstraint(Upper("upper_unique"), name="upper_unique_ci"),
            ]

    def answers(name):
        field = Customer._meta.get_field(name)
        return indexed(field, "exact"), indexed(field, "iexact")

    assert answers("id") == (True, True)
    assert answers("flagged") == answers("unique") == answers("first") == (True, True)
    assert answers("constrained") == (True, True)
    assert answers("plain") == answers("second") == answers("partial") == (False, False)
    # Django's iexact compares UPPER(column) (PostgreSQL): an Upper index serves it, and only it.
    assert answers("upper") == answers("upper_unique") == (False, True)
    assert answers("lower") == (False, False)
