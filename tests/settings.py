"""Test settings: the example project's wiring on in-memory SQLite with eager Celery.

``DATABASE_URL`` (PostgreSQL in CI), ``CACHE_URL`` and ``CELERY_BROKER_URL`` switch on the
production parts exactly as they do for the example project.
"""

import os

from example_project import env

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

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
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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
DATABASES = {"default": env.database(":memory:")}
CACHES = {"default": env.cache()}
globals().update(env.celery_settings())
# Tests run tasks eagerly even when CELERY_BROKER_URL names a real broker: the integration
# tier's worker fixture switches this test process to the broker for the tests that use it.
# The worker it starts (CIBA_TEST_WORKER=1) sends through the broker like a deployed one, so
# its retries and deferrals are real countdowns, not nested eager calls.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CIBA_TEST_WORKER") != "1"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/demo/login/"
# The site's own login; after it, the user lands on the device page.
LOGIN_REDIRECT_URL = "ciba_device:home"
CIBA_DEMO_CLIENTS_FILE = os.environ.get("CIBA_DEMO_CLIENTS_FILE", "/tmp/ciba-test-demo-clients.json")
# User passwords and weak client secrets are hashed with the first hasher; PBKDF2 would make
# every authenticated request in the suite cost ~180 ms. The cost of the real hasher is
# measured by the benchmarks in bench/, not by the tests. Strong client secrets are stored with
# ciba's keyed hash, as docs/integration.md configures it (never first in the list).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "ciba.client_auth.hashers.ClientSecretHasher",
]

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
    "OIDC_RSA_PRIVATE_KEY": os.environ.get("OIDC_RSA_PRIVATE_KEY") or env.generate_rsa_private_key_pem(),
    "OIDC_ISS_ENDPOINT": "http://testserver/o",
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
    "CLIENT_SECRET_HASHER": "ciba_hmac_sha256",
    # Tests change the server and validator settings; DOT caches the server per view class.
    "ALWAYS_RELOAD_OAUTHLIB_CORE": True,
    **env.RFC9700,
}
CIBA = {
    "CALLBACK_ALLOW_HTTP": True,
    "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
    # Some tests register readable secrets on purpose (the admin, client_secret_jwt, the slow
    # hash and its cache); tests of the keyed hash and of the refusal set their own value.
    "ALLOW_LOW_ENTROPY_CLIENT_SECRETS": True,
}
# The integration tier's nginx (TLS terminator with client certificates) in front of gunicorn
# forwards the certificate and its verdict as docs/fapi.md configures them.
if os.environ.get("CIBA_TEST_MTLS") == "1":
    CIBA.update(
        {
            "TRUSTED_PROXIES": ["127.0.0.1/32"],
            "MTLS_CERT_HEADER": "HTTP_X_SSL_CLIENT_CERT",
            "MTLS_CERT_HEADER_FORMAT": "escaped-pem",
            "MTLS_CERT_VERIFY_HEADER": "HTTP_X_SSL_CLIENT_VERIFY",
        }
    )
# The integration tier's FAPI walk-through (tests/integration/test_fapi_walkthrough.py): the
# server as docs/fapi.md runs the example, with CIBA_PROFILE=fapi-ciba and nginx's issuer URL.
if os.environ.get("CIBA_TEST_PROFILE") == env.FAPI_CIBA["PROFILE"]:
    CIBA.update({key: list(v) if isinstance(v, list) else v for key, v in env.FAPI_CIBA.items()})
    OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"] = os.environ["CIBA_TEST_ISSUER"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # DJANGO_SECURE_PROXY_SSL_HEADER=1
if os.environ.get("CIBA_TEST_NOTIFIERS"):
    CIBA["NOTIFIER_CLASSES"] = os.environ["CIBA_TEST_NOTIFIERS"].split(",")
# The integration tier's worker uses short callback timeouts and backoff, so that retries and
# lease expiry happen within seconds.
for _key, _env in (
    ("CALLBACK_RETRY_BACKOFF_BASE", "CIBA_TEST_BACKOFF_BASE"),
    ("CALLBACK_READ_TIMEOUT", "CIBA_TEST_READ_TIMEOUT"),
    ("CALLBACK_CONNECT_TIMEOUT", "CIBA_TEST_CONNECT_TIMEOUT"),
    ("CALLBACK_TOTAL_TIMEOUT", "CIBA_TEST_TOTAL_TIMEOUT"),
):
    if os.environ.get(_env):
        CIBA[_key] = float(os.environ[_env])
