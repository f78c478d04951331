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
                "USER_CODE_VERIFIER_CLASS": "ciba.backends.user_code.UnconfiguredUserCodeVerifier",
            },
            "ciba.E011",
        ),
        ({"REQUEST_SIGNING_ALGS": ["RS256", "none"]}, "ciba.E012"),
        ({"REQUEST_SIGNING_ALGS": ["HS256"]}, "ciba.E012"),
        ({"DEFAULT_EXPIRES_IN": 600, "MAX_EXPIRES_IN": 300}, "ciba.E013"),
        ({"DEFAULT_INTERVAL": 0}, "ciba.E013"),
        ({"POLL_STATE_CLASS": "ciba.poll_state.RedisPollState"}, "ciba.E014"),
        (
            {"POLL_STATE_CLASS": "ciba.poll_state.RedisPollState", "POLL_STATE_REDIS_URL": "memcached://x"},
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
