"""`manage.py check` tells operators what to fix, naming the setting."""

import pytest
from django.core import checks
from django.test import override_settings

from ciba import checks as ciba_checks

DOT = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": "set-in-tests",
    "OIDC_ISS_ENDPOINT": "https://login.example.com/o",
    "OIDC_SERVER_CLASS": "ciba.oauth.server.CibaServer",
    "OAUTH2_VALIDATOR_CLASS": "ciba.oauth.validators.CibaValidator",
}


def ids(messages):
    return [m.id for m in messages]


def run(deploy=False):
    return checks.run_checks(
        include_deployment_checks=deploy, tags=[checks.Tags.security, checks.Tags.models]
    )


def test_the_test_configuration_is_clean():
    assert [m for m in run() if m.id.startswith("ciba.")] == []


@pytest.mark.parametrize(
    "change, code, hint_names",
    [
        ({"OIDC_ENABLED": False}, "ciba.E002", "OIDC_ENABLED"),
        ({"OIDC_RSA_PRIVATE_KEY": ""}, "ciba.E003", "OIDC_RSA_PRIVATE_KEY"),
        ({"OIDC_SERVER_CLASS": "oauthlib.openid.Server"}, "ciba.E004", "OIDC_SERVER_CLASS"),
        (
            {"OAUTH2_VALIDATOR_CLASS": "oauth2_provider.oauth2_validators.OAuth2Validator"},
            "ciba.E005",
            "OAUTH2_VALIDATOR_CLASS",
        ),
        ({"OIDC_ISS_ENDPOINT": ""}, "ciba.E006", "OIDC_ISS_ENDPOINT"),
    ],
)
def test_dot_misconfiguration_is_reported(change, code, hint_names):
    with override_settings(OAUTH2_PROVIDER={**DOT, **change}):
        messages = [m for m in ciba_checks.check_oauth2_provider() if m.id == code]
    assert len(messages) == 1
    assert hint_names in messages[0].hint


def test_push_without_issuer_is_fine_when_push_is_disabled():
    with override_settings(
        OAUTH2_PROVIDER={**DOT, "OIDC_ISS_ENDPOINT": ""}, CIBA={"DELIVERY_MODES": ["poll"]}
    ):
        assert "ciba.E006" not in ids(ciba_checks.check_oauth2_provider())


@pytest.mark.parametrize(
    "ciba, code",
    [
        ({"NOTIFIER_CLASSES": ["nowhere.Notifier"]}, "ciba.E007"),
        ({"AUTH_REQ_ID_BYTES": 16}, "ciba.E008"),
        ({"DELIVERY_MODES": ["poll", "carrier-pigeon"]}, "ciba.E009"),
        ({"DELIVERY_MODES": []}, "ciba.E009"),
        ({"CALLBACK_ALLOW_HTTPS": True}, "ciba.E010"),
        (
            {
                "USER_CODE_SUPPORTED": True,
                "USER_CODE_VERIFIER_CLASS": "ciba.backends.user_code_verifier.UnconfiguredUserCodeVerifier",
            },
            "ciba.E011",
        ),
        ({"REQUEST_SIGNING_ALGS": ["RS256", "none"]}, "ciba.E012"),
        ({"REQUEST_SIGNING_ALGS": ["HS256"]}, "ciba.E012"),
        ({"DEFAULT_EXPIRES_IN": 600, "MAX_EXPIRES_IN": 300}, "ciba.E013"),
        ({"DEFAULT_INTERVAL": 0}, "ciba.E013"),
        ({"POLL_STATE_CLASS": "ciba.polling.RedisPollState"}, "ciba.E014"),
        (
            {"POLL_STATE_CLASS": "ciba.polling.RedisPollState", "POLL_STATE_REDIS_URL": "memcached://x"},
            "ciba.E014",
        ),
        ({"POLL_STATE_CLASS": "ciba.client_auth.Credentials"}, "ciba.E014"),
        ({"NOTIFIER_CLASSES": ["ciba.backends.notifiers.WebhookNotifier"]}, "ciba.E015"),
        (
            {
                "NOTIFIER_CLASSES": ["ciba.backends.webpush.WebPushNotifier"],
                "WEBPUSH_VAPID_SUBJECT": "mailto:x@y",
            },
            "ciba.E015",
        ),
    ],
)
def test_bad_ciba_settings_are_reported(ciba, code):
    with override_settings(CIBA=ciba):
        messages = [m for m in ciba_checks.check_ciba_settings() if m.id == code]
    assert len(messages) == 1
    assert "CIBA[" in messages[0].hint or "CIBA" in messages[0].msg


