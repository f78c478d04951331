"""System checks: configuration mistakes that would break CIBA or weaken it in production.

Ids are stable (``ciba.E0xx`` errors, ``ciba.W0xx`` warnings) and every hint names the
exact setting to change. Only ``check_registered_clients`` and ``check_signing_keys`` touch
the database, and only as ``Tags.database`` checks: Django runs those in ``migrate`` and in
``check --database default``, never in a plain ``check`` on a build machine.

The security profile (``CIBA["PROFILE"]``) never silently changes another setting: every
contradiction between the profile and a setting is an error here, at start-up. The narrowing
in ``ciba.profile`` at request time is only the safety net of a silenced check.
"""

from __future__ import annotations

import re
from typing import Any

from celery import current_app
from django.conf import settings
from django.core import checks
from django.db import DatabaseError
from django.utils.module_loading import import_string
from oauth2_provider import models as dot_models
from oauth2_provider.settings import oauth2_settings

from . import constants, profile, registration_rules, signing
from .backends.user_code import UnconfiguredUserCodeVerifier
from .client_auth import hashers as client_secret_hashers
from .conf import DEFAULTS, IMPORT_STRINGS, ciba_settings
from .models import CibaClientMixin, SigningKey
from .oauth.server import CibaServerMixin
from .oauth.validators import CibaValidator
from .polling import PollState, RedisPollState
from .replay import cache_is_shared
from .sender import certificates


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
    UNKNOWN_PROFILE = "ciba.E021"
    FAPI_PUSH = "ciba.E022"
    FAPI_ALGS = "ciba.E023"
    FAPI_REQUEST_OBJECT_LIFETIME = "ciba.E024"
    MTLS_FORMAT = "ciba.E025"
    MTLS_WITHOUT_TRUSTED_PROXIES = "ciba.E026"
    MTLS_HEADER_NAME = "ciba.E027"
    MTLS_BASE_URL = "ciba.E028"
    DPOP_LIFETIMES = "ciba.E029"
    DPOP_ALGS = "ciba.E030"
    SIGNING_KEY_KEEP = "ciba.E031"
    CLIENTS_CONTRADICT_PROFILE = "ciba.E032"
    NO_FAPI_SIGNING_KEY = "ciba.E033"
    CLIENT_ID_TOKEN_ALG_UNAVAILABLE = "ciba.E034"
    CALLBACK_ALLOW_HTTP = "ciba.W001"
    CLIENTS_CANNOT_USE_CIBA = "ciba.W005"
    NO_BROKER = "ciba.W006"
    PER_PROCESS_CACHE = "ciba.W007"
    CALLBACK_ALLOW_PRIVATE = "ciba.W002"
    CELERY_EAGER = "ciba.W003"
    CONSENT_SCOPE = "ciba.W004"
    FAPI_WITHOUT_MTLS = "ciba.W008"
    FAPI_BINDING_MESSAGE = "ciba.W009"
    MTLS_UNVERIFIED = "ciba.W010"
    SIGNING_KEY_KEEP_SHORT = "ciba.W011"
    # >>> issue21-A codes: E035-E037, W012-W013
    CLIENT_SECRET_HASHER_MISSING = "ciba.E035"
    CLIENT_SECRET_HASHER_FIRST = "ciba.E036"
    CLIENT_AUTH_SETTINGS = "ciba.E037"
    CLIENT_SECRET_HASHER_UNUSED = "ciba.W012"
    LOW_ENTROPY_SECRETS_ALLOWED = "ciba.W013"
    # <<< issue21-A
    # >>> issue21-B codes: E038-E039, W014-W015
    OUTAGE_OPTIONS = "ciba.E038"
    UNBOUNDED_CACHE = "ciba.W014"
    UNBOUNDED_DATABASE = "ciba.W015"
    # <<< issue21-B
    # >>> issue21-C codes: E040-E041, W016-W017
    WORKER_SETTINGS = "ciba.E040"
    SLOW_LANE_UNROUTED = "ciba.W016"
    BROKER_NOT_HARDENED = "ciba.W017"
    # <<< issue21-C
    # >>> issue21-D codes: E042-E043, W018-W019
    USER_CODE_BUDGETS = "ciba.E042"
    # <<< issue21-D


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
    messages.extend(_check_profile())
    messages.extend(_check_mtls())
    messages.extend(_check_dpop())
    messages.extend(_check_signing_key_keep())
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
        "CLIENT_AUTH_FAILURE_RATE_PER_CLIENT_ADDRESS",
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


