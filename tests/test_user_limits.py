"""Protecting the person being asked (issue 27): caps on pending requests per user and per
(client, user), a rate per user across clients, and the block list, all refused before
anything is stored or anyone notified, with one description that tells nothing more."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ciba import services, signals, user_limits
from ciba.errors import AccessDenied
from ciba.models import AuthenticationRequest, CallbackDelivery, ClientBlock
from tests.conftest import basic_auth

State = AuthenticationRequest.State
NO_CAPS = {"MAX_PENDING_PER_USER": None, "MAX_PENDING_PER_CLIENT_USER": None, "USER_REQUEST_RATE": None}


def limits(**values: Any) -> dict[str, Any]:
    """CIBA settings with only the given limits on (every other one off)."""
    return {"CALLBACK_ALLOW_HTTP": True, "CALLBACK_ALLOW_PRIVATE_NETWORKS": True, **NO_CAPS, **values}


def new(client: Any, user: Any, **extra: Any) -> AuthenticationRequest:
    return services.create_request(
        expires_in=300, client=client, user=user, hint_kind="login_hint", scope="openid", interval=5, **extra
    )


def refused(client: Any, user: Any) -> AccessDenied:
    with pytest.raises(AccessDenied) as exc:
        new(client, user)
    return exc.value


@override_settings(CIBA=limits(MAX_PENDING_PER_CLIENT_USER=2))
def test_one_client_may_hold_exactly_the_per_client_cap_pending_for_one_user(alice, make_client):
    kiosk, _ = make_client()
    other, _ = make_client()
    new(kiosk, alice)
    new(kiosk, alice)
    error = refused(kiosk, alice)
    assert error.status_code == 403 and error.error == "access_denied"
    assert AuthenticationRequest.objects.filter(client=kiosk).count() == 2
    new(other, alice)  # another client is not held back by the kiosk's pile


@override_settings(CIBA=limits(MAX_PENDING_PER_USER=3))
def test_every_client_together_may_hold_exactly_the_per_user_cap_pending(alice, make_client):
    clients = [make_client()[0] for _ in range(3)]
    for client in clients:
        new(client, alice)
    refused(clients[0], alice)
    refused(make_client()[0], alice)
    assert AuthenticationRequest.objects.filter(user=alice).count() == 3


@override_settings(CIBA=limits(MAX_PENDING_PER_USER=2))
def test_the_per_user_cap_is_per_user(alice, make_client, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    kiosk, _ = make_client()
    new(kiosk, alice)
    new(kiosk, alice)
    refused(kiosk, alice)
    new(kiosk, bob)


@override_settings(CIBA=limits(MAX_PENDING_PER_USER=2, MAX_PENDING_PER_CLIENT_USER=2))
def test_decided_and_expired_requests_free_their_place(alice, make_client):
    kiosk, _ = make_client()
    first, second = new(kiosk, alice), new(kiosk, alice)
    refused(kiosk, alice)
    services.deny(first, user=alice)
    third = new(kiosk, alice)
    # Past expires_at but not yet swept: no longer pending for anyone, so not counted.
    AuthenticationRequest.objects.filter(pk=second.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    new(kiosk, alice)
    refused(kiosk, alice)
    services.approve(third, user=alice)
    new(kiosk, alice)


@pytest.fixture
def database_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The database counts the rate, as without a shared cache (on any test tier)."""
    monkeypatch.setattr(user_limits, "cache_is_shared", lambda: False)


@override_settings(CIBA=limits(USER_REQUEST_RATE="3/hour"))
def test_the_rate_counts_new_requests_for_the_user_across_clients(alice, make_client, database_counts):
    kiosk, _ = make_client()
    shop, _ = make_client()
    for client in (kiosk, shop, kiosk):
        services.deny(new(client, alice), user=alice)  # decided: only the rate can refuse
    refused(shop, alice)
    refused(kiosk, alice)
    # The oldest leaves the period: one more is allowed, then none.
    oldest = AuthenticationRequest.objects.filter(user=alice).order_by("pk").first()
    AuthenticationRequest.objects.filter(pk=oldest.pk).update(created_at=timezone.now() - timedelta(hours=1))
    new(shop, alice)
    refused(shop, alice)


@override_settings(CIBA=limits(USER_REQUEST_RATE="2/hour", MAX_PENDING_PER_CLIENT_USER=1))
def test_a_request_refused_by_a_cap_spends_none_of_the_rate(alice, make_client):
    kiosk, _ = make_client()
    first = new(kiosk, alice)
    for _ in range(3):
        refused(kiosk, alice)
    services.deny(first, user=alice)
    new(kiosk, alice)
    assert AuthenticationRequest.objects.filter(user=alice).count() == 2