def test_a_consent_scope_missing_from_dot_scopes_is_reported():
    with override_settings(CIBA={"CONSENT_SCOPE": "device:approve"}):
        messages = [m for m in ciba_checks.check_ciba_settings() if m.id == "ciba.W004"]
    assert len(messages) == 1 and "OAUTH2_PROVIDER" in messages[0].hint


def test_an_application_model_without_the_mixin_is_reported(monkeypatch):
    from oauth2_provider import models as dot_models

    monkeypatch.setattr(dot_models, "get_application_model", lambda: dot_models.Application)
    messages = ciba_checks.check_application_model()
    assert ids(messages) == ["ciba.E001"]
    assert "OAUTH2_PROVIDER_APPLICATION_MODEL" in messages[0].hint


@pytest.mark.parametrize(
    "ciba, eager, code",
    [
        ({"CALLBACK_ALLOW_HTTP": True}, False, "ciba.W001"),
        ({"CALLBACK_ALLOW_PRIVATE_NETWORKS": True}, False, "ciba.W002"),
        ({}, True, "ciba.W003"),
    ],
)
def test_deploy_checks_warn_about_development_posture(ciba, eager, code):
    with override_settings(CIBA=ciba, CELERY_TASK_ALWAYS_EAGER=eager):
        assert code in ids(ciba_checks.check_deploy())


def test_deploy_checks_are_quiet_for_a_production_posture(monkeypatch):
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", False)
    shared = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}}
    with override_settings(CIBA={}, CELERY_TASK_ALWAYS_EAGER=False, CACHES=shared):
        assert ciba_checks.check_deploy() == []


def test_deploy_checks_only_run_with_deploy():
    with override_settings(CIBA={"CALLBACK_ALLOW_HTTP": True}):
        assert "ciba.W001" not in ids(run(deploy=False))
        assert "ciba.W001" in ids(run(deploy=True))


def test_a_notifier_names_the_settings_and_packages_it_lacks(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pywebpush" else real_find_spec(name, *a),
    )
    with override_settings(CIBA={"NOTIFIER_CLASSES": ["ciba.backends.webpush.WebPushNotifier"]}):
        (message,) = [m for m in ciba_checks.check_ciba_settings() if m.id == "ciba.E015"]
    assert (
        'CIBA["WEBPUSH_VAPID_PRIVATE_KEY"]' in message.msg and 'CIBA["WEBPUSH_VAPID_SUBJECT"]' in message.msg
    )
    assert 'pip install "django-ciba[webpush]"' in message.msg


def test_a_configured_notifier_passes_the_check():
    settings = {
        "NOTIFIER_CLASSES": ["ciba.backends.notifiers.WebhookNotifier"],
        "WEBHOOK_NOTIFIER_URL": "https://push.example.com/events",
        "WEBHOOK_NOTIFIER_SECRET": "whsec_c2VjcmV0",
    }
    with override_settings(CIBA=settings):
        assert "ciba.E015" not in ids(ciba_checks.check_ciba_settings())


# --- the security profile and the mTLS, DPoP and signing-key settings -------------------------

