"""System checks: configuration mistakes that would break CIBA or weaken it in production.

Ids are stable (``ciba.E0xx`` errors, ``ciba.W0xx`` deploy warnings) and every hint names
the exact setting to change. Only ``check_registered_clients`` touches the database, and
only as a ``Tags.database`` check: Django runs those in ``migrate`` and in
``check --database default``, never in a plain ``check`` on a build machine.
"""

from __future__ import annotations

import re
from typing import Any

from celery import current_app
from django.conf import settings
from django.core import checks
from django.db import DatabaseError
from oauth2_provider import models as dot_models
from oauth2_provider.settings import oauth2_settings

from . import constants
from .backends.user_code import UnconfiguredUserCodeVerifier
from .conf import DEFAULTS, IMPORT_STRINGS, ciba_settings
from .models import CibaClientMixin
from .oauth.server import CibaServerMixin
from .oauth.validators import CibaValidator
from .polling import PollState, RedisPollState
from .replay import cache_is_shared


class Codes:
    APPLICATION_MODEL = "ciba.E001"
    OIDC_DISABLED = "ciba.E002"
    NO_SIGNING_KEY = "ciba.E003"
    SERVER_CLASS = "ciba.E004"
    VALIDATOR_CLASS = "ciba.E005"
    PUSH_WITHOUT_ISSUER = "ciba.E006"
    IMPORT_STRING = "ciba.E007"
    AUTH_REQ_ID_BYTES = "ciba.E008"
    DELIVERY_MODES = "ciba.E009"
    UNKNOWN_SETTING = "ciba.E010"
    USER_CODE_VERIFIER = "ciba.E011"
    SIGNING_ALGS = "ciba.E012"
    LIFETIMES = "ciba.E013"
    POLL_STATE = "ciba.E014"
    NOTIFIER_CONFIGURATION = "ciba.E015"
    ACR_VALUES = "ciba.E016"
    AUTOMATED_APPROVAL = "ciba.E017"
    NO_CELERY_APP = "ciba.E018"
    REPLAY_STORE = "ciba.E019"
    RATES = "ciba.E020"
    CALLBACK_ALLOW_HTTP = "ciba.W001"
    CLIENTS_CANNOT_USE_CIBA = "ciba.W005"
    NO_BROKER = "ciba.W006"
    PER_PROCESS_CACHE = "ciba.W007"
    CALLBACK_ALLOW_PRIVATE = "ciba.W002"
    CELERY_EAGER = "ciba.W003"
    CONSENT_SCOPE = "ciba.W004"


