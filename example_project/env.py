"""Reading deployment choices from the environment, shared by the example and test settings.

The variable names (``DATABASE_URL``, ``CELERY_BROKER_URL``, ``CACHE_URL``,
``OIDC_ISS_ENDPOINT``, ``OIDC_RSA_PRIVATE_KEY``) are what operators and scripts use; see
docs/deployment-settings in docs/integration.md. ``CIBA_PROFILE`` and the TLS terminator's
variables (``CIBA_TRUSTED_PROXIES``, ``CIBA_MTLS_*``, ``DJANGO_SECURE_PROXY_SSL_HEADER``) run the
example with the FAPI-CIBA profile behind nginx (docs/nginx-mtls.md); ``CIBA_MAX_PENDING_*``,
``CIBA_USER_REQUEST_RATE`` and ``CIBA_PENDING_CAP_ACTION`` tune or lift the per-user limits.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import dj_database_url
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ciba.dispatch import BEAT_SCHEDULE, TASK_ROUTES, broker_settings

#: RFC 9700, the OAuth 2.0 Security BCP: every gate django-oauth-toolkit 3.4 has, on (its 4.0
#: defaults). CIBA works with all of them; the example and the tests run with them.
RFC9700 = {
    f"COMPLIANT_BCP_RFC9700_{gate}": True
    for gate in (
        "IMPLICIT_GRANT",
        "PASSWORD_GRANT",
        "PKCE_METHOD",
        "ACCESS_TOKEN_TRANSPORT",
        "AUTHZ_RESPONSE_ISS",
        "TOKEN_STORAGE",
        "REFRESH_TOKEN",
        "REDIRECT_URI_SCHEME",
        "REDIRECT_URI_MATCHING",
        "PKCE_REQUIRED",
    )
}


def database(default_sqlite_path: str) -> dict[str, Any]:
    """``DATABASE_URL`` (any URL dj-database-url understands), else a local SQLite file.

    Connections persist for ``DATABASE_CONN_MAX_AGE`` seconds (default 60, with Django's
    health check before reuse): opening a PostgreSQL connection per request would cost more
    than the whole CIBA request it serves.

    PostgreSQL runs on the engine ``ciba.db`` with every wait bounded, so that a hung or
    unreachable database costs a request a bounded time, never a worker (docs/deployment.md,
    "Timeouts and outages"). Each bound has a variable (``0`` turns it off):

    * ``DATABASE_CONNECT_TIMEOUT`` (s, default 2, libpq's minimum): connecting;
    * ``DATABASE_QUERY_TIMEOUT`` (s, default 2): the client's wait for any answer, after which
      the connection is dropped and the database is not asked again for
      ``DATABASE_BREAKER_SECONDS`` (default 2) by this process;
    * ``DATABASE_HEALTH_CHECK_IDLE_SECONDS`` (s, default 1): Django's health check (a ``SELECT
      1`` per request) is skipped for a connection answered within this time with nothing
      arrived on it since (``ciba.db.base``); ``0`` checks every request, as Django does;
    * ``DATABASE_STATEMENT_TIMEOUT`` (ms, default 1500) and ``DATABASE_LOCK_TIMEOUT`` (ms,
      default 0: off, the statement timeout includes lock waits): the server ends a slow
      statement or lock wait itself and the connection stays usable (set them to 0 behind
      PgBouncer in transaction mode, which refuses startup options, and set them on the
      role instead);
    * ``DATABASE_IDLE_IN_TRANSACTION_TIMEOUT`` (ms, default 60000): the server ends a session
      that holds a transaction open and idle (a process that hung mid-transaction keeps no locks);
    * TCP keepalives (idle 10 s, then 3 probes 2 s apart) and ``tcp_user_timeout`` (5 s):
      the kernel gives up a connection whose peer vanished from the network.

    ``DATABASE_PREPARED_STATEMENTS=on`` (default off) binds parameters on the server and lets
    psycopg prepare a statement from its fifth run on a connection (Django's
    ``server_side_binding`` and psycopg's ``prepare_threshold``): PostgreSQL then plans each
    hot query once per connection instead of on every request (docs/performance.md, "The
    sixth stop"). Not behind PgBouncer in transaction mode older than 1.21 (or without its
    ``max_prepared_statements``), and restart the processes after a migration that changes
    a table they read (a prepared plan whose result type changed fails until then).

    Management commands that run long statements (``migrate`` on a large table) run with
    ``DATABASE_STATEMENT_TIMEOUT=0 DATABASE_QUERY_TIMEOUT=0``.
    """
    config = dj_database_url.config(
        default=f"sqlite:///{default_sqlite_path}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
    if config.get("ENGINE") == "django.db.backends.postgresql":
        config["ENGINE"] = "ciba.db"
        config["OPTIONS"] = {**postgresql_options(), **config.get("OPTIONS", {})}
    return config


#: psycopg's own default: a statement run this many times on a connection is prepared.
PREPARE_THRESHOLD = 5


def postgresql_options() -> dict[str, Any]:
    """The bounds of ``database()`` as the ``OPTIONS`` of the ``ciba.db`` engine."""
    statement = _number("DATABASE_STATEMENT_TIMEOUT", 1500)
    lock = _number("DATABASE_LOCK_TIMEOUT", 0)
    idle = _number("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT", 60000)
    server = " ".join(
        f"-c {name}={int(value)}"
        for name, value in (
            ("statement_timeout", statement),
            ("lock_timeout", lock),
            ("idle_in_transaction_session_timeout", idle),
        )
        if value
    )
    options: dict[str, Any] = {
        "connect_timeout": int(_number("DATABASE_CONNECT_TIMEOUT", 2)),
        "query_timeout": _number("DATABASE_QUERY_TIMEOUT", 2),
        "breaker_seconds": _number("DATABASE_BREAKER_SECONDS", 2),
        "health_check_idle_seconds": _number("DATABASE_HEALTH_CHECK_IDLE_SECONDS", 1),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 5000,
    }
    if server:
        options["options"] = server
    if flag("DATABASE_PREPARED_STATEMENTS", False):
        options["server_side_binding"] = True
        options["prepare_threshold"] = PREPARE_THRESHOLD
    return options


def cache() -> dict[str, Any]:
    """``CACHE_URL``: ``redis://``/``rediss://`` → a Redis cache; unset → local memory.

    The cache holds the replay caches (client-assertion, request-object and DPoP ``jti``),
    the verified-secret cache and the failed-authentication guard, so a deployment with
    several processes must point every one at the same Redis.

    Redis runs on ``ciba.outages.BoundedRedisCache``: Django's Redis cache with bounded waits
    and a breaker, so a hung Redis costs a request at most one bounded call
    (docs/deployment.md, "Timeouts and outages"). ``CACHE_CONNECT_TIMEOUT`` and
    ``CACHE_SOCKET_TIMEOUT`` (s, default 0.5 each), ``CACHE_RETRIES`` (default 0: each retry
    waits the timeout again) and ``CACHE_BREAKER_SECONDS`` (default 2) tune it.
    """
    url = os.environ.get("CACHE_URL", "")
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss"):
        return {
            "BACKEND": "ciba.outages.BoundedRedisCache",
            "LOCATION": url,
            "OPTIONS": {
                "socket_connect_timeout": _number("CACHE_CONNECT_TIMEOUT", 0.5),
                "socket_timeout": _number("CACHE_SOCKET_TIMEOUT", 0.5),
                "retries": int(_number("CACHE_RETRIES", 0)),
                "breaker_seconds": _number("CACHE_BREAKER_SECONDS", 2),
            },
        }
    if scheme in ("", "locmem"):
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ciba"}
    raise ValueError(f"CACHE_URL scheme {scheme!r} is not supported; use redis://, rediss:// or locmem://")


def _number(name: str, default: float) -> float:
    """A non-negative number from the environment; anything else stops the start."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        _improper(name, raw, "use a number of 0 or more")
    return int(value) if value.is_integer() else value


def celery_settings() -> dict[str, Any]:
    """``CELERY_BROKER_URL`` set → real workers; unset → tasks run eagerly in-process.

    Eager mode never propagates task exceptions: a failing notifier must not turn a client's
    request into a 500 (task failures are recorded, not raised).
    """
    broker = os.environ.get("CELERY_BROKER_URL", "")
    return {
        "CELERY_BROKER_URL": broker or "memory://",
        "CELERY_TASK_ALWAYS_EAGER": not broker,
        "CELERY_TASK_EAGER_PROPAGATES": False,
        "CELERY_TASK_ACKS_LATE": True,
        "CELERY_TASK_REJECT_ON_WORKER_LOST": True,
        "CELERY_WORKER_PREFETCH_MULTIPLIER": 1,
        "CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP": True,
        # Callbacks, slow-lane callbacks, device notifications and sweeps each on their own
        # queue; the workers and what each consumes: docs/operations.md.
        "CELERY_TASK_ROUTES": TASK_ROUTES,
        # The outbox sweep recovers what a killed worker or a broker outage left behind:
        # run `celery -A example_project beat` (or a worker with --beat) beside the workers.
        "CELERY_BEAT_SCHEDULE": {
            name: {**entry, "schedule": float(os.environ.get("CIBA_SWEEP_SECONDS", entry["schedule"]))}
            for name, entry in BEAT_SCHEDULE.items()
        },
        # Ride out a broker outage: reconnect for ever, bounded Redis sockets (docs/operations.md).
        **(broker_settings(broker) if broker else {}),
    }


def rsa_private_key(path: Path) -> str:
    """The OIDC signing key: ``OIDC_RSA_PRIVATE_KEY`` if set, else a PEM file created on first use.

    The file is created with mode 0600 and lives outside version control (``var/`` is in
    ``.gitignore``); a private key is never committed.
    """
    from_env = os.environ.get("OIDC_RSA_PRIVATE_KEY", "")
    if from_env:
        return from_env
    if path.exists():
        return path.read_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = generate_rsa_private_key_pem()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(pem)
    return pem


def generate_rsa_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def secret_key(path: Path) -> str:
    """``DJANGO_SECRET_KEY`` if set, else a random key kept beside the signing key."""
    from_env = os.environ.get("DJANGO_SECRET_KEY", "")
    if from_env:
        return from_env
    if path.exists():
        return path.read_text().strip()
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def conformance_run() -> dict[str, Any]:
    """Settings for running the OpenID conformance suite against this server (docs/conformance.md).

    ``CIBA_AUTOMATED_APPROVAL_SECRET`` turns on the suite's automated approval URL (never on a
    server people use: ``check --deploy`` refuses it); ``CIBA_ACR_VALUES_SUPPORTED`` lists the
    acr values to publish, space-separated, weakest first.
    """
    values: dict[str, Any] = {}
    if os.environ.get("CIBA_AUTOMATED_APPROVAL_SECRET"):
        values["AUTOMATED_APPROVAL_SECRET"] = os.environ["CIBA_AUTOMATED_APPROVAL_SECRET"]
    if os.environ.get("CIBA_ACR_VALUES_SUPPORTED"):
        values["ACR_VALUES_SUPPORTED"] = os.environ["CIBA_ACR_VALUES_SUPPORTED"].split()
    return values


def flag(name: str, default: bool) -> bool:
    """A boolean environment variable; a value that is not clearly on or off stops the start."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"{name}={raw!r}: use 1 or 0.")


def callback_posture() -> dict[str, bool]:
    """Whether callbacks and webhooks may go to plain http and private addresses.

    On by default so the demo's kiosk receives pings on this machine; a deployment of the
    example turns both off (``CIBA_CALLBACK_ALLOW_HTTP=0``,
    ``CIBA_CALLBACK_ALLOW_PRIVATE_NETWORKS=0``) and ``check --deploy`` stops warning.
    """
    return {
        "CALLBACK_ALLOW_HTTP": flag("CIBA_CALLBACK_ALLOW_HTTP", True),
        "CALLBACK_ALLOW_PRIVATE_NETWORKS": flag("CIBA_CALLBACK_ALLOW_PRIVATE_NETWORKS", True),
    }


def poll_state() -> dict[str, str]:
    """With ``CACHE_URL`` on Redis, pending polls are answered from that Redis too.

    ``CIBA_POLL_STATE_REDIS_URL`` chooses another Redis; ``CIBA_POLL_STATE_REDIS_URL=off``
    keeps them in the database.
    """
    url = os.environ.get("CIBA_POLL_STATE_REDIS_URL") or os.environ.get("CACHE_URL", "")
    if url == "off" or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        return {}
    return {"POLL_STATE_CLASS": "ciba.polling.RedisPollState", "POLL_STATE_REDIS_URL": url}


#: What ``CIBA_PROFILE=fapi-ciba`` sets besides the profile: the values the profile narrows the
#: defaults to anyway, stated, so that no setting contradicts the profile (docs/fapi.md).
FAPI_CIBA = {
    "PROFILE": "fapi-ciba",
    "DELIVERY_MODES": ["poll", "ping"],
    "REQUEST_SIGNING_ALGS": ["PS256", "ES256"],
    "DPOP_SIGNING_ALGS": ["PS256", "ES256"],
    "BINDING_MESSAGE_REQUIRED": True,
}


def security_profile() -> dict[str, Any]:
    """``CIBA_PROFILE``: unset or empty → plain CIBA; ``fapi-ciba`` → the FAPI-CIBA profile,
    with the delivery modes and algorithms it allows and binding messages required."""
    value = os.environ.get("CIBA_PROFILE", "").strip()
    if not value:
        return {}
    if value == FAPI_CIBA["PROFILE"]:
        return {key: list(v) if isinstance(v, list) else v for key, v in FAPI_CIBA.items()}
    _improper("CIBA_PROFILE", value, "use fapi-ciba, or leave it unset")


def mtls() -> dict[str, Any]:
    """The TLS terminator in front of the server (docs/nginx-mtls.md), each variable only if set.

    ``CIBA_TRUSTED_PROXIES``: its addresses, comma-separated CIDRs (``127.0.0.1/32``);
    ``CIBA_MTLS_CERT_HEADER`` and ``CIBA_MTLS_CERT_VERIFY_HEADER``: the headers it sets, as
    ``request.META`` keys (``HTTP_X_SSL_CLIENT_CERT``) or as sent (``X-SSL-Client-Cert``);
    ``CIBA_MTLS_CERT_HEADER_FORMAT``: ``escaped-pem`` (nginx), ``xfcc`` or ``der-base64``;
    ``CIBA_MTLS_BASE_URL``: the https host serving the mutual-TLS endpoint aliases.
    A value that cannot be right stops the start, naming the variable.
    """
    from ciba.sender.certificates import FORMATS

    values: dict[str, Any] = {}
    proxies = os.environ.get("CIBA_TRUSTED_PROXIES", "").strip()
    if proxies:
        networks = [n.strip() for n in proxies.split(",") if n.strip()]
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                _improper("CIBA_TRUSTED_PROXIES", network, "list addresses or CIDRs, comma-separated")
        values["TRUSTED_PROXIES"] = networks
    for name, key in (
        ("CIBA_MTLS_CERT_HEADER", "MTLS_CERT_HEADER"),
        ("CIBA_MTLS_CERT_VERIFY_HEADER", "MTLS_CERT_VERIFY_HEADER"),
    ):
        header = os.environ.get(name, "").strip()
        if header:
            values[key] = _meta_key(name, header)
    header_format = os.environ.get("CIBA_MTLS_CERT_HEADER_FORMAT", "").strip()
    if header_format:
        if header_format not in FORMATS:
            _improper("CIBA_MTLS_CERT_HEADER_FORMAT", header_format, f"use one of {', '.join(FORMATS)}")
        values["MTLS_CERT_HEADER_FORMAT"] = header_format
    base_url = os.environ.get("CIBA_MTLS_BASE_URL", "").strip()
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            _improper("CIBA_MTLS_BASE_URL", base_url, "use the https URL of the mutual-TLS host")
        values["MTLS_BASE_URL"] = base_url.rstrip("/")
    return values


#: A WebAuthn RP ID: a lowercase domain name, no scheme, port or path (browsers refuse IPs).
RP_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


def passkeys() -> dict[str, Any]:
    """Where passkeys on the device page are bound (docs/authentication.md), each only if set.

    ``CIBA_WEBAUTHN_RP_ID``: the registrable domain passkeys belong to (``example.com``), the
    same on every host serving the device page; unset, each passkey binds to the host it was
    enrolled on (``check --deploy`` warns, ``ciba.W021``). ``CIBA_WEBAUTHN_ORIGINS``: the
    origins ceremonies may come from, comma-separated (``https://login.example.com``, an app's
    ``android:apk-key-hash:...``); unset, the request's own.
    """
    values: dict[str, Any] = {}
    rp_id = os.environ.get("CIBA_WEBAUTHN_RP_ID", "").strip()
    if rp_id:
        if not RP_ID.fullmatch(rp_id) or len(rp_id) > 253:
            _improper("CIBA_WEBAUTHN_RP_ID", rp_id, "use a lowercase domain such as example.com")
        values["WEBAUTHN_RP_ID"] = rp_id
    origins = [
        o.strip().rstrip("/") for o in os.environ.get("CIBA_WEBAUTHN_ORIGINS", "").split(",") if o.strip()
    ]
    if origins:
        values["WEBAUTHN_ORIGINS"] = origins
    return values


#: What turns a per-user limit off (``None``), whatever its case.
OFF = ("off", "none")
#: DRF's rate syntax as ``ciba.user_limits.parse_rate`` reads it: a count, then a period of
#: which only the first letter counts (``20/hour``, ``20/h``, ``5/min``).
RATE = re.compile(r"([0-9]+)/([smhd][a-z]*)")


def user_limits() -> dict[str, Any]:
    """The limits that protect the person being asked (docs/security.md, "Protecting users"),
    each only if set: unset, the example keeps ciba's defaults (5 pending requests per user,
    2 per client and user, ``20/hour`` per user, refuse at a cap), which are the safe ones.

    ``CIBA_MAX_PENDING_PER_USER`` and ``CIBA_MAX_PENDING_PER_CLIENT_USER``: a whole number of 1
    or more (0 would refuse every request: to lift a cap, say so); ``CIBA_USER_REQUEST_RATE``:
    ``20/hour``-style; ``off`` or ``none`` lifts any of the three (a load test, a conformance
    run that piles requests on one test user). ``CIBA_PENDING_CAP_ACTION``: ``refuse`` or
    ``supersede`` (cancel the oldest pending request of the same client instead).
    """
    values: dict[str, Any] = {}
    for name, key in (
        ("CIBA_MAX_PENDING_PER_USER", "MAX_PENDING_PER_USER"),
        ("CIBA_MAX_PENDING_PER_CLIENT_USER", "MAX_PENDING_PER_CLIENT_USER"),
    ):
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        if raw.lower() in OFF:
            values[key] = None
        elif raw.isdigit() and int(raw) >= 1:
            values[key] = int(raw)
        else:
            _improper(name, raw, "use a whole number of 1 or more, or off")
    rate = os.environ.get("CIBA_USER_REQUEST_RATE", "").strip()
    if rate:
        if rate.lower() in OFF:
            values["USER_REQUEST_RATE"] = None
        elif (match := RATE.fullmatch(rate.lower())) and int(match[1]) >= 1:
            values["USER_REQUEST_RATE"] = rate
        else:
            _improper("CIBA_USER_REQUEST_RATE", rate, "use a rate such as 20/hour, or off")
    action = os.environ.get("CIBA_PENDING_CAP_ACTION", "").strip()
    if action:
        if action not in ("refuse", "supersede"):
            _improper("CIBA_PENDING_CAP_ACTION", action, "use refuse or supersede")
        values["PENDING_CAP_ACTION"] = action
    return values


def secure_proxy_ssl_header() -> tuple[str, str] | None:
    """``DJANGO_SECURE_PROXY_SSL_HEADER=1`` behind a TLS terminator that sets
    ``X-Forwarded-Proto: https`` (and overwrites the client's): requests are then secure and
    absolute URLs (a DPoP proof's ``htu``) https. Off by default: believed from anyone, the
    header would let a plain-http client pass for https."""
    return ("HTTP_X_FORWARDED_PROTO", "https") if flag("DJANGO_SECURE_PROXY_SSL_HEADER", False) else None


def _meta_key(variable: str, header: str) -> str:
    """``X-SSL-Client-Cert`` → ``HTTP_X_SSL_CLIENT_CERT``; a META key is kept as given."""
    if re.fullmatch(r"[A-Z][A-Z0-9_]*", header):
        return header
    if re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", header):
        return "HTTP_" + header.upper().replace("-", "_")
    _improper(variable, header, "use a header name such as X-SSL-Client-Cert or HTTP_X_SSL_CLIENT_CERT")


def _improper(variable: str, value: str, advice: str) -> NoReturn:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"{variable}={value!r}: {advice}.")