@pytest.fixture
def shared_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache counts the rate, as with Redis (the test cache is per process)."""
    monkeypatch.setattr(user_limits, "cache_is_shared", lambda: True)


@override_settings(CIBA=limits(USER_REQUEST_RATE="2/hour", MAX_PENDING_PER_CLIENT_USER=1))
def test_with_a_shared_cache_the_rate_is_counted_there_and_refusals_give_it_back(
    alice, make_client, shared_cache
):
    kiosk, _ = make_client()
    shop, _ = make_client()
    first = new(kiosk, alice)
    refused(kiosk, alice)  # the per-client cap: the rate is not spent
    new(shop, alice)
    services.deny(first, user=alice)
    refused(kiosk, alice)  # the rate: two stored this hour
    assert cache.get(user_limits._rate_key(alice, 3600, timezone.now())) == 2
    AuthenticationRequest.objects.filter(user=alice).update(created_at=timezone.now() - timedelta(hours=2))
    refused(kiosk, alice)  # the cache, not the rows, counts the window


@override_settings(CIBA=limits(USER_REQUEST_RATE="2/hour"))
def test_when_the_cache_fails_the_database_counts_the_rate(alice, make_client, shared_cache, monkeypatch):
    kiosk, _ = make_client()

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "add", down)
    monkeypatch.setattr(cache, "incr", down)
    services.deny(new(kiosk, alice), user=alice)
    services.deny(new(kiosk, alice), user=alice)
    refused(kiosk, alice)


@override_settings(CIBA=limits(USER_REQUEST_RATE="1/hour"), ROOT_URLCONF="tests.urls")
def test_every_limit_and_the_block_answer_the_same_description(client, alice, make_client, django_user_model):
    """Which limit was met, or that the user blocked the client, is not the client's to learn."""
    answers = []
    kiosk, secret = make_client()

    def post(app: Any, app_secret: str) -> Any:
        return client.post(
            "/o/backchannel-authentication/",
            "scope=openid&login_hint=alice",
            content_type="application/x-www-form-urlencoded",
            HTTP_AUTHORIZATION=basic_auth(app.client_id, app_secret),
        )

    assert post(kiosk, secret).status_code == 200
    answers.append(post(kiosk, secret))  # the rate
    with override_settings(CIBA=limits(MAX_PENDING_PER_CLIENT_USER=1)):
        answers.append(post(kiosk, secret))
    with override_settings(CIBA=limits(MAX_PENDING_PER_USER=1)):
        answers.append(post(*make_client()))
    blocked, blocked_secret = make_client()
    ClientBlock.objects.create(user=alice, client=blocked)
    answers.append(post(blocked, blocked_secret))
    bodies = [(a.status_code, a.json()) for a in answers]
    assert bodies == [(403, {"error": "access_denied", "error_description": user_limits.REFUSAL})] * 4
    assert user_limits.REFUSAL.isascii()


@pytest.mark.parametrize("caps", [NO_CAPS, {"MAX_PENDING_PER_USER": 5}], ids=["uncapped", "capped"])
def test_a_blocked_client_is_refused_before_anything_is_stored_or_notified(
    client, alice, make_client, recorder, caps, django_capture_on_commit_callbacks
):
    from ciba.models import Device

    Device.objects.create(user=alice, kind="apns", token="apns-token", label="iPhone")
    kiosk, secret = make_client("ping")
    ClientBlock.objects.create(user=alice, client=kiosk)
    created: list[Any] = []
    signals.auth_request_created.connect(receiver := lambda **kw: created.append(kw), weak=False)
    settings = {
        **limits(**caps),
        "NOTIFIER_CLASSES": ["ciba.backends.notifiers.WebhookNotifier"],
        "WEBHOOK_NOTIFIER_ALLOW_PRIVATE_NETWORKS": True,
        "WEBHOOK_NOTIFIER_URL": recorder.url("/ciba-events"),
        "WEBHOOK_NOTIFIER_SECRET": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    }
    try:
        with override_settings(CIBA=settings), django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = client.post(
                "/o/backchannel-authentication/",
                "scope=openid&login_hint=alice&client_notification_token=abc",
                content_type="application/x-www-form-urlencoded",
                HTTP_AUTHORIZATION=basic_auth(kiosk.client_id, secret),
            )
    finally:
        signals.auth_request_created.disconnect(receiver)
    assert response.status_code == 403 and response.json()["error"] == "access_denied"
    assert not AuthenticationRequest.objects.exists() and not CallbackDelivery.objects.exists()
    assert callbacks == [] and created == [] and recorder.received == []


@override_settings(CIBA=limits())
def test_without_caps_a_request_costs_the_block_lookup_and_the_insert(alice, make_client):
    kiosk, _ = make_client()
    with CaptureQueriesContext(connection) as queries:
        new(kiosk, alice)
    assert len(queries) == 2, [q["sql"] for q in queries]
    assert "ciba_clientblock" in queries[0]["sql"] and queries[1]["sql"].startswith("INSERT")


@override_settings(
    CIBA=limits(MAX_PENDING_PER_USER=5, MAX_PENDING_PER_CLIENT_USER=2, USER_REQUEST_RATE="20/hour")
)
def test_with_every_cap_a_request_costs_the_lock_and_one_counting_statement_more(
    alice, make_client, database_counts
):
    kiosk, _ = make_client()
    with CaptureQueriesContext(connection) as queries:
        new(kiosk, alice)
    statements = [q["sql"] for q in queries]
    if connection.vendor == "postgresql":
        assert "pg_try_advisory_xact_lock" in statements.pop(0)
    # SQLite takes no lock: its writers are serialised already.
    assert len(statements) == 2, statements
    assert "ciba_clientblock" in statements[0] and statements[1].startswith("INSERT")