#: A FAPI-CIBA configuration as docs/fapi.md and the conformance tests run it.
FAPI = {
    "PROFILE": "fapi-ciba",
    "DELIVERY_MODES": ["poll", "ping"],
    "REQUEST_SIGNING_ALGS": ["PS256", "ES256"],
    "DPOP_SIGNING_ALGS": ["PS256", "ES256"],
    "BINDING_MESSAGE_REQUIRED": True,
    "TRUSTED_PROXIES": ["127.0.0.1/32"],
    "MTLS_CERT_HEADER": "HTTP_X_SSL_CLIENT_CERT",
    "MTLS_CERT_HEADER_FORMAT": "escaped-pem",
    "MTLS_CERT_VERIFY_HEADER": "HTTP_X_SSL_CLIENT_VERIFY",
}


def settings_messages(ciba, code=None):
    with override_settings(CIBA=ciba):
        messages = ciba_checks.check_ciba_settings()
    return [m for m in messages if code is None or m.id == code]


def test_a_fapi_configuration_as_documented_is_clean():
    assert settings_messages(FAPI) == []


def test_an_unknown_profile_is_an_error():
    (message,) = settings_messages({"PROFILE": "fapi2"}, "ciba.E021")
    assert isinstance(message, checks.Error) and 'CIBA["PROFILE"]' in message.hint


def test_the_fapi_profile_with_push_mode_is_an_error():
    (message,) = settings_messages({**FAPI, "DELIVERY_MODES": ["poll", "ping", "push"]}, "ciba.E022")
    assert isinstance(message, checks.Error) and "§5.2.2" in message.msg
    assert 'Remove "push" from CIBA["DELIVERY_MODES"]' in message.hint


def test_push_mode_without_the_profile_is_fine():
    assert settings_messages({**FAPI, "PROFILE": "", "DELIVERY_MODES": ["push"]}, "ciba.E022") == []


@pytest.mark.parametrize("key", ["REQUEST_SIGNING_ALGS", "DPOP_SIGNING_ALGS"])
def test_the_fapi_profile_with_other_algorithms_than_ps256_and_es256_is_an_error(key):
    (message,) = settings_messages({**FAPI, key: ["PS256", "RS256"]}, "ciba.E023")
    assert isinstance(message, checks.Error) and "'RS256'" in message.msg
    assert message.hint == f'Set CIBA["{key}"] = ["PS256", "ES256"].'


def test_the_fapi_profile_with_the_default_dpop_algorithms_is_an_error():
    """The profile narrows nothing silently: the defaults allow RS256 and EdDSA proofs."""
    ciba = {k: v for k, v in FAPI.items() if k != "DPOP_SIGNING_ALGS"}
    (message,) = settings_messages(ciba, "ciba.E023")
    assert "DPOP_SIGNING_ALGS" in message.hint


def test_the_fapi_profile_with_request_objects_living_over_an_hour_is_an_error():
    (message,) = settings_messages({**FAPI, "REQUEST_OBJECT_MAX_LIFETIME": 7200}, "ciba.E024")
    assert isinstance(message, checks.Error) and "3600" in message.hint
    assert settings_messages({**FAPI, "REQUEST_OBJECT_MAX_LIFETIME": 3600}, "ciba.E024") == []


def test_the_fapi_profile_without_a_certificate_header_warns_that_only_dpop_binds_tokens():
    ciba = {**FAPI, "MTLS_CERT_HEADER": "", "MTLS_CERT_VERIFY_HEADER": ""}
    (message,) = settings_messages(ciba, "ciba.W008")
    assert isinstance(message, checks.Warning) and "only DPoP can bind them now" in message.msg
    assert 'CIBA["MTLS_CERT_HEADER"]' in message.hint


def test_the_fapi_profile_with_optional_binding_messages_warns():
    (message,) = settings_messages({**FAPI, "BINDING_MESSAGE_REQUIRED": False}, "ciba.W009")
    assert isinstance(message, checks.Warning) and "unique" in message.msg and "must" in message.msg
    assert 'CIBA["BINDING_MESSAGE_REQUIRED"] = True' in message.hint


