"""The example project's environment switches: a deployment of it can leave the demo posture."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from example_project import env

ROOT = Path(__file__).resolve().parent.parent


def test_callbacks_may_use_http_and_private_addresses_by_default_for_the_demo(monkeypatch):
    monkeypatch.delenv("CIBA_CALLBACK_ALLOW_HTTP", raising=False)
    monkeypatch.delenv("CIBA_CALLBACK_ALLOW_PRIVATE_NETWORKS", raising=False)
    assert env.callback_posture() == {"CALLBACK_ALLOW_HTTP": True, "CALLBACK_ALLOW_PRIVATE_NETWORKS": True}


def test_a_value_that_is_neither_on_nor_off_stops_the_start(monkeypatch):
    monkeypatch.setenv("CIBA_CALLBACK_ALLOW_HTTP", "nope")
    with pytest.raises(ImproperlyConfigured, match="CIBA_CALLBACK_ALLOW_HTTP"):
        env.callback_posture()


def test_a_deployment_of_the_example_turns_the_demo_posture_off_and_check_deploy_agrees():
    def deploy_check(**extra):
        return subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy"],
            cwd=ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "example_project.settings", **extra},
            capture_output=True,
            text=True,
        )

    demo = deploy_check()
    assert "ciba.W001" in demo.stderr + demo.stdout and "ciba.W002" in demo.stderr + demo.stdout
    off = deploy_check(CIBA_CALLBACK_ALLOW_HTTP="0", CIBA_CALLBACK_ALLOW_PRIVATE_NETWORKS="0")
    assert "ciba.W001" not in off.stderr + off.stdout and "ciba.W002" not in off.stderr + off.stdout


# --- check --deploy: no errors, whatever is set -------------------------------------------------

#: What any shell has; none of the example's own variables (DATABASE_URL, CACHE_URL, REDIS_URL...).
SHELL_VARIABLES = ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")


def check_deploy(tmp_path, **variables: str) -> subprocess.CompletedProcess:
    """``manage.py check --deploy --fail-level ERROR`` on the example, in an environment with
    ``variables`` and nothing else of the example's."""
    environment = {k: v for k, v in os.environ.items() if k in SHELL_VARIABLES}
    environment.update(
        DJANGO_SETTINGS_MODULE="example_project.settings", CIBA_EXAMPLE_VAR_DIR=str(tmp_path), **variables
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )


def test_the_example_starts_and_passes_check_deploy_with_no_variable_set_keeping_its_demo_warnings(tmp_path):
    done = check_deploy(tmp_path)

    output = done.stdout + done.stderr
    assert done.returncode == 0 and "ERRORS:" not in output, output
    # The development posture it runs the demo in, on purpose (CI asserts them too).
    for code in ("ciba.W001", "ciba.W002", "ciba.W003"):
        assert code in output
    # RFC 8414's metadata of its issuer (http://127.0.0.1:8000/o) is served at the root.
    assert "ciba.W018" not in output
    # Passkeys bind to whichever host serves the device page until CIBA_WEBAUTHN_RP_ID is set.
    assert "ciba.W021" in output


