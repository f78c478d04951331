"""``manage.py ciba_health``: a non-zero exit and a clear line when nothing is sweeping."""

import time
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from ciba import dispatch, services
from ciba.models import CallbackDelivery
from ciba.tasks import expire_requests, sweep_callbacks


def health(*args):
    out, err = StringIO(), StringIO()
    try:
        call_command("ciba_health", *args, stdout=out, stderr=err)
        status = 0
    except SystemExit as exc:
        status = exc.code
    return status, out.getvalue(), err.getvalue()


def sweep_all():
    sweep_callbacks.apply().get()
    expire_requests.apply().get()


def test_it_fails_before_any_sweep_ever_ran(db):
    status, out, err = health()
    assert status == 1
    assert "FAIL  sweep callbacks: never completed (is beat running" in err


def test_it_passes_right_after_the_sweeps(db):
    sweep_all()
    status, out, err = health()
    assert status == 0, err
    assert "ok    sweep callbacks: completed 0 s ago" in out
    assert "ok    outbox callbacks: 0 pending, 0 overdue" in out
    assert err == ""


def test_it_fails_when_the_last_sweep_is_older_than_the_limit(db):
    sweep_all()
    cache.set("ciba:sweep:done:notifications", time.time() - 400, None)
    status, out, err = health("--max-age", "300")
    assert status == 1
    assert "FAIL  sweep notifications: last completed 400 s ago (more than 300 s)" in err
    assert "ok    sweep callbacks" in out


def test_the_expiry_sweep_is_reported_but_never_fails_the_check(db):
    sweep_callbacks.apply().get()  # expiry runs from cron here, or not at all
    status, out, _ = health()
    assert status == 0
    assert "info  sweep expiry: never completed (run from cron?)" in out


def test_the_limit_defaults_to_the_setting(db, settings):
    sweep_all()
    cache.set("ciba:sweep:done:notifications", time.time() - 100, None)
    settings.CIBA = {**settings.CIBA, "SWEEP_MAX_AGE": 60}
    assert health()[0] == 1
    settings.CIBA = {**settings.CIBA, "SWEEP_MAX_AGE": 120}
    assert health()[0] == 0


def test_it_reports_the_backlog_and_fails_on_an_entry_overdue_too_long(alice, make_client):
    app, _ = make_client("ping", backchannel_client_notification_endpoint="https://rp.example/cb")
    with mock.patch.object(dispatch, "send", return_value=False):  # the broker is down
        for _ in range(2):
            ar = services.create_request(
                expires_in=600,
                client=app,
                user=alice,
                hint_kind="login_hint",
                scope="openid",
                interval=5,
                client_notification_token="nt-0123456789",
            )
            services.approve(ar, user=alice)
    sweep_all_without_sending = mock.patch.object(dispatch, "send", return_value=True)
    with sweep_all_without_sending:
        expire_requests.apply().get()
        cache.set("ciba:sweep:done:callbacks", time.time(), None)
        cache.set("ciba:sweep:done:notifications", time.time(), None)
    status, out, _ = health()
    assert status == 0 and "outbox callbacks: 2 pending, 0 overdue" in out
    CallbackDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=500))
    status, _, err = health("--max-age", "300")
    assert status == 1
    assert "FAIL  outbox callbacks: 2 pending, 2 overdue, the oldest due 500 s ago" in err


def test_an_unreadable_cache_fails_but_the_outboxes_are_still_reported(db, monkeypatch):
    monkeypatch.setattr(cache, "get_many", mock.Mock(side_effect=ConnectionError("cache down")))
    status, out, err = health()
    assert status == 1
    assert "FAIL  sweeps: the cache could not be read (ConnectionError)" in err
    assert "ok    outbox notifications: 0 pending, 0 overdue" in out


@pytest.mark.parametrize("value", [-1, "soon"])
def test_a_wrong_setting_is_reported_by_the_checks(settings, value):
    from ciba.checks import Codes, check_worker_settings

    settings.CIBA = {**settings.CIBA, "SWEEP_MAX_AGE": value}
    assert [m.id for m in check_worker_settings()] == [Codes.WORKER_SETTINGS]