@pytest.mark.django_db(transaction=True)
@override_settings(CIBA=limits(USER_REQUEST_RATE="1/hour"))
def test_a_request_that_fails_to_store_gives_its_rate_back(alice, make_client, shared_cache, monkeypatch):
    kiosk, _ = make_client()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(AuthenticationRequest, "save", broken)
        with pytest.raises(RuntimeError):
            new(kiosk, alice)
    assert cache.get(user_limits._rate_key(alice, 3600, timezone.now())) == 0
    new(kiosk, alice)
    refused(kiosk, alice)


def test_the_rate_is_read_in_drf_syntax():
    assert user_limits.parse_rate("20/hour") == (20, 3600)
    assert user_limits.parse_rate("5/m") == (5, 60)
    assert user_limits.parse_rate("100/day") == (100, 86400)
    for bad in ("20", "x/hour", "20/fortnight", "-1/hour"):
        with pytest.raises(ValueError):
            user_limits.parse_rate(bad)


def test_advisory_keys_are_stable_signed_64_bit_and_per_user():
    keys = {user_limits.advisory_key(pk) for pk in (1, 2, "1", "a5b2")}
    assert len(keys) == 3  # 1 and "1" are the same user
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert user_limits.advisory_key(7) == user_limits.advisory_key(7)


def test_the_defaults_are_on():
    """Safe by default: a site gets the caps without configuring anything."""
    from ciba.conf import DEFAULTS

    assert DEFAULTS["MAX_PENDING_PER_USER"] == 5
    assert DEFAULTS["MAX_PENDING_PER_CLIENT_USER"] == 2
    assert DEFAULTS["USER_REQUEST_RATE"] == "20/hour"
    assert user_limits.caps_set()


def _refusal_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ciba.user_limits" and r.levelname == "INFO"]


@override_settings(
    CIBA=limits(MAX_PENDING_PER_USER=2, MAX_PENDING_PER_CLIENT_USER=1, USER_REQUEST_RATE="3/hour")
)
def test_the_operators_log_says_which_limit_refused_a_request_the_client_never_learns(
    alice, make_client, database_counts, caplog
):
    caplog.set_level("INFO", logger="ciba.user_limits")
    kiosk, shop, bank = make_client()[0], make_client()[0], make_client()[0]
    new(kiosk, alice)
    assert refused(kiosk, alice).description == user_limits.REFUSAL
    new(shop, alice)
    assert refused(bank, alice).description == user_limits.REFUSAL
    services.deny(AuthenticationRequest.objects.filter(client=shop).get(), user=alice)
    new(bank, alice)  # the third request of the hour
    services.deny(AuthenticationRequest.objects.filter(client=bank).get(), user=alice)
    assert refused(shop, alice).description == user_limits.REFUSAL
    user_limits.block(alice, shop)
    assert refused(shop, alice).description == user_limits.REFUSAL
    reasons = _refusal_reasons(caplog)
    assert [r.split(":", 1)[1].split(" (")[0].strip() for r in reasons] == [
        user_limits.PENDING_PER_CLIENT_USER,
        user_limits.PENDING_PER_USER,
        user_limits.RATE,
        user_limits.BLOCKED,
    ]
    assert f"client {kiosk.client_id}, user {alice.pk}" in reasons[0]


@override_settings(CIBA=limits())
def test_with_the_caps_off_a_block_is_still_logged_with_its_reason(alice, make_client, caplog):
    caplog.set_level("INFO", logger="ciba.user_limits")
    kiosk, _ = make_client()
    user_limits.block(alice, kiosk)
    refused(kiosk, alice)
    assert len(reasons := _refusal_reasons(caplog)) == 1 and user_limits.BLOCKED in reasons[0]


class UsersElsewhereRouter:
    """A site whose users are read from another database than ciba's tables."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "users" if model._meta.label == settings.AUTH_USER_MODEL else None


@override_settings(CIBA=limits())
def test_users_read_from_another_database_are_asked_about_blocks_in_a_query_of_their_own(alice, make_client):
    """A subquery cannot join two databases: the lookup then asks nothing about blocks, and
    the check before the INSERT asks the block list itself, so a blocked client is still
    refused (issue 29's folded check is only an optimisation)."""
    kiosk, _ = make_client()
    user_limits.block(alice, kiosk)
    assert user_limits.block_annotation(kiosk) != {}
    with override_settings(DATABASE_ROUTERS=[f"{__name__}.UsersElsewhereRouter"]):
        assert user_limits.block_annotation(kiosk) == {}
    user_limits.keep_block_answer(alice, kiosk)  # nothing to keep
    with CaptureQueriesContext(connection) as queries:
        assert refused(kiosk, alice).description == user_limits.REFUSAL
    assert len(queries) == 1 and "ciba_clientblock" in queries[0]["sql"]
