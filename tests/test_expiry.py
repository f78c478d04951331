"""Expiring requests: the expire_ciba_requests command and the Celery beat task."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from ciba import services
from ciba.models import AuthenticationRequest, CallbackDelivery
from ciba.tasks import expire_requests


@pytest.fixture
def make_requests(alice, make_client, no_user_limits):
    def factory(n, mode="poll", expired=True, **client_fields):
        app, _ = make_client(mode, **client_fields)
        created = [
            services.create_request(
                expires_in=60,
                client=app,
                user=alice,
                hint_kind="login_hint",
                scope="openid",
                interval=5,
                client_notification_token="nt" if mode != "poll" else "",
            )
            for _ in range(n)
        ]
        if expired:
            AuthenticationRequest.objects.filter(pk__in=[r.pk for r in created]).update(
                expires_at=timezone.now() - timedelta(seconds=1)
            )
        return created

    return factory


def run(*args):
    out = StringIO()
    call_command("expire_ciba_requests", *args, stdout=out)
    return out.getvalue()


def test_every_request_past_expiry_is_marked_in_batches(make_requests):
    make_requests(7)
    live = make_requests(2, expired=False)
    assert "7 request(s) marked expired." in run("--batch-size", "3")
    assert AuthenticationRequest.objects.filter(state="expired").count() == 7
    assert all(AuthenticationRequest.objects.get(pk=r.pk).state == "pending" for r in live)
    assert "0 request(s) marked expired." in run()


def test_a_dry_run_changes_nothing(make_requests):
    make_requests(3)
    assert "3 request(s) would be marked expired." in run("--dry-run")
    assert not AuthenticationRequest.objects.filter(state="expired").exists()


def test_push_clients_get_an_expiry_callback_and_others_none(make_requests):
    make_requests(2, mode="push")
    make_requests(2, mode="ping")
    make_requests(1, mode="poll")
    run()
    rows = CallbackDelivery.objects.all()
    assert [(r.kind, r.error_code) for r in rows] == [("push_error", "expired_token")] * 2


def test_an_approved_push_request_not_yet_delivered_expires_through_its_tokens_callback(alice, make_requests):
    (ar,) = make_requests(1, mode="push", expired=False)
    services.approve(ar, user=alice)
    AuthenticationRequest.objects.filter(pk=ar.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    run()
    assert [r.kind for r in CallbackDelivery.objects.all()] == ["push_tokens"]  # no second callback
    from ciba.callbacks import payload

    body = payload(CallbackDelivery.objects.get())
    assert body["error"] == "expired_token" and "access_token" not in body


def test_uncollected_approvals_expire_but_denials_stay_final(alice, make_requests):
    (ar,) = make_requests(1, expired=False)
    services.approve(ar, user=alice)
    AuthenticationRequest.objects.filter(pk=ar.pk).update(expires_at=timezone.now() + timedelta(seconds=30))
    assert (
        services.expire_due(now=timezone.now() + timedelta(minutes=1)) == 1
    )  # approved, uncollected: expires
    (late,) = make_requests(1, expired=False)
    services.deny(late, user=alice)
    assert services.expire_due(now=timezone.now() + timedelta(minutes=1)) == 0  # a denial is final


def test_old_finished_requests_can_be_deleted(alice, make_requests):
    old = make_requests(3)
    run()
    AuthenticationRequest.objects.filter(pk__in=[r.pk for r in old]).update(
        updated_at=timezone.now() - timedelta(days=40)
    )
    recent = make_requests(2)
    out = run("--delete-finished-older-than", "30", "--batch-size", "2")
    assert "3 finished request(s) deleted." in out
    assert set(AuthenticationRequest.objects.values_list("pk", flat=True)) == {r.pk for r in recent}


def test_the_beat_task_runs_the_same_sweep(make_requests):
    make_requests(2)
    assert expire_requests.apply().get() == 2