FAPI_ALGS_HINT = '["PS256", "ES256"]'


def _check_profile() -> list[checks.CheckMessage]:
    """Every contradiction between ``PROFILE`` and another setting (the profile changes none)."""
    name = ciba_settings.raw("PROFILE")
    if name not in constants.PROFILES:
        return [
            checks.Error(
                f"CIBA profile {name!r} is unknown, so no profile is in force: the server runs plain CIBA.",
                hint='Set CIBA["PROFILE"] to "fapi-ciba" (FAPI-CIBA) or "" (plain CIBA).',
                id=Codes.UNKNOWN_PROFILE,
            )
        ]
    if name != constants.PROFILE_FAPI_CIBA:
        return []
    messages: list[checks.CheckMessage] = []
    modes = _as_list(ciba_settings.raw("DELIVERY_MODES"))
    if constants.MODE_PUSH in modes:
        messages.append(
            checks.Error(
                'The FAPI-CIBA profile does not allow the push mode (FAPI-CIBA §5.2.2 "shall not support '
                'push"), but CIBA["DELIVERY_MODES"] offers it: discovery and push clients would be refused '
                "at request time.",
                hint='Remove "push" from CIBA["DELIVERY_MODES"], e.g. ["poll", "ping"].',
                id=Codes.FAPI_PUSH,
            )
        )
    for key in ("REQUEST_SIGNING_ALGS", "DPOP_SIGNING_ALGS"):
        others = [a for a in _as_list(ciba_settings.raw(key)) if a not in constants.FAPI_ALGS]
        if others:
            messages.append(
                checks.Error(
                    f'CIBA["{key}"] allows {others!r}, but FAPI-CIBA allows only PS256 and ES256 '
                    "(FAPI 1 Advanced §8.6): those algorithms would be refused at request time.",
                    hint=f'Set CIBA["{key}"] = {FAPI_ALGS_HINT}.',
                    id=Codes.FAPI_ALGS,
                )
            )
    lifetime = ciba_settings.raw("REQUEST_OBJECT_MAX_LIFETIME")
    if _number(lifetime) and lifetime > constants.FAPI_REQUEST_OBJECT_MAX_LIFETIME:
        messages.append(
            checks.Error(
                f'CIBA["REQUEST_OBJECT_MAX_LIFETIME"] is {lifetime} s, but FAPI-CIBA §5.2.2 limits a '
                "signed request's nbf-to-exp span to 60 minutes: longer ones would be refused.",
                hint='Set CIBA["REQUEST_OBJECT_MAX_LIFETIME"] to '
                f"{constants.FAPI_REQUEST_OBJECT_MAX_LIFETIME} or less.",
                id=Codes.FAPI_REQUEST_OBJECT_LIFETIME,
            )
        )
    if not ciba_settings.raw("MTLS_CERT_HEADER"):
        messages.append(
            checks.Warning(
                "FAPI-CIBA clients usually bind tokens with mTLS; only DPoP can bind them now, because no "
                "client certificate is forwarded (and the mTLS client authentication methods are off).",
                hint='Terminate TLS with client certificates and set CIBA["MTLS_CERT_HEADER"] and '
                'CIBA["TRUSTED_PROXIES"] (docs/nginx-mtls.md), or silence ciba.W008 if your clients '
                "use DPoP.",
                id=Codes.FAPI_WITHOUT_MTLS,
            )
        )
    if not ciba_settings.raw("BINDING_MESSAGE_REQUIRED"):
        messages.append(
            checks.Warning(
                "FAPI-CIBA §5.2.2-2 requires either an authorization context unique to each request or a "
                "binding_message, and binding messages are optional here: the site must then guarantee "
                "the former (for example, the device shows each request's own amount and payee).",
                hint='Set CIBA["BINDING_MESSAGE_REQUIRED"] = True, or silence ciba.W009 if every request '
                "carries a unique authorization context.",
                id=Codes.FAPI_BINDING_MESSAGE,
            )
        )
    return messages


