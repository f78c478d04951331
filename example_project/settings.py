"""Settings of the example authorization server.

Embedded default: SQLite and eager Celery, so ``./scripts/demo`` needs no other server.
Production parts are chosen by environment variables (see ``example_project/env.py``):
``DATABASE_URL``, ``CELERY_BROKER_URL``, ``CACHE_URL``, ``OIDC_ISS_ENDPOINT``.
"""

import os
from pathlib import Path

from django.conf import global_settings

from example_project import env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CIBA_EXAMPLE_VAR_DIR", BASE_DIR / "var"))

SECRET_KEY = env.secret_key(VAR_DIR / "django_secret_key")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "rest_framework",
    "drf_spectacular",
    "ciba",
    "example_project.demo",
    # The authentication device's web page. After the demo, whose templates override its
    # base.html (to add the demo's sign-out button).
    "ciba.device",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the device page's script and stylesheet, the kiosk's, the admin's) from the
    # web process itself, under any WSGI server: granian (./scripts/serve) serves none.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": env.database(str(VAR_DIR / "db.sqlite3"))}
CACHES = {"default": env.cache()}
globals().update(env.celery_settings())

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# `python manage.py collectstatic` (./scripts/serve runs it) gathers them here, with a hash in
# each name and compressed copies, so WhiteNoise can let browsers cache them for ever. Under
# DEBUG (./scripts/demo) they are served from the apps' directories instead.
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/demo/login/"
# The site's own login; after it, the user lands on the device page.
LOGIN_REDIRECT_URL = "ciba_device:home"
# The demo kiosk's client credentials, written by `manage.py ciba_demo_data` (mode 0600).
CIBA_DEMO_CLIENTS_FILE = VAR_DIR / "demo_clients.json"

# --- django-oauth-toolkit, with the CIBA application model, server and validator ---
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {
    "TITLE": "CIBA consent and device API",
    "DESCRIPTION": "The authentication device side of CIBA: see and decide requests, register devices.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

OAUTH2_PROVIDER_APPLICATION_MODEL = "ciba.Application"
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": env.rsa_private_key(VAR_DIR / "oidc_rsa_private_key.pem"),
    # Push mode mints tokens in a worker, which needs a fixed issuer (ciba.E006).
    "OIDC_ISS_ENDPOINT": os.environ.get("OIDC_ISS_ENDPOINT", "http://127.0.0.1:8000/o"),
    "OIDC_SERVER_CLASS": "ciba.oauth.server.CibaServer",
    "OAUTH2_VALIDATOR_CLASS": "ciba.oauth.validators.CibaValidator",
    "APPLICATION_ADMIN_CLASS": "ciba.admin.CibaApplicationAdmin",
    "SCOPES": {
        "openid": "Confirm your identity",
        "profile": "See your name",
        "email": "See your email address",
        "payments": "Make a payment on your behalf",
        "ciba:consent": "Approve or deny sign-in requests on this device",
    },
    "DEFAULT_SCOPES": ["openid"],
    # Client secrets: generated (256+ bits) and stored with a keyed hash, microseconds to check
    # (docs/security.md); PASSWORD_HASHERS below lists the hasher after the slow default.
    "CLIENT_SECRET_HASHER": "ciba_hmac_sha256",
    **env.RFC9700,
    # With those gates on, check --deploy reports an error for each of these left at DOT's
    # default: a replayed refresh token revokes its whole family (RFC 9700 §4.14.2), and
    # redirect URIs are https (§2.1). CIBA redirects nowhere; the demo's phone app, a native
    # app, returns to its private-use scheme (RFC 8252 §7.1, registered by ciba_demo_data).
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "org.example.ciba-demo"],
}
# User passwords keep Django's slow default hasher (first); client secrets get ciba's keyed one.
PASSWORD_HASHERS = [*global_settings.PASSWORD_HASHERS, "ciba.client_auth.hashers.ClientSecretHasher"]

# --- CIBA: development posture by default. The kiosk's callback receiver runs on this
# machine over plain http, which production must never allow (manage.py check --deploy
# warns); CIBA_CALLBACK_ALLOW_HTTP=0 and CIBA_CALLBACK_ALLOW_PRIVATE_NETWORKS=0 turn it off.
# CIBA_PROFILE=fapi-ciba runs the FAPI-CIBA profile; behind nginx with mutual TLS
# (docs/nginx-mtls.md) CIBA_TRUSTED_PROXIES, CIBA_MTLS_CERT_HEADER, CIBA_MTLS_CERT_VERIFY_HEADER
# (and CIBA_MTLS_CERT_HEADER_FORMAT, CIBA_MTLS_BASE_URL) say what it forwards. ---
# Clients may register themselves at /o/register/ (RFC 7591, docs/registration.md), each with
# an initial access token the operator issues (`ciba_demo_data --initial-access-token`, the
# admin): never open to anyone (REGISTRATION_OPEN stays off). Passkeys bind to the host the
# device page is served on (browsers refuse them on 127.0.0.1: open http://localhost:8000);
# a deployment sets CIBA_WEBAUTHN_RP_ID to its domain (check --deploy warns until then).
# The per-user limits keep ciba's defaults unless CIBA_MAX_PENDING_PER_USER,
# CIBA_MAX_PENDING_PER_CLIENT_USER, CIBA_USER_REQUEST_RATE (off lifts one) or
# CIBA_PENDING_CAP_ACTION say otherwise (the benchmarks lift them: they measure throughput).
CIBA = {
    **env.callback_posture(),
    **env.poll_state(),
    **env.conformance_run(),
    **env.security_profile(),
    **env.mtls(),
    **env.passkeys(),
    **env.user_limits(),
    "REGISTRATION_ENABLED": True,
    # Who a login_hint may name (docs/integration.md, "Finding the user"): the username, the
    # e-mail in any case, and the demo bank's own identifiers on its customer profile
    # (example_project.demo.models.Profile): a phone number however it is written, read in the
    # UK when it has no country code, and an account's IBAN, its check digits verified.
    "LOGIN_HINT_IDENTIFIERS": [
        {"field": "username", "normalizer": "ciba.identifiers.exact", "lookup": "exact"},
        {"field": "email", "normalizer": "ciba.identifiers.email", "lookup": "iexact"},
        {"field": "profile__phone_number", "normalizer": "ciba.identifiers.phone_number", "lookup": "exact"},
        {"field": "profile__account_iban", "normalizer": "ciba.identifiers.iban", "lookup": "exact"},
    ],
    "PHONE_NUMBER_REGION": "GB",
    # The device page's "show my code": a QR code of a short-lived login_hint_token for the kiosk.
    "LOGIN_HINT_TOKEN_ISSUANCE": True,
}
# auth.User's email has no index, so check --deploy would warn about the identifier above
# (ciba.W023): the demo has three users. A site with many keeps its e-mail addresses in an
# indexed column (a custom user model, or a profile like the demo's) or leaves e-mail out of
# LOGIN_HINT_IDENTIFIERS.
SILENCED_SYSTEM_CHECKS = ["ciba.W023"]
# DJANGO_SECURE_PROXY_SSL_HEADER=1 behind a terminator that sets X-Forwarded-Proto (None:
# Django's default, requests are secure only when they reach Django over TLS).
SECURE_PROXY_SSL_HEADER = env.secure_proxy_ssl_header()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"ciba": {"handlers": ["console"], "level": "INFO"}},
}
