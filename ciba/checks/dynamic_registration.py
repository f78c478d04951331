"""Dynamic client registration's settings (RFC 7591, RFC 7592; ``docs/registration.md``).

A mistake here either fails every registration at request time (a rate DRF cannot parse, a
trusted directory whose keys cannot be read) or opens registration wider than the site meant
(a flag that is a truthy string, open registration that is on without the endpoint), so
each is an error (``ciba.E044``) at start-up. Open registration itself is a choice, but one a
production site should see every time it deploys (``ciba.W019``).
"""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ValidationError

from ..conf import ciba_settings
from ..jose import validate_public_jwks
from ..outbound import validate_outbound_url
from .codes import Codes
from .configuration import RATE
from .values import is_number

FLAGS = (
    "REGISTRATION_ENABLED",
    "REGISTRATION_OPEN",
    "SOFTWARE_STATEMENT_REQUIRED",
    "REGISTRATION_ACCESS_TOKEN_ROTATE",
    "DOT_APPLICATION_VIEWS",
)
#: Each setting at least 1: a statement no age can pass, or a jwks_uri fetched again for
#: every unknown kid, is not what any site means.
POSITIVE_NUMBERS = ("SOFTWARE_STATEMENT_MAX_AGE", "JWKS_REFETCH_MIN_INTERVAL")


@checks.register(checks.Tags.security)
def check_dynamic_registration(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    problems: list[tuple[str, str]] = []
    for key in FLAGS:
        if not isinstance(ciba_settings.raw(key), bool):
            problems.append((f'CIBA["{key}"] must be True or False.', f'Set CIBA["{key}"] to True or False.'))
    rate = ciba_settings.raw("REGISTRATION_OPEN_RATE")
    if rate is not None and not (isinstance(rate, str) and RATE.fullmatch(rate.replace(" ", ""))):
        problems.append(
            (
                'CIBA["REGISTRATION_OPEN_RATE"] is not a rate: open registration would fail on every '
                "request.",
                'Use "<count>/<second|minute|hour|day>" such as "10/hour", or None for no limit.',
            )
        )
    for key in POSITIVE_NUMBERS:
        value = ciba_settings.raw(key)
        if not is_number(value) or value < 1:
            problems.append(
                (f'CIBA["{key}"] must be a number of seconds, at least 1.', f'Fix CIBA["{key}"].')
            )
    problems.extend(_issuer_problems(ciba_settings.raw("SOFTWARE_STATEMENT_ISSUERS")))
    problems.extend(_contradictions())
    return [checks.Error(message, hint=hint, id=Codes.DYNAMIC_REGISTRATION) for message, hint in problems]


@checks.register(checks.Tags.security, deploy=True)
def check_open_registration(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if ciba_settings.raw("REGISTRATION_OPEN") is not True:
        return []
    rate = ciba_settings.raw("REGISTRATION_OPEN_RATE")
    return [
        checks.Warning(
            "Open dynamic registration is on: anyone who can reach the registration endpoint may register "
            f"a client, limited only by REGISTRATION_OPEN_RATE ({rate}) per address.",
            hint='Set CIBA["REGISTRATION_OPEN"] = False and admit developers with initial access tokens '
            "(manage.py ciba_initial_access_token) or software statements (SOFTWARE_STATEMENT_ISSUERS).",
            id=Codes.OPEN_REGISTRATION,
        )
    ]


def _issuer_problems(issuers: Any) -> list[tuple[str, str]]:
    hint = (
        'CIBA["SOFTWARE_STATEMENT_ISSUERS"] maps each directory\'s iss to {"jwks_uri": "https://..."} or '
        '{"jwks": {"keys": [...]}}.'
    )
    if not isinstance(issuers, dict):
        return [('CIBA["SOFTWARE_STATEMENT_ISSUERS"] must be a dict.', hint)]
    problems = []
    for issuer, source in issuers.items():
        label = f'CIBA["SOFTWARE_STATEMENT_ISSUERS"][{issuer!r}]'
        if not isinstance(issuer, str) or not issuer:
            problems.append((f"{label}: the key must be the directory's iss, a non-empty string.", hint))
            continue
        if not isinstance(source, dict) or set(source) not in ({"jwks"}, {"jwks_uri"}):
            problems.append((f"{label} must hold exactly one of jwks and jwks_uri, and nothing else.", hint))
            continue
        try:
            if "jwks" in source:
                validate_public_jwks(source["jwks"])
            elif not isinstance(source["jwks_uri"], str):
                raise ValidationError("jwks_uri must be a URL.")
            else:
                validate_outbound_url(source["jwks_uri"])
        except ValidationError as exc:
            problems.append((f"{label}: {' '.join(exc.messages)}", hint))
    return problems


def _contradictions() -> list[tuple[str, str]]:
    enabled = ciba_settings.raw("REGISTRATION_ENABLED") is True
    problems = []
    if ciba_settings.raw("REGISTRATION_OPEN") is True and not enabled:
        problems.append(
            (
                'CIBA["REGISTRATION_OPEN"] is on but REGISTRATION_ENABLED is off: the registration endpoint '
                "does not exist, so registration is not open.",
                'Set CIBA["REGISTRATION_ENABLED"] = True too, or REGISTRATION_OPEN = False.',
            )
        )
    if ciba_settings.raw("SOFTWARE_STATEMENT_REQUIRED") is True:
        if enabled and not ciba_settings.raw("SOFTWARE_STATEMENT_ISSUERS"):
            problems.append(
                (
                    'CIBA["SOFTWARE_STATEMENT_REQUIRED"] is on but no directory is trusted: every '
                    "registration would be refused.",
                    'Name the directories in CIBA["SOFTWARE_STATEMENT_ISSUERS"], or set '
                    "SOFTWARE_STATEMENT_REQUIRED = False.",
                )
            )
        if ciba_settings.raw("REGISTRATION_OPEN") is True:
            problems.append(
                (
                    'CIBA["REGISTRATION_OPEN"] and SOFTWARE_STATEMENT_REQUIRED are both on: a statement is '
                    "required all the same, so registration is not open.",
                    "Turn one of them off.",
                )
            )
    return problems