def test_an_unknown_certificate_header_format_is_an_error():
    (message,) = settings_messages({"MTLS_CERT_HEADER_FORMAT": "pem"}, "ciba.E025")
    assert isinstance(message, checks.Error) and "escaped-pem, xfcc, der-base64" in message.hint


def test_a_certificate_header_without_trusted_proxies_is_an_error():
    (message,) = settings_messages({**FAPI, "TRUSTED_PROXIES": []}, "ciba.E026")
    assert isinstance(message, checks.Error) and "never be believed" in message.msg
    assert 'CIBA["TRUSTED_PROXIES"]' in message.hint


@pytest.mark.parametrize("key", ["MTLS_CERT_HEADER", "MTLS_CERT_VERIFY_HEADER"])
def test_a_certificate_header_that_is_not_a_meta_key_is_an_error(key):
    (message,) = settings_messages({**FAPI, key: "X-SSL-Client-Cert"}, "ciba.E027")
    assert isinstance(message, checks.Error) and f'CIBA["{key}"]' in message.msg
    assert "HTTP_X_SSL_CLIENT_CERT" in message.hint


def test_a_certificate_header_without_a_verdict_header_warns():
    (message,) = settings_messages({**FAPI, "MTLS_CERT_VERIFY_HEADER": ""}, "ciba.W010")
    assert isinstance(message, checks.Warning) and "ssl_verify_client" in message.msg
    assert 'CIBA["MTLS_CERT_VERIFY_HEADER"]' in message.hint


def test_an_envoy_certificate_header_needs_no_verdict_header():
    ciba = {**FAPI, "MTLS_CERT_HEADER_FORMAT": "xfcc", "MTLS_CERT_VERIFY_HEADER": ""}
    assert settings_messages(ciba, "ciba.W010") == []


def test_an_mtls_base_url_without_https_is_an_error():
    (message,) = settings_messages({"MTLS_BASE_URL": "http://mtls.example.com"}, "ciba.E028")
    assert isinstance(message, checks.Error) and 'CIBA["MTLS_BASE_URL"]' in message.hint
    assert settings_messages({"MTLS_BASE_URL": "https://mtls.example.com"}, "ciba.E028") == []


@pytest.mark.parametrize(
    "ciba",
    [
        {"DPOP_PROOF_MAX_AGE": 0},
        {"DPOP_PROOF_MAX_AGE": 301},
        {"DPOP_PROOF_MAX_AGE": "60"},
        {"DPOP_NONCE_LIFETIME": 0},
        {"DPOP_NONCE_LIFETIME": None},
    ],
)
def test_dpop_lifetimes_that_are_not_positive_or_too_long_are_an_error(ciba):
    (message,) = settings_messages(ciba, "ciba.E029")
    assert isinstance(message, checks.Error) and 'CIBA["DPOP_PROOF_MAX_AGE"]' in message.hint


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_dpop_algorithms_that_are_not_asymmetric_are_an_error(alg):
    (message,) = settings_messages({"DPOP_SIGNING_ALGS": ["ES256", alg]}, "ciba.E030")
    assert isinstance(message, checks.Error) and repr(alg) in message.msg


@pytest.mark.parametrize("keep", [-1, 1.5, "604800", None])
def test_a_retired_key_keep_time_that_is_not_whole_seconds_is_an_error(keep):
    (message,) = settings_messages({"SIGNING_KEY_RETIRED_KEEP_SECONDS": keep}, "ciba.E031")
    assert 'CIBA["SIGNING_KEY_RETIRED_KEEP_SECONDS"]' in message.hint


# --- checks that read the database --------------------------------------------------------------


def database_messages(code):
    return [m for m in checks.run_checks(tags=[checks.Tags.database], databases=["default"]) if m.id == code]


def test_database_checks_run_only_with_a_database(db, settings):
    settings.CIBA = {**settings.CIBA, **FAPI}
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEY": ""}
    assert ciba_checks.check_signing_keys() == [] and ciba_checks.check_registered_clients() == []
    assert ids(ciba_checks.check_signing_keys(databases=["default"])) == ["ciba.E033"]