def test_a_deployment_of_the_example_passes_check_deploy_without_ciba_warnings(tmp_path):
    done = check_deploy(
        tmp_path,
        DJANGO_DEBUG="0",
        CIBA_CALLBACK_ALLOW_HTTP="0",
        CIBA_CALLBACK_ALLOW_PRIVATE_NETWORKS="0",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        CACHE_URL="redis://127.0.0.1:6379/1",
        CIBA_WEBAUTHN_RP_ID="as.example.com",
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0 and "ERRORS:" not in output, output
    assert "ciba.W0" not in output and "oauth2_provider." not in output


# --- the FAPI-CIBA profile and the TLS terminator ------------------------------------------------

PROFILE_VARIABLES = (
    "CIBA_PROFILE",
    "CIBA_TRUSTED_PROXIES",
    "CIBA_MTLS_CERT_HEADER",
    "CIBA_MTLS_CERT_HEADER_FORMAT",
    "CIBA_MTLS_CERT_VERIFY_HEADER",
    "CIBA_MTLS_BASE_URL",
    "DJANGO_SECURE_PROXY_SSL_HEADER",
)
#: Variables that also change the example's CIBA settings, unset for a known starting point.
OTHER_CIBA_VARIABLES = (
    "CIBA_CALLBACK_ALLOW_HTTP",
    "CIBA_CALLBACK_ALLOW_PRIVATE_NETWORKS",
    "CACHE_URL",
    "CIBA_POLL_STATE_REDIS_URL",
    "CIBA_AUTOMATED_APPROVAL_SECRET",
    "CIBA_ACR_VALUES_SUPPORTED",
    "CIBA_WEBAUTHN_RP_ID",
    "CIBA_WEBAUTHN_ORIGINS",
    "CIBA_MAX_PENDING_PER_USER",
    "CIBA_MAX_PENDING_PER_CLIENT_USER",
    "CIBA_USER_REQUEST_RATE",
    "CIBA_PENDING_CAP_ACTION",
)


#: Who a login_hint may name in the example (its demo bank's customer profiles), whatever the
#: environment says.
DEMO_IDENTIFIERS = [
    {"field": "username", "normalizer": "ciba.identifiers.exact", "lookup": "exact"},
    {"field": "email", "normalizer": "ciba.identifiers.email", "lookup": "iexact"},
    {"field": "profile__phone_number", "normalizer": "ciba.identifiers.phone_number", "lookup": "exact"},
    {"field": "profile__account_iban", "normalizer": "ciba.identifiers.iban", "lookup": "exact"},
]


def example_settings(tmp_path, **variables: str) -> dict:
    """The example's CIBA and SECURE_PROXY_SSL_HEADER settings with ``variables`` set (and the
    others unset), after a system check that must find no error."""
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "from django.core.management import call_command; call_command('check', '--fail-level', 'ERROR'); "
        "print(json.dumps({'CIBA': s.CIBA, 'SECURE_PROXY_SSL_HEADER': s.SECURE_PROXY_SSL_HEADER}))"
    )
    environment = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES + OTHER_CIBA_VARIABLES}
    environment.update(
        DJANGO_SETTINGS_MODULE="example_project.settings", CIBA_EXAMPLE_VAR_DIR=str(tmp_path), **variables
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_the_profile_variables_the_example_keeps_its_demo_settings(tmp_path):
    assert example_settings(tmp_path) == {
        "CIBA": {
            "CALLBACK_ALLOW_HTTP": True,
            "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
            "REGISTRATION_ENABLED": True,
            "LOGIN_HINT_IDENTIFIERS": DEMO_IDENTIFIERS,
            "PHONE_NUMBER_REGION": "GB",
            "LOGIN_HINT_TOKEN_ISSUANCE": True,
        },
        "SECURE_PROXY_SSL_HEADER": None,
    }


def test_the_example_runs_the_fapi_ciba_profile_behind_nginx_from_the_environment(tmp_path):
    configured = example_settings(
        tmp_path,
        CIBA_PROFILE="fapi-ciba",
        CIBA_TRUSTED_PROXIES="127.0.0.1/32, 10.0.1.10",
        CIBA_MTLS_CERT_HEADER="X-SSL-Client-Cert",
        CIBA_MTLS_CERT_HEADER_FORMAT="escaped-pem",
        CIBA_MTLS_CERT_VERIFY_HEADER="HTTP_X_SSL_CLIENT_VERIFY",
        CIBA_MTLS_BASE_URL="https://mtls.as.example.com/",
        DJANGO_SECURE_PROXY_SSL_HEADER="1",
    )

    assert configured["CIBA"] == {
        "CALLBACK_ALLOW_HTTP": True,
        "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
        "PROFILE": "fapi-ciba",
        "DELIVERY_MODES": ["poll", "ping"],
        "REQUEST_SIGNING_ALGS": ["PS256", "ES256"],
        "DPOP_SIGNING_ALGS": ["PS256", "ES256"],
        "BINDING_MESSAGE_REQUIRED": True,
        "TRUSTED_PROXIES": ["127.0.0.1/32", "10.0.1.10"],
        "MTLS_CERT_HEADER": "HTTP_X_SSL_CLIENT_CERT",
        "MTLS_CERT_HEADER_FORMAT": "escaped-pem",
        "MTLS_CERT_VERIFY_HEADER": "HTTP_X_SSL_CLIENT_VERIFY",
        "MTLS_BASE_URL": "https://mtls.as.example.com",
        "REGISTRATION_ENABLED": True,
        "LOGIN_HINT_IDENTIFIERS": DEMO_IDENTIFIERS,
        "PHONE_NUMBER_REGION": "GB",
        "LOGIN_HINT_TOKEN_ISSUANCE": True,
    }
    assert configured["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_the_profile_alone_passes_the_system_checks(tmp_path):
    assert example_settings(tmp_path, CIBA_PROFILE="fapi-ciba")["CIBA"]["PROFILE"] == "fapi-ciba"


def test_each_variable_maps_to_its_setting_and_unset_ones_to_nothing(monkeypatch):
    for name in PROFILE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert env.security_profile() == {} and env.mtls() == {} and env.secure_proxy_ssl_header() is None

    monkeypatch.setenv("CIBA_MTLS_CERT_HEADER", "x-forwarded-client-cert")
    monkeypatch.setenv("CIBA_MTLS_CERT_HEADER_FORMAT", "xfcc")
    assert env.mtls() == {
        "MTLS_CERT_HEADER": "HTTP_X_FORWARDED_CLIENT_CERT",
        "MTLS_CERT_HEADER_FORMAT": "xfcc",
    }
    monkeypatch.setenv("CIBA_MTLS_CERT_HEADER", "SSL_CLIENT_CERT")  # a WSGI variable, kept as given
    assert env.mtls()["MTLS_CERT_HEADER"] == "SSL_CLIENT_CERT"
    monkeypatch.setenv("DJANGO_SECURE_PROXY_SSL_HEADER", "0")
    assert env.secure_proxy_ssl_header() is None
    # A caller changing its copy changes nothing for the next one.
    monkeypatch.setenv("CIBA_PROFILE", "fapi-ciba")
    env.security_profile()["DELIVERY_MODES"].append("push")
    assert env.security_profile()["DELIVERY_MODES"] == ["poll", "ping"]


@pytest.mark.parametrize(
    "name, value",
    [
        ("CIBA_PROFILE", "fapi"),
        ("CIBA_TRUSTED_PROXIES", "127.0.0.1/32,nginx.internal"),
        ("CIBA_MTLS_CERT_HEADER", "X SSL Client Cert"),
        ("CIBA_MTLS_CERT_VERIFY_HEADER", "X-SSL-Client-Verify:"),
        ("CIBA_MTLS_CERT_HEADER_FORMAT", "pem"),
        ("CIBA_MTLS_BASE_URL", "http://mtls.as.example.com"),
        ("DJANGO_SECURE_PROXY_SSL_HEADER", "https"),
    ],
)
def test_a_value_that_cannot_be_right_stops_the_start_naming_the_variable(monkeypatch, name, value):
    for other in PROFILE_VARIABLES:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        for read in (env.security_profile, env.mtls, env.secure_proxy_ssl_header):
            read()


# --- passkeys: where they are bound ---------------------------------------------------------------


def test_the_passkey_variables_map_to_the_webauthn_settings_and_unset_ones_to_nothing(monkeypatch):
    monkeypatch.delenv("CIBA_WEBAUTHN_RP_ID", raising=False)
    monkeypatch.delenv("CIBA_WEBAUTHN_ORIGINS", raising=False)
    assert env.passkeys() == {}
    monkeypatch.setenv("CIBA_WEBAUTHN_RP_ID", "example.com")
    monkeypatch.setenv("CIBA_WEBAUTHN_ORIGINS", "https://login.example.com/, android:apk-key-hash:abc")
    assert env.passkeys() == {
        "WEBAUTHN_RP_ID": "example.com",
        "WEBAUTHN_ORIGINS": ["https://login.example.com", "android:apk-key-hash:abc"],
    }


@pytest.mark.parametrize("value", ["https://example.com", "Example.com", "example.com:443", "example.com/x"])
def test_an_rp_id_that_cannot_be_right_stops_the_start_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("CIBA_WEBAUTHN_RP_ID", value)
    with pytest.raises(ImproperlyConfigured, match="CIBA_WEBAUTHN_RP_ID"):
        env.passkeys()


def test_the_example_binds_passkeys_where_the_environment_says(tmp_path):
    ciba = example_settings(
        tmp_path, CIBA_WEBAUTHN_RP_ID="example.com", CIBA_WEBAUTHN_ORIGINS="https://login.example.com"
    )["CIBA"]
    assert (ciba["WEBAUTHN_RP_ID"], ciba["WEBAUTHN_ORIGINS"]) == (
        "example.com",
        ["https://login.example.com"],
    )
    assert "WEBAUTHN_RP_ID" not in example_settings(tmp_path)["CIBA"]


# --- the per-user limits: the safe defaults unless the environment says otherwise ----------------

USER_LIMIT_VARIABLES = (
    "CIBA_MAX_PENDING_PER_USER",
    "CIBA_MAX_PENDING_PER_CLIENT_USER",
    "CIBA_USER_REQUEST_RATE",
    "CIBA_PENDING_CAP_ACTION",
)


def test_unset_user_limit_variables_leave_ciba_s_safe_defaults_in_place(monkeypatch):
    for name in USER_LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert env.user_limits() == {}
    monkeypatch.setenv("CIBA_USER_REQUEST_RATE", "  ")
    assert env.user_limits() == {}


def test_the_user_limit_variables_map_to_their_settings(monkeypatch):
    monkeypatch.setenv("CIBA_MAX_PENDING_PER_USER", "10")
    monkeypatch.setenv("CIBA_MAX_PENDING_PER_CLIENT_USER", " 1 ")
    monkeypatch.setenv("CIBA_USER_REQUEST_RATE", "60/min")
    monkeypatch.setenv("CIBA_PENDING_CAP_ACTION", "supersede")
    assert env.user_limits() == {
        "MAX_PENDING_PER_USER": 10,
        "MAX_PENDING_PER_CLIENT_USER": 1,
        "USER_REQUEST_RATE": "60/min",
        "PENDING_CAP_ACTION": "supersede",
    }


@pytest.mark.parametrize("word", ["off", "none", "OFF", "None"])
def test_off_or_none_lifts_each_user_limit(monkeypatch, word):
    monkeypatch.delenv("CIBA_PENDING_CAP_ACTION", raising=False)
    for name in USER_LIMIT_VARIABLES[:3]:
        monkeypatch.setenv(name, word)
    assert env.user_limits() == {
        "MAX_PENDING_PER_USER": None,
        "MAX_PENDING_PER_CLIENT_USER": None,
        "USER_REQUEST_RATE": None,
    }


@pytest.mark.parametrize(
    "name, value",
    [
        ("CIBA_MAX_PENDING_PER_USER", "0"),  # would refuse every request; "off" lifts the cap
        ("CIBA_MAX_PENDING_PER_USER", "-1"),
        ("CIBA_MAX_PENDING_PER_USER", "2.5"),
        ("CIBA_MAX_PENDING_PER_CLIENT_USER", "two"),
        ("CIBA_USER_REQUEST_RATE", "20"),
        ("CIBA_USER_REQUEST_RATE", "0/hour"),
        ("CIBA_USER_REQUEST_RATE", "20/fortnight"),
        ("CIBA_USER_REQUEST_RATE", "false"),
        ("CIBA_PENDING_CAP_ACTION", "cancel"),
        ("CIBA_PENDING_CAP_ACTION", "off"),
    ],
)
def test_a_user_limit_that_cannot_be_right_stops_the_start_naming_the_variable(monkeypatch, name, value):
    for other in USER_LIMIT_VARIABLES:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        env.user_limits()


def test_the_example_runs_with_the_user_limits_the_environment_sets_and_passes_its_checks(tmp_path):
    ciba = example_settings(
        tmp_path,
        CIBA_MAX_PENDING_PER_USER="off",
        CIBA_MAX_PENDING_PER_CLIENT_USER="3",
        CIBA_USER_REQUEST_RATE="100/day",
        CIBA_PENDING_CAP_ACTION="supersede",
    )["CIBA"]
    assert {key: ciba[key] for key in ciba if "PENDING" in key or "RATE" in key} == {
        "MAX_PENDING_PER_USER": None,
        "MAX_PENDING_PER_CLIENT_USER": 3,
        "USER_REQUEST_RATE": "100/day",
        "PENDING_CAP_ACTION": "supersede",
    }


def test_the_benchmarks_run_with_the_per_user_limits_off_whatever_the_environment_says(tmp_path):
    """bench.load piles 1,000 pending requests on alice: the benchmarks measure throughput, not
    policy (docs/performance.md), and a limit left on would turn their runs into refusals."""
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: s.CIBA.get(k, 'default') for k in "
        "('MAX_PENDING_PER_USER', 'MAX_PENDING_PER_CLIENT_USER', 'USER_REQUEST_RATE')}))"
    )
    environment = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES + OTHER_CIBA_VARIABLES}
    environment.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        CIBA_EXAMPLE_VAR_DIR=str(tmp_path),
        CIBA_MAX_PENDING_PER_USER="5",
        CIBA_USER_REQUEST_RATE="20/hour",
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "MAX_PENDING_PER_USER": None,
        "MAX_PENDING_PER_CLIENT_USER": None,
        "USER_REQUEST_RATE": None,
    }


def test_postgresql_plans_each_hot_statement_once_per_connection_only_when_asked(monkeypatch):
    """``DATABASE_PREPARED_STATEMENTS``: off by default (Django's client-side binding, nothing
    prepared, as PgBouncer in transaction mode needs); on, parameters are bound on the server
    and psycopg prepares a statement from its fifth run on a connection."""
    monkeypatch.delenv("DATABASE_PREPARED_STATEMENTS", raising=False)
    options = env.postgresql_options()
    assert "server_side_binding" not in options and "prepare_threshold" not in options
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "on")
    options = env.postgresql_options()
    assert options["server_side_binding"] is True and options["prepare_threshold"] == 5
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "sometimes")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_PREPARED_STATEMENTS"):
        env.postgresql_options()
