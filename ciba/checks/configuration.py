"""CIBA's own settings (``settings.CIBA``): names, import strings, values, rates, the signing-key
keep, the poll state and the notifiers.

A wrong value here would fail at request time (often a 500 on every request) or weaken CIBA
without a word, so ``check_ciba_settings`` reads every key at start-up. It also runs the checks
of the security profile (``security_profile``) and of sender-constrained tokens
(``sender_constraints``), so one check covers the whole ``CIBA`` dictionary.
"""

from __future__ import annotations

import re
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from oauth2_provider.settings import oauth2_settings

from .. import constants
from ..authorization_details.registry import build
from ..backends.user_code_verifier import UnconfiguredUserCodeVerifier
from ..conf import DEFAULTS, IMPORT_STRINGS, ciba_settings
from ..polling import PollState, RedisPollState
from .codes import Codes
from .security_profile import profile_messages
from .sender_constraints import dpop_messages, mtls_messages
from .values import as_list, dotted_name


@checks.register(checks.Tags.security)
def check_ciba_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    for key in ciba_settings.unknown_keys():
        messages.append(
            checks.Error(
                f'CIBA["{key}"] is not a CIBA setting and has no effect.',
                hint=f"Remove it or correct the name; known settings: {', '.join(sorted(DEFAULTS))}.",
                id=Codes.UNKNOWN_SETTING,
            )
        )
    for key in IMPORT_STRINGS:
        try:
            getattr(ciba_settings, key)
        except ImportError as exc:
            messages.append(checks.Error(str(exc), hint=f'Fix CIBA["{key}"].', id=Codes.IMPORT_STRING))

    messages.extend(_check_authorization_details())

    id_bytes = ciba_settings.raw("AUTH_REQ_ID_BYTES")
    if not isinstance(id_bytes, int) or id_bytes < 20:
        messages.append(
            checks.Error(
                "auth_req_id values must carry at least 160 bits of randomness (CIBA §7.3 requires 128, "
                "recommends 160).",
                hint='Set CIBA["AUTH_REQ_ID_BYTES"] to 20 or more (default 32).',
                id=Codes.AUTH_REQ_ID_BYTES,
            )
        )

    modes = as_list(ciba_settings.raw("DELIVERY_MODES"))
    unknown_modes = [m for m in modes if m not in constants.DELIVERY_MODES]
    if not modes or unknown_modes:
        messages.append(
            checks.Error(
                f"CIBA delivery modes {modes!r} are not a non-empty subset of poll, ping, push.",
                hint='Set CIBA["DELIVERY_MODES"] to a list such as ["poll", "ping"].',
                id=Codes.DELIVERY_MODES,
            )
        )

    algs = as_list(ciba_settings.raw("REQUEST_SIGNING_ALGS"))
    bad_algs = [a for a in algs if a not in constants.ASYMMETRIC_JWS_ALGORITHMS]
    if bad_algs:
        messages.append(
            checks.Error(
                f"CIBA request signing algorithms {bad_algs!r} are not asymmetric JWS algorithms; "
                "CIBA §7.1.1 forbids 'none' and shared-secret signatures.",
                hint='Limit CIBA["REQUEST_SIGNING_ALGS"] to values such as "PS256", "ES256", "RS256", '
                "or use [] to refuse signed requests.",
                id=Codes.SIGNING_ALGS,
            )
        )

    default, maximum = ciba_settings.raw("DEFAULT_EXPIRES_IN"), ciba_settings.raw("MAX_EXPIRES_IN")
    interval = ciba_settings.raw("DEFAULT_INTERVAL")
    if not all(isinstance(v, int) and v > 0 for v in (default, maximum, interval)) or default > maximum:
        messages.append(
            checks.Error(
                "CIBA request lifetimes must be positive whole seconds, with DEFAULT_EXPIRES_IN <= "
                "MAX_EXPIRES_IN and a positive DEFAULT_INTERVAL.",
                hint='Fix CIBA["DEFAULT_EXPIRES_IN"], CIBA["MAX_EXPIRES_IN"] and CIBA["DEFAULT_INTERVAL"].',
                id=Codes.LIFETIMES,
            )
        )

    if ciba_settings.raw("USER_CODE_SUPPORTED"):
        try:
            verifier = ciba_settings.USER_CODE_VERIFIER_CLASS
        except ImportError:
            verifier = None  # already reported above
        if verifier is UnconfiguredUserCodeVerifier:
            messages.append(
                checks.Error(
                    "User codes are enabled but no user-code verifier is configured, so every code "
                    "would be refused.",
                    hint='Set CIBA["USER_CODE_VERIFIER_CLASS"] to a class that checks codes against your '
                    'user data, or set CIBA["USER_CODE_SUPPORTED"] = False.',
                    id=Codes.USER_CODE_VERIFIER,
                )
            )
    messages.extend(_check_poll_state())
    messages.extend(_check_notifiers())
    if ciba_settings.raw("REPLAY_STORE") not in ("auto", "cache", "database"):
        messages.append(
            checks.Error(
                "CIBA's replay store must be auto, cache or database.",
                hint='Set CIBA["REPLAY_STORE"] to "auto" (the default).',
                id=Codes.REPLAY_STORE,
            )
        )
    messages.extend(_check_rates())
    messages.extend(profile_messages())
    messages.extend(mtls_messages())
    messages.extend(dpop_messages())
    messages.extend(_check_signing_key_keep())
    acr_values = ciba_settings.raw("ACR_VALUES_SUPPORTED")
    if acr_values is not None and (
        not isinstance(acr_values, (list, tuple))
        or not all(isinstance(v, str) and v and len(v.split()) == 1 and v == v.strip() for v in acr_values)
    ):
        messages.append(
            checks.Error(
                "CIBA acr values must be a list of non-empty strings without spaces.",
                hint='Leave CIBA["ACR_VALUES_SUPPORTED"] unset (the values APPROVAL_ACR maps to), or set '
                "it to the acr values your own approval policy achieves, weakest first, "
                'e.g. ["urn:example:loa:1", "urn:example:loa:2"].',
                id=Codes.ACR_VALUES,
            )
        )
    consent_scope = ciba_settings.raw("CONSENT_SCOPE")
    if consent_scope not in oauth2_settings.SCOPES:
        messages.append(
            checks.Warning(
                f"The consent scope {consent_scope!r} is not one of DOT's SCOPES, so no access token can "
                "carry it: authentication-device apps can only use the consent API with a session.",
                hint=f'Add "{consent_scope}" to OAUTH2_PROVIDER["SCOPES"], or set CIBA["CONSENT_SCOPE"] to '
                "a scope you define.",
                id=Codes.CONSENT_SCOPE,
            )
        )
    return messages