def test_the_fapi_profile_without_a_ps256_or_es256_key_is_an_error(db, settings):
    from ciba import signing

    settings.CIBA = {**settings.CIBA, **FAPI}
    (message,) = database_messages("ciba.E033")
    assert isinstance(message, checks.Error) and "PS256 or ES256" in message.msg
    assert "manage.py ciba_keys add --type rsa" in message.hint and "--type ec" in message.hint
    signing.generate_key("EC")
    assert database_messages("ciba.E033") == []


def test_plain_ciba_needs_no_key_set(db):
    assert database_messages("ciba.E033") == []


def test_clients_contradicting_the_fapi_profile_are_an_error_listing_their_reasons(make_client, settings):
    pusher, _ = make_client("push")
    basic, _ = make_client("poll")
    settings.CIBA = {**settings.CIBA, **FAPI}
    (message,) = database_messages("ciba.E032")
    assert isinstance(message, checks.Error) and message.msg.startswith("2 CIBA client(s)")
    assert f"{pusher.client_id}: " in message.msg and f"{basic.client_id}: " in message.msg
    assert "FAPI-CIBA does not allow the push mode" in message.msg
    assert (
        "FAPI-CIBA allows private_key_jwt, tls_client_auth or self_signed_tls_client_auth only" in message.msg
    )
    assert "the form shows the profile's rules next to the fields" in message.hint
    # The same reasons are not reported again as a client that cannot use CIBA.
    assert database_messages("ciba.W005") == []


def test_a_client_contradicting_the_profile_keeps_its_other_problems_in_w005(make_client, settings):
    broken, _ = make_client("poll")
    type(broken).objects.filter(pk=broken.pk).update(algorithm="")
    settings.CIBA = {**settings.CIBA, **FAPI}
    (error,) = database_messages("ciba.E032")
    (warning,) = database_messages("ciba.W005")
    assert broken.client_id in error.msg and broken.client_id in warning.msg
    assert "FAPI" not in warning.msg and "no ID token signing algorithm" in warning.msg


def test_contradicting_clients_are_listed_ten_at_most(make_client, settings):
    for _ in range(12):
        make_client("poll")
    settings.CIBA = {**settings.CIBA, **FAPI}
    (message,) = database_messages("ciba.E032")
    assert message.msg.startswith("12 CIBA client(s)") and "(and 2 more)" in message.msg


def test_no_client_contradicts_plain_ciba(make_client):
    make_client("push")
    assert database_messages("ciba.E032") == []


def test_a_client_whose_id_token_algorithm_no_active_key_signs_is_an_error(make_client, db):
    from ciba import signing

    client, _ = make_client("poll", id_token_signed_response_alg="ES256")
    (message,) = database_messages("ciba.E034")
    assert isinstance(message, checks.Error) and f"{client.client_id}: ES256 ID tokens" in message.msg
    assert "manage.py ciba_keys add --type ec" in message.hint
    signing.generate_key("EC")
    assert database_messages("ciba.E034") == []


def test_a_key_set_pruning_retired_keys_before_the_hint_age_warns(db, settings):
    from ciba import signing

    settings.CIBA = {**settings.CIBA, "SIGNING_KEY_RETIRED_KEEP_SECONDS": 3600, "ID_TOKEN_HINT_MAX_AGE": 7200}
    assert database_messages("ciba.W011") == []  # no key set: nothing is ever pruned
    signing.generate_key("EC")
    (message,) = database_messages("ciba.W011")
    assert isinstance(message, checks.Warning) and "refused earlier" in message.msg
    assert 'CIBA["SIGNING_KEY_RETIRED_KEEP_SECONDS"] to at least 7200' in message.hint
    settings.CIBA = {**settings.CIBA, "SIGNING_KEY_RETIRED_KEEP_SECONDS": 7200}
    assert database_messages("ciba.W011") == []
