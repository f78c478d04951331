"""System checks of dynamic registration's settings (``ciba.E044``) and the deploy warning while
registration is open to anyone (``ciba.W019``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks

from ciba.checks.dynamic_registration import check_dynamic_registration, check_open_registration
from tests.keys import public_jwk, rsa_key

DIRECTORY_JWK = public_jwk(rsa_key(), "d1")


def configure(settings: Any, **values: Any) -> None:
    settings.CIBA = {**settings.CIBA, **values}


def errors() -> list[str]:
    return [message.msg for message in check_dynamic_registration() if message.id == "ciba.E044"]


def test_the_defaults_pass(settings: Any) -> None:
    assert check_dynamic_registration() == []
    assert check_open_registration() == []


def test_a_site_with_tokens_statements_and_open_registration_configured_well_passes(settings: Any) -> None:
    configure(
        settings,
        REGISTRATION_ENABLED=True,
        REGISTRATION_OPEN=True,
        REGISTRATION_OPEN_RATE="5/minute",
        SOFTWARE_STATEMENT_ISSUERS={
            "https://directory.example.org": {"jwks_uri": "https://keystore.example.org/directory.jwks"},
            "https://other.example.org": {"jwks": {"keys": [DIRECTORY_JWK]}},
        },
        SOFTWARE_STATEMENT_MAX_AGE=600,
    )

    assert check_dynamic_registration() == []


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"REGISTRATION_ENABLED": "yes"}, "REGISTRATION_ENABLED"),
        ({"REGISTRATION_OPEN": 1}, "REGISTRATION_OPEN"),
        ({"SOFTWARE_STATEMENT_REQUIRED": "False"}, "SOFTWARE_STATEMENT_REQUIRED"),
        ({"REGISTRATION_ACCESS_TOKEN_ROTATE": None}, "REGISTRATION_ACCESS_TOKEN_ROTATE"),
        ({"DOT_APPLICATION_VIEWS": "off"}, "DOT_APPLICATION_VIEWS"),
        ({"REGISTRATION_OPEN_RATE": "10 per hour"}, "REGISTRATION_OPEN_RATE"),
        ({"REGISTRATION_OPEN_RATE": 10}, "REGISTRATION_OPEN_RATE"),
        ({"SOFTWARE_STATEMENT_MAX_AGE": 0}, "SOFTWARE_STATEMENT_MAX_AGE"),
        ({"SOFTWARE_STATEMENT_MAX_AGE": "300"}, "SOFTWARE_STATEMENT_MAX_AGE"),
        ({"JWKS_REFETCH_MIN_INTERVAL": 0}, "JWKS_REFETCH_MIN_INTERVAL"),
        ({"SOFTWARE_STATEMENT_ISSUERS": ["https://directory.example.org"]}, "SOFTWARE_STATEMENT_ISSUERS"),
    ],
)
def test_a_setting_of_the_wrong_type_or_range_is_an_error_naming_it(
    settings: Any, values: dict[str, Any], named: str
) -> None:
    configure(settings, **values)

    found = errors()

    assert len(found) == 1
    assert named in found[0]


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ({"jwks_uri": "ftp://keystore.example.org/d.jwks"}, "valid"),
        ({"jwks_uri": "https://user:pw@keystore.example.org/d.jwks"}, "credentials"),
        ({"jwks_uri": 42}, "URL"),
        ({"jwks": {"keys": [{**DIRECTORY_JWK, "d": "private"}]}}, "private"),
        ({"jwks": {"keys": []}}, "JWK Set"),
        (
            {"jwks": {"keys": [DIRECTORY_JWK]}, "jwks_uri": "https://keystore.example.org/d.jwks"},
            "exactly one",
        ),
        ({}, "exactly one"),
        ({"jwks_url": "https://keystore.example.org/d.jwks"}, "exactly one"),
        ("https://keystore.example.org/d.jwks", "exactly one"),
    ],
)
def test_a_trusted_directory_entry_that_is_not_well_formed_is_an_error(
    settings: Any, source: Any, says: str
) -> None:
    configure(settings, SOFTWARE_STATEMENT_ISSUERS={"https://directory.example.org": source})

    found = errors()

    assert len(found) == 1
    assert "https://directory.example.org" in found[0] and says in found[0]


def test_a_plain_http_directory_jwks_uri_is_an_error_unless_http_is_allowed(settings: Any) -> None:
    configure(
        settings,
        CALLBACK_ALLOW_HTTP=False,
        SOFTWARE_STATEMENT_ISSUERS={
            "https://directory.example.org": {"jwks_uri": "http://keys.example.org/d"}
        },
    )
    assert any("https" in message for message in errors())

    configure(settings, CALLBACK_ALLOW_HTTP=True)
    assert errors() == []


def test_open_registration_without_the_endpoint_is_an_error(settings: Any) -> None:
    configure(settings, REGISTRATION_OPEN=True)

    assert any("REGISTRATION_ENABLED" in message for message in errors())


def test_statements_required_without_a_trusted_directory_is_an_error(settings: Any) -> None:
    configure(settings, REGISTRATION_ENABLED=True, SOFTWARE_STATEMENT_REQUIRED=True)

    assert any("no directory is trusted" in message for message in errors())


def test_open_registration_with_statements_required_is_an_error(settings: Any) -> None:
    configure(
        settings,
        REGISTRATION_ENABLED=True,
        REGISTRATION_OPEN=True,
        SOFTWARE_STATEMENT_REQUIRED=True,
        SOFTWARE_STATEMENT_ISSUERS={"https://directory.example.org": {"jwks": {"keys": [DIRECTORY_JWK]}}},
    )

    assert any("not open" in message for message in errors())


def test_deploy_warns_while_registration_is_open_to_anyone(settings: Any) -> None:
    configure(settings, REGISTRATION_ENABLED=True, REGISTRATION_OPEN=True, REGISTRATION_OPEN_RATE="3/hour")

    [warning] = check_open_registration()

    assert isinstance(warning, checks.Warning)
    assert warning.id == "ciba.W019"
    assert "3/hour" in warning.msg


def test_the_open_registration_warning_runs_only_with_deploy_and_the_settings_check_always() -> None:
    with_deploy = checks.registry.registry.get_checks(include_deployment_checks=True)
    without = checks.registry.registry.get_checks(include_deployment_checks=False)

    assert check_open_registration in with_deploy and check_open_registration not in without
    assert check_dynamic_registration in without