def _check_mtls() -> list[checks.CheckMessage]:
    """The forwarded client certificate (RFC 8705), under any profile."""
    messages: list[checks.CheckMessage] = []
    header = ciba_settings.raw("MTLS_CERT_HEADER")
    fmt = ciba_settings.raw("MTLS_CERT_HEADER_FORMAT")
    verify_header = ciba_settings.raw("MTLS_CERT_VERIFY_HEADER")
    if fmt not in certificates.FORMATS:
        messages.append(
            checks.Error(
                f"The client certificate header format {fmt!r} is unknown, so no forwarded certificate "
                "could be read and every mTLS client would fail.",
                hint=f'Set CIBA["MTLS_CERT_HEADER_FORMAT"] to one of {", ".join(certificates.FORMATS)} '
                '("escaped-pem" for nginx\'s $ssl_client_escaped_cert, "xfcc" for Envoy).',
                id=Codes.MTLS_FORMAT,
            )
        )
    if header and not _as_list(ciba_settings.raw("TRUSTED_PROXIES")):
        messages.append(
            checks.Error(
                "A client certificate header is configured but no proxy is trusted, so the header would "
                "never be believed and every mTLS client would fail.",
                hint='Set CIBA["TRUSTED_PROXIES"] to the addresses of your TLS terminator, '
                'e.g. ["127.0.0.1/32"].',
                id=Codes.MTLS_WITHOUT_TRUSTED_PROXIES,
            )
        )
    for key, value in (("MTLS_CERT_HEADER", header), ("MTLS_CERT_VERIFY_HEADER", verify_header)):
        if value and not (isinstance(value, str) and value.startswith("HTTP_")):
            messages.append(
                checks.Error(
                    f'CIBA["{key}"] = {value!r} is not a Django request.META key, so the header would '
                    "never be found.",
                    hint=f'Set CIBA["{key}"] to the header\'s META key: upper case, dashes as '
                    "underscores, prefixed with HTTP_ (nginx's X-SSL-Client-Cert is "
                    '"HTTP_X_SSL_CLIENT_CERT").',
                    id=Codes.MTLS_HEADER_NAME,
                )
            )
    if header and fmt != "xfcc" and not verify_header:
        messages.append(
            checks.Warning(
                "No certificate verdict header is configured, so every forwarded client certificate is "
                "taken as verified by a trusted CA for tls_client_auth. That is safe only if the TLS "
                "terminator refuses unverified certificates (nginx: ssl_verify_client on or optional), "
                "which makes self_signed_tls_client_auth clients impossible.",
                hint="Forward the verdict (nginx: proxy_set_header X-SSL-Client-Verify $ssl_client_verify; "
                'with ssl_verify_client optional_no_ca) and set CIBA["MTLS_CERT_VERIFY_HEADER"] = '
                '"HTTP_X_SSL_CLIENT_VERIFY".',
                id=Codes.MTLS_UNVERIFIED,
            )
        )
    base_url = ciba_settings.raw("MTLS_BASE_URL")
    if base_url and not (isinstance(base_url, str) and base_url.startswith("https://")):
        messages.append(
            checks.Error(
                f'CIBA["MTLS_BASE_URL"] = {base_url!r} is not an https URL: clients would be sent to '
                "endpoints without TLS, where no client certificate can be presented.",
                hint='Set CIBA["MTLS_BASE_URL"] to the https origin of the mTLS host, e.g. '
                '"https://mtls.login.example.com", or "" when the same URLs serve both.',
                id=Codes.MTLS_BASE_URL,
            )
        )
    return messages