@checks.register(checks.Tags.models)
def check_application_model(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    model = dot_models.get_application_model()
    if issubclass(model, CibaClientMixin):
        return []
    return [
        checks.Error(
            f"The OAuth application model {model._meta.label} does not include CibaClientMixin, "
            "so clients cannot register CIBA metadata.",
            hint='Set OAUTH2_PROVIDER_APPLICATION_MODEL = "ciba.Application" (before the first migrate), '
            "or add ciba.models.CibaClientMixin before AbstractApplication in your own model's bases.",
            id=Codes.APPLICATION_MODEL,
        )
    ]


@checks.register(checks.Tags.security)
def check_oauth2_provider(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    dot = oauth2_settings
    messages: list[checks.CheckMessage] = []
    if not dot.OIDC_ENABLED:
        messages.append(
            checks.Error(
                "OpenID Connect is disabled; CIBA is an OpenID Connect flow and issues ID tokens.",
                hint='Set OAUTH2_PROVIDER["OIDC_ENABLED"] = True.',
                id=Codes.OIDC_DISABLED,
            )
        )
    if not dot.OIDC_RSA_PRIVATE_KEY:
        messages.append(
            checks.Error(
                "No OpenID Connect signing key is configured, so ID tokens cannot be signed.",
                hint='Set OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"] to a PEM RSA private key '
                "(read it from the environment or a file, never from source control).",
                id=Codes.NO_SIGNING_KEY,
            )
        )
    try:
        server_class = dot.OAUTH2_SERVER_CLASS
        validator_class = dot.OAUTH2_VALIDATOR_CLASS
    except ImportError as exc:
        return messages + [
            checks.Error(str(exc), hint="Fix the dotted path in OAUTH2_PROVIDER.", id=Codes.IMPORT_STRING)
        ]
    if not (isinstance(server_class, type) and issubclass(server_class, CibaServerMixin)):
        messages.append(
            checks.Error(
                f"DOT's server class {_name(server_class)} does not register the CIBA grant.",
                hint='Set OAUTH2_PROVIDER["OIDC_SERVER_CLASS"] = "ciba.oauth.server.CibaServer", or mix '
                "ciba.oauth.server.CibaServerMixin into your own server class.",
                id=Codes.SERVER_CLASS,
            )
        )
    if not (isinstance(validator_class, type) and issubclass(validator_class, CibaValidator)):
        messages.append(
            checks.Error(
                f"DOT's validator class {_name(validator_class)} does not understand the CIBA grant.",
                hint='Set OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"] = "ciba.oauth.validators.CibaValidator" '
                "or subclass it.",
                id=Codes.VALIDATOR_CLASS,
            )
        )
    if constants.MODE_PUSH in _as_list(ciba_settings.raw("DELIVERY_MODES")) and not dot.OIDC_ISS_ENDPOINT:
        messages.append(
            checks.Error(
                "Push mode mints tokens in a Celery worker, where there is no HTTP request to derive "
                "the issuer from.",
                hint='Set OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"] to the issuer URL, or remove "push" from '
                'CIBA["DELIVERY_MODES"].',
                id=Codes.PUSH_WITHOUT_ISSUER,
            )
        )
    return messages


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

    modes = _as_list(ciba_settings.raw("DELIVERY_MODES"))
    unknown_modes = [m for m in modes if m not in constants.DELIVERY_MODES]
    if not modes or unknown_modes:
        messages.append(
            checks.Error(
                f"CIBA delivery modes {modes!r} are not a non-empty subset of poll, ping, push.",
                hint='Set CIBA["DELIVERY_MODES"] to a list such as ["poll", "ping"].',
                id=Codes.DELIVERY_MODES,
            )
        )

    algs = _as_list(ciba_settings.raw("REQUEST_SIGNING_ALGS"))
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
    acr_values = ciba_settings.raw("ACR_VALUES_SUPPORTED")
    if not isinstance(acr_values, (list, tuple)) or not all(
        isinstance(v, str) and v and len(v.split()) == 1 and v == v.strip() for v in acr_values
    ):
        messages.append(
            checks.Error(
                "CIBA acr values must be a list of non-empty strings without spaces.",
                hint='Set CIBA["ACR_VALUES_SUPPORTED"] to the acr values you can achieve, weakest first, '
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


def _check_rates() -> list[checks.CheckMessage]:
    """A malformed rate would only fail at request time, as a 500 on every request."""
    keys = (
        "BACKCHANNEL_THROTTLE_RATE",
        "CLIENT_AUTH_FAILURE_RATE_PER_CLIENT",
        "CLIENT_AUTH_FAILURE_RATE_PER_ADDRESS",
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


def _check_poll_state() -> list[checks.CheckMessage]:
    try:
        cls = ciba_settings.POLL_STATE_CLASS
    except ImportError:
        return []  # already reported as an import string
    if not (isinstance(cls, type) and issubclass(cls, PollState)):
        return [
            checks.Error(
                f"{_name(cls)} is not a poll state class.",
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
                    f"The notifier {_name(cls)} cannot work as configured: {'; '.join(problems)}.",
                    hint='Configure it as its docstring says, or remove it from CIBA["NOTIFIER_CLASSES"].',
                    id=Codes.NOTIFIER_CONFIGURATION,
                )
            )
    return messages


@checks.register()
def check_celery(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Device notifications and callbacks are Celery tasks: without the site's Celery app they
    go to Celery's fallback app, whose broker is amqp://localhost, and never run."""
    if current_app.main in (None, "default"):
        return [
            checks.Error(
                "No Celery app is loaded: device notifications and client callbacks would be sent to "
                "Celery's default broker (amqp://localhost) and never run.",
                hint="Create <project>/celery.py with app = Celery(...), "
                'app.config_from_object("django.conf:settings", namespace="CELERY"), and import it in '
                '<project>/__init__.py (docs/integration.md, "Celery").',
                id=Codes.NO_CELERY_APP,
            )
        ]
    if not current_app.conf.task_always_eager and not current_app.conf.broker_url:
        return [
            checks.Warning(
                "The Celery app has no broker configured, so tasks go to amqp://localhost.",
                hint='Set CELERY_BROKER_URL (e.g. "redis://127.0.0.1:6379/0"), or '
                "CELERY_TASK_ALWAYS_EAGER = True to run tasks in the web process during development.",
                id=Codes.NO_BROKER,
            )
        ]
    return []


@checks.register(checks.Tags.database)
def check_registered_clients(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Clients saved before their registration was validated (fixtures, ``QuerySet.update()``,
    older versions) that register CIBA but cannot use it: they get ``unauthorized_client``."""
    if not databases:
        return []
    model = dot_models.get_application_model()
    try:
        registered = list(model._default_manager.exclude(backchannel_token_delivery_mode="")[:10_000])
    except DatabaseError:
        return []  # not migrated yet
    broken = [(client.client_id, client.ciba_problems()) for client in registered if client.ciba_problems()]
    if not broken:
        return []
    listed = "; ".join(f"{client_id}: {', '.join(problems)}" for client_id, problems in broken[:10])
    more = f" (and {len(broken) - 10} more)" if len(broken) > 10 else ""
    return [
        checks.Warning(
            f"{len(broken)} client(s) register CIBA but cannot use it (they get unauthorized_client): "
            f"{listed}{more}.",
            hint="Open each in the admin and save it: the form says what to fix (for example an ID token "
            "signing algorithm, usually RS256).",
            id=Codes.CLIENTS_CANNOT_USE_CIBA,
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if ciba_settings.raw("AUTOMATED_APPROVAL_SECRET"):
        messages.append(
            checks.Error(
                "Automated approval is on: anyone with its URL approves or denies any pending CIBA "
                "request in its user's name.",
                hint='Remove CIBA["AUTOMATED_APPROVAL_SECRET"]; it exists for conformance-suite runs only.',
                id=Codes.AUTOMATED_APPROVAL,
            )
        )
    if ciba_settings.raw("CALLBACK_ALLOW_HTTP"):
        messages.append(
            checks.Warning(
                "Client notification endpoints and jwks_uri may use plain http: tokens and notification "
                "bearer tokens would cross the network unencrypted (CIBA §10.2 requires TLS).",
                hint='Set CIBA["CALLBACK_ALLOW_HTTP"] = False in production.',
                id=Codes.CALLBACK_ALLOW_HTTP,
            )
        )
    if ciba_settings.raw("CALLBACK_ALLOW_PRIVATE_NETWORKS"):
        messages.append(
            checks.Warning(
                "Callbacks may target loopback, private and link-local addresses, which lets a client "
                "make this server call internal services (SSRF).",
                hint='Set CIBA["CALLBACK_ALLOW_PRIVATE_NETWORKS"] = False in production.',
                id=Codes.CALLBACK_ALLOW_PRIVATE,
            )
        )
    if not cache_is_shared():
        messages.append(
            checks.Warning(
                "The default cache is per process: the failed-authentication guard, the backchannel "
                "throttle and the verified-secret cache each count in their own process, so several "
                "processes allow several times the configured rates (single-use jti records fall back "
                "to the database and stay correct).",
                hint='Point CACHES["default"] at a Redis every process shares.',
                id=Codes.PER_PROCESS_CACHE,
            )
        )
    if _celery_is_eager():
        messages.append(
            checks.Warning(
                "Celery runs tasks eagerly: device notifications and client callbacks would run inside "
                "web requests, without retries with backoff or durability.",
                hint="Set CELERY_TASK_ALWAYS_EAGER = False (or task_always_eager on your Celery app) and "
                "run Celery workers with a broker.",
                id=Codes.CELERY_EAGER,
            )
        )
    return messages


def _celery_is_eager() -> bool:
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return True
    return bool(current_app.conf.task_always_eager)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}" if isinstance(obj, type) else repr(obj)