RATE = re.compile(r"[1-9][0-9]*/(s|m|h|d)[a-z]*")


def _check_authorization_details() -> list[checks.CheckMessage]:
    """The RFC 9396 types are built at start-up here, so a wrong class path or option is an
    error of ``manage.py check``, not a 500 at discovery or at the first request."""
    messages: list[checks.CheckMessage] = []
    try:
        build(ciba_settings.raw("AUTHORIZATION_DETAILS_TYPES"))
    except ImproperlyConfigured as exc:
        messages.append(
            checks.Error(
                str(exc), hint='Fix CIBA["AUTHORIZATION_DETAILS_TYPES"].', id=Codes.AUTHORIZATION_DETAILS
            )
        )
    for key in (
        "AUTHORIZATION_DETAILS_MAX_BYTES",
        "AUTHORIZATION_DETAILS_MAX_ITEMS",
        "REQUEST_CONTEXT_MAX_BYTES",
    ):
        value = ciba_settings.raw(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            messages.append(
                checks.Error(
                    f'CIBA["{key}"] must be a positive whole number, not {value!r}.',
                    hint=f'Set CIBA["{key}"] to its default ({DEFAULTS[key]}) or another positive number.',
                    id=Codes.AUTHORIZATION_DETAILS,
                )
            )
    return messages


def _check_rates() -> list[checks.CheckMessage]:
    """A malformed rate would only fail at request time, as a 500 on every request."""
    keys = (
        "BACKCHANNEL_THROTTLE_RATE",
        "CLIENT_AUTH_FAILURE_RATE_PER_CLIENT_ADDRESS",
        "CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS",
        "PASSKEY_SIGN_IN_RATE",
    )
    bad = [
        key
        for key in keys
        if (value := ciba_settings.raw(key)) is not None
        and not (isinstance(value, str) and RATE.fullmatch(value.replace(" ", "")))
    ]
    burst = ciba_settings.raw("CLIENT_AUTH_FAILURE_BURST")
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
        bad.append("CLIENT_AUTH_FAILURE_BURST")
    if not bad:
        return []
    return [
        checks.Error(
            f"CIBA rate settings {', '.join(bad)} are not valid.",
            hint='Rates are "<count>/<second|minute|hour|day>" such as "20/minute", or None for no '
            "limit; CLIENT_AUTH_FAILURE_BURST is a whole number of at least 1.",
            id=Codes.RATES,
        )
    ]


def _check_signing_key_keep() -> list[checks.CheckMessage]:
    keep = ciba_settings.raw("SIGNING_KEY_RETIRED_KEEP_SECONDS")
    if not (isinstance(keep, int) and not isinstance(keep, bool) and keep >= 0):
        return [
            checks.Error(
                "How long retired ID-token signing keys are kept must be a whole number of seconds; "
                "manage.py ciba_keys prune would fail.",
                hint='Set CIBA["SIGNING_KEY_RETIRED_KEEP_SECONDS"] to 0 or more (default 2678400, 31 days).',
                id=Codes.SIGNING_KEY_KEEP,
            )
        ]
    return []


def _check_poll_state() -> list[checks.CheckMessage]:
    try:
        cls = ciba_settings.POLL_STATE_CLASS
    except ImportError:
        return []  # already reported as an import string
    if not (isinstance(cls, type) and issubclass(cls, PollState)):
        return [
            checks.Error(
                f"{dotted_name(cls)} is not a poll state class.",
                hint='Set CIBA["POLL_STATE_CLASS"] to "ciba.polling.DatabasePollState", '
                '"ciba.polling.RedisPollState" or a subclass of one of them.',
                id=Codes.POLL_STATE,
            )
        ]
    url = ciba_settings.raw("POLL_STATE_REDIS_URL")
    usable = isinstance(url, str) and url.startswith(("redis://", "rediss://", "unix://"))
    if issubclass(cls, RedisPollState) and not usable:
        return [
            checks.Error(
                "The Redis poll state needs the URL of a Redis that every web process shares.",
                hint='Set CIBA["POLL_STATE_REDIS_URL"], e.g. "redis://127.0.0.1:6379/0".',
                id=Codes.POLL_STATE,
            )
        ]
    return []


def _check_notifiers() -> list[checks.CheckMessage]:
    """What each configured notifier declares it needs (``required_settings``/``_modules``)."""
    try:
        notifier_classes = ciba_settings.NOTIFIER_CLASSES
    except ImportError:
        return []  # already reported as an import string
    messages: list[checks.CheckMessage] = []
    for cls in notifier_classes:
        problems = getattr(cls, "configuration_problems", lambda: [])()
        if problems:
            messages.append(
                checks.Error(
                    f"The notifier {dotted_name(cls)} cannot work as configured: {'; '.join(problems)}.",
                    hint='Configure it as its docstring says, or remove it from CIBA["NOTIFIER_CLASSES"].',
                    id=Codes.NOTIFIER_CONFIGURATION,
                )
            )
    return messages