#: RFC 9449 §11.1: a proof is fresh for seconds, not minutes; a longer window widens replay.
DPOP_PROOF_MAX_AGE_LIMIT = 300


def _check_dpop() -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    max_age, nonce_lifetime = (
        ciba_settings.raw("DPOP_PROOF_MAX_AGE"),
        ciba_settings.raw("DPOP_NONCE_LIFETIME"),
    )
    if not (_number(max_age) and 0 < max_age <= DPOP_PROOF_MAX_AGE_LIMIT) or not (
        _number(nonce_lifetime) and nonce_lifetime > 0
    ):
        messages.append(
            checks.Error(
                "DPoP lifetimes must be positive seconds, with DPOP_PROOF_MAX_AGE at most "
                f"{DPOP_PROOF_MAX_AGE_LIMIT}: a proof accepted for longer can be replayed for longer.",
                hint='Fix CIBA["DPOP_PROOF_MAX_AGE"] (default 60) and CIBA["DPOP_NONCE_LIFETIME"] '
                "(default 300).",
                id=Codes.DPOP_LIFETIMES,
            )
        )
    bad_algs = [
        a
        for a in _as_list(ciba_settings.raw("DPOP_SIGNING_ALGS"))
        if a not in constants.ASYMMETRIC_JWS_ALGORITHMS
    ]
    if bad_algs:
        messages.append(
            checks.Error(
                f"DPoP proof algorithms {bad_algs!r} are not asymmetric JWS algorithms; RFC 9449 §4.2 "
                "forbids 'none' and shared-secret signatures (anyone could forge the proof).",
                hint='Limit CIBA["DPOP_SIGNING_ALGS"] to values such as "PS256", "ES256", "RS256", "EdDSA".',
                id=Codes.DPOP_ALGS,
            )
        )
    return messages


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


#: How many clients a database check names (the rest are counted).
LISTED_CLIENTS = 10


@checks.register(checks.Tags.database)
def check_registered_clients(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Clients saved before their registration was validated (fixtures, ``QuerySet.update()``,
    older versions, or before the profile was switched on) that register CIBA but cannot use
    it: they get ``unauthorized_client``. What the profile forbids is an error of its own
    (``ciba.E032``); everything else a warning (``ciba.W005``), so no reason is reported twice."""
    if not databases:
        return []
    model = dot_models.get_application_model()
    try:
        registered = list(model._default_manager.exclude(backchannel_token_delivery_mode="")[:10_000])
        with_id_token_alg = list(model._default_manager.exclude(id_token_signed_response_alg="")[:10_000])
        available = set(signing.id_token_algs_available())
    except DatabaseError:
        return []  # not migrated yet
    messages: list[checks.CheckMessage] = []
    contradicting: list[tuple[str, list[str]]] = []
    broken: list[tuple[str, list[str]]] = []
    for client in registered:
        found = list(registration_rules.problems(client, blocking_only=True))
        by_profile = [problem for problem in found if problem.by_profile]
        # A field the profile faults is reported once, by the profile's error (a push client
        # under FAPI-CIBA: not also "its token delivery mode is not supported").
        faulted = {problem.field for problem in by_profile}
        others = [problem for problem in found if not problem.by_profile and problem.field not in faulted]
        if by_profile:
            contradicting.append((client.client_id, [problem.refusal for problem in by_profile]))
        if others:
            broken.append((client.client_id, [problem.refusal for problem in others]))
    if contradicting:
        messages.append(
            checks.Error(
                f"{len(contradicting)} CIBA client(s) contradict the {ciba_settings.raw('PROFILE')} profile, "
                f"so they cannot use CIBA (they get unauthorized_client): {_listed(contradicting)}.",
                hint="Open each in the admin: the form shows the profile's rules next to the fields, and "
                "saving it names what to change.",
                id=Codes.CLIENTS_CONTRADICT_PROFILE,
            )
        )
    if broken:
        messages.append(
            checks.Warning(
                f"{len(broken)} client(s) register CIBA but cannot use it (they get unauthorized_client): "
                f"{_listed(broken)}.",
                hint="Open each in the admin and save it: the form says what to fix (for example an ID token "
                "signing algorithm, usually RS256).",
                id=Codes.CLIENTS_CANNOT_USE_CIBA,
            )
        )
    unsignable = [
        (client.client_id, [f"{client.id_token_signed_response_alg} ID tokens"])
        for client in with_id_token_alg
        if client.id_token_signed_response_alg not in available
    ]
    if unsignable:
        messages.append(
            checks.Error(
                f"{len(unsignable)} client(s) registered an ID-token signing algorithm no active signing key "
                f"can produce, so their token requests fail: {_listed(unsignable)}.",
                hint="Add a key of the type the algorithm needs: manage.py ciba_keys add --type rsa for "
                "RS256 and PS256, manage.py ciba_keys add --type ec for ES256 (or ciba_keys activate "
                "--type ... if one waits as next).",
                id=Codes.CLIENT_ID_TOKEN_ALG_UNAVAILABLE,
            )
        )
    return messages


@checks.register(checks.Tags.database)
def check_signing_keys(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """This server's key set (``manage.py ciba_keys``): under FAPI-CIBA it must be able to sign
    PS256 or ES256 (FAPI 1 Advanced §8.6; DOT's ``OIDC_RSA_PRIVATE_KEY`` signs RS256 only), and
    once it is in use its retired keys should outlive the ID tokens presented as hints."""
    if not databases:
        return []
    try:
        available = signing.id_token_algs_available()
        in_use = SigningKey.objects.exists()
    except DatabaseError:
        return []  # not migrated yet
    messages: list[checks.CheckMessage] = []
    if profile.fapi() and not set(available) & set(constants.FAPI_ALGS):
        messages.append(
            checks.Error(
                "The FAPI-CIBA profile signs ID tokens with PS256 or ES256, but no active signing key can "
                "produce either, so every token request would fail.",
                hint="Run manage.py ciba_keys add --type rsa (PS256) or manage.py ciba_keys add --type ec "
                "(ES256).",
                id=Codes.NO_FAPI_SIGNING_KEY,
            )
        )
    keep = ciba_settings.raw("SIGNING_KEY_RETIRED_KEEP_SECONDS")
    hint_age = ciba_settings.raw("ID_TOKEN_HINT_MAX_AGE")
    # Only keys of the key set are ever pruned; DOT's keys stay published as long as configured.
    if in_use and _number(keep) and _number(hint_age) and keep < hint_age:
        messages.append(
            checks.Warning(
                f"Retired signing keys are pruned after {keep} s, but ID tokens are valid id_token_hint "
                f"values for {hint_age} s past their expiry: hints signed by a pruned key are refused "
                "earlier than ID_TOKEN_HINT_MAX_AGE allows.",
                hint=f'Set CIBA["SIGNING_KEY_RETIRED_KEEP_SECONDS"] to at least {hint_age} '
                '(CIBA["ID_TOKEN_HINT_MAX_AGE"]) plus the ID tokens\' lifetime, or lower '
                "ID_TOKEN_HINT_MAX_AGE.",
                id=Codes.SIGNING_KEY_KEEP_SHORT,
            )
        )
    return messages


def _listed(clients: list[tuple[str, list[str]]]) -> str:
    listed = "; ".join(
        f"{client_id}: {', '.join(reasons)}" for client_id, reasons in clients[:LISTED_CLIENTS]
    )
    more = f" (and {len(clients) - LISTED_CLIENTS} more)" if len(clients) > LISTED_CLIENTS else ""
    return listed + more


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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}" if isinstance(obj, type) else repr(obj)


# >>> issue21-A checks
KEYED_HASHER_SETTING = (
    f'OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] = "{client_secret_hashers.ALGORITHM}" and '
    f'"{client_secret_hashers.DOTTED_PATH}" in PASSWORD_HASHERS, after the default'
)


def _password_hashers() -> list[Any]:
    """The classes PASSWORD_HASHERS names (a path that does not import is Django's to report)."""
    found = []
    for path in getattr(settings, "PASSWORD_HASHERS", []):
        try:
            found.append(import_string(path))
        except ImportError:
            found.append(None)
    return found


def _is_keyed_hasher(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, client_secret_hashers.ClientSecretHasher)


@checks.register(checks.Tags.security)
def check_client_secret_hashing(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The keyed client-secret hash: named by DOT but not listed (every new client's save would
    fail), listed first (user passwords would get a fast hash), and the settings it reads."""
    messages: list[checks.CheckMessage] = []
    hashers = _password_hashers()
    if oauth2_settings.CLIENT_SECRET_HASHER == client_secret_hashers.ALGORITHM and not any(
        _is_keyed_hasher(cls) for cls in hashers
    ):
        messages.append(
            checks.Error(
                f'OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] is "{client_secret_hashers.ALGORITHM}", but '
                "PASSWORD_HASHERS does not list its hasher: saving a client would fail.",
                hint=f'Add "{client_secret_hashers.DOTTED_PATH}" to PASSWORD_HASHERS, after the default.',
                id=Codes.CLIENT_SECRET_HASHER_MISSING,
            )
        )
    if hashers and _is_keyed_hasher(hashers[0]):
        messages.append(
            checks.Error(
                "The keyed client-secret hasher is first in PASSWORD_HASHERS: Django would hash user "
                "passwords with it, and a keyed hash does not slow down guessing a password.",
                hint="Keep a slow hasher (PBKDF2, Argon2, scrypt) first; list "
                f'"{client_secret_hashers.DOTTED_PATH}" after it.',
                id=Codes.CLIENT_SECRET_HASHER_FIRST,
            )
        )
    keys = ciba_settings.raw("CLIENT_SECRET_HASH_KEYS")
    cap = ciba_settings.raw("CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT")
    bad = []
    if keys is not None and (
        not isinstance(keys, (list, tuple)) or not keys or not all(isinstance(k, str) and k for k in keys)
    ):
        bad.append("CLIENT_SECRET_HASH_KEYS (None, or a list of non-empty strings, current first)")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        bad.append("CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT (None, or a whole number of at least 1)")
    if not isinstance(ciba_settings.raw("ALLOW_LOW_ENTROPY_CLIENT_SECRETS"), bool):
        bad.append("ALLOW_LOW_ENTROPY_CLIENT_SECRETS (True or False)")
    if bad:
        messages.append(
            checks.Error(
                f"CIBA client authentication settings are not valid: {'; '.join(bad)}.",
                hint="docs/settings.md, section Client authentication and rate limits.",
                id=Codes.CLIENT_AUTH_SETTINGS,
            )
        )
    return messages


@checks.register(checks.Tags.security, deploy=True)
def check_client_secret_hashing_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if oauth2_settings.CLIENT_SECRET_HASHER != client_secret_hashers.ALGORITHM:
        messages.append(
            checks.Warning(
                "Client secrets are stored with the password hasher: every check of an unknown id, a "
                "wrong or an uncached secret costs a password hash (~300 ms of CPU), which a flood of "
                "requests turns into a denial of service.",
                hint=f"Set {KEYED_HASHER_SETTING} (docs/security.md); existing secrets are re-hashed "
                "on their first successful use.",
                id=Codes.CLIENT_SECRET_HASHER_UNUSED,
            )
        )
    if ciba_settings.raw("ALLOW_LOW_ENTROPY_CLIENT_SECRETS") is True:
        messages.append(
            checks.Warning(
                "Site-chosen client secrets under 256 bits are accepted: they keep the slow password "
                "hash, so each check of one costs ~300 ms of CPU, and they can be guessed.",
                hint='Set CIBA["ALLOW_LOW_ENTROPY_CLIENT_SECRETS"] = False and give such clients '
                "generated secrets (manage.py ciba_client --client-id ID).",
                id=Codes.LOW_ENTROPY_SECRETS_ALLOWED,
            )
        )
    return messages


# <<< issue21-A
# >>> issue21-B checks
_BOUNDED_CACHE = "ciba.outages.BoundedRedisCache"
_REDIS_CACHES = ("django.core.cache.backends.redis.RedisCache", _BOUNDED_CACHE)
_BOUNDED_DATABASE = "ciba.db"
#: The OPTIONS of the bounded backends that must be numbers of 0 or more.
_OUTAGE_OPTIONS = {
    _BOUNDED_CACHE: ("socket_connect_timeout", "socket_timeout", "retries", "breaker_seconds"),
    _BOUNDED_DATABASE: ("query_timeout", "breaker_seconds"),
}


@checks.register()
def check_outage_options(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The bounds of ``BoundedRedisCache`` and the ``ciba.db`` engine are numbers (0: off)."""
    messages: list[checks.CheckMessage] = []
    configured = [("CACHES", alias, c.get("BACKEND", ""), c) for alias, c in settings.CACHES.items()]
    configured += [("DATABASES", alias, d.get("ENGINE", ""), d) for alias, d in settings.DATABASES.items()]
    for setting, alias, backend, config in configured:
        options = config.get("OPTIONS") or {}
        for name in _OUTAGE_OPTIONS.get(backend, ()):
            value = options.get(name, 0)
            if not _number(value) or not value >= 0:
                messages.append(
                    checks.Error(
                        f'{setting}["{alias}"]["OPTIONS"]["{name}"] is {value!r}: a dependency that hangs '
                        "would not be bounded.",
                        hint="Use a number of seconds of 0 or more (0 turns the bound off); "
                        "docs/deployment.md, Timeouts and outages.",
                        id=Codes.OUTAGE_OPTIONS,
                    )
                )
    return messages


@checks.register(checks.Tags.security, deploy=True)
def check_bounded_dependencies(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A hung Redis or PostgreSQL must not hold web workers: warn where nothing bounds the wait."""
    messages: list[checks.CheckMessage] = []
    cache = settings.CACHES.get("default", {})
    options = cache.get("OPTIONS") or {}
    if cache.get("BACKEND") == _REDIS_CACHES[0] and not options.get("socket_timeout"):
        messages.append(
            checks.Warning(
                "The default cache is Django's Redis cache without a socket timeout: a hung Redis holds "
                "every web request that touches the cache (client authentication does) until the "
                "operating system gives up, and redis-py retries each command three times.",
                hint=f'Use "BACKEND": "{_BOUNDED_CACHE}" (timeouts, no retries, a breaker), or set '
                'OPTIONS "socket_connect_timeout", "socket_timeout" and "retry".',
                id=Codes.UNBOUNDED_CACHE,
            )
        )
    for alias, database in settings.DATABASES.items():
        engine = database.get("ENGINE", "")
        if engine == "django.db.backends.postgresql" or (
            engine == _BOUNDED_DATABASE and not (database.get("OPTIONS") or {}).get("query_timeout", 1)
        ):
            messages.append(
                checks.Warning(
                    f'DATABASES["{alias}"] does not bound the wait for PostgreSQL: a hung database server '
                    "(or a network path that swallows packets) holds web workers without end, fast lane "
                    "included.",
                    hint=f'Use "ENGINE": "{_BOUNDED_DATABASE}" with a "query_timeout" and libpq\'s '
                    '"connect_timeout" in OPTIONS (example_project/env.py sets both).',
                    id=Codes.UNBOUNDED_DATABASE,
                )
            )
    return messages


# <<< issue21-B
# >>> issue21-C checks
#: Worker and sweep settings: (key, may be None, must be above 0).
_WORKER_NUMBERS = (
    ("DISPATCH_BREAKER_SECONDS", False, False),
    ("SWEEP_MAX_AGE", False, True),
    ("CALLBACK_SLOW_LANE_AFTER", True, False),
    ("CALLBACK_SLOW_LANE_SECONDS", False, True),
)


@checks.register()
def check_worker_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The breaker, the sweep-age alert and the slow lane take seconds; and a site that routes
    ciba's tasks must route the slow lane's too, or its callbacks wait in a queue nobody reads."""
    messages: list[checks.CheckMessage] = []
    for key, nullable, positive in _WORKER_NUMBERS:
        value = ciba_settings.raw(key)
        if value is None and nullable:
            continue
        if not _number(value) or value < 0 or (positive and value == 0):
            messages.append(
                checks.Error(
                    f'CIBA["{key}"] is {value!r}.',
                    hint=f"Use a number of seconds{' above' if positive else ' of'} 0"
                    f"{'' if positive else ' or more'}{' (or None)' if nullable else ''}; docs/settings.md.",
                    id=Codes.WORKER_SETTINGS,
                )
            )
    routes = current_app.conf.task_routes
    slow_lane = ciba_settings.raw("CALLBACK_SLOW_LANE_AFTER") != 0
    if (
        slow_lane
        and isinstance(routes, dict)
        and "ciba.deliver_callback" in routes
        and "ciba.deliver_callback_slow" not in routes
    ):
        messages.append(
            checks.Warning(
                "CELERY_TASK_ROUTES routes ciba.deliver_callback but not ciba.deliver_callback_slow: "
                "callbacks to endpoints in the slow lane go to Celery's default queue, which routed "
                "workers may not read.",
                hint="Use CELERY_TASK_ROUTES = ciba.dispatch.TASK_ROUTES (it routes the slow lane to "
                '"ciba-callbacks-slow") and run a worker for that queue (docs/operations.md), or set '
                'CIBA["CALLBACK_SLOW_LANE_AFTER"] = 0.',
                id=Codes.SLOW_LANE_UNROUTED,
            )
        )
    return messages


@checks.register(deploy=True)
def check_broker_hardening(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A Redis broker without ``ciba.dispatch.broker_settings``: an outage can end the worker
    that runs the sweeps, or leave it alive but idle (docs/operations.md)."""
    conf = current_app.conf
    if conf.task_always_eager or not str(conf.broker_url or "").startswith(("redis://", "rediss://")):
        return []
    transport = conf.broker_transport
    missing = []
    if transport != "ciba.backends.redis_broker.Transport" and not (
        isinstance(transport, type) and transport.__module__ == "ciba.backends.redis_broker"
    ):
        missing.append("broker_transport")
    if conf.broker_connection_max_retries is not None:
        missing.append("broker_connection_max_retries")
    if not missing:
        return []
    return [
        checks.Warning(
            f"The Redis broker is used without ciba's outage settings ({', '.join(missing)}): a broker "
            "outage can stop the worker that runs the sweeps, or leave it running but fetching nothing.",
            hint="globals().update(ciba.dispatch.broker_settings(CELERY_BROKER_URL)) in the settings, "
            "after CELERY_BROKER_URL (docs/operations.md).",
            id=Codes.BROKER_NOT_HARDENED,
        )
    ]


# <<< issue21-C
# >>> issue21-D checks
@checks.register(checks.Tags.security)
def check_user_code_budgets(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The budgets of wrong user codes bound what a client may spend on password hashes
    (``ciba.user_codes``): each must be a positive whole number, or codes are refused for
    everyone (0) or the check fails at request time (anything else)."""
    keys = ("USER_CODE_MAX_FAILURES", "USER_CODE_MAX_FAILURES_PER_CLIENT", "USER_CODE_LOCKOUT_SECONDS")
    bad = [
        key
        for key in keys
        if isinstance(ciba_settings.raw(key), bool)
        or not isinstance(ciba_settings.raw(key), int)
        or ciba_settings.raw(key) < 1
    ]
    if not bad:
        return []
    return [
        checks.Error(
            f"CIBA user-code budgets must be positive whole numbers: {', '.join(bad)}.",
            hint="Set them as docs/settings.md describes (defaults: 5 per client and user, 30 per "
            "client, per 900 seconds).",
            id=Codes.USER_CODE_BUDGETS,
        )
    ]


# <<< issue21-D
